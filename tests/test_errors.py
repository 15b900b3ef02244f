"""The exception tree: one root, every class in evtrade.errors, both edges catch it.

Also: the messages of errors raised on bad input name the field at fault.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import typer
from fastapi.testclient import TestClient

import evtrade
from evtrade import errors
from evtrade.cli.boundary import error_boundary
from evtrade.errors import EvtradeError

#: Every error class of the tree, from the module itself (not a hand-kept list).
TREE = [
    obj
    for obj in vars(errors).values()
    if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
]


def _instance(cls: type[EvtradeError], message: str) -> EvtradeError:
    """An instance of ``cls`` whatever its constructor (TooManyError takes retry_after first)."""
    if issubclass(cls, errors.TooManyError):
        return cls(7, message)
    return cls(message)


def test_the_tree_has_one_root_and_the_expected_branches() -> None:
    assert EvtradeError in TREE
    assert all(issubclass(cls, EvtradeError) for cls in TREE)
    # Each refines the built-in its callers may already catch.
    assert issubclass(errors.MarketError, ValueError)
    assert issubclass(errors.JsonInputError, ValueError)
    assert issubclass(errors.MechanismError, ValueError)
    assert issubclass(errors.SolverError, RuntimeError)
    assert issubclass(errors.LedgerError, RuntimeError)
    assert issubclass(errors.ContractRejectedError, errors.LedgerError)
    assert issubclass(errors.ContractRejectedError, ValueError)
    assert issubclass(errors.SettingsError, ValueError)


def test_every_error_is_documented_and_exported() -> None:
    for cls in TREE:
        assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring"
        assert cls.__name__ in errors.__all__, cls.__name__
        assert getattr(evtrade, cls.__name__) is cls, cls.__name__
        assert cls.__name__ in evtrade.__all__, cls.__name__


def _all_modules() -> list[str]:
    names = ["evtrade"]
    for info in pkgutil.walk_packages(evtrade.__path__, "evtrade."):
        if info.name != "evtrade.__main__":
            names.append(info.name)
    return names


def test_no_error_class_is_defined_outside_errors_py() -> None:
    strays = []
    for name in _all_modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == name
                and name != errors.__name__
            ):
                strays.append(f"{name}.{obj.__name__}")
    assert strays == []


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_the_cli_boundary_turns_every_error_into_one_line(
    cls: type[EvtradeError], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as info, error_boundary():
        raise _instance(cls, "buyer 'b1': field 'b_max'\nis wrong")
    assert info.value.exit_code == 1
    assert capsys.readouterr().err == "error: buyer 'b1': field 'b_max' is wrong\n"


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_the_service_answers_every_error_with_its_status_and_message(
    cls: type[EvtradeError],
) -> None:
    from evtrade.service.api import create_app
    from evtrade.service.settings import Settings

    app = create_app(Settings.model_validate({}))

    @app.get("/raise")
    def _raise() -> None:
        raise _instance(cls, "field 'b_max' is wrong")

    # No `with`: the app's lifespan (the RSU and its chain) is not started; only the handler runs.
    reply = TestClient(app, raise_server_exceptions=False).get("/raise")
    assert reply.status_code == errors.http_status(_instance(cls, "x"))
    assert 400 <= reply.status_code < 600
    assert reply.json() == {"detail": "field 'b_max' is wrong"}


def test_statuses_of_the_main_branches() -> None:
    expected = {
        errors.MarketError: 422,
        errors.LedgerError: 422,
        errors.ContractRejectedError: 409,
        errors.MechanismError: 400,
        errors.SolverError: 400,
        errors.TooManyError: 429,
        errors.NotFoundError: 404,
    }
    for cls, status in expected.items():
        assert errors.http_status(_instance(cls, "x")) == status, cls.__name__


# --- messages name the field -------------------------------------------------------------------


def test_a_malformed_market_names_participant_and_field() -> None:
    from evtrade.model import Buyer, market_from_dict

    with pytest.raises(errors.MarketError, match=r"buyer 'b1'.*field 'b_max'"):
        Buyer(id="b1", v=1, v_min=0.5, v_max=1, b_min=6, b_max=4, w=1)
    with pytest.raises(errors.MarketError, match=r"section 'buyers'"):
        market_from_dict({"auctioneer": {"v_min": 0.5, "c_max": 1}, "buyers": []})


def test_untrusted_json_says_why() -> None:
    from evtrade.model.safejson import loads_bounded

    with pytest.raises(errors.JsonInputError, match="NaN is not a number"):
        loads_bounded('{"v": NaN}')
    with pytest.raises(errors.JsonInputError, match="nested deeper than 3 levels"):
        loads_bounded("[[[[1]]]]", max_depth=3)


def test_an_unknown_mechanism_names_the_field() -> None:
    from evtrade.market.mechanisms import get

    with pytest.raises(errors.MechanismError, match="mechanism"):
        get("no-such-mechanism")


def test_a_value_the_ledger_cannot_hold_names_the_field() -> None:
    from evtrade.settlement.units import PRICE_SCALE, to_fixed

    with pytest.raises(errors.LedgerError, match=r"field 'v_max'.*must be >= 0"):
        to_fixed("v_max", -1.0, PRICE_SCALE)


def test_a_bad_setting_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from evtrade.service.settings import Settings

    monkeypatch.setenv("EVTRADE_T_LIMIT", "0")
    with pytest.raises(errors.SettingsError, match="t_limit"):
        Settings.load()
