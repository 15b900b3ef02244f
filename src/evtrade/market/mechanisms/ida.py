"""The iterative double auction (IDA) baseline of BABG's comparison.

J. Kang, R. Yu, X. Huang, S. Maharjan, Y. Zhang, E. Hossain, "Enabling localized peer-to-peer
electricity trading among plug-in hybrid electric vehicles using consortium blockchains",
IEEE Trans. Ind. Informat. 13(6):3154-3164, 2017; equation numbers are the paper's.

Charging EV i receives c_ij = rho_j d_ji from discharging EV j and stores eta sum_j c_ij. Its
utility is ``w_i ln(eta sum_j c_ij - c_i^min + 1)`` (w_i = tau / STO_i), EV j's loss
``l1 sum_i d_ji^2 + l2 sum_i d_ji``. The auctioneer solves problem A (eq. 10)::

    max sum_ij [ b_ij ln c_ij - s_ji d_ji ]
    s.t. c_i^min <= eta sum_j c_ij <= c_i^max,  sum_i d_ji <= D_j^max,  d >= 0

then the EVs answer with new bids (eqs. 13, 14)::

    b_ij = w_i eta c_ij / (eta sum_j c_ij - c_i^min + 1)        s_ji = 2 l1 d_ji + l2

until the relative bid changes RDB, RDS are below eps. At a fixed point A's optimality conditions
are those of the social-welfare problem, so IDA converges to the welfare optimum of its own
(per-pair loss) model. Choices the paper leaves open (``docs/babg.md``): the first bids (an even
split of each buyer's minimum), damping (the new bids are mixed in with a weight that starts at
``damping`` and is halved, down to 0.05, whenever the largest relative bid change grows: the
undamped update falls into a 2-cycle on some markets), an iteration cap with non-convergence
reported,
eta = 1 by default so that the comparison runs on the same physics as ETA and BABG (Kang et al.
use 0.8), and no price filter (every pair in range may trade). On the project's market files
rho_j = 1 / (1 + rho_j^ETA), c^min/c^max = b_min/b_max, D^max = s^t - s^r, w_i = w.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError, SolverError
from evtrade.market import reasons
from evtrade.market._ipm import Separable, solve_separable, zero_term
from evtrade.market.admission import Admission
from evtrade.market.mechanisms.base import Mechanism, require_count
from evtrade.market.objectives import cost_performance, seller_cost, swm2_welfare
from evtrade.market.result import ZERO_KWH, ClearingResult, assemble_result
from evtrade.market.round import exclude, market_basics
from evtrade.model import Market

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class IdaParams:
    eta: float = 1.0
    eps: float = 1e-3
    damping: float = 1.0  # first weight of the new bids; halved whenever the bids oscillate
    max_iter: int = 200

    def __post_init__(self) -> None:
        if not 0.0 < self.eta <= 1.0:
            raise MechanismError(f"eta: must lie in (0, 1], got {self.eta!r}")
        if not 0.0 < self.damping <= 1.0:
            raise MechanismError(f"damping: must lie in (0, 1], got {self.damping!r}")
        if not self.eps > 0:
            raise MechanismError(f"eps: must be > 0, got {self.eps!r}")
        require_count("max_iter", self.max_iter)


@dataclass(frozen=True)
class IdaRound:
    """IDA's outcome on one market (arrays over buyers i and sellers j)."""

    admission: Admission
    pairs: BoolArray
    drained: FloatArray  # d_ji, kWh leaving seller j for buyer i, as (N, M)
    delivered: FloatArray  # eta c_ij, kWh buyer i stores
    bids: FloatArray  # b_ij, buyer i's total payment to j (eq. 15 sums them)
    asks: FloatArray  # s_ji, seller j's unit price to i
    payments: FloatArray  # (N,) eq. (15)
    rewards: FloatArray  # (M,) eq. (16) without r_j^min (a fixed reward outside the auction)
    iterations: int
    converged: bool
    history: FloatArray  # (iterations, 2): RDB and RDS per iteration
    excluded: dict[int, str]
    failure: str  # why the iteration stopped early ("" when it did not)
    welfare: float
    cost: float
    dist: FloatArray
    reachable: BoolArray  # admitted pairs within distance (for the reasons)


