"""Clearing one trading round: admission, pricing, pair filter, exclusion rule, volumes.

This is Algorithm 1 of ETA end to end, as one pure function of a :class:`~evtrade.model.Market`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError
from evtrade.market import pricing
from evtrade.market.admission import Admission, admit
from evtrade.market.feasibility import exclude_unservable_buyers
from evtrade.market.geo import haversine_km
from evtrade.market.metrics import pair_satisfaction
from evtrade.market.theorem2 import project_feasible, theorem2_volumes
from evtrade.market.welfare import P1Problem, solve_p1
from evtrade.model import Market

FloatArray = NDArray[np.float64]
Mechanism = Literal["eta", "complete-info", "single-price"]
Volumes = Literal["p1", "theorem2"]
MECHANISMS: tuple[str, ...] = ("eta", "complete-info", "single-price")
VOLUME_RULES: tuple[str, ...] = ("p1", "theorem2")

#: Volumes below this (kWh) are reported as 0.
ZERO_KWH = 1e-12


@dataclass(frozen=True)
class Pair:
    """A buyer-seller pair allowed to trade, with its prices and the volume allocated to it."""

    buyer: str
    seller: str
    P: float
    R: float
    T: float
    volume: float
    distance_km: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer,
            "seller": self.seller,
            "P": self.P,
            "R": self.R,
            "T": self.T,
            "volume": self.volume,
            "distance_km": self.distance_km,
        }


@dataclass(frozen=True)
class PairTable:
    """Every pair that may trade, as arrays in input order (buyers, then sellers)."""

    buyer_ids: tuple[str, ...]
    seller_ids: tuple[str, ...]
    i: NDArray[np.intp]
    j: NDArray[np.intp]
    P: FloatArray
    R: FloatArray
    T: FloatArray
    volume: FloatArray
    distance_km: FloatArray  # NaN where a participant has no location

    def pairs(self) -> tuple[Pair, ...]:
        return tuple(
            Pair(
                buyer=self.buyer_ids[i],
                seller=self.seller_ids[j],
                P=P,
                R=R,
                T=T,
                volume=v,
                distance_km=None if d != d else d,  # NaN: no location
            )
            for i, j, P, R, T, v, d in zip(
                self.i.tolist(),
                self.j.tolist(),
                self.P.tolist(),
                self.R.tolist(),
                self.T.tolist(),
                self.volume.tolist(),
                self.distance_km.tolist(),
                strict=True,
            )
        )


@dataclass(frozen=True)
class ClearingResult:
    """Outcome of :func:`clear`. ``to_dict()`` is exactly the CLI's ``--format json`` output.

    Attributes
    ----------
    pairs : every pair that may trade (bid covers ask under the mechanism, within distance,
        both bids admitted), in input order of buyers then sellers, volume 0 where the optimum
        gives none. Built on first use from ``pair_table`` (the same data as arrays).
    rejected : bids refused by Algorithm 1 (``{"id", "role", "reason"}``).
    unmatched : admitted participants that trade nothing, with the reason.
    welfare : P1 objective (eq. 11) at the allocation.
    """

    mechanism: str
    volumes_rule: str
    price: float | None
    pair_table: PairTable = field(repr=False, compare=False)
    rejected: tuple[dict[str, str], ...]
    unmatched: tuple[dict[str, str], ...]
    welfare: float
    total_volume: float
    gains_from_trade: float
    total_payment: float
    satisfaction: dict[str, float | None]
    solver: dict[str, Any]
    volume_matrix: FloatArray = field(repr=False, compare=False)

    @cached_property
    def pairs(self) -> tuple[Pair, ...]:
        """The pairs as objects, built on first use (a city-scale round has millions)."""
        return self.pair_table.pairs()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "volumes": self.volumes_rule,
            "price": self.price,
            "pairs": [p.to_dict() for p in self.pairs],
            "rejected": [dict(r) for r in self.rejected],
            "unmatched": [dict(u) for u in self.unmatched],
            "welfare": self.welfare,
            "total_volume": self.total_volume,
            "gains_from_trade": self.gains_from_trade,
            "total_payment": self.total_payment,
            "satisfaction": dict(self.satisfaction),
            "solver": dict(self.solver),
        }


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
    rnd = prepare_round(market, mechanism, price)
    adm, P, R, T, dist = rnd.admission, rnd.P, rnd.R, rnd.T, rnd.dist
    pairs_mask, in_round = rnd.pairs_mask, rnd.in_round
    excluded, spare = rnd.excluded, rnd.spare
    B = market.buyer_arrays

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
        welfare=_welfare(market, x, in_welfare),
        unmatched=_unmatched(market, adm.buyers_ok, adm.sellers_ok, pairs_mask, x, excluded, spare),
        solver=solver_info,
    )


def assemble_result(
    market: Market,
    *,
    admission: Admission,
    mechanism: str,
    volumes_rule: str,
    price: float | None,
    P: FloatArray,
    R: FloatArray,
    T: FloatArray,
    dist: FloatArray,
    pairs_mask: NDArray[np.bool_],
    x: FloatArray,
    welfare: float,
    unmatched: tuple[dict[str, str], ...],
    solver: dict[str, Any],
) -> ClearingResult:
    """The common result shape of every mechanism (the CLI's JSON), from its arrays.

    ``P``, ``R``, ``T`` are (N, M): what the buyer bids, what the seller asks, what the buyer pays
    per kWh; ``x`` the delivered kWh per pair; ``admission`` is the mechanism's own Algorithm 1
    verdict (not recomputed).
    """
    adm = admission
    B, S = market.buyer_arrays, market.seller_arrays
    pi, pj = np.nonzero(pairs_mask)
    table = PairTable(
        buyer_ids=tuple(b.id for b in market.buyers),
        seller_ids=tuple(s.id for s in market.sellers),
        i=pi,
        j=pj,
        P=P[pi, pj],
        R=R[pi, pj],
        T=T[pi, pj],
        volume=x[pi, pj],
        distance_km=np.broadcast_to(dist, pairs_mask.shape)[pi, pj],
    )
    rejected = tuple(
        {"id": p.id, "role": role, "reason": adm.reasons[p.id]}
        for role, group in (("buyer", market.buyers), ("seller", market.sellers))
        for p in group
        if p.id in adm.reasons
    )
    ti, tj = np.nonzero(x > 0)  # traded pairs only: a city-scale round trades few of its pairs
    weights = x[ti, tj]
    sat_b, sat_s = pair_satisfaction(P[ti, tj], R[ti, tj], T[ti, tj])
    total = float(weights.sum())
    satisfaction: dict[str, float | None] = {
        "buyers": float(np.dot(sat_b, weights) / total) if total > 0 else None,
        "sellers": float(np.dot(sat_s, weights) / total) if total > 0 else None,
    }
    mean = None
    if total > 0:
        mean = 0.5 * (float(satisfaction["buyers"] or 0.0) + float(satisfaction["sellers"] or 0.0))
    satisfaction["mean"] = mean
    return ClearingResult(
        mechanism=mechanism,
        volumes_rule=volumes_rule,
        price=price,
        pair_table=table,
        rejected=rejected,
        unmatched=unmatched,
        welfare=welfare,
        total_volume=float(x.sum()),
        gains_from_trade=float(np.dot(weights, B["v"][ti] - S["c"][tj])),
        total_payment=float(np.dot(weights, T[ti, tj])),
        satisfaction=satisfaction,
        solver=solver,
        volume_matrix=x,
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


def _prices(
    mechanism: str, price: float | None, B: dict[str, FloatArray], S: dict[str, FloatArray]
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    if mechanism == "eta":
        P = pricing.buyer_bid(B["v"], B["v_max"], S["c_min"])
        R = pricing.seller_ask(S["c"], S["c_min"], B["v_max"])
        return P, R, pricing.transaction_price(P, R), pricing.bid_covers_ask(P, R)
    if mechanism == "complete-info":
        P, R, ok = pricing.complete_information(B["v"], S["c"])
        return P, R, pricing.transaction_price(P, R), ok
    assert price is not None
    return pricing.single_price(B["v"], S["c"], float(price))


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
    return _p1_of(market, prepare_round(market, mechanism, price))


@dataclass(frozen=True)
class RoundSetup:
    """Everything before the volumes: admission, prices, pair masks, the exclusion rule."""

    admission: Admission
    P: FloatArray
    R: FloatArray
    T: FloatArray
    dist: FloatArray
    pairs_mask: NDArray[np.bool_]  # may trade: admitted, bid covers ask, within distance
    solve_mask: NDArray[np.bool_]  # ... and the seller has spare energy, the buyer is in round
    in_round: NDArray[np.bool_]
    excluded: dict[int, str]
    spare: FloatArray
    deliverable: FloatArray


@dataclass(frozen=True)
class Basics:
    """What every mechanism starts from: Algorithm 1's admission, each seller's spare energy
    s^t - s^r (never negative), the distances, and the pairs that are both admitted and within
    the auctioneer's ``max_distance_km``."""

    admission: Admission
    spare: FloatArray
    dist: FloatArray
    reachable: NDArray[np.bool_]


def market_basics(market: Market) -> Basics:
    """Admission, spare energy, distances and reachable pairs of ``market`` (:class:`Basics`)."""
    adm = admit(market)
    B, S = market.buyer_arrays, market.seller_arrays
    dist = haversine_km(B["lat"], B["lon"], S["lat"], S["lon"])
    reachable = adm.buyers_ok[:, None] & adm.sellers_ok[None, :]
    if market.auctioneer.max_distance_km is not None:
        reachable &= dist <= market.auctioneer.max_distance_km
    spare = np.maximum(S["s_t"] - S["s_r"], 0.0)
    return Basics(admission=adm, spare=spare, dist=dist, reachable=reachable)


def prepare_round(market: Market, mechanism: str, price: float | None) -> RoundSetup:
    """Algorithm 1 up to the volumes, for ``clear`` and ``p1_problem``."""
    basics = market_basics(market)
    adm, spare, dist = basics.admission, basics.spare, basics.dist
    B, S = market.buyer_arrays, market.seller_arrays
    P, R, T, tradable = _prices(mechanism, price, B, S)
    pairs_mask = basics.reachable & tradable
    deliverable = spare / (1.0 + S["rho"])
    solve_mask = pairs_mask & (spare > 0)[None, :] & adm.buyers_ok[:, None]
    excluded = exclude_unservable_buyers(
        solve_mask,
        np.where(adm.buyers_ok, B["b_min"], 0.0),
        deliverable,
        B["w"],
        [b.id for b in market.buyers],
    )
    in_round = adm.buyers_ok.copy()
    in_round[list(excluded)] = False
    solve_mask &= in_round[:, None]
    return RoundSetup(
        admission=adm,
        P=P,
        R=R,
        T=T,
        dist=dist,
        pairs_mask=pairs_mask,
        solve_mask=solve_mask,
        in_round=in_round,
        excluded=excluded,
        spare=spare,
        deliverable=deliverable,
    )


def _welfare(market: Market, x: FloatArray, in_round: NDArray[np.bool_]) -> float:
    """ETA eq. (11): sum_i w_i ln(X_i - b_i^min + 1) - sum_ij rho_j (l1 x_ij^2 + l2 x_ij)."""
    B, S = market.buyer_arrays, market.seller_arrays
    a = market.auctioneer
    X = x.sum(axis=1)
    util = np.where(in_round, B["w"] * np.log(np.maximum(X - B["b_min"] + 1.0, 1e-300)), 0.0)
    cost = S["rho"] * (a.l1 * (x * x).sum(axis=0) + a.l2 * x.sum(axis=0))
    return float(util.sum() - cost.sum())


def _unmatched(
    market: Market,
    buyers_ok: NDArray[np.bool_],
    sellers_ok: NDArray[np.bool_],
    pairs_mask: NDArray[np.bool_],
    x: FloatArray,
    excluded: dict[int, str],
    spare: FloatArray,
) -> tuple[dict[str, str], ...]:
    out: list[dict[str, str]] = []
    bought = x.sum(axis=1)
    sold = x.sum(axis=0)
    for i, b in enumerate(market.buyers):
        if not buyers_ok[i] or bought[i] > 0:
            continue
        if i in excluded:
            reason = excluded[i]
        elif not pairs_mask[i].any():
            reason = "no seller's ask is covered by this buyer's bid (or none is within distance)"
        elif b.b_max == 0:
            reason = "b_max is 0"
        else:
            reason = "the welfare optimum allocates no energy to this buyer"
        out.append({"id": b.id, "role": "buyer", "reason": reason})
    for j, s in enumerate(market.sellers):
        if not sellers_ok[j] or sold[j] > 0:
            continue
        if spare[j] <= 0:
            reason = "no spare energy (s_t <= s_r)"
        elif not pairs_mask[:, j].any():
            reason = "no buyer's bid covers this seller's ask (or none is within distance)"
        else:
            reason = "the welfare optimum takes no energy from this seller"
        out.append({"id": s.id, "role": "seller", "reason": reason})
    return tuple(out)
