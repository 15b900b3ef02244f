"""Settlement planning: P1's volumes rounded to the contract's energy units, provably settleable.

The RSU settles a round with (request, reply, energy units) triples, and ``Market.settle``
refuses the whole list when any buyer is outside (12), any seller beyond (13) in fixed point,
any pair has P* < R*, or a payment exceeds its escrow. This module turns the real-valued P1
optimum into such a list and mirrors the contract's checks (:func:`settlement_refusal`).

The integer problem
-------------------
In units (1e-6 kWh) the contract's constraints have integral data: b_i^min, b_i^max are
integers, and (13), ``sold_j * (RHO_SCALE + rho_j) <= (s_j^t - s_j^r) * RHO_SCALE``, holds for an
integer ``sold_j`` exactly when ``sold_j <= C_j`` with the integer capacity
``C_j = floor((s_j^t - s_j^r) * RHO_SCALE / (RHO_SCALE + rho_j))`` (:func:`seller_capacity`, the
one place the planner reads a seller's capacity). The planner solves P1 (ETA eqs. 11-16) with
these capacities (C_j units, never more than the real s^t - s^r over 1 + rho, and less by under
one unit), over the pairs the contract's exact Theorem 1 test accepts.

Why rounding always succeeds
----------------------------
Let x be a feasible point of that real problem (in units) and F = floor(x) entrywise, f = x - F
in [0, 1). Each buyer needs ``d_i = max(0, b_i^min - sum_j F_ij)`` more units; since
``sum_j x_ij >= b_i^min``, ``sum_j f_ij >= d_i``. Each seller has ``r_j = C_j - sum_i F_ij >= 0``
units left, and ``sum_i f_ij <= r_j``. So f, scaled down per buyer to d_i, is a real flow of value
sum d_i in the network source -> buyer i (capacity d_i) -> seller j (capacity 1, only on pairs
with f_ij > 0) -> sink (capacity r_j). All capacities are integers, so by the integrality of
network flows (Ford-Fulkerson) a maximum flow z is integral, with value sum d_i, and z_ij in
{0, 1}. The plan y = F + z then has every trade in {floor x_ij, ceil x_ij} (moved by less than
one unit), every buyer with d_i > 0 at exactly b_i^min, every other buyer at sum F <= b_i^max,
and every seller at most C_j: it passes (12) and (13). Units are then added greedily where they
raise the welfare and fit. The solver's point is feasible only to its tolerance; if the flow
falls short for that reason, an exact integer max flow decides: either the minimums cannot be met
in units (then buyers are excluded by the project's rule, below) or they can, and the plan is the
integer point nearest floor(x) in units moved (an LP whose matrix is totally unimodular and whose
bounds are integers, so the simplex vertex is integral; it is checked exactly). When the solver
itself fails, the max flow's plan (every b_min met, nothing more) is settled: feasible, not optimal.

Exclusion. A round whose real problem (capacities s^t - s^r over 1 + rho) is feasible may be
infeasible in units, by under one unit per seller. Buyers are then excluded by the rule of
:mod:`evtrade.market.feasibility` applied to the integer network (source side of a minimum cut,
largest b_min, then lower w, then smaller address) and take nothing: the contract checks (12) only
for buyers that trade, so an excluded buyer is simply left out of the list.

Prices and escrow. A trading pair has num_p >= num_r, and num_p = v^max + 3 c^min + 8 v <= 12 v^max
(c^min <= v^max on a trading pair), so T = floor((num_p + num_r) / 24) <= v^max; payments round
down, so a buyer pays at most v^max * b^max / ENERGY_SCALE <= its escrow (rounded up).

Welfare bound. y is feasible for the real problem, so W(y) <= W*; with the solver's duality gap
W* - W(x) <= gap, and each of the K rounded trades moving by under delta = 1e-6 kWh::

    0 <= W* - W(y) <= gap + delta * sum_{(i,j) rounded} (w_i + rho_j (l1 (2 x_ij + delta) + l2))

(w_i bounds buyer i's marginal utility w_i / (X_i - b_i^min + 1) above b_i^min; the second term is
the derivative of the pair's loss). :func:`plan_round` reports this bound for each round.

Trade count. The contract takes at most MAX_TRADES trades. P1's optimum is dense (every buyer
buys from every seller cheaper than its marginal utility), so a round of many bids can exceed it.
Shifting volume around a cycle of the plan's bipartite support keeps every buyer's and seller's
total, hence (12), (13), the utilities and the l2 loss; only the l1 loss of the pairs changes.
Cycles are cancelled, smallest trades first, until the plan fits: a forest has at most
N + M - 1 <= 255 edges, within MAX_TRADES = 1024. The plan then reports the extra l1 loss.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from evtrade.errors import MarketError, SolverError
from evtrade.settlement import units
from evtrade.settlement.views import (
    ReplyView,
    RequestView,
    RoundView,
    Trade,
    has_revealed_pair,
    round_market,
)

FloatArray = NDArray[np.float64]

#: ``Market.vy`` MAX_TRADES and MAX_BIDS.
MAX_TRADES = 1024
MAX_BIDS = 128
#: One energy unit in kWh.
UNIT_KWH = 1.0 / units.ENERGY_SCALE


# -- the contract's checks, in Python -------------------------------------------------------------


def seller_capacity(reply: ReplyView) -> int:
    """C_j: the most energy units a seller may sell in this round under (13), in fixed point.

    ``sold * (RHO_SCALE + rho) <= (s_t - s_r) * RHO_SCALE`` (Market.vy ``_settle``) holds for an
    integer ``sold`` exactly when ``sold <= C_j``.
    """
    spare = reply.s_t - reply.s_r
    if spare <= 0:
        return 0
    return spare * units.RHO_SCALE // (units.RHO_SCALE + reply.rho)


def settlement_refusal(view: RoundView, trades: Sequence[Trade]) -> str | None:
    """The reason ``Market.settle`` would refuse ``trades`` on ``view``, or None if it accepts.

    Mirrors ``_settle`` in integers with the contract's rounding (payments round down); the
    round's state and time checks (``_check_settleable``) are the caller's.
    """
    if len(trades) > MAX_TRADES:
        return f"market: more than {MAX_TRADES} trades"
    n_buyers, n_sellers = len(view.requests), len(view.replies)
    bought = [0] * n_buyers
    paid = [0] * n_buyers
    sold = [0] * n_sellers
    for i, j, energy in trades:
        if not 0 <= i < n_buyers:
            return "market: unknown request"
        if not 0 <= j < n_sellers:
            return "market: unknown reply"
        if energy <= 0:
            return "market: zero energy"
        q, p = view.requests[i], view.replies[j]
        if q.value is None:
            return "market: buyer's value not revealed"
        if p.value is None:
            return "market: seller's value not revealed"
        _, _, price, trades_ok = units.fixed_prices(q.value, q.v_max, p.value, p.c_min)
        if not trades_ok:
            return "market: bid below ask (P* < R*)"
        bought[i] += energy
        paid[i] += units.payment(price, energy)
        sold[j] += energy
    for i, q in enumerate(view.requests):
        if bought[i] == 0:
            continue
        if bought[i] < q.b_min:
            return "market: energy below b_min (12)"
        if bought[i] > q.b_max:
            return "market: energy above b_max (12)"
        if paid[i] > q.escrow:
            return "market: payment above escrow"
    for j, p in enumerate(view.replies):
        if sold[j] > 0 and sold[j] > seller_capacity(p):
            return "market: energy above the seller's spare energy (13)"
    return None


# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementPlan:
    """What :func:`plan_round` decided for a round.

    ``trades`` are (request index, reply index, energy units). ``x`` (kWh, revealed buyers x
    revealed sellers, in the order of :func:`~evtrade.settlement.views.round_market`) is the real P1
    optimum over the contract's units, ``welfare_real`` its P1 objective and ``welfare_plan`` the
    objective of the settled units; ``bound`` is the a-priori bound on ``welfare_real -
    welfare_plan`` (module docstring) and ``extra_l1_loss`` what cycle cancelling (trade limit)
    cost on top. ``excluded`` maps request indices to the reason they take nothing. ``path``
    says how the plan was made: "flow" (rounding of the optimum), "repair" (the integer plan
    nearest the optimum, when the solver's point misses a bound by more than rounding absorbs),
    "fallback" (an exact integer flow filled towards the optimum, when the solver fails), "empty".
    """

    trades: tuple[Trade, ...]
    excluded: dict[int, str] = field(default_factory=dict)
    x: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    welfare_real: float = 0.0
    welfare_plan: float = 0.0
    bound: float = 0.0
    duality_gap: float = 0.0
    extra_l1_loss: float = 0.0
    path: str = "empty"
    cancelled_cycles: int = 0


def plan_settlement(view: RoundView) -> list[Trade]:
    """The trades an RSU settles: ETA prices, P1 volumes, rounded to energy units.

    Every list returned passes the contract's checks (:func:`settlement_refusal`); see
    :func:`plan_round` and the module docstring for why it always exists.
    """
    return list(plan_round(view).trades)


@dataclass
class _Round:
    """The round in the planner's terms: revealed bids only, integer data, the pair mask."""

    reqs: list[RequestView]
    reps: list[ReplyView]
    ids: list[str]
    mask: NDArray[np.bool_]
    in_round: NDArray[np.bool_]
    w: FloatArray
    rho: FloatArray
    b_min: list[int]
    b_max: list[int]
    cap: list[int]
    l1: float
    l2: float
    excluded: dict[int, str]


def plan_round(view: RoundView, *, max_trades: int = MAX_TRADES) -> SettlementPlan:
    """Plan a round's settlement (see the module docstring for the method and its proof).

    Parameters
    ----------
    view : RoundView
        The round as the chain recorded it; unrevealed bids are left out.
    max_trades : int, keyword-only
        The most trades the plan may hold (the contract's MAX_TRADES).

    Returns
    -------
    SettlementPlan
    """

    try:
        view, refused = _plannable(view)
    except MarketError as exc:
        # A round opened outside the market model (l1 = 0: P1 is not strictly convex). It
        # settles with no trades, and every buyer gets its escrow back, rather than never.
        why = f"excluded: the round's parameters are outside P1 ({exc})"
        return SettlementPlan(
            trades=(), excluded={q.index: why for q in view.requests if q.value is not None}
        )
    if not has_revealed_pair(view):
        alone = "excluded: no revealed seller in the round"
        return SettlementPlan(
            trades=(),
            excluded=refused | {q.index: alone for q in view.requests if q.value is not None},
        )
    rnd = _integer_round(view)
    x, y, gap, path = _plan_units(rnd)
    y = _improve(rnd, y, x)
    real = _welfare(rnd, x)
    before = _welfare(rnd, y.astype(float) * UNIT_KWH)
    cycles = 0
    if int(np.count_nonzero(y)) > max_trades:
        y, cycles = _cancel_cycles(y, max_trades)
    plan = _welfare(rnd, y.astype(float) * UNIT_KWH)
    trades = tuple(
        (rnd.reqs[i].index, rnd.reps[j].index, int(y[i, j]))
        for i, j in zip(*np.nonzero(y), strict=True)
    )
    return SettlementPlan(
        trades=trades,
        excluded=refused | {rnd.reqs[i].index: why for i, why in rnd.excluded.items()},
        x=x,
        welfare_real=real,
        welfare_plan=plan,
        bound=(0.0 if math.isnan(gap) else gap) + _rounding_bound(rnd, x),
        duality_gap=gap,
        extra_l1_loss=before - plan,
        path=path,
        cancelled_cycles=cycles,
    )


def _plan_units(rnd: _Round) -> tuple[FloatArray, NDArray[np.object_], float, str]:
    """Volumes x (kWh), the plan in units, the solver's duality gap and how the plan was made.

    Excludes buyers (rnd is updated) while the minimums cannot be met in units.
    """
    while True:
        x, gap = _solve(rnd)
        y = None if x is None else _round_flow(rnd, x)
        if y is not None and x is not None:
            return x, y, gap, "flow"
        flow, blamed = _min_demand_flow(rnd)
        if blamed is not None:
            _exclude(rnd, blamed)
            continue
        if x is None:
            return flow.astype(float) * UNIT_KWH, flow, math.nan, "fallback"
        repaired = _round_lp(rnd, x)
        if repaired is not None:
            return x, repaired, gap, "repair"
        return x, _fill(rnd, flow, x), gap, "fallback"


def _plannable(view: RoundView) -> tuple[RoundView, dict[int, str]]:
    """The round without the revealed bids the market model refuses, and why (per request).

    The contract takes numbers the library bounds (a price above 1e9 tokens per kWh, say); one
    such bid must not keep the whole round from settling, so it is left out (its buyer is
    refunded). Raises MarketError when the round's own parameters are outside the model.
    """

    try:
        round_market(view)
        return view, {}
    except MarketError:
        pass
    # A request and a reply the model always takes, to test the other bids one at a time.
    probe_q = RequestView(
        index=-1,
        buyer="probe-buyer",
        b_min=0,
        b_max=1,
        v_min=view.v_floor,
        v_max=view.v_floor,
        w=0,
        lat=0,
        lon=0,
        commitment=b"",
        escrow=0,
        sealed=b"",
        value=view.v_floor,
    )
    probe_p = ReplyView(
        index=-1,
        seller="probe-seller",
        c_min=0,
        c_max=0,
        s_t=1,
        s_r=0,
        rho=units.RHO_SCALE,
        lat=0,
        lon=0,
        commitment=b"",
        sealed=b"",
        value=0,
    )
    round_market(dataclasses.replace(view, requests=(probe_q,), replies=(probe_p,)))

    def refusal(requests: tuple[RequestView], replies: tuple[ReplyView]) -> MarketError | None:
        """Why the model refuses one revealed bid against the probe (None: it takes it)."""
        try:
            round_market(dataclasses.replace(view, requests=requests, replies=replies))
        except MarketError as exc:
            return exc
        return None

    refused: dict[int, str] = {}
    requests = []
    for q in view.requests:
        exc = None if q.value is None else refusal((q,), (probe_p,))
        if exc is None:
            requests.append(q)
        else:
            refused[q.index] = f"excluded: the bid is outside the market model ({exc})"
    replies = [p for p in view.replies if p.value is None or refusal((probe_q,), (p,)) is None]
    return dataclasses.replace(view, requests=tuple(requests), replies=tuple(replies)), refused


def _integer_round(view: RoundView) -> _Round:
    """Revealed bids, integer bounds and capacities, and the pairs both the library and the
    contract's exact Theorem 1 test let trade; buyers the library excludes stay excluded."""
    from evtrade.market.mechanisms.eta import round_setup

    market = round_market(view)
    setup = round_setup(market)
    q_of = {q.buyer: q for q in view.requests}
    p_of = {p.seller: p for p in view.replies}
    reqs = [q_of[b.id] for b in market.buyers]
    reps = [p_of[s.id] for s in market.sellers]
    exact = np.array(
        [[_trades_exactly(q, p) for p in reps] for q in reqs],
        dtype=bool,
    ).reshape(len(reqs), len(reps))
    cap = [seller_capacity(p) for p in reps]
    mask = setup.solve_mask & exact & (np.array(cap) > 0)[None, :]
    in_round = setup.in_round.copy()
    excluded = {int(i): why for i, why in setup.excluded.items()}
    for i, q in enumerate(reqs):
        if i not in excluded and not setup.admission.buyers_ok[i]:
            excluded[i] = setup.admission.reasons.get(q.buyer, "not admitted")
    rnd = _Round(
        reqs=reqs,
        reps=reps,
        ids=[q.buyer for q in reqs],
        mask=mask & in_round[:, None],
        in_round=in_round,
        w=np.array([q.w for q in reqs], dtype=float) / units.W_SCALE,
        rho=np.array([p.rho for p in reps], dtype=float) / units.RHO_SCALE,
        b_min=[q.b_min for q in reqs],
        b_max=[q.b_max for q in reqs],
        cap=cap,
        l1=view.l1 / units.LOSS_SCALE,
        l2=view.l2 / units.LOSS_SCALE,
        excluded=excluded,
    )
    for i in range(len(reqs)):
        if rnd.in_round[i] and rnd.b_min[i] > 0 and not rnd.mask[i].any():
            _exclude(rnd, [i], "excluded: no seller can trade with this buyer in contract units")
    return rnd


def _trades_exactly(q: RequestView, p: ReplyView) -> bool:
    assert q.value is not None and p.value is not None
    return units.fixed_prices(q.value, q.v_max, p.value, p.c_min)[3]


def _exclude(rnd: _Round, blamed: Sequence[int], reason: str | None = None) -> None:
    """The project's exclusion rule: of the blamed buyers, the largest b_min, then lower w, then
    the smaller address (evtrade.market.feasibility), on the integer network."""
    worst = min(blamed, key=lambda i: (-rnd.b_min[i], float(rnd.w[i]), rnd.ids[i]))
    rnd.in_round[worst] = False
    rnd.mask[worst] = False
    rnd.excluded[worst] = reason or (
        f"excluded: minimum demand b_min={rnd.b_min[worst] * UNIT_KWH:g} kWh cannot be met in "
        "contract units together with the other buyers' minimums"
    )


def _problem(rnd: _Round) -> P1Problem:
    from evtrade.market.welfare import P1Problem

    inr = rnd.in_round
    cap = np.array(rnd.cap, dtype=float) * UNIT_KWH
    return P1Problem.from_arrays(
        mask=rnd.mask,
        w=rnd.w,
        b_min=np.where(inr, np.array(rnd.b_min, dtype=float) * UNIT_KWH, 0.0),
        b_max=np.where(inr, np.array(rnd.b_max, dtype=float) * UNIT_KWH, 0.0),
        rho=rnd.rho,
        # (13) as P1Problem states it, (1 + rho) * sold <= spare, with sold <= C_j.
        spare=(1.0 + rnd.rho) * cap,
        l1=rnd.l1,
        l2=rnd.l2,
    )


def _solve(rnd: _Round) -> tuple[FloatArray | None, float]:
    """P1 over the contract's units (kWh), or None when the solver gives up."""
    from evtrade.market.welfare import solve_p1

    try:
        sol = solve_p1(_problem(rnd))
    except (SolverError, ValueError, FloatingPointError):
        return None, math.nan
    x = np.where(rnd.mask, np.maximum(sol.x, 0.0), 0.0)
    if not np.all(np.isfinite(x)):
        return None, math.nan
    return x, max(float(sol.duality_gap), 0.0)


def _floor_units(x: FloatArray) -> NDArray[np.object_]:
    out = np.empty(x.shape, dtype=object)
    for idx, v in np.ndenumerate(x * units.ENERGY_SCALE):
        out[idx] = math.floor(v) if v > 0 else 0
    return out


def _round_flow(rnd: _Round, x: FloatArray) -> NDArray[np.object_] | None:
    """Round x (kWh) to units by the flow of the module docstring; None if the flow falls short."""
    n, m = x.shape
    F = _floor_units(x)
    xu = x * units.ENERGY_SCALE
    # The solver's point may exceed b_max or C_j by rounding: take the excess off the floors.
    for i in range(n):
        over = sum(F[i]) - rnd.b_max[i]
        for j in np.argsort(-xu[i]):
            if over <= 0:
                break
            cut = min(over, F[i, j])
            F[i, j] -= cut
            over -= cut
    for j in range(m):
        over = sum(F[:, j]) - rnd.cap[j]
        for i in np.argsort(-xu[:, j]):
            if over <= 0:
                break
            cut = min(over, F[i, j])
            F[i, j] -= cut
            over -= cut
    frac = rnd.mask & (xu - F.astype(float) > 0)
    need = [max(0, rnd.b_min[i] - sum(F[i])) if rnd.in_round[i] else 0 for i in range(n)]
    total = sum(need)
    if total == 0:
        return F
    left = [max(0, rnd.cap[j] - sum(F[:, j])) for j in range(m)]
    z = _unit_flow(frac, need, left)
    if z is None:
        return None
    out: NDArray[np.object_] = F + z
    return out


def _unit_flow(
    edges: NDArray[np.bool_], need: Sequence[int], left: Sequence[int]
) -> NDArray[np.object_] | None:
    """An integral flow of value sum(need): buyer i sends need_i units, one per allowed pair, to
    sellers that take at most left_j; None when the maximum flow is smaller."""
    n, m = edges.shape
    total = sum(need)
    if any(k > m for k in need) or total >= 2**31:
        return None
    src, sink = 0, n + m + 1
    bi, sj = np.nonzero(edges)
    heads = np.concatenate([np.zeros(n, dtype=np.int64), 1 + bi, 1 + n + np.arange(m)])
    tails = np.concatenate([1 + np.arange(n), 1 + n + sj, np.full(m, sink)])
    caps = np.concatenate(
        [
            np.array(need, dtype=np.int64),
            np.ones(bi.size, dtype=np.int64),
            np.array([min(v, total) for v in left], dtype=np.int64),
        ]
    ).astype(np.int32)
    graph = csr_matrix((caps, (heads, tails)), shape=(sink + 1, sink + 1))
    result = maximum_flow(graph, src, sink)
    if result.flow_value < total:
        return None
    flow = result.flow.tocsr()
    z = np.zeros((n, m), dtype=object)
    for i, j in zip(bi.tolist(), sj.tolist(), strict=True):
        z[i, j] = max(int(flow[1 + i, 1 + n + j]), 0)
    return z


def _round_lp(rnd: _Round, x: FloatArray) -> NDArray[np.object_] | None:
    """The integer plan nearest floor(x) in total units moved, for a point x that misses (12) or
    (13) by more than the rounding can absorb (the solver's tolerance on huge volumes).

    ``y = F + u - v`` with ``0 <= v <= F``; the constraint matrix [A, -A] of a bipartite incidence
    matrix A is totally unimodular and every bound is an integer, so the simplex method's vertex
    is integral. It is rounded and checked exactly; None if it is not a feasible plan.
    """
    from scipy.optimize import linprog

    n, m = x.shape
    F = _floor_units(x)
    bi, sj = np.nonzero(rnd.mask)
    k = bi.size
    if k == 0:
        return None
    f = np.clip(x[bi, sj] * units.ENERGY_SCALE - F[bi, sj].astype(float), 0.0, 1.0)
    rows = np.zeros((n, k))
    rows[bi, np.arange(k)] = 1.0
    cols = np.zeros((m, k))
    cols[sj, np.arange(k)] = 1.0
    row_f = np.array([float(sum(F[i])) for i in range(n)])
    col_f = np.array([float(sum(F[:, j])) for j in range(m)])
    b_min = np.where(rnd.in_round, np.array(rnd.b_min, dtype=float), 0.0)
    b_max = np.where(rnd.in_round, np.array(rnd.b_max, dtype=float), 0.0)
    a_ub = np.block([[rows, -rows], [-rows, rows], [cols, -cols]])
    b_ub = np.concatenate([b_max - row_f, row_f - b_min, np.array(rnd.cap, dtype=float) - col_f])
    bounds = [(0.0, None)] * k + [(0.0, float(v)) for v in F[bi, sj]]
    res = linprog(
        np.concatenate([1.0 - 0.5 * f, np.ones(k)]),
        A_ub=a_ub,
        b_ub=b_ub,
        bounds=bounds,
        method="highs-ds",
    )
    if res.status != 0:
        return None
    y = F.copy()
    for t in range(k):
        y[bi[t], sj[t]] += round(float(res.x[t])) - round(float(res.x[k + t]))
    if not _feasible_units(rnd, y):
        return None
    return y


def _feasible_units(rnd: _Round, y: NDArray[np.object_]) -> bool:
    """(12) for the buyers in the round, (13) in units, nothing negative or off the mask."""
    n, m = y.shape
    if any(y[i, j] < 0 or (y[i, j] > 0 and not rnd.mask[i, j]) for i in range(n) for j in range(m)):
        return False
    for i in range(n):
        total = sum(y[i])
        if total > 0 and not rnd.b_min[i] <= total <= rnd.b_max[i]:
            return False
        if rnd.in_round[i] and total < rnd.b_min[i]:
            return False
    return all(sum(y[:, j]) <= rnd.cap[j] for j in range(m))


# -- exact integer flows (the fallback and the exclusion rule) ------------------------------------


class _Dinic:
    """Maximum flow with exact Python integers (capacities may exceed 2**31)."""

    def __init__(self, size: int) -> None:
        self.adj: list[list[int]] = [[] for _ in range(size)]
        self.to: list[int] = []
        self.cap: list[int] = []

    def add(self, u: int, v: int, cap: int) -> int:
        self.adj[u].append(len(self.to))
        self.to.append(v)
        self.cap.append(cap)
        self.adj[v].append(len(self.to))
        self.to.append(u)
        self.cap.append(0)
        return len(self.to) - 2

    def run(self, s: int, t: int) -> int:
        total = 0
        while True:
            level = self._levels(s)
            if level[t] < 0:
                return total
            it = [0] * len(self.adj)
            while True:
                pushed = self._push(s, t, level, it)
                if pushed == 0:
                    break
                total += pushed

    def _levels(self, s: int) -> list[int]:
        level = [-1] * len(self.adj)
        level[s] = 0
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for e in self.adj[u]:
                if self.cap[e] > 0 and level[self.to[e]] < 0:
                    level[self.to[e]] = level[u] + 1
                    queue.append(self.to[e])
        return level

    def _push(self, s: int, t: int, level: list[int], it: list[int]) -> int:
        """One augmenting path in the level graph (iterative DFS), or 0."""
        path: list[int] = []
        u = s
        while True:
            if u == t:
                amount = min(self.cap[e] for e in path)
                for e in path:
                    self.cap[e] -= amount
                    self.cap[e ^ 1] += amount
                return amount
            advanced = False
            while it[u] < len(self.adj[u]):
                e = self.adj[u][it[u]]
                v = self.to[e]
                if self.cap[e] > 0 and level[v] == level[u] + 1:
                    path.append(e)
                    u = v
                    advanced = True
                    break
                it[u] += 1
            if not advanced:
                if u == s:
                    return 0
                level[u] = -1  # dead end
                e = path.pop()
                u = self.to[e ^ 1]
                it[u] += 1

    def reachable(self, s: int) -> set[int]:
        return {u for u, lv in enumerate(self._levels(s)) if lv >= 0}


def _min_demand_flow(rnd: _Round) -> tuple[NDArray[np.object_], list[int] | None]:
    """An integral plan meeting every b_min within the capacities, or the buyers a minimum cut
    blames (source side) when none exists."""
    n, m = rnd.mask.shape
    g = _Dinic(n + m + 2)
    src, sink = 0, n + m + 1
    demand = [rnd.b_min[i] if rnd.in_round[i] else 0 for i in range(n)]
    big = sum(demand) + 1
    for i in range(n):
        if demand[i] > 0:
            g.add(src, 1 + i, demand[i])
    pair = {
        (int(i), int(j)): g.add(1 + int(i), 1 + n + int(j), big)
        for i, j in zip(*np.nonzero(rnd.mask), strict=True)
    }
    for j in range(m):
        g.add(1 + n + j, sink, rnd.cap[j])
    y = np.zeros((n, m), dtype=object)
    if g.run(src, sink) < sum(demand):
        side = g.reachable(src)
        blamed = [i for i in range(n) if 1 + i in side and demand[i] > 0]
        return y, blamed or [i for i in range(n) if demand[i] > 0]
    for (i, j), e in pair.items():
        y[i, j] = g.cap[e ^ 1]
    return y, None


def _fill(rnd: _Round, y: NDArray[np.object_], x: FloatArray) -> NDArray[np.object_]:
    """Raise a feasible plan towards floor(x), largest volumes first, as (12) and (13) allow."""
    y = y.copy()
    row = [sum(y[i]) for i in range(y.shape[0])]
    col = [sum(y[:, j]) for j in range(y.shape[1])]
    F = _floor_units(x)
    for flat in np.argsort(-x, axis=None):
        i, j = divmod(int(flat), y.shape[1])
        if not rnd.mask[i, j] or F[i, j] <= y[i, j]:
            continue
        add = min(F[i, j] - y[i, j], rnd.b_max[i] - row[i], rnd.cap[j] - col[j])
        if add > 0:
            y[i, j] += add
            row[i] += add
            col[j] += add
    return y


def _improve(rnd: _Round, y: NDArray[np.object_], x: FloatArray) -> NDArray[np.object_]:
    """Within the box [floor x, ceil x]: move a buyer's rounded-up unit to a cheaper pair of the
    same buyer (its total, hence its utility, is kept), then add single units where they raise
    P1's welfare and fit."""
    xu = x * units.ENERGY_SCALE
    n, m = y.shape
    row = [sum(y[i]) for i in range(n)]
    col = [sum(y[:, j]) for j in range(m)]
    _swap_units(rnd, y, xu, col)
    cand = [
        (i, j)
        for i, j in zip(*np.nonzero(rnd.mask & (xu > y.astype(float))), strict=True)
        if y[i, j] < math.ceil(xu[i, j])
    ]
    b_min = np.array(rnd.b_min, dtype=float)

    def gain(i: int, j: int) -> float:
        # P1 (eq. 11): one more unit on (i, j) changes the buyer's utility and the pair's loss.
        d = UNIT_KWH
        level = (row[i] - b_min[i]) * UNIT_KWH + 1.0
        du = float(rnd.w[i]) * math.log1p(d / level) if level > 0 else math.inf
        vol = float(y[i, j]) * UNIT_KWH
        return du - float(rnd.rho[j]) * d * (rnd.l1 * (2 * vol + d) + rnd.l2)

    for i, j in sorted(cand, key=lambda p: -gain(int(p[0]), int(p[1]))):
        if row[i] < rnd.b_max[i] and col[j] < rnd.cap[j] and gain(i, j) > 0:
            y[i, j] += 1
            row[i] += 1
            col[j] += 1
    return y


def _swap_units(rnd: _Round, y: NDArray[np.object_], xu: FloatArray, col: list[int]) -> None:
    """Move rounded-up units to the same buyer's cheapest rounded-down pairs while that lowers
    the loss (eq. 16); y and col are updated in place, every trade stays in its box."""
    d = UNIT_KWH

    def loss_up(i: int, j: int) -> float:  # one more unit on (i, j)
        return float(rnd.rho[j]) * d * (rnd.l1 * (2 * float(y[i, j]) * d + d) + rnd.l2)

    def loss_down(i: int, j: int) -> float:  # one unit less on (i, j)
        return float(rnd.rho[j]) * d * (rnd.l1 * (2 * float(y[i, j]) * d - d) + rnd.l2)

    for i in range(y.shape[0]):
        pairs = np.flatnonzero(rnd.mask[i] & (xu[i] > 0))
        ups = [int(j) for j in pairs if y[i, j] > math.floor(xu[i, j])]
        downs = [int(j) for j in pairs if y[i, j] < math.ceil(xu[i, j]) and y[i, j] < xu[i, j]]
        while ups and downs:
            up = max(ups, key=lambda j: loss_down(i, j))
            room = [j for j in downs if col[j] < rnd.cap[j]]
            if not room:
                break
            down = min(room, key=lambda j: loss_up(i, j))
            if loss_up(i, down) >= loss_down(i, up):
                break
            y[i, up] -= 1
            y[i, down] += 1
            col[up] -= 1
            col[down] += 1
            ups.remove(up)
            downs.remove(down)


def _welfare(rnd: _Round, x: FloatArray) -> float:
    """P1's objective (eq. 11) at x (kWh); buyers out of the round count nothing."""
    from evtrade.market.objectives import eta_welfare

    b_min = np.array(rnd.b_min, dtype=float) * UNIT_KWH
    return float(eta_welfare(x, rnd.w, b_min, rnd.rho, rnd.l1, rnd.l2, in_round=rnd.in_round))


def _rounding_bound(rnd: _Round, x: FloatArray) -> float:
    """delta * sum over the rounded pairs of (w_i + rho_j (l1 (2 x_ij + delta) + l2))."""
    d = UNIT_KWH
    frac = rnd.mask & (x > 0)
    per = rnd.w[:, None] + rnd.rho[None, :] * (rnd.l1 * (2 * x + d) + rnd.l2)
    return float(d * np.sum(np.where(frac, per, 0.0)))


# -- the trade limit ------------------------------------------------------------------------------


def _cancel_cycles(y: NDArray[np.object_], limit: int) -> tuple[NDArray[np.object_], int]:
    """Shift volume around cycles of the plan's support until at most ``limit`` trades remain.

    Row and column sums are kept, so (12), (13), utilities and the l2 loss do not change. The
    largest trades form a spanning forest; every other trade, smallest first, closes one cycle
    with it, and the cycle's alternating volumes move until a trade reaches zero.
    """
    y = y.copy()
    n, m = y.shape
    edges = sorted(
        ((int(i), int(j)) for i, j in zip(*np.nonzero(y), strict=True)), key=lambda e: -y[e]
    )
    parent = list(range(n + m))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    forest: dict[int, set[int]] = {k: set() for k in range(n + m)}
    rest: list[tuple[int, int]] = []
    for i, j in edges:
        a, b = find(i), find(n + j)
        if a != b:
            parent[a] = b
            forest[i].add(n + j)
            forest[n + j].add(i)
        else:
            rest.append((i, j))
    count = len(edges)
    cycles = 0
    for i, j in reversed(rest):  # smallest first
        if count <= limit:
            break
        path = _forest_path(forest, n + j, i)
        if path is None:
            forest[i].add(n + j)
            forest[n + j].add(i)
            continue
        # The cycle (i, j) - path from seller j back to buyer i: signs alternate, (i, j) loses.
        cells = [(i, j)]
        for a, b in pairwise(path):
            cells.append((a, b - n) if a < n else (b, a - n))
        minus = cells[0::2]
        amount = min(y[c] for c in minus)
        for k, c in enumerate(cells):
            y[c] += -amount if k % 2 == 0 else amount
        cycles += 1
        for a, b in cells[1:]:
            if y[a, b] == 0:
                forest[a].discard(n + b)
                forest[n + b].discard(a)
                count -= 1
        if y[i, j] == 0:
            count -= 1
        else:
            forest[i].add(n + j)
            forest[n + j].add(i)
    return y, cycles


def _forest_path(forest: dict[int, set[int]], start: int, goal: int) -> list[int] | None:
    """Nodes from ``start`` to ``goal`` in the forest (breadth first), or None."""
    prev = {start: start}
    queue = deque([start])
    while queue:
        u = queue.popleft()
        if u == goal:
            out = [u]
            while out[-1] != start:
                out.append(prev[out[-1]])
            return out[::-1]
        for v in forest[u]:
            if v not in prev:
                prev[v] = u
                queue.append(v)
    return None


if TYPE_CHECKING:
    from evtrade.market.welfare import P1Problem

__all__ = [
    "MAX_TRADES",
    "SettlementPlan",
    "plan_round",
    "plan_settlement",
    "seller_capacity",
    "settlement_refusal",
]
