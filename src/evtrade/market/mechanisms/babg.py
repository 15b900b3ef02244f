"""Luo et al.'s Bayesian-game two-way auction (BABG) with V2G, on the project's market model.

L. Luo, J. Feng, H. Yu, G. Sun, "Blockchain-enabled two-way auction mechanism for electricity
trading in Internet of electric vehicles", IEEE Internet of Things Journal, 2022; equation
numbers are the paper's.

The same market files as ETA are read this way (see ``docs/babg.md``): a buyer is a charging EV
with demand [d^min, d^max] = [b_min, b_max], willingness w, initial expected purchase price
p_ij = v_i and maximum p_ij^max = v_i^max; a seller is a discharging EV with supply
s_j^max = s^t - s^r, initial expected selling price r_ji = c_j and minimum r_ji^min = c_j^min.
Delivering energy is lossy: ETA's loss rate rho_j drains (1 + rho_j) kWh per kWh delivered, so
BABG's delivery efficiency is 1 / (1 + rho_j) (0.9 in Table II is rho_j = 1/9). The grid prices
bound V2V prices: p_ij^min = p^G (grid buys), r_ji^max = r^G (grid sells).

Steps of one round:

1. Role and counterpart (Sec. III): an EV with nothing to trade is idle; one that no V2V
   counterpart could ever accept (no price band overlaps) trades with the grid at once (V2G, SWM1:
   constant welfare); the others wait for the V2V round.
2. Two-way auction (eqs. 29-34) on every V2V pair whose bands overlap: Bayesian first bids, then
   the buyer's bid rises toward p^max and the seller's falls toward r^min until W >= Q and both
   move by less than eps2. Vectorised over pairs; each pair's number of auctions is reported.
3. Volumes (SWM2, eqs. 12-15) over the settled pairs, solved by the project's interior point
   (:mod:`evtrade.market._ipm`) with the quadratic loss on each seller's total supply. The CF loop
   (eqs. 25-26) re-solves with unchanged inputs; an exact solver returns the same total, so it
   stops after one re-solve (CF = 0) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError, SolverError
from evtrade.market import reasons
from evtrade.market._ipm import Separable, log_utility, solve_separable, zero_term
from evtrade.market.admission import Admission
from evtrade.market.mechanisms.base import Mechanism, require_count
from evtrade.market.objectives import cost_performance, seller_cost, swm2_welfare
from evtrade.market.pricing import equilibrium_ask, equilibrium_bid
from evtrade.market.result import ZERO_KWH, ClearingResult, assemble_result
from evtrade.market.round import exclude, market_basics
from evtrade.model import Market

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class BabgParams:
    """Auction and grid parameters (defaults: the paper's simulation, Sec. VI-A and Table II)."""

    alpha: float = 0.5
    beta: float = 0.5
    grid_buy: float = 0.6  # p^G: the grid buys from EVs at this price (V2V lower bound)
    grid_sell: float = 1.0  # r^G: the grid sells to EVs at this price (V2V upper bound)
    eps1: float = 1e-3
    eps2: float = 1e-3
    max_rounds: int = 100_000

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise MechanismError(f"{name}: must be a number in [0, 1], got {v!r}")
        for name in ("grid_buy", "grid_sell", "eps1", "eps2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
                raise MechanismError(f"{name}: must be a finite number >= 0, got {v!r}")
        if self.eps2 <= 0 or self.eps1 <= 0:
            raise MechanismError("eps1, eps2: must be > 0")
        if self.grid_buy >= self.grid_sell:
            raise MechanismError(
                f"grid_buy ({self.grid_buy}) must be below grid_sell ({self.grid_sell})"
            )
        require_count("max_rounds", self.max_rounds)


@dataclass(frozen=True)
class AuctionResult:
    """Final bids W (buyer pays) and asks Q (seller receives) per pair, and their history."""

    W: FloatArray
    Q: FloatArray
    rounds: NDArray[np.int64]
    settled: BoolArray
    bid_history: FloatArray  # average bid over all pairs after each auction (Fig. 5)
    ask_history: FloatArray


def two_way_auction(
    p: FloatArray,
    p_max: FloatArray,
    r: FloatArray,
    r_min: FloatArray,
    *,
    alpha: float,
    beta: float,
    eps2: float,
    max_rounds: int = 100_000,
) -> AuctionResult:
    """BABG's pricing for K pairs at once (1-D arrays of length K).

    First bids, eqs. (29)-(30)::

        W = 2/3 p + 1/4 r^min + 1/12 p^max        Q = 2/3 r + 1/4 p^max + 1/12 r^min

    then each auction, eqs. (31)-(32)::

        W <- W - alpha min(W - p^max, 0)            Q <- Q - beta max(Q - r^min, 0)

    A pair stops when W >= Q and the relative changes CW, CQ (eqs. 33-34) are below eps2
    (settled), or when it can never cross: its bids' limits (p^max if alpha > 0, else W; r^min if
    beta > 0, else Q) leave W < Q. With alpha = beta = 0 this is ETA's Theorem 1 (one auction).
    """
    # Theorem 1's formula in the order of eqs. (29)-(30), BABG's own bits (pricing's order="babg").
    W = equilibrium_bid(p, p_max, r_min, order="babg")
    Q = equilibrium_ask(r, r_min, p_max, order="babg")
    k = W.size
    rounds = np.ones(k, dtype=np.int64)
    w_lim = np.where(alpha > 0, np.maximum(p_max, W), W)
    q_lim = np.where(beta > 0, np.minimum(r_min, Q), Q)
    hopeless = w_lim < q_lim
    running = ~(W >= Q) & ~hopeless  # a first-round cross with no change yet: CW = CQ = 0
    bid_history, ask_history = [float(W.mean()) if k else 0.0], [float(Q.mean()) if k else 0.0]
    for _ in range(max_rounds - 1):
        if not np.any(running):
            break
        Wr, Qr = W[running], Q[running]
        W_new = Wr - alpha * np.minimum(Wr - p_max[running], 0.0)
        Q_new = Qr - beta * np.maximum(Qr - r_min[running], 0.0)
        cw = np.abs(W_new - Wr) / np.maximum(np.abs(W_new), 1e-300)
        cq = np.abs(Q_new - Qr) / np.maximum(np.abs(Q_new), 1e-300)
        W[running], Q[running] = W_new, Q_new
        rounds[running] += 1
        done = (W_new >= Q_new) & (cw < eps2) & (cq < eps2)
        idx = np.flatnonzero(running)
        running[idx[done]] = False
        bid_history.append(float(W.mean()))
        ask_history.append(float(Q.mean()))
    settled = (W >= Q) & ~running
    return AuctionResult(
        W=W,
        Q=Q,
        rounds=rounds,
        settled=settled,
        bid_history=np.asarray(bid_history),
        ask_history=np.asarray(ask_history),
    )


@dataclass(frozen=True)
class Swm2Solution:
    """SWM2 optimum: energy drained from sellers ``s`` (N, M), delivered ``d`` = efficiency * s."""

    s: FloatArray
    d: FloatArray
    welfare: float
    iterations: int


def solve_swm2(
    mask: BoolArray,
    w: FloatArray,
    d_min: FloatArray,
    d_max: FloatArray,
    efficiency: FloatArray,
    s_max: FloatArray,
    *,
    l1: float,
    l2: float,
    tol: float = 1e-10,
) -> Swm2Solution:
    """Maximise SWM2 (eqs. 12-15) exactly::

        max  sum_i w_i ln(sum_j d_ij - d_i^min + 1) - sum_j (l1 S_j^2 + l2 S_j),  S_j = sum_i s_ji
        s.t. d_i^min <= sum_j d_ij <= d_i^max,  S_j <= s_j^max,  d_ij = eff_j s_ji >= 0 on the mask

    The seller loss depends on the total S_j only, so it is written on the slack of the capacity
    row (S_j = s_j^max - slack_j): a separable problem of :mod:`evtrade.market._ipm`. The split
    of a seller's total among buyers is not unique; the welfare and the totals are.
    """
    n, m = mask.shape
    rows = mask.any(axis=1) & (d_max > 0)
    if np.any(~rows & (d_min > 0)):
        raise SolverError("SWM2 infeasible: a buyer with d_min > 0 has no V2V partner")
    s = np.zeros((n, m))
    if not np.any(rows):
        return Swm2Solution(s=s, d=s.copy(), welfare=0.0, iterations=0)
    sub_mask = mask[rows]
    cap = np.maximum(s_max, 0.0)
    wr = w[rows]
    cols = sub_mask.any(axis=0) & (cap > 0)
    if bool(np.all(sub_mask[:, cols])):
        # Every buyer may trade with every seller: any totals can be routed, one price clears it.
        s[np.ix_(rows, cols)] = _one_price(
            wr, d_min[rows], d_max[rows], efficiency[cols], cap[cols], l1=l1, l2=l2
        )
        d = s * efficiency
        welfare = float(swm2_welfare(s, d, w, d_min, l1=l1, l2=l2))
        return Swm2Solution(s=s, d=d, welfare=welfare, iterations=0)

    def slack(z: FloatArray) -> tuple[FloatArray, FloatArray]:
        # k(z) = C(cap - z): the loss of the seller's total supply S = cap - z.
        return -(2.0 * l1 * (cap - z) + l2), np.full_like(z, 2.0 * l1)

    model = Separable(
        mask=sub_mask,
        b_min=d_min[rows],
        b_max=d_max[rows],
        cap=cap,
        eta=efficiency,
        g=np.ones(m),
        pair=zero_term,
        buyer=log_utility(wr),
        slack=slack,
    )
    res = solve_separable(
        model, tol=tol, max_iter=200, what="SWM2 interior point", hint="; infeasible?"
    )
    x = np.where(sub_mask, np.maximum(res.x, 0.0), 0.0)
    s[rows] = x
    d = s * efficiency
    return Swm2Solution(
        s=s,
        d=d,
        welfare=float(swm2_welfare(s, d, w, d_min, l1=l1, l2=l2)),
        iterations=res.iterations,
    )


def _one_price(
    w: FloatArray,
    d_min: FloatArray,
    d_max: FloatArray,
    eff: FloatArray,
    cap: FloatArray,
    *,
    l1: float,
    l2: float,
) -> FloatArray:
    """SWM2 on a complete bipartite market, exactly: one price lambda per delivered kWh.

    KKT: an interior buyer's marginal utility w / (D - d^min + 1) equals lambda; seller j's
    marginal loss 2 l1 S_j + l2 equals eff_j lambda (clipped to [0, s^max]). Total delivered
    demand minus total delivered supply decreases in lambda; bisection finds its root to rounding.
    Each seller's total is split over buyers in proportion to their totals (the split is free).
    """

    def totals(lam: float) -> tuple[FloatArray, FloatArray]:
        D = np.clip(d_min - 1.0 + w / lam, d_min, d_max)
        S = np.clip((eff * lam - l2) / (2.0 * l1), 0.0, cap)
        return D, S

    def excess(lam: float) -> float:
        D, S = totals(lam)
        return float(D.sum() - (eff * S).sum())

    lo, hi = 1e-300, max(float(np.max(w, initial=0.0)), 1.0)
    hi = max(hi, float(np.max((2.0 * l1 * cap + l2) / eff))) * 2.0
    while excess(hi) > 0 and hi < 1e300:  # demand at its minimum still exceeds full supply
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi) if hi / max(lo, 1e-300) < 4 else float(np.sqrt(max(lo, 1e-300) * hi))
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4e-16 * hi:
            break
    D, S = totals(hi)
    supplied = float((eff * S).sum())
    # Route: seller j's total S_j to buyers in proportion to D_i (scale S to the exact demand).
    scale = D.sum() / supplied if supplied > 0 else 0.0
    return np.asarray(np.outer(D / max(float(D.sum()), 1e-300), S * scale))


@dataclass(frozen=True)
class Swm2Problem:
    """The inputs of one SWM2 solve (the arguments of :func:`solve_swm2`), kept for references."""

    mask: BoolArray
    w: FloatArray
    d_min: FloatArray
    d_max: FloatArray
    efficiency: FloatArray
    s_max: FloatArray
    l1: float
    l2: float

    def solve(self) -> Swm2Solution:
        return solve_swm2(
            self.mask,
            self.w,
            self.d_min,
            self.d_max,
            self.efficiency,
            self.s_max,
            l1=self.l1,
            l2=self.l2,
        )


@dataclass(frozen=True)
class BabgRound:
    """Everything one BABG round decides (arrays over the market's buyers i and sellers j)."""

    params: BabgParams
    admission: Admission
    swm2: Swm2Problem  # the volume problem the round solved
    buyer_role: tuple[str, ...]  # "v2v", "grid", "idle", or "rejected"
    seller_role: tuple[str, ...]
    candidates: BoolArray  # V2V pairs whose price bands overlap (and within distance)
    settled: BoolArray  # pairs the auction settles
    W: FloatArray  # (N, M) final buyer bids (NaN off the candidates)
    Q: FloatArray
    rounds: NDArray[np.int64]  # (N, M) auctions per pair (0 off the candidates)
    bid_history: FloatArray
    ask_history: FloatArray
    drained: FloatArray  # (N, M) kWh taken from seller j for buyer i
    delivered: FloatArray  # (N, M) kWh buyer i receives
    excluded: dict[int, str]
    grid: tuple[dict[str, Any], ...]
    welfare: float
    cost: float
    iterations: int
    dist: FloatArray = field(repr=False)
    reachable: BoolArray = field(repr=False)  # admitted pairs within distance (for the reasons)

    @property
    def success_rate(self) -> float | None:
        """Settled pairs / candidate pairs (the transaction success rate)."""
        k = int(self.candidates.sum())
        return None if k == 0 else float(self.settled.sum()) / k

    @property
    def pma(self) -> float | None:
        """Auctioneer's profit margin (eq. 35): (mean W - mean Q) / mean Q over traded pairs."""
        traded = self.delivered > 0
        if not np.any(traded):
            return None
        q = float(self.Q[traded].mean())
        return (float(self.W[traded].mean()) - q) / q

    @property
    def cp(self) -> float | None:
        """Cost performance (eq. 36): welfare / total seller loss."""
        return cost_performance(self.welfare, self.cost)


def babg_round(market: Market, params: BabgParams | None = None) -> BabgRound:
    """Run one BABG round on ``market`` (see the module docstring for the steps)."""
    prm = params or BabgParams()
    a = market.auctioneer
    B, S = market.buyer_arrays, market.seller_arrays
    n, m = market.n_buyers, market.n_sellers
    basics = market_basics(market)
    adm, spare, dist = basics.admission, basics.spare, basics.dist
    # V2V price bands, bounded by the grid prices.
    p = np.clip(B["v"], prm.grid_buy, prm.grid_sell)
    p_max = np.clip(B["v_max"], prm.grid_buy, prm.grid_sell)
    r = np.clip(S["c"], prm.grid_buy, prm.grid_sell)
    r_min = np.clip(S["c_min"], prm.grid_buy, prm.grid_sell)
    eff = 1.0 / (1.0 + S["rho"])
    b_active = adm.buyers_ok & (B["b_max"] > 0)
    s_active = adm.sellers_ok & (spare > 0)
    overlap = (p_max[:, None] >= r_min[None, :]) & basics.reachable
    overlap &= b_active[:, None] & s_active[None, :]
    b_v2v: BoolArray = np.asarray(overlap.any(axis=1))
    s_v2v: BoolArray = np.asarray(overlap.any(axis=0))
    buyer_role = _roles(adm.buyers_ok, b_active, b_v2v)
    seller_role = _roles(adm.sellers_ok, s_active, s_v2v)
    bi, sj = np.nonzero(overlap)
    auc = two_way_auction(
        p[bi],
        p_max[bi],
        r[sj],
        r_min[sj],
        alpha=prm.alpha,
        beta=prm.beta,
        eps2=prm.eps2,
        max_rounds=prm.max_rounds,
    )
    W = np.full((n, m), np.nan)
    Q = np.full((n, m), np.nan)
    rounds = np.zeros((n, m), dtype=np.int64)
    settled = np.zeros((n, m), dtype=bool)
    W[bi, sj], Q[bi, sj], rounds[bi, sj], settled[bi, sj] = auc.W, auc.Q, auc.rounds, auc.settled
    d_min = np.where(b_v2v, B["b_min"], 0.0)
    d_max = np.where(b_v2v, B["b_max"], 0.0)
    excluded, in_round = exclude(market, settled, d_min, spare * eff, b_v2v)
    swm2 = Swm2Problem(
        mask=settled & in_round[:, None],
        w=B["w"],
        d_min=np.where(in_round, d_min, 0.0),
        d_max=np.where(in_round, d_max, 0.0),
        efficiency=eff,
        s_max=np.where(s_v2v, spare, 0.0),
        l1=a.l1,
        l2=a.l2,
    )
    sol = swm2.solve()
    # SWM2's CF loop (eqs. 25-26): a second solve of the same inputs returns the same total.
    drained = np.where(sol.s > ZERO_KWH, sol.s, 0.0)
    delivered = drained * eff
    grid = _grid_trades(market, prm, buyer_role, seller_role, spare)
    return BabgRound(
        params=prm,
        admission=adm,
        swm2=swm2,
        buyer_role=buyer_role,
        seller_role=seller_role,
        candidates=overlap,
        settled=settled,
        W=W,
        Q=Q,
        rounds=rounds,
        bid_history=auc.bid_history,
        ask_history=auc.ask_history,
        drained=drained,
        delivered=delivered,
        excluded=excluded,
        grid=grid,
        welfare=float(swm2_welfare(drained, delivered, B["w"], d_min, l1=a.l1, l2=a.l2)),
        cost=float(seller_cost(drained, l1=a.l1, l2=a.l2)),
        iterations=sol.iterations,
        dist=dist,
        reachable=basics.reachable,
    )


def _roles(ok: BoolArray, active: BoolArray, v2v: BoolArray) -> tuple[str, ...]:
    """Each EV's role: rejected (admission), idle (nothing to trade), v2v, or grid (V2G)."""
    out = []
    for k in range(ok.size):
        if not ok[k]:
            out.append("rejected")
        elif not active[k]:
            out.append("idle")
        else:
            out.append("v2v" if v2v[k] else "grid")
    return tuple(out)


def _grid_trades(
    market: Market,
    prm: BabgParams,
    buyer_role: tuple[str, ...],
    seller_role: tuple[str, ...],
    spare: FloatArray,
) -> tuple[dict[str, Any], ...]:
    """V2G (SWM1): each grid trader's best response to the grid price, a constant of the round.

    A charging EV buys ``argmax U(d) - r^G d`` over [d^min, d^max]; a discharging EV sells
    ``argmax p^G s - C(s)`` over [0, s^max].
    """
    a = market.auctioneer
    out: list[dict[str, Any]] = []
    for b, role in zip(market.buyers, buyer_role, strict=True):
        if role == "grid":
            d = min(max(b.b_min - 1.0 + b.w / prm.grid_sell, b.b_min), b.b_max)
            out.append({"id": b.id, "role": "buyer", "energy": d, "price": prm.grid_sell})
    for s_, role, cap in zip(market.sellers, seller_role, spare, strict=True):
        if role == "grid":
            e = min(max((prm.grid_buy - a.l2) / (2.0 * a.l1), 0.0), float(cap))
            out.append({"id": s_.id, "role": "seller", "energy": e, "price": prm.grid_buy})
    return tuple(out)


def _unmatched(market: Market, rnd: BabgRound) -> tuple[dict[str, str], ...]:
    """Why each admitted EV trades nothing in V2V: the first of the round's filters (distance,
    a counterpart with something to trade, overlapping price bands, a settled auction, the
    exclusion rule) that left it with no pair, on the round's own masks; an EV left alone before
    the auction trades with the grid (V2G) instead."""
    prm, near = rnd.params, reasons.within(market)
    buyer_role, seller_role = np.asarray(rnd.buyer_role), np.asarray(rnd.seller_role)
    to_grid_b = f": buys from the grid (V2G) at r^G = {prm.grid_sell:g} tokens/kWh"
    to_grid_s = f": sells to the grid (V2G) at p^G = {prm.grid_buy:g} tokens/kWh"
    active_b = np.isin(buyer_role, ("v2v", "grid"))
    active_s = np.isin(seller_role, ("v2v", "grid"))
    steps_b, steps_s = reasons.pair_steps(
        (
            reasons.out_of_reach(
                rnd.reachable, market, buyer_then=to_grid_b, seller_then=to_grid_s
            ),
            reasons.Step(
                active_b[:, None] & active_s[None, :],
                f"no seller{near} has energy to sell{to_grid_b}",
                f"no buyer{near} wants energy{to_grid_s}",
            ),
            reasons.Step(
                rnd.candidates,
                f"no seller{near} sells at a price it would pay (its v_max is below their c_min,"
                f" prices within the grid's){to_grid_b}",
                f"no buyer{near} pays a price it would sell at (their v_max is below its c_min,"
                f" prices within the grid's){to_grid_s}",
            ),
            reasons.Step(
                rnd.settled,
                f"its auction with every seller{near} ended with the bid below the ask (W < Q)",
                f"its auction with every buyer{near} ended with the bid below the ask (W < Q)",
            ),
            reasons.Step(rnd.swm2.mask, None, reasons.PARTNERS_EXCLUDED),
        )
    )
    buyer_wording = reasons.Wording(
        ((buyer_role == "idle", reasons.NO_DEMAND), *steps_b), reasons.OPTIMUM_SKIPS_BUYER
    )
    return reasons.unmatched(
        market,
        buyers=(buyer_role != "rejected") & ~(rnd.delivered.sum(axis=1) > 0),
        sellers=(seller_role != "rejected") & ~(rnd.drained.sum(axis=0) > 0),
        excluded=reasons.explain_exclusions(rnd.excluded, buyer_wording),
        buyer_wording=buyer_wording,
        seller_wording=reasons.Wording(
            ((seller_role == "idle", reasons.NO_SPARE), *steps_s), reasons.OPTIMUM_SKIPS_SELLER
        ),
    )


def clear_babg(market: Market, params: BabgParams | None = None) -> ClearingResult:
    """One BABG round in the common result shape (``P`` = W, ``R`` = Q, ``T`` = W: the buyer
    pays its final bid, the seller receives its final ask, the auctioneer keeps the difference).
    ``welfare`` is SWM2's objective; ``solver`` adds the auction's and the grid's outcome."""
    rnd = babg_round(market, params)
    unmatched = _unmatched(market, rnd)
    traded = rnd.delivered > 0
    rounds = rnd.rounds[rnd.candidates]
    solver: dict[str, Any] = {
        "method": "babg-swm2-interior-point",
        "duality_gap": None,
        "iterations": rnd.iterations,
        "volume_iterations": 1,
        "alpha": rnd.params.alpha,
        "beta": rnd.params.beta,
        "auctions_max": int(rounds.max()) if rounds.size else 0,
        "auctions_mean": float(rounds.mean()) if rounds.size else 0.0,
        "success_rate": rnd.success_rate,
        "pma": rnd.pma,
        "cp": rnd.cp,
        "seller_cost": rnd.cost,
        "grid": [dict(g) for g in rnd.grid],
    }
    W = np.where(rnd.candidates, rnd.W, 0.0)
    Q = np.where(rnd.candidates, rnd.Q, 0.0)
    return assemble_result(
        market,
        admission=rnd.admission,
        mechanism="babg",
        volumes_rule="swm2",
        price=None,
        P=W,
        R=Q,
        T=W,
        dist=rnd.dist,
        pairs_mask=rnd.settled | traded,
        x=rnd.delivered,
        welfare=rnd.welfare,
        unmatched=unmatched,
        solver=solver,
    )


#: The registry's entry (:mod:`evtrade.market.mechanisms`).
MECHANISM = Mechanism(
    "babg",
    "BABG (Luo et al.): two-way auction, SWM2 volumes, V2G for the unmatched",
    "round",
    BabgParams,
    clear_babg,
    refuses="babg sets its own prices and volumes (SWM2)",
)