def _solve_a(
    mask: BoolArray,
    b: FloatArray,
    s: FloatArray,
    eff: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    cap: FloatArray,
) -> FloatArray:
    """Problem A (eq. 10) in the drained energies d (the constant b ln(rho) dropped)."""

    def pair(x: FloatArray) -> tuple[FloatArray, FloatArray]:
        safe = np.maximum(x, 1e-300)
        return -b / safe + s, b / (safe * safe)

    model = Separable(
        mask=mask, b_min=lo, b_max=hi, cap=cap, eta=eff, g=np.ones_like(cap),
        pair=pair, buyer=zero_term, slack=zero_term,
    )  # fmt: skip
    res = solve_separable(model, tol=1e-10, max_iter=200, what="IDA problem A")
    return np.where(mask, np.maximum(res.x, 0.0), 0.0)


def ida_round(market: Market, params: IdaParams | None = None) -> IdaRound:
    """Run IDA on ``market`` until the bids settle or ``max_iter`` auctions have passed."""
    prm = params or IdaParams()
    a = market.auctioneer
    B, S = market.buyer_arrays, market.seller_arrays
    n, m = market.n_buyers, market.n_sellers
    basics = market_basics(market)
    adm, spare, dist = basics.admission, basics.spare, basics.dist
    eff = prm.eta / (1.0 + S["rho"])
    pairs = basics.reachable & (spare > 0)[None, :] & (B["b_max"] > 0)[:, None]
    b_min = np.where(adm.buyers_ok, B["b_min"], 0.0)
    excluded, keep = exclude(market, pairs, b_min, spare * eff, np.ones(n, dtype=bool))
    pairs &= keep[:, None]
    rows = pairs.any(axis=1)
    lo = np.where(rows, b_min, 0.0)
    hi = np.where(rows, B["b_max"], 0.0)
    w = B["w"]
    d = np.zeros((n, m))
    bids = np.zeros((n, m))
    asks = np.zeros((n, m))
    history: list[tuple[float, float]] = []
    converged = False
    failure = ""
    theta = prm.damping
    if np.any(rows):
        P = pairs[rows]
        eff_sum = (P * eff).sum(axis=1)
        d0 = P * (np.maximum(lo[rows], 1.0) / eff_sum)[:, None]
        b_r = _bids(d0, w[rows], eff, lo[rows])
        s_r = P * (2.0 * a.l1 * d0 + a.l2)
        d_r = d0
        for _ in range(prm.max_iter):
            try:
                d_r = _solve_a(P, b_r, s_r, eff, lo[rows], hi[rows], spare)
            except SolverError as exc:
                # Problem A broke down on these bids: stop, keep the last allocation, say so.
                failure = str(exc)
                break
            b_new = _bids(d_r, w[rows], eff, lo[rows])
            s_new = P * (2.0 * a.l1 * d_r + a.l2)
            rdb = float(np.max(np.abs(b_new - b_r))) / max(float(np.max(np.abs(b_r))), 1e-300)
            rds = float(np.max(np.abs(s_new - s_r))) / max(float(np.max(np.abs(s_r))), 1e-300)
            history.append((rdb, rds))
            if len(history) > 1 and max(rdb, rds) > max(history[-2]):
                theta = max(0.5 * theta, 0.05)  # the bids oscillate: damp harder
            b_r = b_r + theta * (b_new - b_r)
            s_r = s_r + theta * (s_new - s_r)
            if rdb < prm.eps and rds < prm.eps:
                converged = True
                break
        d[rows], bids[rows], asks[rows] = d_r, b_r, s_r
    d = np.where(d > ZERO_KWH, d, 0.0)
    delivered = d * eff
    return IdaRound(
        admission=adm,
        pairs=pairs,
        drained=d,
        delivered=delivered,
        bids=bids,
        asks=asks,
        payments=bids.sum(axis=1),
        rewards=(asks * asks).sum(axis=0) / (4.0 * a.l1),
        iterations=len(history),
        converged=converged,
        history=np.asarray(history).reshape(-1, 2),
        excluded=excluded,
        failure=failure,
        welfare=float(swm2_welfare(d, delivered, w, lo, l1=a.l1, l2=a.l2)),
        cost=float(seller_cost(d, l1=a.l1, l2=a.l2)),
        dist=dist,
        reachable=basics.reachable,
    )


