"""The DSM charging game among grid-charging vehicles (Chalmers thesis §6.3, spec §4).

The aggregator's price in slot t is lambda_t = phi_t + mu (q_t - Q_t) (eq. 6.3, 6.4), q_t the
vehicles' total grid load. Vehicle i draws x_i^t kWh in slot t, at most u_i^t (its power times the
slot length inside its window, 0 outside) and sum_t x_i^t = D_i in total, and pays
sum_t lambda_t x_i^t (eq. 6.5 without the discharge term). Its bill is a convex quadratic in its own
schedule, because its own load moves the price:

    bill_i = sum_t (a_t + mu q_-i^t) x_i^t + mu (x_i^t)^2,    a_t = phi_t - mu Q_t.

Its best response (eq. 6.6) is therefore a water-filling x_i^t = clip((nu_i - c_i^t) / (2 mu), 0,
u_i^t), c_i^t = a_t + mu q_-i^t, nu_i set so the schedule sums to D_i. The game has the exact
potential Phi(x) = sum_t a_t q_t + mu/2 q_t^2 + mu/2 sum_i (x_i^t)^2 (d Phi / d x_i^t equals
d bill_i / d x_i^t), strictly convex in x, so the Nash equilibrium (eq. 6.7) exists, is unique and
minimises Phi. Everything here is a pure function of arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError, SolverError

FloatArray = NDArray[np.float64]
Method = Literal["newton", "jacobi"]
#: A price's answer in the Newton iteration: schedules, gradient of h, h.
Response = tuple[NDArray[np.float64], NDArray[np.float64], float]


def _readonly(values: FloatArray) -> FloatArray:
    values.setflags(write=False)
    return values


@dataclass(frozen=True, eq=False)
class ChargingGame:
    """N vehicles charging from the grid over T slots.

    ``base_price`` phi_t and ``forecast`` Q_t have length T; ``upper`` (N, T) is the most a vehicle
    draws in a slot (0 outside its window); ``demand`` (N,) what it draws over the day, at most
    its row of ``upper`` summed; ``mu`` >= 0 is the correction factor of eq. 6.4.
    """

    base_price: FloatArray
    forecast: FloatArray
    mu: float
    upper: FloatArray
    demand: FloatArray

    def __post_init__(self) -> None:
        phi = np.asarray(self.base_price, dtype=float)
        forecast = np.asarray(self.forecast, dtype=float)
        upper = np.asarray(self.upper, dtype=float)
        demand = np.asarray(self.demand, dtype=float)
        n_slots = phi.shape[0] if phi.ndim == 1 else -1
        if phi.ndim != 1 or n_slots == 0 or forecast.shape != phi.shape:
            raise MechanismError("base_price, forecast: must be two arrays of the slot count")
        if upper.ndim != 2 or upper.shape[1] != n_slots or demand.shape != upper.shape[:1]:
            raise MechanismError(f"upper, demand: must have shapes (N, {n_slots}) and (N,)")
        arrays = (phi, forecast, upper, demand)
        if not all(np.isfinite(a).all() for a in arrays) or not math.isfinite(self.mu):
            raise MechanismError("game: every number must be finite")
        if self.mu < 0 or (upper < 0).any() or (demand < 0).any():
            raise MechanismError("mu, upper, demand: must be >= 0")
        room = upper.sum(axis=1)
        if (demand > room * (1 + 1e-12) + 1e-12).any():
            i = int(np.argmax(demand - room))
            raise MechanismError(
                f"demand[{i}]: {demand[i]:g} kWh is more than its window allows ({room[i]:g})"
            )
        for name, value in zip(("base_price", "forecast", "upper", "demand"), arrays, strict=True):
            object.__setattr__(self, name, _readonly(value.copy()))
        object.__setattr__(self, "mu", float(self.mu))

    @property
    def n_vehicles(self) -> int:
        return int(self.upper.shape[0])

    @property
    def n_slots(self) -> int:
        return int(self.base_price.shape[0])

    @property
    def offset(self) -> FloatArray:
        """a_t = phi_t - mu Q_t: the price at zero grid load."""
        return np.asarray(self.base_price - self.mu * self.forecast)


def dynamic_price(game: ChargingGame, load: FloatArray) -> FloatArray:
    """lambda_t = phi_t + mu (q_t - Q_t) (thesis eq. 6.3, 6.4) for the total grid load q."""
    return np.asarray(game.base_price + game.mu * (np.asarray(load) - game.forecast))


def bills(game: ChargingGame, schedule: FloatArray) -> FloatArray:
    """Each vehicle's bill sum_t lambda_t x_i^t (eq. 6.5), lambda from the schedule's own load."""
    x = np.asarray(schedule, dtype=float)
    return np.asarray(x @ dynamic_price(game, x.sum(axis=0)))


def total_cost(game: ChargingGame, schedule: FloatArray) -> float:
    """The sum of the bills, sum_t lambda_t q_t (the social cost the optimum minimises)."""
    x = np.asarray(schedule, dtype=float)
    load = x.sum(axis=0)
    return float(load @ dynamic_price(game, load))


def waterfill(
    cost: FloatArray, upper: FloatArray, demand: FloatArray, curvature: float
) -> FloatArray:
    """Row-wise minimiser of sum_t cost_t x_t + curvature / 2 x_t^2 over 0 <= x <= upper,
    sum_t x_t = demand (exact; demand at most the row sum of ``upper``).

    Notes
    -----
    With curvature k > 0 the solution is x_t = clip((nu - cost_t) / k, 0, upper_t), the water
    level nu found from the sorted breakpoints cost_t (a slot opens) and cost_t + k upper_t (it
    fills): the filled volume is piecewise linear in nu, so nu is exact inside its segment, then
    refined once against the free slots to remove the rounding of the running sums. With k = 0
    the problem is a linear programme: the cheapest slots first (ties to the earliest slot).
    """
    c = np.asarray(cost, dtype=float)
    u = np.asarray(upper, dtype=float)
    c = np.broadcast_to(c, u.shape)
    d = np.asarray(demand, dtype=float)
    n, t = u.shape
    if n == 0:
        return np.zeros((0, t))
    if curvature <= 0.0:
        order = np.argsort(c, axis=1, kind="stable")
        u_sorted = np.take_along_axis(u, order, axis=1)
        before = np.cumsum(u_sorted, axis=1) - u_sorted
        x_sorted = np.clip(d[:, None] - before, 0.0, u_sorted)
        x = np.empty_like(u)
        np.put_along_axis(x, order, x_sorted, axis=1)
        return x
    k = float(curvature)
    points = np.concatenate([c, c + k * u], axis=1)
    order = np.argsort(points, axis=1, kind="stable")
    at = np.take_along_axis(points, order, axis=1)
    opens = order < t
    slot = order % t
    c_ev = np.take_along_axis(c, slot, axis=1)
    u_ev = np.take_along_axis(u, slot, axis=1)
    n_free = np.cumsum(np.where(opens, 1, -1), axis=1)
    s_free = np.cumsum(np.where(opens, c_ev, -c_ev), axis=1)
    u_full = np.cumsum(np.where(opens, 0.0, u_ev), axis=1)
    filled = u_full + (n_free * at - s_free) / k
    j = (filled < d[:, None]).sum(axis=1)
    prev = np.clip(j - 1, 0, 2 * t - 1)[:, None]
    n_prev = np.take_along_axis(n_free, prev, axis=1)[:, 0]
    s_prev = np.take_along_axis(s_free, prev, axis=1)[:, 0]
    u_prev = np.take_along_axis(u_full, prev, axis=1)[:, 0]
    inside = (j > 0) & (j < 2 * t) & (n_prev > 0)
    # Outside a segment the level is a breakpoint: the first (demand 0), the last (every slot
    # full) or, should rounding leave no free slot, the one where the demand is reached.
    corner = np.take_along_axis(at, np.clip(j, 0, 2 * t - 1)[:, None], axis=1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(inside, (k * (d - u_prev) + s_prev) / n_prev, corner)
    x = np.clip((level[:, None] - c) / k, 0.0, u)
    for _ in range(2):  # the running sums round; two Newton steps on the level make sums exact
        free = (x > 0.0) & (x < u)
        count = free.sum(axis=1)
        gap = d - x.sum(axis=1)
        if not np.any(count > 0):
            break
        level = level + np.where(count > 0, k * gap / np.maximum(count, 1), 0.0)
        x = np.clip((level[:, None] - c) / k, 0.0, u)
    return np.asarray(x, dtype=float)


def waterfill_uniform(
    price: FloatArray,
    mask: NDArray[np.bool_],
    cap: FloatArray,
    demand: FloatArray,
    curvature: float,
) -> FloatArray:
    """:func:`waterfill` for one cost vector shared by all rows and, per row, one bound ``cap``
    on the slots of its ``mask`` (0 elsewhere): a day scenario's grid vehicles (curvature > 0).

    Notes
    -----
    With the prices sorted once, the filled volume of row i at level nu is
    (S_i(nu) - S_i(nu - k cap_i)) / k, S_i(y) = sum over its slots of max(0, y - price_t)
    = n_i(y) y - s_i(y), where n_i and s_i (how many of its prices lie below y, and their sum)
    are read from two running sums per row. The level is bracketed by bisection on these O(1)
    evaluations, then solved exactly on the linear piece it lies on: a few passes over the N x T
    array instead of a sort of every row.
    """
    k = float(curvature)
    n, t = mask.shape
    order = np.argsort(price, kind="stable")
    sorted_price = np.asarray(price, dtype=float)[order]
    inside = mask[:, order]
    count = np.zeros((n, t + 1))
    np.cumsum(inside, axis=1, out=count[:, 1:])
    total = np.zeros((n, t + 1))
    np.cumsum(inside * sorted_price, axis=1, out=total[:, 1:])
    rows = np.arange(n)

    def below(y: FloatArray) -> tuple[FloatArray, FloatArray]:
        r = np.searchsorted(sorted_price, y, side="left")
        return count[rows, r], total[rows, r]

    def filled(level: FloatArray) -> FloatArray:
        n1, s1 = below(level)
        n2, s2 = below(level - k * cap)
        with np.errstate(invalid="ignore"):  # 0 x -inf below every price: NaN, never >= demand
            return np.asarray((n1 * level - s1 - n2 * (level - k * cap) + s2) / k)

    # The smallest r with filled(p_r) >= demand (r = t: beyond every price), then the smallest m
    # with filled at p_m + k cap (clipped into the first bracket) >= demand: the level lies on
    # a piece where n1 = count[r] prices are open and n2 = count[m] are full.
    ext = np.append(sorted_price, np.inf)
    r = _first_true(t, lambda m: filled(ext[m]) >= demand, n)
    low = np.where(r > 0, ext[np.maximum(r - 1, 0)], -np.inf)
    high = ext[r]

    def enough(m: NDArray[np.intp]) -> NDArray[np.bool_]:
        at = ext[m] + k * cap
        return (at >= high) | (filled(np.clip(at, low, high)) >= demand)

    m = _first_true(t, enough, n)
    n1, s1 = count[rows, r], total[rows, r]
    n2, s2 = count[rows, m], total[rows, m]
    slope = n1 - n2
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = (k * demand + s1 - s2 - n2 * k * cap) / slope
    level = np.where(slope > 0, exact, np.minimum(ext[m] + k * cap, high))
    upper = mask * cap[:, None]
    x = np.clip((level[:, None] - price[None, :]) / k, 0.0, upper)
    free = (x > 0.0) & (x < upper)
    nfree = free.sum(axis=1)
    level = level + np.where(nfree > 0, k * (demand - x.sum(axis=1)) / np.maximum(nfree, 1), 0.0)
    return np.asarray(np.clip((level[:, None] - price[None, :]) / k, 0.0, upper), dtype=float)


def _first_true(
    t: int, test: Callable[[NDArray[np.intp]], NDArray[np.bool_]], n: int
) -> NDArray[np.intp]:
    """Per row, the smallest m in [0, t] with ``test(m)`` true (``test`` monotone in m, true at
    m = t), by a vectorised binary search."""
    lo = np.zeros(n, dtype=np.intp)
    hi = np.full(n, t, dtype=np.intp)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        ok = test(mid) | (lo >= hi)  # rows already found stay where they are
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid + 1)
    return lo


def best_responses(game: ChargingGame, schedule: FloatArray) -> FloatArray:
    """Every vehicle's exact best response (eq. 6.6) to the others' schedules in ``schedule``:
    the water-filling of cost a_t + mu q_-i^t with curvature 2 mu (module docstring)."""
    x = np.asarray(schedule, dtype=float)
    others = x.sum(axis=0)[None, :] - x
    cost = game.offset[None, :] + game.mu * others
    return waterfill(cost, game.upper, game.demand, 2.0 * game.mu)


def deviation_gains(game: ChargingGame, schedule: FloatArray) -> FloatArray:
    """What each vehicle would save by switching alone to its best response (>= 0 up to
    rounding; all 0 exactly at a Nash equilibrium, eq. 6.7)."""
    x = np.asarray(schedule, dtype=float)
    y = best_responses(game, x)
    others = x.sum(axis=0)[None, :] - x
    cost = game.offset[None, :] + game.mu * others
    now = ((cost + game.mu * x) * x).sum(axis=1)
    best = ((cost + game.mu * y) * y).sum(axis=1)
    return np.asarray(now - best)


def potential(game: ChargingGame, schedule: FloatArray) -> float:
    """Phi(x) = sum_t a_t q_t + mu/2 q_t^2 + mu/2 sum_i (x_i^t)^2, the game's exact potential."""
    x = np.asarray(schedule, dtype=float)
    load = x.sum(axis=0)
    mu = game.mu
    return float(game.offset @ load + 0.5 * mu * (load @ load) + 0.5 * mu * np.vdot(x, x))


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """A Nash equilibrium of the charging game and how it was reached.

    ``residuals`` is the history of the stopping measure (``newton``: the largest price mismatch
    |lambda - phi - mu (q(lambda) - Q)|; ``jacobi``: the largest deviation gain), ``max_gain`` the
    largest saving any vehicle could still get by deviating alone, computed exactly at the end.
    ``method`` is "newton+jacobi" when a stalled Newton iteration handed over to Jacobi.
    """

    schedule: FloatArray
    load: FloatArray
    price: FloatArray
    bills: FloatArray
    gains: FloatArray
    max_gain: float
    iterations: int
    converged: bool
    residuals: tuple[float, ...]
    method: str

    @property
    def cost(self) -> float:
        return float(self.bills.sum())


