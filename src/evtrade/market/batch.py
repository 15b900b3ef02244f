"""Clearing thousands of rounds at once: ETA's Algorithm 1 over a :class:`MarketBatch`.

The same round as :func:`evtrade.market.clear` with the ETA mechanism and P1 volumes (admission,
Theorem 1 prices, distance filter, the exclusion rule, the social-welfare optimum), computed with
a leading batch axis instead of a Python loop over rounds. The exclusion rule's maximum flow runs
only for the rounds whose minimum demands are not certified feasible by the O(N M) test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.market import pricing
from evtrade.market.admission import admitted, buyer_refusals, seller_refusals
from evtrade.market.feasibility import exclude_unservable_buyers, proportional_fits
from evtrade.market.geo import great_circle_km
from evtrade.market.result import ZERO_KWH
from evtrade.market.round import deliverable_energy, spare_energy
from evtrade.market.welfare_batch import P1Batch, P1BatchSolution, solve_p1_batch
from evtrade.model.batch import MarketBatch

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class BatchClearing:
    """Per-round outcome of :func:`clear_batch` (arrays with a leading round axis).

    ``volumes`` (B, N, M) kWh; ``welfare`` is ETA eq. (11) over the buyers in the round;
    ``pairs`` (B, N, M) marks the pairs allowed to trade; ``excluded`` (B, N) the buyers the
    exclusion rule took out; ``solver`` the P1 solution with its certificate.
    """

    volumes: FloatArray
    price: FloatArray
    pairs: BoolArray
    excluded: BoolArray
    buyers_ok: BoolArray
    sellers_ok: BoolArray
    welfare: FloatArray
    total_volume: FloatArray
    gains_from_trade: FloatArray
    total_payment: FloatArray
    solver: P1BatchSolution


def clear_batch(batch: MarketBatch, *, chunk: int = 512) -> BatchClearing:
    """Clear every round of ``batch`` with ETA pricing and P1 volumes."""
    B, S, A = batch.buyers, batch.sellers, batch.auctioneer
    need_loc = ~np.isnan(A["max_distance_km"])
    # Algorithm 1, lines 3-8, every round at once.
    need = need_loc[:, None]
    b_rules = buyer_refusals(B, floor=A["v_min"][:, None], need_location=need)
    s_rules = seller_refusals(S, ceiling=A["c_max"][:, None], need_location=need)
    b_ok = batch.buyer_valid & admitted(b_rules)
    s_ok = batch.seller_valid & admitted(s_rules)
    # Theorem 1 (eqs. 5-6), broadcast over (round, buyer, seller).
    P = pricing.buyer_bid(B["v"], B["v_max"], S["c_min"])
    R = pricing.seller_ask(S["c"], S["c_min"], B["v_max"])
    T = pricing.transaction_price(P, R)
    pairs = b_ok[:, :, None] & s_ok[:, None, :] & pricing.bid_covers_ask(P, R)
    if np.any(need_loc):
        dist = great_circle_km(
            B["lat"][:, :, None], B["lon"][:, :, None], S["lat"][:, None, :], S["lon"][:, None, :]
        )
        with np.errstate(invalid="ignore"):
            near = dist <= np.where(need_loc, A["max_distance_km"], np.inf)[:, None, None]
        pairs &= np.where(need_loc[:, None, None], near, True)
    spare = spare_energy(S["s_t"], S["s_r"])
    deliverable = deliverable_energy(spare, S["rho"])
    solve_mask = pairs & (spare > 0)[:, None, :]
    b_min = np.where(b_ok, B["b_min"], 0.0)
    excluded = np.zeros(b_ok.shape, dtype=bool)
    for r in _rounds_to_check(solve_mask, b_min, deliverable):
        ids = [f"B{i + 1}" for i in range(b_ok.shape[1])]
        for i in exclude_unservable_buyers(solve_mask[r], b_min[r], deliverable[r], B["w"][r], ids):
            excluded[r, i] = True
    in_round = b_ok & ~excluded
    solve_mask &= in_round[:, :, None]
    rho = S["rho"]
    problem = P1Batch(
        mask=solve_mask,
        w=np.where(in_round, B["w"], 0.0),
        b_min=np.where(in_round, B["b_min"], 0.0),
        b_max=np.where(in_round, B["b_max"], 0.0),
        a=A["l1"][:, None] * rho,
        e=A["l2"][:, None] * rho,
        g=1.0 + rho,
        cap=spare,
    )
    sol = solve_p1_batch(problem, chunk=chunk)
    x = np.where(sol.x > ZERO_KWH, sol.x, 0.0)
    traded = x > 0
    return BatchClearing(
        volumes=x,
        price=T,
        pairs=pairs,
        excluded=excluded,
        buyers_ok=b_ok,
        sellers_ok=s_ok,
        welfare=sol.welfare,
        total_volume=x.sum(axis=(1, 2)),
        gains_from_trade=(x * (B["v"][:, :, None] - S["c"][:, None, :])).sum(axis=(1, 2)),
        total_payment=(x * np.where(traded, T, 0.0)).sum(axis=(1, 2)),
        solver=sol,
    )


def _rounds_to_check(mask: BoolArray, b_min: FloatArray, deliverable: FloatArray) -> list[int]:
    """Rounds whose minimum demands the proportional-split certificate does not clear."""
    need = b_min > 0
    fits = proportional_fits(mask, b_min, deliverable, need)
    return [int(r) for r in np.flatnonzero(np.any(need, axis=1) & ~fits)]