def _bids(d: FloatArray, w: FloatArray, eff: FloatArray, lo: FloatArray) -> FloatArray:
    """Eq. (13): b_ij = w_i eta c_ij / (eta sum_j c_ij - c_i^min + 1), c = rho d."""
    got = d * eff
    return np.asarray(w[:, None] * got / (got.sum(axis=1) - lo + 1.0)[:, None])


def _unmatched(market: Market, rnd: IdaRound) -> tuple[dict[str, str], ...]:
    """Why each admitted EV trades nothing: IDA has no price filter (every pair within distance
    may trade, priced by its own bids), so the reasons are the round's other filters (distance,
    something to trade, the exclusion rule) on its own masks; else the last auction's problem A
    (eq. 10) gave it nothing."""
    near = reasons.within(market)
    no_demand = np.asarray(market.buyer_arrays["b_max"] == 0)
    no_spare = np.array([s.spare <= 0 for s in market.sellers], dtype=bool)
    steps_b, steps_s = reasons.pair_steps(
        (
            reasons.out_of_reach(rnd.reachable, market),
            reasons.Step(
                ~no_demand[:, None] & ~no_spare[None, :],
                f"no seller{near} has spare energy",
                f"no buyer{near} wants energy (b_max is 0)",
            ),
            reasons.Step(rnd.pairs, None, reasons.PARTNERS_EXCLUDED),
        )
    )
    buyer_wording = reasons.Wording(
        ((no_demand, reasons.NO_DEMAND), *steps_b),
        "IDA's last auction (problem A, eq. 10, at the final bids) gives it no energy",
    )
    return reasons.unmatched(
        market,
        buyers=rnd.admission.buyers_ok & ~(rnd.delivered.sum(axis=1) > 0),
        sellers=rnd.admission.sellers_ok & ~(rnd.drained.sum(axis=0) > 0),
        excluded=reasons.explain_exclusions(rnd.excluded, buyer_wording),
        buyer_wording=buyer_wording,
        seller_wording=reasons.Wording(
            ((no_spare, reasons.NO_SPARE), *steps_s),
            "IDA's last auction (problem A, eq. 10, at the final bids) takes none of its energy",
        ),
    )


def clear_ida(market: Market, params: IdaParams | None = None) -> ClearingResult:
    """IDA in the common result shape: ``P`` = ``T`` = the buyer's unit price b_ij / (eta c_ij),
    ``R`` = the seller's unit price s_ji per kWh drained, volumes delivered; ``welfare`` in SWM2's
    form (seller loss on totals) so that mechanisms compare on one measure."""
    rnd = ida_round(market, params)
    traded = rnd.delivered > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(traded, rnd.bids / np.where(traded, rnd.delivered, 1.0), 0.0)
    unmatched = _unmatched(market, rnd)
    solver: dict[str, Any] = {
        "method": "ida-interior-point",
        "duality_gap": None,
        "iterations": rnd.iterations,
        "converged": rnd.converged,
        "failure": rnd.failure or None,
        "seller_cost": rnd.cost,
        "cp": cost_performance(rnd.welfare, rnd.cost),
        "payments": float(rnd.payments.sum()),
        "rewards": float(rnd.rewards.sum()),
    }
    return assemble_result(
        market,
        admission=rnd.admission,
        mechanism="ida",
        volumes_rule="ida",
        price=None,
        P=unit,
        R=np.where(traded, rnd.asks, 0.0),
        T=unit,
        dist=rnd.dist,
        pairs_mask=rnd.pairs,
        x=rnd.delivered,
        welfare=rnd.welfare,
        unmatched=unmatched,
        solver=solver,
    )


#: The registry's entry (:mod:`evtrade.market.mechanisms`).
MECHANISM = Mechanism(
    "ida",
    "IDA (Kang et al.): iterative double auction",
    "round",
    None,
    clear_ida,
    refuses="ida sets its own prices and volumes",
)