def _finish(
    game: ChargingGame,
    x: FloatArray,
    iterations: int,
    residuals: list[float],
    tol: float,
    method: str,
) -> Equilibrium:
    gains = deviation_gains(game, x) if game.n_vehicles else np.zeros(0)
    max_gain = float(gains.max(initial=0.0))
    load = x.sum(axis=0)
    return Equilibrium(
        schedule=_readonly(x),
        load=_readonly(load),
        price=_readonly(dynamic_price(game, load)),
        bills=_readonly(bills(game, x)),
        gains=_readonly(gains),
        max_gain=max_gain,
        iterations=iterations,
        converged=max_gain <= tol,
        residuals=tuple(residuals),
        method=method,
    )


def nash_equilibrium(
    game: ChargingGame,
    *,
    method: Method = "newton",
    tol: float = 1e-9,
    max_iter: int | None = None,
) -> Equilibrium:
    """The game's Nash equilibrium (eq. 6.7), certified by the largest deviation gain.

    Parameters
    ----------
    game : ChargingGame
    method : {"newton", "jacobi"}
        ``newton`` (default): semismooth Newton on the slot prices. ``jacobi``: every vehicle
        moves at once towards its best response, with the step that minimises the potential.
    tol : float
        Converged when no vehicle can save more than ``tol`` (currency) by deviating alone.
    max_iter : int, optional
        Iteration cap (100 for ``newton``, 10,000 for ``jacobi``); reaching it is reported with
        ``converged=False``, not raised.

    Notes
    -----
    At the equilibrium each vehicle's schedule is the water-filling x_i = clip((nu_i -
    lambda_t) / mu, 0, u_i^t) against the price it pays, lambda = a + mu q. ``newton`` solves this
    fixed point in the T prices: lambda minimises the strongly convex h(lambda) = |lambda - a|^2 / 2
    - mu psi(lambda), psi(lambda) = sum_i min_x (mu/2 |x|^2 + lambda . x), whose gradient is
    lambda - a - mu q(lambda) and whose generalised Hessian I + sum_i (diag f_i - f_i f_i^T /
    |f_i|) (f_i the slots vehicle i fills partly) is a T x T matrix; Armijo backtracking makes the
    iteration global. Each step costs one vectorised water-filling of all vehicles. ``jacobi`` is
    the literal best-response iteration: d = BR(x) - x for all vehicles, x += alpha d with alpha in
    [0, 1] minimising the quadratic potential along d (undamped simultaneous responses overshoot:
    every vehicle moves to the same cheap slot).
    """
    if method not in ("newton", "jacobi"):
        raise MechanismError(f"method: unknown {method!r}; choose newton or jacobi")
    if not tol > 0:
        raise MechanismError(f"tol: must be > 0, got {tol}")
    if game.n_vehicles == 0:
        return _finish(game, np.zeros((0, game.n_slots)), 0, [], tol, method)
    if game.mu == 0.0:
        # The price does not move with the load: every vehicle's best response is its cheapest
        # slots, whatever the others do.
        x = waterfill(game.base_price, game.upper, game.demand, 0.0)
        return _finish(game, x, 0, [0.0], tol, method)
    if method == "jacobi":
        return _jacobi(game, tol, 10_000 if max_iter is None else max_iter)
    return _newton(game, tol, 100 if max_iter is None else max_iter)


