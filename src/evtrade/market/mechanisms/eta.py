"""ETA (Xia et al.): one trading round by Algorithm 1 end to end, and two benchmarks of its paper.

``eta``: Bayesian equilibrium bids and asks (Theorem 1), trade iff P* >= R*, T = (P* + R*)/2.
``complete-info``: bids are the true values. ``single-price``: one posted price. The set-up before
the prices (admission, distances, the exclusion rule) is :mod:`evtrade.market.round`; the volumes
are problem P1's optimum (:mod:`evtrade.market.welfare`) or Theorem 2's variant
(:mod:`evtrade.market.theorem2`). A pure function of a :class:`~evtrade.model.Market`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError
from evtrade.market import pricing, reasons
from evtrade.market.mechanisms.base import Mechanism
from evtrade.market.objectives import eta_welfare
from evtrade.market.result import ZERO_KWH, ClearingResult, assemble_result
from evtrade.market.round import Quotes, RoundSetup, prepare_round
from evtrade.market.theorem2 import project_feasible, theorem2_volumes
from evtrade.market.welfare import P1Problem, solve_p1
from evtrade.model import Market

FloatArray = NDArray[np.float64]
MECHANISMS: tuple[str, ...] = ("eta", "complete-info", "single-price")
VOLUME_RULES: tuple[str, ...] = ("p1", "theorem2")


@dataclass(frozen=True)
class EtaOptions:
    """Options of the three variants (checked by :func:`clear`): ``price`` is the posted price of
    ``single-price`` (refused by the other two), ``volumes`` the volume rule."""

    price: float | None = None
    volumes: str = "p1"


def _variant(mechanism: str) -> Callable[[Market, EtaOptions], ClearingResult]:
    """:func:`clear` with ``mechanism`` fixed, taking its options as :class:`EtaOptions`."""

    def run(market: Market, options: EtaOptions) -> ClearingResult:
        return clear(market, mechanism, price=options.price, volumes=options.volumes)

    return run


#: The registry's entries (:mod:`evtrade.market.mechanisms`).
VARIANTS = (
    Mechanism(
        "eta",
        "ETA: Bayesian equilibrium bids and asks (Theorem 1), P1 volumes",
        "round",
        EtaOptions,
        _variant("eta"),
    ),
    Mechanism(
        "complete-info",
        "ETA's benchmark: the true values as bids, P1 volumes",
        "round",
        EtaOptions,
        _variant("complete-info"),
    ),
    Mechanism(
        "single-price",
        "ETA's benchmark: one posted price, P1 volumes",
        "round",
        EtaOptions,
        _variant("single-price"),
    ),
)


def clear(
    market: Market,
    mechanism: str = "eta",
    *,
    price: float | None = None,
    volumes: str = "p1",
) -> ClearingResult:
    """Clear one round of ``market``.

    Parameters
    ----------
    market : Market
    mechanism : {"eta", "complete-info", "single-price"}
        ``eta``: Bayesian equilibrium bids (Theorem 1), trade iff P* >= R*, T = (P* + R*)/2.
        ``complete-info``: bids are the true values, trade iff v >= c, T = (v + c)/2.
        ``single-price``: trade iff c <= price <= v, at ``price``; P and R report v and c.
    price : float, keyword-only
        The posted price, required by (and only used with) ``single-price``.
    volumes : {"p1", "theorem2"}, keyword-only
        ``p1``: social-welfare optimum of problem P1 (default). ``theorem2``: ETA eq. (18)
        projected onto constraints (12)-(14) (a variant, not the optimum).

    Returns
    -------
    ClearingResult

    Raises
    ------
    MechanismError
        On an unknown mechanism or volume rule, or a missing / invalid price.
    """
    _check_options(mechanism, price, volumes)
    rnd = round_setup(market, mechanism, price)
    adm, P, R, T, dist = rnd.admission, rnd.P, rnd.R, rnd.T, rnd.dist
    pairs_mask, in_round = rnd.pairs_mask, rnd.in_round
    B, S, a = market.buyer_arrays, market.seller_arrays, market.auctioneer

    x, solver_info = _volumes(volumes, market, rnd)
    x = np.where(x > ZERO_KWH, x, 0.0)

    in_welfare = in_round & (x.sum(axis=1) >= B["b_min"] - 1e-9)
    return assemble_result(
        market,
        admission=adm,
        mechanism=mechanism,
        volumes_rule=volumes,
        price=None if price is None else float(price),
        P=P,
        R=R,
        T=T,
        dist=dist,
        pairs_mask=pairs_mask,
        x=x,
        welfare=float(
            eta_welfare(x, B["w"], B["b_min"], S["rho"], a.l1, a.l2, in_round=in_welfare)
        ),
        unmatched=_unmatched(market, rnd, x, mechanism, price, volumes),
        solver=solver_info,
    )


def _check_options(mechanism: str, price: float | None, volumes: str) -> None:
    if mechanism not in MECHANISMS:
        raise MechanismError(
            f"mechanism: unknown {mechanism!r}; choose one of {', '.join(MECHANISMS)}"
        )
    if volumes not in VOLUME_RULES:
        raise MechanismError(
            f"volumes: unknown {volumes!r}; choose one of {', '.join(VOLUME_RULES)}"
        )
    if mechanism == "single-price":
        if price is None:
            raise MechanismError("price: the single-price mechanism needs a posted price")
        if isinstance(price, bool) or not np.isfinite(price) or price < 0:
            raise MechanismError(f"price: must be a finite number >= 0, got {price!r}")
    elif price is not None:
        raise MechanismError(f"price: only the single-price mechanism takes a price ({mechanism})")


def _quotes(market: Market, mechanism: str, price: float | None) -> Quotes:
    B, S = market.buyer_arrays, market.seller_arrays
    if mechanism == "eta":
        P = pricing.buyer_bid(B["v"], B["v_max"], S["c_min"])
        R = pricing.seller_ask(S["c"], S["c_min"], B["v_max"])
        return Quotes(P, R, pricing.transaction_price(P, R), pricing.bid_covers_ask(P, R))
    if mechanism == "complete-info":
        P, R, ok = pricing.complete_information(B["v"], S["c"])
        return Quotes(P, R, pricing.transaction_price(P, R), ok)
    assert price is not None
    return Quotes(*pricing.single_price(B["v"], S["c"], float(price)))


def round_setup(market: Market, mechanism: str = "eta", price: float | None = None) -> RoundSetup:
    """Algorithm 1 up to the volumes under one variant's prices (for :func:`clear`,
    :func:`p1_problem` and the settlement planner)."""
    return prepare_round(market, _quotes(market, mechanism, price))


def _volumes(rule: str, market: Market, rnd: RoundSetup) -> tuple[FloatArray, dict[str, Any]]:
    if rule == "theorem2":
        S, a = market.seller_arrays, market.auctioneer
        b_min = np.where(rnd.in_round, market.buyer_arrays["b_min"], 0.0)
        b_max = np.where(rnd.in_round, market.buyer_arrays["b_max"], 0.0)
        raw = theorem2_volumes(rnd.T, S["rho"], l1=a.l1, l2=a.l2, mask=rnd.solve_mask)
        x = project_feasible(raw, rnd.solve_mask, b_min, b_max, rnd.deliverable)
        return x, {"method": "theorem2-projected", "duality_gap": None, "iterations": None}
    sol = solve_p1(_p1_of(market, rnd))
    return sol.x, {
        "method": sol.method,
        "duality_gap": sol.duality_gap,
        "iterations": sol.iterations,
    }


def _p1_of(market: Market, rnd: RoundSetup) -> P1Problem:
    B, S, a = market.buyer_arrays, market.seller_arrays, market.auctioneer
    return P1Problem.from_arrays(
        mask=rnd.solve_mask,
        w=B["w"],
        b_min=np.where(rnd.in_round, B["b_min"], 0.0),
        b_max=np.where(rnd.in_round, B["b_max"], 0.0),
        rho=S["rho"],
        spare=rnd.spare,
        l1=a.l1,
        l2=a.l2,
    )


def p1_problem(market: Market, mechanism: str = "eta", *, price: float | None = None) -> P1Problem:
    """The problem P1 that :func:`clear` solves for ``market`` (for references and audits)."""
    _check_options(mechanism, price, "p1")
    return _p1_of(market, round_setup(market, mechanism, price))


def _unmatched(
    market: Market,
    rnd: RoundSetup,
    x: FloatArray,
    mechanism: str,
    price: float | None,
    volumes: str,
) -> tuple[dict[str, str], ...]:
    """Why each admitted participant trades nothing: the first of the round's filters (distance,
    this variant's price condition, spare energy, the exclusion rule) that left it with no pair,
    on the very masks the round used; else the volume rule gave it nothing."""
    adm, B = rnd.admission, market.buyer_arrays
    near = reasons.within(market)
    own_b: reasons.Rules = ((np.asarray(B["b_max"] == 0), reasons.NO_DEMAND),)
    own_s: reasons.Rules = ((rnd.spare <= 0, reasons.NO_SPARE),)
    if mechanism == "eta":
        no_seller = f"no seller{near} asks at most this buyer's bid (bid P* < ask R*, Theorem 1)"
        no_buyer = f"no buyer{near} bids at least this seller's ask (bid P* < ask R*, Theorem 1)"
    elif mechanism == "complete-info":
        no_seller = f"no seller{near} has a cost at or below this buyer's value (v < c)"
        no_buyer = f"no buyer{near} has a value at or above this seller's cost (v < c)"
    else:
        # One posted price: each side's own half of the trade condition c <= price <= v first.
        posted = f"the posted price ({price:g} tokens/kWh)"
        below = ~np.all(pricing.bid_covers_ask(rnd.P, rnd.T), axis=1)
        above = ~np.all(pricing.bid_covers_ask(rnd.T, rnd.R), axis=0)
        own_b += ((np.asarray(below), f"its bid is below {posted}"),)
        own_s += ((np.asarray(above), f"its ask is above {posted}"),)
        no_seller = f"no seller{near} asks at most {posted}"
        no_buyer = f"no buyer{near} bids at least {posted}"
    steps_b, steps_s = reasons.pair_steps(
        (
            reasons.out_of_reach(rnd.reachable, market),
            reasons.Step(rnd.pairs_mask, no_seller, no_buyer),
            reasons.Step(
                np.asarray(rnd.spare > 0)[None, :],
                f"every seller{near} that accepts its price has no spare energy (s_t <= s_r)",
                None,
            ),
            reasons.Step(rnd.solve_mask, None, reasons.PARTNERS_EXCLUDED),
            reasons.Step(np.asarray(B["b_max"] > 0)[:, None], None, _NO_BUYER_DEMAND),
        )
    )
    if volumes == "theorem2":
        skip_b, skip_s = _THEOREM2_SKIPS_BUYER, _THEOREM2_SKIPS_SELLER
    else:
        skip_b, skip_s = reasons.OPTIMUM_SKIPS_BUYER, reasons.OPTIMUM_SKIPS_SELLER
    buyer_wording = reasons.Wording(own_b + steps_b, skip_b)
    return reasons.unmatched(
        market,
        buyers=adm.buyers_ok & ~(x.sum(axis=1) > 0),
        sellers=adm.sellers_ok & ~(x.sum(axis=0) > 0),
        excluded=reasons.explain_exclusions(rnd.excluded, buyer_wording),
        buyer_wording=buyer_wording,
        seller_wording=reasons.Wording(own_s + steps_s, skip_s),
    )


_NO_BUYER_DEMAND = "every buyer it could trade with asks for no energy (b_max is 0)"
_THEOREM2_SKIPS_BUYER = "Theorem 2's volumes (eq. 18, projected onto (12)-(14)) give it no energy"
_THEOREM2_SKIPS_SELLER = (
    "Theorem 2's volumes (eq. 18, projected onto (12)-(14)) take none of its energy"
)
