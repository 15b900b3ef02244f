"""The registry of mechanisms (evtrade.market.mechanisms) and the unmatched-reasons kernel."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from evtrade import MechanismError, clear, load_market, market_from_dict
from evtrade.market.mechanisms import REGISTRY, get, names, run_mechanism
from evtrade.market.reasons import Wording, unmatched
from evtrade.model import Market

SMALL = Path(__file__).resolve().parents[1] / "examples" / "small.json"


@pytest.fixture(scope="module")
def small() -> Market:
    return load_market(SMALL)


def test_names_and_get_agree_with_the_registry() -> None:
    assert names()[:5] == ("eta", "complete-info", "single-price", "babg", "ida")
    assert len(set(names())) == len(names())
    assert set(names("round")) | set(names("day")) == set(names())
    for m in REGISTRY:
        assert get(m.name) is m
        assert m.kind in ("round", "day") and m.summary
        if m.params is not None:  # every option has a default
            assert dataclasses.is_dataclass(m.params)
            assert m.params.__dataclass_params__.frozen  # type: ignore[attr-defined]
            m.params()


def test_get_names_the_field_and_the_choices() -> None:
    with pytest.raises(MechanismError) as err:
        get("vickrey")
    assert str(err.value) == ("mechanism: unknown 'vickrey'; choose one of " + ", ".join(names()))


@pytest.mark.parametrize("name", ["eta", "complete-info", "single-price"])
def test_eta_variants_are_clear(small: Market, name: str) -> None:
    price = 0.8 if name == "single-price" else None
    got = run_mechanism(small, name, price=price, volumes="p1")
    assert got.to_dict() == clear(small, name, price=price).to_dict()
    t2 = run_mechanism(small, name, price=price, volumes="theorem2")
    assert t2.to_dict() == clear(small, name, price=price, volumes="theorem2").to_dict()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("eta", {"price": 0.7}, "price: only the single-price mechanism takes a price (eta)"),
        ("eta", {"beta": 0.3, "alpha": 0.2}, "alpha: only the babg mechanism takes this option"),
        ("eta", {"volumes": "x"}, "volumes: unknown 'x'; choose one of p1, theorem2"),
        ("single-price", {}, "price: the single-price mechanism needs a posted price"),
        ("babg", {"price": 0.7}, "price/volumes: babg sets its own prices and volumes (SWM2)"),
        ("babg", {"volumes": "theorem2"}, "price/volumes: babg sets its own prices and volumes"),
        ("babg", {"alpha": 1.5}, "alpha: must be a number in [0, 1], got 1.5"),
        ("ida", {"grid_buy": 0.5}, "grid_buy: only the babg mechanism takes this option"),
        ("ida", {"volumes": "theorem2"}, "price/volumes: ida sets its own prices and volumes"),
        ("vickrey", {"alpha": 0.5}, "alpha: only the babg mechanism takes this option"),
        ("vickrey", {"price": 0.5}, "mechanism: unknown 'vickrey'; choose one of eta"),
    ],
)
def test_refusals_name_the_option(
    small: Market, name: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(MechanismError) as err:
        run_mechanism(small, name, **options)
    assert str(err.value).startswith(message)


def test_unset_options_are_the_defaults(small: Market) -> None:
    # What the CLI passes when the user gives nothing: None, and volumes "p1".
    unset = {"price": None, "volumes": "p1", "alpha": None, "beta": None, "grid_buy": None}
    for name in ("babg", "ida"):
        assert run_mechanism(small, name, **unset).to_dict() == run_mechanism(small, name).to_dict()
    tuned = run_mechanism(small, "babg", alpha=0.3, beta=0.8).to_dict()
    assert tuned["solver"]["alpha"] == 0.3 and tuned["solver"]["beta"] == 0.8
    with pytest.raises(TypeError, match="eps9"):
        run_mechanism(small, "eta", eps9=1.0)


def test_unmatched_kernel_order_exclusion_and_first_rule() -> None:
    d = {
        "auctioneer": {"v_min": 0.5, "c_max": 1.0},
        "buyers": [
            {"id": f"b{i}", "v": 0.8, "v_min": 0.6, "v_max": 1.0, "b_min": 1.0, "b_max": 2.0,
             "w": 1.0}
            for i in range(3)
        ],
        "sellers": [
            {"id": f"s{j}", "c": 0.7, "c_min": 0.6, "c_max": 0.9, "s_t": 5.0, "s_r": 1.0,
             "rho": 0.1}
            for j in range(2)
        ],
    }  # fmt: skip
    market = market_from_dict(d)
    out = unmatched(
        market,
        buyers=np.array([True, False, True]),
        sellers=np.array([True, True]),
        excluded={2: "excluded: why"},
        buyer_wording=Wording(rules=((np.array([True, True, True]), "first"),), otherwise="-"),
        seller_wording=Wording(
            rules=((np.array([False, True]), "a"), (np.array([True, True]), "b")),
            otherwise="-",
        ),
    )
    assert out == (
        {"id": "b0", "role": "buyer", "reason": "first"},
        {"id": "b2", "role": "buyer", "reason": "excluded: why"},
        {"id": "s0", "role": "seller", "reason": "b"},
        {"id": "s1", "role": "seller", "reason": "a"},
    )
    none = Wording(rules=(), otherwise="nothing")
    assert unmatched(
        market,
        buyers=np.zeros(3, dtype=bool),
        sellers=np.array([False, True]),
        excluded={},
        buyer_wording=none,
        seller_wording=none,
    ) == ({"id": "s1", "role": "seller", "reason": "nothing"},)


def test_a_new_mechanism_is_one_entry(small: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    import evtrade.market.mechanisms as registry
    from evtrade.market.mechanisms.base import Mechanism

    @dataclasses.dataclass(frozen=True)
    class DayOptions:
        alpha: float = 0.0  # a day mechanism's option of the same name as babg's

    @dataclasses.dataclass(frozen=True)
    class Echo:
        gain: float = 1.0

    day = Mechanism("day-demo", "a day scenario", "day", DayOptions, lambda scenario, p: None)
    echo = Mechanism("echo", "eta again", "round", Echo, lambda m, p: clear(m))
    monkeypatch.setattr(registry, "REGISTRY", (*registry.REGISTRY, day, echo))
    monkeypatch.setattr(registry, "_BY_NAME", {m.name: m for m in registry.REGISTRY})
    assert registry.names("day")[-1] == "day-demo" and registry.names("round")[-1] == "echo"
    assert run_mechanism(small, "echo", gain=2.0).to_dict() == clear(small).to_dict()
    with pytest.raises(MechanismError, match="gain: only the echo mechanism takes this option"):
        run_mechanism(small, "eta", gain=2.0)
    with pytest.raises(MechanismError, match="alpha: only the babg mechanism takes this option"):
        run_mechanism(small, "eta", alpha=0.5)
    with pytest.raises(MechanismError, match="mechanism: day-demo clears a day scenario"):
        run_mechanism(small, "day-demo")
    with pytest.raises(MechanismError, match="price: the echo mechanism does not take this option"):
        run_mechanism(small, "echo", price=0.5)
