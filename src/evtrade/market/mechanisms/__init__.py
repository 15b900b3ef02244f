"""Every trading mechanism behind one registry: a name, its options, its clear function.

A ``round`` mechanism clears one :class:`~evtrade.model.Market` into a
:class:`~evtrade.market.result.ClearingResult` (what ``evtrade clear`` prints); a ``day``
mechanism takes a day scenario and returns its own result. Adding a mechanism is one module in
this package that declares its :class:`Mechanism` and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from evtrade.errors import MechanismError
from evtrade.market.mechanisms import babg, dsm, dv2g, eta, ida
from evtrade.market.mechanisms.base import Kind, Mechanism
from evtrade.market.result import ClearingResult
from evtrade.model import Market

#: Every mechanism, in the order of listings. A new one: its module here, and one line.
REGISTRY: tuple[Mechanism, ...] = (
    *eta.VARIANTS,
    babg.MECHANISM,
    ida.MECHANISM,
    dsm.MECHANISM,
    dv2g.MECHANISM,
)
_BY_NAME = {m.name: m for m in REGISTRY}
#: The default mechanism; options at its defaults count as not given (as the CLI passes them).
DEFAULT = "eta"


def names(kind: Kind | None = None) -> tuple[str, ...]:
    """The registered names in registry order, of one ``kind`` or all."""
    return tuple(m.name for m in REGISTRY if kind is None or m.kind == kind)


def get(name: str) -> Mechanism:
    """The mechanism called ``name``.

    Raises
    ------
    MechanismError
        On an unknown name, naming the field ``mechanism`` and the choices.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise MechanismError(
            f"mechanism: unknown {name!r}; choose one of {', '.join(names())}"
        ) from None


def run_mechanism(market: Market, mechanism: str = DEFAULT, **options: Any) -> ClearingResult:
    """Clear ``market`` with the round mechanism ``mechanism``; options that it does not take are
    refused.

    An option is given when it differs from the default mechanism's default for it (None for the
    options the default mechanism does not have). ``eta``, ``complete-info``, ``single-price``:
    :func:`evtrade.market.mechanisms.eta.clear` (``price`` and ``volumes`` apply). ``babg``: Luo
    et al.'s two-way auction with the fields of
    :class:`~evtrade.market.mechanisms.babg.BabgParams` (``alpha``, ``beta``, the grid prices).
    ``ida``: Kang et al.'s iterative double auction.

    Raises
    ------
    MechanismError
        A day mechanism; an option only another mechanism takes (``"<option>: only the <name>
        mechanism takes this option"``); an unknown mechanism; a shared option this one refuses
        (its ``refuses``); or the mechanism's own checks of its options.
    TypeError
        An option no round mechanism has.
    """
    given = _given(options)
    mech = _BY_NAME.get(mechanism)
    if mech is not None and mech.kind != "round":
        raise MechanismError(
            f"mechanism: {mech.name} clears a day scenario, not one market; choose one of "
            f"{', '.join(names('round'))}"
        )
    taken = () if mech is None else mech.options()
    foreign = [k for k in _option_order() if k in given and k not in taken]
    for k in foreign:
        owners = _owners(k)
        if len(owners) == 1:
            raise MechanismError(f"{k}: only the {owners[0]} mechanism takes this option")
    if mech is None:
        raise MechanismError(
            f"mechanism: unknown {mechanism!r}; choose one of {', '.join(names('round'))}"
        )
    if foreign:
        if mech.refuses:
            shared = [k for k in _option_order() if len(_owners(k)) > 1 and k not in taken]
            raise MechanismError(f"{'/'.join(shared)}: {mech.refuses}")
        raise MechanismError(f"{foreign[0]}: the {mech.name} mechanism does not take this option")
    result: ClearingResult
    if mech.params is None:
        result = mech.run(market)
    else:
        result = mech.run(market, mech.params(**{k: v for k, v in given.items() if k in taken}))
    return result


def _given(options: dict[str, Any]) -> dict[str, Any]:
    known = set(_option_order())
    for k in options:
        if k not in known:
            raise TypeError(f"run_mechanism() got an unexpected keyword argument {k!r}")
    default = get(DEFAULT)
    base = {} if default.params is None else {f.name: f.default for f in fields(default.params)}
    return {k: v for k, v in options.items() if not _same(v, base.get(k))}


def _same(value: Any, default: Any) -> bool:
    return value is default if default is None else bool(value == default)


def _round() -> tuple[Mechanism, ...]:
    return tuple(m for m in REGISTRY if m.kind == "round")


def _option_order() -> tuple[str, ...]:
    """Every option of every round mechanism, in registry order, each once (a day mechanism's
    options are not :func:`run_mechanism`'s)."""
    return tuple(dict.fromkeys(k for m in _round() for k in m.options()))


def _owners(option: str) -> tuple[str, ...]:
    return tuple(m.name for m in _round() if option in m.options())


__all__ = ["DEFAULT", "REGISTRY", "Kind", "Mechanism", "get", "names", "run_mechanism"]
