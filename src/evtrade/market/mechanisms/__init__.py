"""One entry point for every mechanism on the same market files (what ``evtrade clear`` calls)."""

from __future__ import annotations

from evtrade.errors import MechanismError
from evtrade.market.babg import BabgParams, clear_babg
from evtrade.market.clearing import MECHANISMS, ClearingResult, clear
from evtrade.market.ida import IdaParams, clear_ida
from evtrade.model import Market

ALL_MECHANISMS: tuple[str, ...] = (*MECHANISMS, "babg", "ida")


def run_mechanism(
    market: Market,
    mechanism: str = "eta",
    *,
    price: float | None = None,
    volumes: str = "p1",
    alpha: float | None = None,
    beta: float | None = None,
    grid_buy: float | None = None,
    grid_sell: float | None = None,
) -> ClearingResult:
    """Clear ``market`` with ``mechanism``; options that a mechanism does not take are refused.

    ``eta``, ``complete-info``, ``single-price``: :func:`evtrade.market.clear` (``price`` and
    ``volumes`` apply). ``babg``: Luo et al.'s two-way auction with ``alpha``, ``beta`` and the
    grid prices (:mod:`evtrade.market.babg`). ``ida``: Kang et al.'s iterative double auction.
    """
    babg_opts = {"alpha": alpha, "beta": beta, "grid_buy": grid_buy, "grid_sell": grid_sell}
    given = [k for k, v in babg_opts.items() if v is not None]
    if mechanism == "babg":
        if price is not None or volumes != "p1":
            raise MechanismError("price/volumes: babg sets its own prices and volumes (SWM2)")
        d = BabgParams()
        params = BabgParams(
            alpha=d.alpha if alpha is None else alpha,
            beta=d.beta if beta is None else beta,
            grid_buy=d.grid_buy if grid_buy is None else grid_buy,
            grid_sell=d.grid_sell if grid_sell is None else grid_sell,
        )
        return clear_babg(market, params)
    if given:
        raise MechanismError(f"{given[0]}: only the babg mechanism takes this option")
    if mechanism == "ida":
        if price is not None or volumes != "p1":
            raise MechanismError("price/volumes: ida sets its own prices and volumes")
        return clear_ida(market, IdaParams())
    if mechanism not in MECHANISMS:
        raise MechanismError(
            f"mechanism: unknown {mechanism!r}; choose one of {', '.join(ALL_MECHANISMS)}"
        )
    return clear(market, mechanism, price=price, volumes=volumes)