#: Vehicles above which the Newton iteration first solves every COARSEN-th vehicle's game.
COARSE_ABOVE = 500
COARSEN = 4


def _newton(game: ChargingGame, tol: float, max_iter: int) -> Equilibrium:
    residuals: list[float] = []
    rows = np.arange(game.n_vehicles)
    _, x, iterations = _newton_prices(game, rows, 1.0, max_iter, residuals)
    eq = _finish(game, x, iterations, residuals, tol, "newton")
    if eq.converged or iterations >= max_iter:
        return eq
    # Newton stopped short of the certificate (its residual stalled): the damped best-response
    # iteration continues from its schedule, and the report says so (method "newton+jacobi").
    fallback = _jacobi(game, tol, max_iter - iterations, start=x)
    return _finish(
        game,
        np.array(fallback.schedule),
        iterations + fallback.iterations,
        residuals + list(fallback.residuals),
        tol,
        "newton+jacobi",
    )


def _newton_prices(
    game: ChargingGame,
    rows: NDArray[np.intp],
    weight: float,
    max_iter: int,
    residuals: list[float],
) -> tuple[FloatArray, FloatArray, int]:
    """Semismooth Newton on h for the vehicles ``rows``, each load counted ``weight`` times
    (lambda = a + mu weight q); returns the prices, the schedules and the iterations.

    Above :data:`COARSE_ABOVE` vehicles, the prices of a sample (every COARSEN-th vehicle, its
    load counted COARSEN times more) start the iteration near its end (recursively): the global
    phase, where the free sets change a lot from one step to the next, is paid on smaller games.
    """
    mu, a = game.mu, game.offset
    t = game.n_slots
    upper, demand = game.upper[rows], game.demand[rows]
    start = None
    if rows.size > COARSE_ABOVE:
        sub = rows[::COARSEN]
        start = _newton_prices(game, sub, weight * rows.size / sub.size, max_iter, [])[0]
    mask = upper > 0.0
    cap = upper.max(axis=1, initial=0.0)
    uniform = bool(np.all((upper == cap[:, None]) | ~mask))

    def respond(price: FloatArray) -> Response:
        """The schedules answering ``price``, and h and its gradient there."""
        if uniform:
            x = waterfill_uniform(price, mask, cap, demand, mu)
        else:
            x = waterfill(price, upper, demand, mu)
        load = weight * x.sum(axis=0)
        shift = price - a
        h = 0.5 * float(shift @ shift) - mu * (
            0.5 * mu * weight * float(np.vdot(x, x)) + float(load @ price)
        )
        return x, shift - mu * load, h

    if start is None:
        # The price of a load spread over each window in proportion to the power: close to
        # the equilibrium when the windows overlap, where the cheapest-slot start herds.
        room = upper.sum(axis=1)
        share = np.divide(demand, room, out=np.zeros_like(room), where=room > 0)
        start = a + mu * weight * (share @ upper)
    price = start
    x, grad, h = respond(price)
    scale = max(1.0, float(np.abs(a).max()), mu * weight * float(upper.sum(axis=0).max()))
    iterations = 0
    best, stalled = math.inf, 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        residual = float(np.abs(grad).max())
        residuals.append(residual)
        if residual <= 1e-12 * scale:
            break
        # Close to the solution (residual <= 1e-6 scale) semismooth Newton converges
        # superlinearly: three steps there without halving the best residual mean rounding
        # (or a degenerate active set) limits it; the caller's certificate (the exact deviation
        # gains) then decides, never the cap. Far from it, slow steps are the global phase.
        near = residual <= 1e-6 * scale
        stalled = 0 if residual <= 0.5 * best or not near else stalled + 1
        best = min(best, residual)
        if stalled >= 3:
            break
        free = (x > 0.0) & (x < upper)
        count = free.sum(axis=1)
        some = count > 0
        f = free[some].astype(float)
        hess = np.eye(t) + weight * (np.diag(f.sum(axis=0)) - (f / count[some, None]).T @ f)
        step = -np.linalg.solve(hess, grad)
        moved, (x, grad, h) = _line_search(respond, price, (x, grad, h), step)
        if moved is price:  # no descent left at this precision: the certificate decides
            break
        price = moved
    return price, x, iterations


