"""DV2G's games, vectorised over slots: grids select EVs by replicator dynamics (Algorithm 1), EVs
price non-cooperatively (eq. 38-40), the Stackelberg loop of the two (Algorithm 2).

Arrays are (T, M) for EVs (sellers), (T, N) for grids (buyers) and (T, N, M) for the grids'
demand at the EVs' prices; an EV with nothing to sell in a slot (``supply`` 0) is not in that
slot's game (its selection probability is 0). Readings of the ambiguous equations (spec §3,
docs/dv2g.md#readings):

* grid n facing price varpi buys its welfare maximiser of (17)-(18) within its need G_n (16):
  p_n* = clip((xi_n - varpi) / kappa_n, 0, G_n) (eq. 21);
* the demand reaching EV m is D_m = Q_m sum_n p_nm* (eq. 20, the sum over grids);
* the grids' net utility from EV m is their welfare (18) at the share they get,
  r_m = min(1, R_m) with R_m = B_s,m / D_m (eq. 19, 22, 23): u_m = sum_n [(xi_n - varpi_m) r_m p_nm
  - kappa_n / 2 (r_m p_nm)^2], which is (24) and (25) when no grid is at its need; Z (26) is the
  same for every EV and cancels in u_m - u_bar;
* (32) with sigma1 = step1 / (the largest full welfare in the slot), capped so that no Q_m falls by
  more than half in one step; Q is renormalised onto the simplex after each step (rounding) and
  never below ``q_floor`` (strictly inside: a pure strategy is a fixed point);
* (33) as the evolutionary equilibrium's condition: max_m max(Q_m |u_m - u_bar|, u_m - u_bar)
  below ``tol1`` times the utility scale (an EV the grids dropped may sit below the average, none
  may sit above it);
* (38) with sigma2 = g (price span) / B_s,m and the relative excess saturated at +-1: each EV
  moves by the same share of the span per unit of its relative excess, so EVs at one price stay
  at one price (the equilibrium is a common clearing price); the gain decays as
  g_y = step2 / (1 + y / decay) (a tie between EVs makes each one's demand jump with its price;
  a fixed gain chatters across it); the price stays in [omega_m, max xi] (the floor is the EV's
  degradation cost, eq. 10);
* (40) relative: |D_m - B_s,m| <= tol2 B_s,m, or the price sits at its floor with D_m <= B_s,m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Utilities, energies and prices below this are treated as zero (scales, divisions).
TINY = 1e-300


@dataclass(frozen=True)
class GameOptions:
    """Options of the games (docs/dv2g.md#readings): Algorithm 1's ``step1`` (a fraction of the
    utility scale), ``tol1``, ``max_iter1``; Algorithm 2's ``step2`` (a fraction of the price
    span per unit of relative excess demand), ``tol2``, ``max_iter2``; ``q_floor`` the least
    selection probability (strictly inside the simplex); ``restart`` the share of the uniform
    start mixed into each warm start of Algorithm 1 inside Algorithm 2; ``decay`` the outer
    iterations over which Algorithm 2's gain halves."""

    step1: float = 1.0
    tol1: float = 1e-7
    max_iter1: int = 5_000
    step2: float = 0.2
    tol2: float = 1e-3
    max_iter2: int = 500
    q_floor: float = 1e-12
    restart: float = 1.0
    decay: float = 20.0

    def __post_init__(self) -> None:
        for name in ("step1", "step2"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise MechanismError(f"{name}: must lie in (0, 1], got {getattr(self, name)}")
        if not 0.0 < self.decay <= 1e9:
            raise MechanismError(f"decay: must lie in (0, 1e9], got {self.decay}")
        if not 0.0 < self.restart <= 1.0:
            raise MechanismError(f"restart: must lie in (0, 1], got {self.restart}")
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


def best_responses(
    price: FloatArray, xi: FloatArray, kappa: FloatArray, need: FloatArray
) -> FloatArray:
    """p_nm* = clip((xi_n - varpi_m) / kappa_n, 0, G_n) (eq. 21 within the need of eq. 16),
    shape (T, N, M)."""
    raw = (xi[:, :, None] - price[:, None, :]) / kappa[None, :, None]
    return np.clip(raw, 0.0, need[:, :, None])


def followers(price: FloatArray, xi: FloatArray, kappa: FloatArray, need: FloatArray) -> Followers:
    """The moments of :class:`Followers` at ``price`` (one pass over the (T, N, M) demand)."""
    p = best_responses(price, xi, kappa, need)
    total = p.sum(axis=1)
    a = np.einsum("tn,tnm->tm", xi, p) - price * total
    b = 0.5 * np.einsum("n,tnm->tm", kappa, p * p)
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
    iterations: NDArray[np.int64]
    residuals: FloatArray
    converged: BoolArray


def uniform_start(active: BoolArray) -> FloatArray:
    """Q(1): uniform over each slot's sellers (strictly inside the simplex), 0 elsewhere."""
    count = active.sum(axis=1, keepdims=True)
    return np.where(active, 1.0 / np.maximum(count, 1), 0.0)


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
    scale = np.maximum(np.abs(np.where(active, f.a - f.b, 0.0)).max(axis=1), TINY)[:, None]
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


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """Algorithm 2's outcome per slot: prices varpi (T, M), the selection at them, demand D_m,
    what each EV sells (min(D_m, B_s,m)), the grids' welfare (u_bar), the outer loop's
    ``iterations`` (T,), ``residuals`` ((iterations, T): max relative excess of an EV above its
    floor), ``converged`` (T,), and Algorithm 1's total iterations per slot (``egt_iterations``)."""

    price: FloatArray
    selection: Selection
    demand: FloatArray
    sold: FloatArray
    grid_welfare: FloatArray
    iterations: NDArray[np.int64]
    residuals: FloatArray
    converged: BoolArray
    egt_iterations: NDArray[np.int64]
    egt_converged: BoolArray


def price_bounds(floor: FloatArray, xi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """[omega_m, max(omega_m, max_n xi_n)] per slot and EV (above max xi no grid buys)."""
    top = xi.max(axis=1, initial=0.0)[:, None]
    return floor, np.maximum(floor, top)


def stackelberg(
    price0: FloatArray,
    supply: FloatArray,
    need: FloatArray,
    xi: FloatArray,
    kappa: FloatArray,
    floor: FloatArray,
    options: GameOptions,
) -> Equilibrium:
    """Algorithm 2 in every slot at once: the grids' selection (Algorithm 1) at the EVs' prices,
    the demand D_m (eq. 20) sent to the EVs, each EV's price update (eq. 38) until (40).

    ``price0``, ``supply`` (B_s dt), ``floor`` (omega): (T, M); ``need`` (G), ``xi``: (T, N);
    ``kappa``: (N,).
    """
    active = supply > 0
    low, high = price_bounds(floor, xi)
    price = np.clip(price0, low, high)
    span = np.maximum(high - low, TINY).max(axis=1, keepdims=True)
    q = uniform_start(active)
    t_count = price.shape[0]
    todo = active.any(axis=1) & (need.sum(axis=1) > 0)
    converged = ~todo
    iterations = np.zeros(t_count, dtype=np.int64)
    egt_iterations = np.zeros(t_count, dtype=np.int64)
    history: list[FloatArray] = []
    while True:
        f = followers(price, xi, kappa, need)
        # Warm start, mixed with a little of the uniform start: an EV the grids dropped at the
        # old prices regrows from restart / M, not from q_floor, once its price is attractive.
        start = (1.0 - options.restart) * q + options.restart * uniform_start(active)
        sel = select(start, f, supply, active, options, todo=~converged)
        q = sel.q
        egt_iterations += sel.iterations
        demand = q * f.total
        excess = demand - supply
        relative = np.where(active, excess / np.maximum(supply, TINY), 0.0)
        at_floor = (price <= low) & (excess <= 0)
        moving = active & ~at_floor
        residual = np.where(moving, np.abs(relative), 0.0).max(axis=1, initial=0.0)
        history.append(np.where(todo, residual, 0.0))
        converged |= todo & (residual <= options.tol2) & sel.converged
        run = todo & ~converged
        if not run.any() or iterations.max(initial=0) >= options.max_iter2:
            break
        gain = options.step2 / (1.0 + iterations[:, None] / options.decay)
        # eq. 38 with sigma2 = gain x span / B_s,m: every EV moves by the same share of the price
        # span per unit of relative excess (saturated at +-1, so a heavily rationed EV does not
        # jump past the others), the gain decaying as step2 / (1 + y / decay)
        push = np.clip(relative, -1.0, 1.0)
        moved = np.clip(price + gain * span * push, low, high)
        price = np.where(run[:, None] & active, moved, price)
        iterations += run
    sold = np.minimum(demand, supply)
    return Equilibrium(
        price=price,
        selection=sel,
        demand=demand,
        sold=np.where(active, sold, 0.0),
        grid_welfare=sel.u_bar,
        iterations=iterations,
        residuals=np.array(history),
        converged=converged,
        egt_iterations=egt_iterations,
        egt_converged=sel.converged | ~todo,
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
    them (Algorithm 1). Returns (prices, selection, demand)."""
    active = supply > 0
    low, high = price_bounds(floor, xi)
    price = np.clip(price0, low, high)
    f = followers(price, xi, kappa, need)
    sel = select(uniform_start(active), f, supply, active, options)
    return price, sel, sel.q * f.total
