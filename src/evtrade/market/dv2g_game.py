"""DV2G's games, vectorised over slots: grids select EVs by replicator dynamics (Algorithm 1), EVs
price non-cooperatively (eq. 38-40), the Stackelberg loop of the two (Algorithm 2).

Arrays are (T, M) for EVs (sellers), (T, N) for grids (buyers) and (T, N, M) for the grids'
demand at the EVs' prices; an EV with nothing to sell in a slot (``supply`` 0) is not in that
slot's game (its selection probability is 0). Readings of the ambiguous equations (spec §3,
docs/dv2g.md#readings):

* grid n facing price varpi buys its welfare maximiser of (17)-(18) within its need G_n (16):
  p_n* = clip((xi_n - varpi) / kappa_n, 0, G_n) (eq. 21);
* the demand reaching EV m is D_m = Q_m P_m with P_m = sum_n p_nm* (eq. 20, the sum over grids);
* the grids' net utility from EV m is their welfare (18) at the share they get,
  r_m = min(1, R_m) with R_m = B_s,m / D_m (eq. 19, 22, 23): u_m = r_m A_m - r_m^2 B_m with
  A_m = sum_n (xi_n - varpi_m) p_nm*, B_m = sum_n kappa_n / 2 p_nm*^2, which is (24) and (25)
  when no grid is at its need; Z (26) is the same for every EV and cancels in u_m - u_bar;
* (32) with sigma1 = step1 / (the largest full welfare in the slot), capped so that no Q_m falls by
  more than half in one step; Q is renormalised onto the simplex after each step (rounding) and
  never below ``q_floor`` (strictly inside: a pure strategy is a fixed point);
* (33) as the evolutionary equilibrium's condition: max_m max(Q_m |u_m - u_bar|, u_m - u_bar)
  below ``tol1`` times the utility scale (an EV the grids dropped may sit below the average, none
  may sit above it).

**Algorithm 1's fixed point in closed form** (:func:`selection_fixed_point`). u_m depends on Q
only through Q_m: it is the full welfare W_m = A_m - B_m while D_m <= B_s,m and falls with Q_m
beyond (A_m >= 2 B_m, so r A_m - r^2 B_m rises with r on [0, 1]). The fixed point of (32) is
therefore a level c = u_bar: an EV with W_m > c is rationed with r_m(c) solving r A_m - r^2 B_m
= c, Q_m = B_s,m / (P_m r_m(c)); an EV with W_m < c is dropped (Q_m = 0); sum_m Q_m = 1 fixes c,
found by bisection (the sum falls as c rises). EVs with W_m = c exactly (a tie: equal prices)
are indifferent to the grids; any split of the rest of the simplex among them with D_m <= B_s,m
is a fixed point, and this one fills them at the same rate D_m / B_s,m. Inside Algorithm 2 the
replicator (32) is started from this point and stopped by (33), so its reported iterations are
those the replicator still needed (usually 0: the warm start passes (33) already).

**Algorithm 2 as a safeguarded root-finder** (:func:`stackelberg`). The fixed point of (38)
with (40) is every EV at D_m = B_s,m or at its floor with D_m <= B_s,m. Two EVs that both clear
(r = 1, u_m = W_m = c) have W equal, hence the same price (W falls strictly with the price
where anyone buys): at the fixed point every EV above its floor charges one common price p*,
and an EV whose floor lies above p* sits at its floor, unsold. The fixed point lies on the line
varpi_m = max(p, omega_m), and Algorithm 2 searches it: in every round the EVs announce their
prices, the grids answer with Algorithm 1's selection, each EV receives D_m (eq. 20) and the
price moves in the direction of eq. 38 (up with excess demand, down with excess supply), by a
step that halves the bracket [p_lo, p_hi] known to hold p* (bisection: eq. 38 with a step that
cannot overshoot, so it cannot chatter across the tie as a fixed gain sigma2 did). The direction
is the sign of the excess of the EVs at the common price (they share it: a tie fills them at one
rate; when the common price is rationed, all of them are). The level starts at the lowest floor.
The stopping rule (40), relative: |D_m - B_s,m| <= ``tol2`` B_s,m for every EV, or its price at
its floor with D_m <= B_s,m, and Algorithm 1 converged. Where the demand is so steep that no
float meets (40) (e.g. xi / kappa >= 1e12, or a 1e-12 kWh supply), the bracket is bisected to
one ulp and both ends played: the slot is converged, flagged ``resolution``, if at p_lo
(reported) every EV at the level sells its whole supply, at p_hi their excess is <= 0, every
other EV meets (40) and Algorithm 1 converged; the residual is the excess at p_lo. Otherwise, or
at ``max_iter2``, the slot stops as not converged.

**Is it a Nash equilibrium of the price game?** (:func:`deviations`, issue 15). The clearing
prices are not always one: an EV at its floor that the cheaper EVs cannot replace (pivotal,
Bertrand-Edgeworth) gains by raising its price, and then the EVs undercut each other in an
Edgeworth cycle with no pure equilibrium (docs/dv2g.md#nash-check). The loop keeps the clearing
prices of eq. 40; :func:`deviations` searches every EV's unilateral deviations on a grid and
reports the best one, its gain and the slot's verdict, so the result never claims what it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: Utilities, energies and prices below this are treated as zero (scales, divisions).
TINY = 1e-300
#: Bisection steps for Algorithm 1's level c: from [0, max W] to below one rounding unit.
LEVEL_STEPS = 64


@dataclass(frozen=True)
class GameOptions:
    """Options of the games (docs/dv2g.md#readings): Algorithm 1's ``step1`` (a fraction of the
    utility scale), ``tol1``, ``max_iter1``; Algorithm 2's ``tol2`` (eq. 40, relative to each
    EV's supply) and ``max_iter2``; ``q_floor`` the least selection probability (strictly inside
    the simplex); ``nash_check``: after the loop, search each EV's unilateral price deviations
    (:func:`deviations`, docs/dv2g.md#nash-check)."""

    step1: float = 1.0
    tol1: float = 1e-7
    max_iter1: int = 5_000
    tol2: float = 1e-6
    max_iter2: int = 200
    q_floor: float = 1e-12
    nash_check: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.nash_check, bool):
            raise MechanismError(f"nash_check: must be true or false, got {self.nash_check!r}")
        if not 0.0 < self.step1 <= 1.0:
            raise MechanismError(f"step1: must lie in (0, 1], got {self.step1}")
        for name in ("tol1", "tol2", "q_floor"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise MechanismError(f"{name}: must lie in (0, 1), got {getattr(self, name)}")
        for name in ("max_iter1", "max_iter2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MechanismError(f"{name}: must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True, eq=False)
class Followers:
    """The grids' best responses to the EVs' prices (T, M): the welfare moments A_m = sum_n
    (xi_n - varpi_m) p_nm*, B_m = sum_n kappa_n / 2 p_nm*^2 and the total demand P_m = sum_n
    p_nm* a full selection of EV m would bring."""

    a: FloatArray
    b: FloatArray
    total: FloatArray

    @property
    def full(self) -> FloatArray:
        """W_m = A_m - B_m: the grids' welfare (18) when EV m serves all of P_m."""
        return self.a - self.b


def best_responses(
    price: FloatArray, xi: FloatArray, kappa: FloatArray, need: FloatArray
) -> FloatArray:
    """p_nm* = clip((xi_n - varpi_m) / kappa_n, 0, G_n) (eq. 21 within the need of eq. 16),
    shape (T, N, M)."""
    p = xi[:, :, None] - price[:, None, :]
    p *= (1.0 / kappa)[None, :, None]
    return np.clip(p, 0.0, need[:, :, None], out=p)


def followers(price: FloatArray, xi: FloatArray, kappa: FloatArray, need: FloatArray) -> Followers:
    """The moments of :class:`Followers` at ``price``: one (T, N, M) array, reused in place."""
    p = best_responses(price, xi, kappa, need)
    total = p.sum(axis=1)
    a = np.matmul(xi[:, None, :], p)[:, 0, :] - price * total
    p *= p
    b = 0.5 * np.matmul(kappa[None, None, :], p)[:, 0, :]
    return Followers(a, b, total)


def share(q: FloatArray, f: Followers, supply: FloatArray) -> FloatArray:
    """r_m = min(1, R_m), R_m = B_s,m / D_m (eq. 19), D_m = Q_m P_m (eq. 20); 1 without demand."""
    demand = q * f.total
    over = demand > supply
    return np.where(over, supply / np.where(over, demand, 1.0), 1.0)


def utilities(q: FloatArray, f: Followers, supply: FloatArray) -> FloatArray:
    """u_m = r_m A_m - r_m^2 B_m: the grids' welfare from EV m (eq. 24, 25 without Z)."""
    r = share(q, f, supply)
    return r * f.a - r * r * f.b


@dataclass(frozen=True, eq=False)
class Selection:
    """Algorithm 1's outcome per slot: Q* (T, M), u and u_bar, ``iterations`` (T,), the residual
    of (33) per iteration (``residuals``, (iterations, T)), ``converged`` (T,)."""

    q: FloatArray
    u: FloatArray
    u_bar: FloatArray
    iterations: IntArray
    residuals: FloatArray
    converged: BoolArray


def uniform_start(active: BoolArray) -> FloatArray:
    """Q(1): uniform over each slot's sellers (strictly inside the simplex), 0 elsewhere."""
    count = active.sum(axis=1, keepdims=True)
    return np.where(active, 1.0 / np.maximum(count, 1), 0.0)


def _rationed_share(c: FloatArray, f: Followers) -> FloatArray:
    """r in (0, 1] with r A - r^2 B = c (the smaller root, written without cancellation),
    capped at 1 where no root lies below 1 (W <= c: not rationed), so A ~ 0 cannot overflow."""
    disc = np.sqrt(np.maximum(f.a * f.a - 4.0 * f.b * c, 0.0))
    num = 2.0 * c
    den = np.maximum(f.a + disc, num)  # no root below 1 (A ~ 0 too): num / num
    return np.maximum(num / np.maximum(den, TINY, out=den), TINY)


def selection_fixed_point(
    f: Followers, supply: FloatArray, active: BoolArray, q_floor: float
) -> FloatArray:
    """Algorithm 1's fixed point in closed form (module docstring): the level c with
    sum_m Q_m(c) = 1 by bisection, rationed EVs above it, dropped ones below, a tie at it filled
    at one rate; uniform where no EV has a buyer (every utility 0). Shape (T, M)."""
    full = f.full
    buying: BoolArray = np.logical_and(active, f.total > 0)
    cap = np.where(buying, supply / np.where(buying, f.total, 1.0), 0.0)  # Q at which D = B_s
    lo = np.zeros(full.shape[0])
    hi = np.where(buying, full, 0.0).max(axis=1, initial=0.0)
    for _ in range(LEVEL_STEPS):
        c = 0.5 * (lo + hi)
        above = buying & (full > c[:, None])
        mass = np.where(above, cap / _rationed_share(np.broadcast_to(c[:, None], full.shape), f), 0)
        up = mass.sum(axis=1) >= 1.0
        lo = np.where(up, c, lo)
        hi = np.where(up, hi, c)
    above = buying & (full > hi[:, None])
    level = np.broadcast_to(hi[:, None], full.shape)
    q = np.where(above, cap / _rationed_share(level, f), 0.0)
    tie = buying & ~above & (full > lo[:, None])
    room = np.where(tie, cap, 0.0).sum(axis=1)
    rate = np.clip((1.0 - q.sum(axis=1)) / np.maximum(room, TINY), 0.0, 1.0)
    q = np.where(tie, cap * rate[:, None], q)
    anyone = np.asarray(buying.any(axis=1, keepdims=True))
    q = np.where(anyone, q, uniform_start(active))
    return _onto_simplex(q, active, q_floor)


def select(
    q0: FloatArray,
    f: Followers,
    supply: FloatArray,
    active: BoolArray,
    options: GameOptions,
    todo: BoolArray | None = None,
) -> Selection:
    """Discrete replicator dynamics (eq. 32) from ``q0`` until (33) holds in every slot.

    ``active`` (T, M) marks each slot's sellers; ``todo`` (T,) the slots to play (others keep
    ``q0``, counted as converged with 0 iterations).
    """
    t_count = q0.shape[0]
    todo = np.ones(t_count, dtype=bool) if todo is None else todo.copy()
    todo &= active.any(axis=1)
    scale = np.maximum(np.abs(np.where(active, f.full, 0.0)).max(axis=1), TINY)[:, None]
    sigma = options.step1 / scale
    q = _onto_simplex(np.where(active, q0, 0.0), active, options.q_floor)
    iterations = np.zeros(t_count, dtype=np.int64)
    converged = ~todo
    history: list[FloatArray] = []
    u = utilities(q, f, supply)
    u_bar = (q * u).sum(axis=1)
    for _ in range(options.max_iter1 + 1):
        dev = u - u_bar[:, None]
        gap = np.where(active, np.maximum(q * np.abs(dev), dev), 0.0)
        residual = gap.max(axis=1, initial=0.0) / scale[:, 0]
        history.append(np.where(todo, residual, 0.0))
        converged |= todo & (residual < options.tol1)
        run = todo & ~converged
        if not run.any() or iterations.max(initial=0) >= options.max_iter1:
            break
        worst = np.where(active, -dev, 0.0).max(axis=1, keepdims=True)
        step = np.minimum(sigma, 0.5 / np.maximum(worst, TINY))  # no Q falls by over half
        moved = q + step * q * dev  # eq. 32
        q = np.where(run[:, None], _onto_simplex(moved, active, options.q_floor), q)
        iterations += run
        u = utilities(q, f, supply)
        u_bar = (q * u).sum(axis=1)
    return Selection(q, u, u_bar, iterations, np.array(history), converged)


def _onto_simplex(q: FloatArray, active: BoolArray, floor: float) -> FloatArray:
    """Q at least ``floor`` on the sellers, 0 elsewhere, summing to 1 per slot with sellers."""
    q = np.where(active, np.maximum(q, floor), 0.0)
    total = q.sum(axis=1, keepdims=True)
    return np.where(total > 0, q / np.where(total > 0, total, 1.0), 0.0)


def respond(
    price: FloatArray,
    supply: FloatArray,
    need: FloatArray,
    xi: FloatArray,
    kappa: FloatArray,
    options: GameOptions,
) -> tuple[Followers, Selection]:
    """The grids' move at the EVs' prices: best responses (eq. 21) and Algorithm 1 started at its
    closed-form fixed point, run until (33)."""
    active = supply > 0
    f = followers(price, xi, kappa, need)
    start = selection_fixed_point(f, supply, active, options.q_floor)
    return f, select(start, f, supply, active, options)


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """Algorithm 2's outcome per slot: prices varpi (T, M), the selection at them, demand D_m,
    what each EV sells (min(D_m, B_s,m)), the grids' welfare (u_bar), the common price level p
    (``level``, (T,)), the outer loop's ``iterations`` (T,), ``residuals`` ((iterations, T): max
    relative excess of an EV off its floor, eq. 40), ``converged`` (T,), and Algorithm 1's total
    iterations per slot (``egt_iterations``) and whether its last run converged. ``resolution``
    (T,): converged at the price's float resolution (module docstring), then ``level_above`` the
    next float above ``level`` and ``excess_above`` the level EVs' excess there (nan elsewhere)."""

    price: FloatArray
    selection: Selection
    demand: FloatArray
    sold: FloatArray
    grid_welfare: FloatArray
    iterations: IntArray
    residuals: FloatArray
    converged: BoolArray
    egt_iterations: IntArray
    egt_converged: BoolArray
    level: FloatArray
    resolution: BoolArray
    level_above: FloatArray
    excess_above: FloatArray


def price_bounds(floor: FloatArray, xi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """[omega_m, max(omega_m, max_n xi_n)] per slot and EV (above max xi no grid buys)."""
    top = xi.max(axis=1, initial=0.0)[:, None]
    return floor, np.maximum(floor, top)


def _columns(rows: list[list[float]]) -> FloatArray:
    """Per-slot histories of unequal length as one (longest, T) array, each padded with its last
    entry (a slot without a game: 0)."""
    longest = max(1, max((len(r) for r in rows), default=1))  # a day without sellers: one row
    out = np.zeros((longest, len(rows)))
    for t, r in enumerate(rows):
        if r:
            out[: len(r), t] = r
            out[len(r) :, t] = r[-1]
    return out


@dataclass
class _Loop:
    """Algorithm 2's state per slot while it runs (the slots still running are a subset)."""

    price: FloatArray
    q: FloatArray
    u: FloatArray
    u_bar: FloatArray
    demand: FloatArray
    egt_iterations: IntArray
    egt_last: IntArray
    egt_converged: BoolArray
    egt_history: list[list[float]]
    history: list[list[float]]

    @classmethod
    def start(cls, price: FloatArray, active: BoolArray) -> _Loop:
        t_count, m_count = price.shape
        return cls(
            price=price.copy(),
            q=uniform_start(active),
            u=np.zeros((t_count, m_count)),
            u_bar=np.zeros(t_count),
            demand=np.zeros((t_count, m_count)),
            egt_iterations=np.zeros(t_count, dtype=np.int64),
            egt_last=np.zeros(t_count, dtype=np.int64),
            egt_converged=np.ones(t_count, dtype=bool),
            egt_history=[[] for _ in range(t_count)],
            history=[[] for _ in range(t_count)],
        )

    def record(self, rows: IntArray, f: Followers, sel: Selection, residual: FloatArray) -> None:
        self.q[rows], self.u[rows], self.u_bar[rows] = sel.q, sel.u, sel.u_bar
        self.demand[rows] = sel.q * f.total
        self.egt_iterations[rows] += sel.iterations
        self.egt_last[rows] = sel.iterations
        self.egt_converged[rows] = sel.converged
        for i, t in enumerate(rows.tolist()):
            self.egt_history[t] = sel.residuals[: int(sel.iterations[i]) + 1, i].tolist()
            self.history[t].append(float(residual[i]))


def stackelberg(
    price0: FloatArray,
    supply: FloatArray,
    need: FloatArray,
    xi: FloatArray,
    kappa: FloatArray,
    floor: FloatArray,
    options: GameOptions,
) -> Equilibrium:
    """Algorithm 2 in every slot at once (module docstring): the EVs announce varpi_m =
    max(p, omega_m), the grids answer with Algorithm 1, each EV receives D_m (eq. 20), p moves by
    bisection in the direction of eq. 38 until (40). Only the slots still running are played.

    ``price0`` (T, M) is kept for EVs with nothing to sell; ``supply`` (B_s dt), ``floor``
    (omega): (T, M); ``need`` (G), ``xi``: (T, N); ``kappa``: (N,).
    """
    active = supply > 0
    low, high = price_bounds(floor, xi)
    sellers: BoolArray = np.asarray(active.any(axis=1))
    lo = np.where(sellers, np.where(active, floor, np.inf).min(axis=1, initial=np.inf), 0.0)
    hi = np.maximum(lo, xi.max(axis=1, initial=0.0))
    level = lo.copy()
    state = _Loop.start(np.clip(price0, low, high), active)
    t_count = supply.shape[0]
    iterations = np.zeros(t_count, dtype=np.int64)
    converged: BoolArray = np.logical_not(sellers)
    resolution = np.zeros(t_count, dtype=bool)
    hi_played = np.zeros(t_count, dtype=bool)  # the bracket's upper end was played (excess <= 0)
    excess_above = np.full(t_count, np.nan)
    run = sellers.copy()
    while run.any():
        rows = np.flatnonzero(run)
        price = np.clip(np.maximum(level[rows, None], floor[rows]), low[rows], high[rows])
        state.price[rows] = np.where(active[rows], price, state.price[rows])
        f, sel = respond(price, supply[rows], need[rows], xi[rows], kappa, options)
        excess = sel.q * f.total - supply[rows]
        act = active[rows]
        at_floor = (price <= floor[rows]) & (excess <= 0)
        relative = np.abs(excess) / np.where(act, supply[rows], 1.0)
        residual = np.where(act & ~at_floor, relative, 0.0).max(axis=1, initial=0.0)
        state.record(rows, f, sel, residual)
        done = (residual <= options.tol2) & sel.converged
        # eq. 38's direction for the EVs at the common price (they share its sign), as bisection
        at_level = act & (floor[rows] <= level[rows, None])
        level_excess = np.where(at_level, excess, 0.0).sum(axis=1)
        up = level_excess > 0
        lo[rows] = np.where(up, level[rows], lo[rows])
        hi[rows] = np.where(up, hi[rows], level[rows])
        hi_played[rows] |= ~up
        excess_above[rows] = np.where(up, excess_above[rows], level_excess)
        mid = 0.5 * (lo[rows] + hi[rows])
        room = (mid > lo[rows]) & (mid < hi[rows])
        # No float between p_lo and p_hi: eq. 40 is out of reach; cleared to the price's
        # resolution if this round played p_lo (excess demand, every EV at the level sells its
        # whole supply), p_hi was played (excess supply) and every other EV meets eq. 40.
        others = ~act | at_level | at_floor | (relative <= options.tol2)
        sold_out = ~at_level | (excess >= -options.tol2 * supply[rows])
        ulp = ~room & (hi[rows] > lo[rows]) & up & hi_played[rows] & sel.converged
        ulp &= ~done & (others & sold_out).all(axis=1)
        converged[rows] = done | ulp
        resolution[rows] = ulp
        # at one ulp, play the end not yet (or not last) played: p_hi, then p_lo, then stop
        last = ~room & (hi[rows] > lo[rows]) & ~(up & hi_played[rows])
        go = ~done & ~ulp & (room | last) & (iterations[rows] < options.max_iter2)
        ahead = np.where(room, mid, np.where(up, hi[rows], lo[rows]))
        level[rows] = np.where(go, ahead, level[rows])
        iterations[rows] += go
        run[rows] = go
    selection = Selection(
        state.q,
        state.u,
        state.u_bar,
        state.egt_last,
        _columns(state.egt_history),
        state.egt_converged,
    )
    return Equilibrium(
        price=state.price,
        selection=selection,
        demand=state.demand,
        sold=np.where(active, np.minimum(state.demand, supply), 0.0),
        grid_welfare=state.u_bar,
        iterations=iterations,
        residuals=_columns(state.history),
        converged=converged,
        egt_iterations=state.egt_iterations,
        egt_converged=state.egt_converged,
        level=level,
        resolution=resolution,
        level_above=np.where(resolution, hi, np.nan),
        excess_above=np.where(resolution, excess_above, np.nan),
    )


def first_bid(
    price0: FloatArray,
    supply: FloatArray,
    need: FloatArray,
    xi: FloatArray,
    kappa: FloatArray,
    floor: FloatArray,
    options: GameOptions,
) -> tuple[FloatArray, Selection, FloatArray]:
    """The first-bid auction of Fig. 10: the EVs' first prices, held; the grids' selection at
    them (Algorithm 1 as printed: the replicator from the uniform start, eq. 32-33). Returns
    (prices, selection, demand)."""
    active = supply > 0
    low, high = price_bounds(floor, xi)
    price = np.clip(price0, low, high)
    f = followers(price, xi, kappa, need)
    sel = select(uniform_start(active), f, supply, active, options)
    return price, sel, sel.q * f.total


def purchases(
    price: FloatArray,
    q: FloatArray,
    supply: FloatArray,
    need: FloatArray,
    xi: FloatArray,
    kappa: FloatArray,
) -> FloatArray:
    """What grid n buys from EV m, Q_m r_m p_nm* (eq. 22, 23 with r = min(1, R_m)), (T, N, M):
    summed over n it is min(D_m, B_s,m), over m a grid's purchases."""
    f = followers(price, xi, kappa, need)
    p = best_responses(price, xi, kappa, need)
    p *= (q * share(q, f, supply))[:, None, :]
    return p


def ev_welfare(price: FloatArray, floor: FloatArray, sold: FloatArray) -> FloatArray:
    """An EV's welfare from a slot's sale: its revenue less its degradation cost,
    (varpi_m - omega_m) min(D_m, B_s,m) (eq. 34, 35 without the EV's own utility, which the price
    does not move; omega from eq. 10)."""
    return (price - floor) * sold


#: A slot market as :func:`stackelberg` takes it: (supply, need, xi, kappa, floor).
Market = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]
#: Evenly spaced deviation prices per EV across [omega_m, max(omega_m, max_n xi_n)].
DEVIATION_POINTS = 32
#: Relative moves of an EV's own price (0: the equilibrium price itself, a check of the replay).
OWN_STEPS = (0.0, -1e-6, 1e-6, -1e-3, 1e-3, -1e-2, 1e-2, -5e-2, 5e-2, -0.2, 0.2)
#: Relative moves onto and around each distinct price of the slot (undercut, match, overcut).
RIVAL_STEPS = (0.0, -1e-9, -1e-6, -1e-3, 1e-3)
#: The lowest distinct prices of a slot used as rivals' prices (above them EVs sit unsold).
RIVAL_PRICES = 8
#: The most (deviation rows x EVs x (grids + level steps)) the check plays; beyond it the day is
#: not checked (said in the result), so a big day stays bounded.
DEVIATION_WORK = 300_000_000
#: Cells (rows x EVs x grids) per chunk of deviation rows (bounds the memory).
DEVIATION_CHUNK = 4_000_000
#: Evenly spaced prices within one even step either side of the best grid point (refinement).
REFINE_POINTS = 17
#: The tolerance's part relative to the slot's revenue scale (max xi x its supply).
NASH_RTOL = 1e-9


@dataclass(frozen=True, eq=False)
class Deviations:
    """Each EV's best unilateral price deviation found on the grid of :func:`deviation_prices`,
    the others' prices held and the grids answering by Algorithm 1 (as in the game): ``price``
    (T, M) the best deviation price, ``gain`` (T, M) the EV's welfare there less at the
    equilibrium ((varpi - omega) x sold, :func:`ev_welfare`), ``tolerance`` (T, M), ``nash`` (T,)
    no seller gains more than its tolerance, ``pivotal`` (T, M) a gaining EV that the EVs priced
    no higher cannot replace (Bertrand-Edgeworth), ``points`` (T, M) deviation prices tried,
    ``egt_converged`` (T,) Algorithm 1 converged at every deviation. ``skipped`` names why the
    check did not run (a day too big, :data:`DEVIATION_WORK`): then the arrays are empty."""

    price: FloatArray
    gain: FloatArray
    tolerance: FloatArray
    nash: BoolArray
    pivotal: BoolArray
    points: IntArray
    egt_converged: BoolArray
    skipped: str = ""

    @classmethod
    def skip(cls, reason: str) -> Deviations:
        """The check not run, and why (empty arrays)."""
        empty, none = np.zeros((0, 0)), np.zeros((0, 0), dtype=bool)
        slots = np.zeros(0, dtype=bool)
        return cls(
            empty, empty, empty, slots, none, np.zeros((0, 0), dtype=np.int64), slots, reason
        )


def _rival_prices(price: FloatArray, active: BoolArray) -> FloatArray:
    """The lowest :data:`RIVAL_PRICES` distinct prices of a slot's sellers, (T, U), nan padded."""
    p = np.sort(np.where(active, price, np.inf), axis=1)
    repeat = np.zeros_like(p, dtype=bool)
    repeat[:, 1:] = p[:, 1:] == p[:, :-1]
    p = np.sort(np.where(repeat, np.inf, p), axis=1)[:, :RIVAL_PRICES]
    return np.where(np.isfinite(p), p, np.nan)


def deviation_prices(
    price: FloatArray, active: BoolArray, floor: FloatArray, xi: FloatArray
) -> FloatArray:
    """The deviation grid per slot and EV, (T, M, K) within [omega_m, max(omega_m, max xi)]:
    :data:`DEVIATION_POINTS` evenly spaced across it (both ends included), the EV's own price
    moved by :data:`OWN_STEPS`, and every distinct price of the slot (the rivals', up to
    :data:`RIVAL_PRICES`) moved by :data:`RIVAL_STEPS`. Unused entries repeat the EV's price."""
    low, high = price_bounds(floor, xi)
    even = low[..., None] + (high - low)[..., None] * np.linspace(0.0, 1.0, DEVIATION_POINTS)
    own = price[..., None] * (1.0 + np.array(OWN_STEPS))
    rivals = (_rival_prices(price, active)[:, :, None] * (1.0 + np.array(RIVAL_STEPS))).reshape(
        price.shape[0], 1, -1
    )
    rivals = np.where(np.isnan(rivals), price[..., None], rivals)
    grid = np.concatenate([even, own, np.broadcast_to(rivals, (*price.shape, rivals.shape[2]))], 2)
    out: FloatArray = np.clip(grid, low[..., None], high[..., None])
    return out


def _deviation_gains(
    eq: Equilibrium,
    market: Market,
    slot: IntArray,
    ev: IntArray,
    moved: FloatArray,
    options: GameOptions,
) -> tuple[FloatArray, BoolArray]:
    """``market`` = (supply, need, xi, kappa, floor). EV ``ev[i]`` of slot ``slot[i]`` alone at
    price ``moved[i, k]``, the grids answering with Algorithm 1 (:func:`respond`): its welfare
    there less at ``eq``, (rows, K); and per slot whether Algorithm 1 converged at every move.
    Vectorised over all (slot, EV, price) rows, in chunks of :data:`DEVIATION_CHUNK` cells."""
    supply, need, xi, kappa, floor = market
    k_count = moved.shape[1]
    tt, mm, x_all = np.repeat(slot, k_count), np.repeat(ev, k_count), moved.ravel()
    here = ev_welfare(eq.price, floor, eq.sold)
    gain = np.empty(x_all.size)
    converged = np.ones(supply.shape[0], dtype=bool)
    chunk = max(1, DEVIATION_CHUNK // max(1, supply.shape[1] * max(1, xi.shape[1])))
    for start in range(0, x_all.size, chunk):
        part = slice(start, min(x_all.size, start + chunk))
        t, m, x = tt[part], mm[part], x_all[part]
        idx = np.arange(t.size)
        price = eq.price[t]
        price[idx, m] = x
        f, sel = respond(price, supply[t], need[t], xi[t], kappa, options)
        sold = np.minimum(sel.q[idx, m] * f.total[idx, m], supply[t, m])
        gain[part] = ev_welfare(x, floor[t, m], sold) - here[t, m]
        converged[t[~sel.converged]] = False
    return gain.reshape(slot.size, k_count), converged


def deviations(eq: Equilibrium, market: Market, options: GameOptions) -> Deviations:
    """Is ``eq`` played on ``market`` (supply, need, xi, kappa, floor as in :func:`stackelberg`)
    a Nash equilibrium of the EVs' price game (issue 15)? Every seller
    alone moves its price to each point of :func:`deviation_prices`, then to
    :data:`REFINE_POINTS` evenly spaced within one even step either side of its best point; the
    grids answer with Algorithm 1 as in the game, and its welfare (:func:`ev_welfare`) there is
    compared with its welfare at ``eq``. Pivotal: a gaining EV that the other EVs priced no
    higher cannot replace (their supply is below the grids' full demand P_m at its price).

    The tolerance of EV m: 2 tol2 x max xi x B_s,m (eq. 40 clears only to tol2, which a move of
    the price can gain) plus :data:`NASH_RTOL` x max xi x the slot's supply. A day whose check
    would exceed :data:`DEVIATION_WORK` is not checked (``skipped`` says why)."""
    supply, need, xi, kappa, floor = market
    active = supply > 0
    t_count, m_count = supply.shape
    k_count = DEVIATION_POINTS + len(OWN_STEPS) + RIVAL_PRICES * len(RIVAL_STEPS) + REFINE_POINTS
    rows = int(active.sum()) * k_count
    work = rows * m_count * (xi.shape[1] + LEVEL_STEPS)
    if work > DEVIATION_WORK:  # decided before any (T, M, K) array is built (K at most k_count)
        return Deviations.skip(
            f"{rows} deviation rows x {m_count} EVs x ({xi.shape[1]} grids + {LEVEL_STEPS}) = "
            f"{work:.3g} cells, above the check's limit {DEVIATION_WORK:.3g}"
        )
    grid = deviation_prices(eq.price, active, floor, xi)
    slot, ev = np.nonzero(active)
    coarse = grid[slot, ev]
    gain, converged = _deviation_gains(eq, market, slot, ev, coarse, options)
    pick = np.arange(slot.size)
    centre = coarse[pick, gain.argmax(axis=1)]
    low, high = price_bounds(floor, xi)
    step = (high - low)[slot, ev] / (DEVIATION_POINTS - 1)
    fine = centre[:, None] + step[:, None] * np.linspace(-1.0, 1.0, REFINE_POINTS)
    fine = np.clip(fine, low[slot, ev][:, None], high[slot, ev][:, None])
    fine_gain, fine_converged = _deviation_gains(eq, market, slot, ev, fine, options)
    tried = np.concatenate([coarse, fine], axis=1)
    gain = np.concatenate([gain, fine_gain], axis=1)
    best = gain.argmax(axis=1)
    best_gain = np.zeros((t_count, m_count))
    best_price = eq.price.copy()
    best_gain[slot, ev] = gain[pick, best]
    best_price[slot, ev] = tried[pick, best]
    top = xi.max(axis=1, initial=0.0)[:, None]
    tolerance = top * (2.0 * options.tol2 * supply + NASH_RTOL * supply.sum(axis=1, keepdims=True))
    gains = active & (best_gain > tolerance)
    f = followers(eq.price, xi, kappa, need)
    cheaper = active[:, None, :] & (eq.price[:, None, :] <= eq.price[:, :, None])
    cheaper &= ~np.eye(m_count, dtype=bool)[None]
    cover = np.where(cheaper, supply[:, None, :], 0.0).sum(axis=2)
    return Deviations(
        price=best_price,
        gain=best_gain,
        tolerance=tolerance,
        nash=~gains.any(axis=1),
        pivotal=gains & (cover < f.total),
        points=np.where(active, tried.shape[1], 0).astype(np.int64),
        egt_converged=converged & fine_converged,
    )