def _line_search(
    respond: Callable[[FloatArray], Response], price: FloatArray, now: Response, step: FloatArray
) -> tuple[FloatArray, Response]:
    """Move along ``step`` to a point of lower h where h's slope is at most half the start's.

    h is convex along the step and its slope g(s) = grad(price + s step) . step rises
    continuously from g(0) < 0. The full step is taken when g(1) <= 0 (then h fell by at least
    |g(1)|); otherwise the zero of g in [0, 1] is closed in on by false position (Illinois) until
    |g(s)| <= |g(0)| / 2 with h below its start (Armijo), halving towards 0 if that stalls.
    """
    g0 = float(now[1] @ step)
    h0 = now[2]
    # Near the solution h falls by about |g0| / 2, which is below h's own rounding once the
    # residual is ~1e-7 (|h| ~ 1, ulp 2e-16): an Armijo test on h then fails or passes by
    # chance (it made the iteration crawl with steps of 1e-12 to its cap). Below that
    # resolution the slope alone decides; h convex along the step makes |g(s)| <= |g0| / 2
    # a sufficient decrease.
    blind = abs(g0) <= 1e3 * np.finfo(float).eps * max(1.0, abs(h0))
    lo, g_lo, hi = 0.0, g0, 1.0
    trial = respond(price + step)
    g_hi = float(trial[1] @ step)
    if g_hi <= 0.0:
        return price + step, trial
    side = 0
    for _ in range(30):
        s = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        trial = respond(price + s * step)
        g_s = float(trial[1] @ step)
        if abs(g_s) <= 0.5 * abs(g0) and (blind or trial[2] <= h0 + 1e-4 * s * g0):
            return price + s * step, trial
        if g_s < 0.0:
            lo, g_lo = s, g_s
            g_hi = g_hi / 2 if side == -1 else g_hi
            side = -1
        else:
            hi, g_hi = s, g_s
            g_lo = g_lo / 2 if side == 1 else g_lo
            side = 1
    s = lo if lo > 0.0 else hi
    while s > 1e-6 and not blind:  # the bracket did not close: backtrack on h alone
        trial = respond(price + s * step)
        if trial[2] <= h0 + 1e-4 * s * g0:
            return price + s * step, trial
        s *= 0.5
    return price, now


