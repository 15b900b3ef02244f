"""What a mechanism declares to the registry (:mod:`evtrade.market.mechanisms`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

from evtrade.errors import MechanismError

Kind = Literal["round", "day"]


@dataclass(frozen=True)
class Mechanism:
    """One mechanism.

    Attributes
    ----------
    name : what users type (``evtrade clear --mechanism``).
    summary : one line for listings.
    kind : ``"round"``: ``run(market, params)`` (``run(market)`` when ``params`` is None) clears
        one Market into a :class:`~evtrade.market.result.ClearingResult`; ``"day"``: ``run``
        takes a day scenario and returns the mechanism's own result.
    params : the frozen dataclass of its options, every field with a default (its fields are the
        options :func:`~evtrade.market.mechanisms.run_mechanism` accepts), or None when it takes
        none.
    run : the clear function.
    refuses : why the mechanism refuses the options that several others share (price and
        volumes: "babg sets its own prices and volumes"); empty for the generic wording.
    """

    name: str
    summary: str
    kind: Kind
    params: type | None
    run: Callable[..., Any]
    refuses: str = ""

    def options(self) -> tuple[str, ...]:
        """The option names it takes (the fields of ``params``)."""
        return () if self.params is None else tuple(f.name for f in fields(self.params))


def require_count(name: str, value: object) -> None:
    """A mechanism's iteration limit must be an integer >= 1 (MechanismError naming it)."""
    if not isinstance(value, int) or value < 1:
        raise MechanismError(f"{name}: must be an integer >= 1, got {value!r}")