def _jacobi(
    game: ChargingGame, tol: float, max_iter: int, start: FloatArray | None = None
) -> Equilibrium:
    mu, a = game.mu, game.offset
    x = waterfill(game.base_price, game.upper, game.demand, 0.0) if start is None else start
    residuals: list[float] = []
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        gains = deviation_gains(game, x)
        residuals.append(float(gains.max()))
        if residuals[-1] <= tol:
            break
        d = best_responses(game, x) - x
        load = x.sum(axis=0)
        slope = float(np.vdot((a + mu * load)[None, :] + mu * x, d))
        dq = d.sum(axis=0)
        curv = mu * (float(dq @ dq) + float(np.vdot(d, d)))
        if curv <= 0.0 or slope >= 0.0:
            break
        x = x + min(1.0, -slope / curv) * d
    return _finish(game, x, iterations, residuals, tol, "jacobi")


@dataclass(frozen=True, eq=False)
class SocialOptimum:
    """A schedule minimising the total bill sum_t lambda_t q_t, and a bound on how far it can be.

    ``cost`` is the total bill of ``schedule`` (feasible, so an upper bound on the optimum);
    ``lower_bound`` the Lagrangian dual value at the marginal social cost a + 2 mu q, below
    which no schedule goes: the optimum lies in [lower_bound, cost].
    """

    schedule: FloatArray
    load: FloatArray
    price: FloatArray
    cost: float
    status: str
    lower_bound: float = -math.inf


#: Seconds HiGHS may spend on one QP before :func:`solve_qp_highs` gives up.
HIGHS_TIME_LIMIT_S = 120.0


def solve_qp_highs(
    game: ChargingGame, x_curvature: float, q_curvature: float, scale: float = 1.0
) -> FloatArray:
    """Minimise sum_t a_t q_t + q_curvature/2 q_t^2 + x_curvature/2 sum_i (x_i^t)^2 over the
    schedules (window, power, demand), q_t = sum_i x_i^t, with HiGHS (a generic QP solver).

    ``(0, 2 mu)`` is the social optimum; ``(mu, mu)`` the potential, whose minimiser is the Nash
    equilibrium (an independent check of :func:`nash_equilibrium`). ``scale`` multiplies the
    objective (1 / mu keeps HiGHS's QP well scaled: unscaled, it cycled at mu = 1e-3).
    """
    import highspy

    n, t = game.n_vehicles, game.n_slots
    rows, cols = np.nonzero(game.upper > 0.0)
    nx = rows.size
    ncol = nx + t
    # Columns: the window cells x_i^t, then the loads q_t. Rows: each vehicle's demand, then
    # q_t - sum_i x_i^t = 0.
    col_cost = np.concatenate([np.zeros(nx), scale * game.offset])
    lower = np.zeros(ncol)
    upper_b = np.concatenate([game.upper[rows, cols], np.full(t, highspy.kHighsInf)])
    start = np.concatenate([np.arange(0, 2 * nx, 2), 2 * nx + np.arange(t + 1)]).astype(np.int32)
    index = np.empty(2 * nx + t, dtype=np.int32)
    index[0 : 2 * nx : 2] = rows
    index[1 : 2 * nx : 2] = n + cols
    index[2 * nx :] = n + np.arange(t)
    value = np.empty(2 * nx + t)
    value[0 : 2 * nx : 2] = 1.0
    value[1 : 2 * nx : 2] = -1.0
    value[2 * nx :] = 1.0
    row_bounds = np.concatenate([game.demand, np.zeros(t)])
    # highspy.Highs() prints a banner on stdout when its Python callbacks start; the core
    # object does not, and stdout may carry JSON.
    diag = scale * np.concatenate([np.full(nx, x_curvature), np.full(t, q_curvature)])
    keep = np.nonzero(diag > 0.0)[0].astype(np.int32)
    hess_start = np.searchsorted(keep, np.arange(ncol + 1)).astype(np.int32)
    # highspy.Highs() prints a banner on stdout when its Python callbacks start; the core
    # object does not, and stdout may carry JSON.
    h = highspy._core._Highs()
    h.setOptionValue("output_flag", False)
    # One thread: HiGHS's worker pool was seen to stall a solve on a loaded machine; the time
    # limit turns any other stall into a SolverError instead of a hang.
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", HIGHS_TIME_LIMIT_S)
    h.setOptionValue("qp_iteration_limit", 50 * ncol + 1000)
    status = h.passModel(
        ncol,
        n + t,
        2 * nx + t,
        int(keep.size),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.HessianFormat.kTriangular),
        int(highspy.ObjSense.kMinimize),
        0.0,
        col_cost,
        lower,
        upper_b,
        row_bounds,
        row_bounds,
        start,
        index,
        value,
        hess_start,
        keep,
        np.ascontiguousarray(diag[keep]),
        np.zeros(ncol, dtype=np.int32),  # every column continuous
    )
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS refused the model")
    h.run()
    model_status = h.getModelStatus()
    if model_status != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"HiGHS: {h.modelStatusToString(model_status)}")
    values = np.asarray(h.getSolution().col_value, dtype=float)
    x = np.zeros((n, t))
    x[rows, cols] = np.clip(values[:nx], 0.0, game.upper[rows, cols])
    return x


def social_optimum(game: ChargingGame) -> SocialOptimum:
    """A schedule minimising the sum of bills sum_t (a_t + mu q_t) q_t (HiGHS QP), and a bound.

    Notes
    -----
    The cost depends on the loads only (its minimisers are not unique in x). HiGHS solves the QP
    with the loads as extra variables (a diagonal Hessian); its time grows steeply with size
    (about 2 minutes at 300 vehicles x 96 slots). ``lower_bound`` is the Lagrangian dual at the
    final marginal prices p = a + 2 mu q: sum_t -(p_t - a_t)^2 / (4 mu) + sum_i min over vehicle
    i's schedules of p . x_i (its cheapest slots, exact), so ``cost - lower_bound`` certifies how
    far from optimal the solver's answer can be. With mu = 0 every vehicle's cheapest slots are
    optimal.
    """
    mu, a = game.mu, game.offset
    if game.n_vehicles == 0 or mu == 0.0:
        x = waterfill(game.base_price, game.upper, game.demand, 0.0)
    else:
        # A tiny curvature on x makes the Hessian definite: with a singular one HiGHS's
        # active-set QP was seen to cycle on a 6-vehicle game. It moves the cost by at most
        # 1e-9 mu sum x^2, and the dual bound below still certifies the gap.
        x = solve_qp_highs(game, 1e-9 * mu, 2.0 * mu, scale=1.0 / mu)
    load = x.sum(axis=0)
    cost = total_cost(game, x)
    bound = cost
    if mu > 0.0:
        marginal = a + 2.0 * mu * load
        cheapest = waterfill(marginal, game.upper, game.demand, 0.0)
        lagrangian = -((marginal - a) @ (marginal - a)) / (4.0 * mu)
        bound = min(cost, float(lagrangian + cheapest.sum(axis=0) @ marginal))
    return SocialOptimum(
        schedule=_readonly(x),
        load=_readonly(load),
        price=_readonly(dynamic_price(game, load)),
        cost=cost,
        status="optimal",
        lower_bound=bound,
    )


def price_of_anarchy(equilibrium_cost: float, optimum_cost: float) -> float | None:
    """Equilibrium cost over optimal cost (>= 1); None when the optimum costs nothing or less."""
    if optimum_cost <= 0.0:
        return None
    return equilibrium_cost / optimum_cost


def charge_on_arrival(game: ChargingGame) -> FloatArray:
    """No DSM: every vehicle draws at full power from its arrival until its demand is met."""
    before = np.cumsum(game.upper, axis=1) - game.upper
    return np.asarray(np.clip(game.demand[:, None] - before, 0.0, game.upper))


def cheapest_hours(game: ChargingGame) -> FloatArray:
    """Without price feedback: every vehicle fills the slots of lowest base price phi_t in its
    window (what a single EV does in the thesis, §6.2.1), ties to the earliest slot."""
    return waterfill(game.base_price, game.upper, game.demand, 0.0)


def equilibrium_report(eq: Equilibrium) -> dict[str, Any]:
    """The convergence report as plain data."""
    return {
        "method": eq.method,
        "iterations": eq.iterations,
        "converged": eq.converged,
        "max_gain": eq.max_gain,
        "residuals": list(eq.residuals),
    }
