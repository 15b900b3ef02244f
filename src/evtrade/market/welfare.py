"""Problem P1 of ETA: the social-welfare volumes, solved exactly by a structured dual Newton method.

Problem (ETA eqs. 11-16, constraint 13 sign-corrected)::

    max_x  sum_i w_i ln(X_i - b_i^min + 1) - sum_ij rho_j (l1 x_ij^2 + l2 x_ij),   X_i = sum_j x_ij
    s.t.   b_i^min <= X_i <= b_i^max                                            (12)
           sum_i (1 + rho_j) x_ij <= s_j^t - s_j^r                               (13)
           x_ij >= 0, and x_ij = 0 where the pair may not trade                 (14)

Method. Dualise only the seller capacities (13) with prices mu_j >= 0. For fixed mu the problem
splits by buyer, and each buyer's problem is a water-filling: with the buyer's marginal utility
lambda_i, ``x_ij = max(0, lambda_i - c_j) / (2 a_j)`` where ``a_j = l1 rho_j`` and
``c_j = l2 rho_j + (1 + rho_j) mu_j``; lambda_i is the unique root of a monotone piecewise
function, found exactly (a quadratic on the right segment) for all buyers at once. The dual
function D(mu) is convex and once differentiable with a piecewise-constant generalised Hessian
that has a closed form (a diagonal minus a sum of rank-one terms, one per buyer), so D is minimised
over mu >= 0 by a projected semismooth Newton method with an Armijo line search, started from a
one-price (or price-floor) point. The result is certified by the duality gap (primal welfare of
the returned feasible x minus D(mu)); when the certificate fails, the interior point of
:mod:`evtrade.market._ipm` solves the problem and Newton polishes it. :func:`kkt_residual` checks
any volumes independently. The method's formulas and tolerances (water-filling, D(mu), curvature,
step rules, certificate) live in :mod:`evtrade.market.p1_newton`, shared with the batch solver;
this module holds what is specific to one market (the blocked active-set sums, the Hessian by
BLAS syrk on the free sellers, the brentq start, the interior-point safeguard and its polish).

References
----------
.. [ETA] Xia et al., problem P1, eqs. (11)-(16).
.. [B82] D. P. Bertsekas, "Projected Newton methods for optimization problems with simple
   constraints", SIAM J. Control Optim. 20(2), 1982.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dsyrk
from scipy.optimize import brentq

from evtrade.errors import SolverError
from evtrade.market import p1_newton as nt
from evtrade.market._blas import blas_threads_for
from evtrade.market._ipm import p1_model, solve_separable
from evtrade.market.objectives import eta_welfare

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class P1Problem:
    """Data of P1 in array form.

    ``mask`` (N, M) marks the pairs that may trade. ``a`` = l1 rho_j, ``e`` = l2 rho_j,
    ``g`` = 1 + rho_j and ``cap`` = s_j^t - s_j^r are per seller (length M).
    """

    mask: BoolArray
    w: FloatArray
    b_min: FloatArray
    b_max: FloatArray
    a: FloatArray
    e: FloatArray
    g: FloatArray
    cap: FloatArray

    def __post_init__(self) -> None:
        n, m = self.mask.shape
        for name in ("w", "b_min", "b_max"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"P1Problem: {name} must have shape ({n},)")
        for name in ("a", "e", "g", "cap"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"P1Problem: {name} must have shape ({m},)")
        if np.any(self.a <= 0):
            raise ValueError("P1Problem: a = l1 * rho must be > 0 for every seller")
        if np.any(self.b_max < self.b_min):
            raise ValueError("P1Problem: b_max must be >= b_min")

    @cached_property
    def mask_float(self) -> FloatArray:
        """``mask`` as 0/1 floats (computed once per problem)."""
        return self.mask.astype(float)

    def restrict(self, rows: BoolArray, cols: BoolArray) -> P1Problem:
        """The sub-problem on the buyers ``rows`` and sellers ``cols``."""
        return P1Problem(
            mask=self.mask[np.ix_(rows, cols)],
            w=self.w[rows],
            b_min=self.b_min[rows],
            b_max=self.b_max[rows],
            a=self.a[cols],
            e=self.e[cols],
            g=self.g[cols],
            cap=self.cap[cols],
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        mask: BoolArray,
        w: FloatArray,
        b_min: FloatArray,
        b_max: FloatArray,
        rho: FloatArray,
        spare: FloatArray,
        l1: float,
        l2: float,
    ) -> P1Problem:
        """Build the problem from market quantities (rho, spare energy s^t - s^r, l1, l2)."""
        rho = np.asarray(rho, dtype=float)
        return cls(
            mask=np.asarray(mask, dtype=bool),
            w=np.asarray(w, dtype=float),
            b_min=np.asarray(b_min, dtype=float),
            b_max=np.asarray(b_max, dtype=float),
            a=l1 * rho,
            e=l2 * rho,
            g=1.0 + rho,
            cap=np.maximum(np.asarray(spare, dtype=float), 0.0),
        )


@dataclass(frozen=True)
class P1Solution:
    """Optimal volumes ``x`` (N, M), seller prices ``mu`` (duals of 13), buyer marginals ``lam``.

    ``welfare`` is the P1 objective at ``x``; ``dual_value`` is D(mu) >= welfare, and
    ``duality_gap = dual_value - welfare`` certifies optimality.
    """

    x: FloatArray
    mu: FloatArray
    lam: FloatArray
    welfare: float
    dual_value: float
    iterations: int
    method: str = "p1-dual-newton"

    @property
    def duality_gap(self) -> float:
        return self.dual_value - self.welfare


@dataclass(frozen=True)
class _Inner:
    x: FloatArray
    lam: FloatArray
    t: FloatArray  # d lambda_i / d c, per unit of k (see _hessian)
    dual: float
    grad: FloatArray  # dD/dmu = cap - g * column sums


def welfare_value(problem: P1Problem, x: FloatArray) -> float:
    """P1 objective (eq. 11 with 15, 16) at volumes ``x``; buyers' totals must be >= b_min - 1."""
    p = problem
    return float(eta_welfare(x, p.w, p.b_min, 1.0, p.a, p.e, squares="einsum"))


def _demand(w: FloatArray, b_min: FloatArray, b_max: FloatArray, c: FloatArray) -> FloatArray:
    """Xt(c): the total a buyer wants when its marginal utility is c (b_max where c <= 0)."""
    with np.errstate(divide="ignore"):
        xt = np.clip(b_min - 1.0 + w / np.where(c > 0, c, 1.0), b_min, b_max)
    return np.asarray(np.where(c > 0, xt, b_max))


def _active_sums(p: P1Problem, c: FloatArray, k: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``A_i = sum k_j`` and ``B_i = sum k_j c_j`` over the sellers buyer i buys from at prices c.

    Sellers sorted by c are cut into blocks of about 2 sqrt(M). One matrix product gives every
    buyer's sums of k and k c per block; h at the block ends locates the block where h changes
    sign, and prefix sums inside that block only (N x block) locate the segment. The cost is one
    pass over the mask in BLAS instead of a sort-ordered copy and two prefix sums over N x M.
    """
    n, m = p.mask.shape
    rows = np.arange(n)
    order = np.argsort(c, kind="stable")
    cs, ks = c[order], k[order]
    size = max(32, int(2 * np.sqrt(m)))
    nb = -(-m // size)
    blk = np.arange(m) // size
    weights = np.zeros((m, 2 * nb))
    weights[order, blk] = ks
    weights[order, nb + blk] = ks * cs
    sums = p.mask_float @ weights
    cumA = np.cumsum(sums[:, :nb], axis=1)
    cumB = np.cumsum(sums[:, nb:], axis=1)
    ends = np.minimum((np.arange(nb) + 1) * size, m) - 1
    w, lo, hi = p.w[:, None], p.b_min[:, None], p.b_max[:, None]
    h_end = cumA * cs[ends] - cumB - _demand(w, lo, hi, cs[ends][None, :])
    q = np.count_nonzero(h_end < 0, axis=1)  # h is nondecreasing: blocks wholly below the root
    qc = np.minimum(q, nb - 1)
    start = qc * size
    pos = start[:, None] + np.arange(size)[None, :]
    valid = pos < m
    pos = np.minimum(pos, m - 1)
    kin = p.mask_float[rows[:, None], order[pos]] * ks[pos] * valid
    offA = np.where(qc > 0, cumA[rows, qc - 1], 0.0)
    offB = np.where(qc > 0, cumB[rows, qc - 1], 0.0)
    inA = offA[:, None] + np.cumsum(kin, axis=1)
    inB = offB[:, None] + np.cumsum(kin * cs[pos], axis=1)
    h_in = np.where(valid, inA * cs[pos] - inB - _demand(w, lo, hi, cs[pos]), np.inf)
    last = np.count_nonzero(h_in < 0, axis=1) - 1  # in-block index of the last seller below
    whole = q >= nb
    A = np.where(whole, cumA[:, -1], np.where(last >= 0, inA[rows, np.maximum(last, 0)], offA))
    B = np.where(whole, cumB[:, -1], np.where(last >= 0, inB[rows, np.maximum(last, 0)], offB))
    return np.asarray(A), np.asarray(B)


def _inner(problem: P1Problem, mu: FloatArray, need_t: bool = True) -> _Inner:
    """Solve every buyer's water-filling for seller prices ``mu`` (vectorised over buyers).

    Buyer i buys ``x_ij = k_j (lambda_i - c_j)^+`` from its partners (k_j = 1 / (2 a_j)). With the
    sellers sorted by c, ``h_i(r) = sum_{s <= r} k_s (c_r - c_s) - Xt_i(c_r)`` is nondecreasing in
    r, so the segment holding lambda_i is where h changes sign (:func:`_active_sums`), and
    lambda_i is in closed form on that segment.
    """
    p = problem
    n = p.mask.shape[0]
    c = p.e + p.g * mu
    k = 0.5 / p.a
    A, B = _active_sums(p, c, k)
    buys = A > 0
    lam = np.zeros(n)
    if np.any(buys):
        lam[buys] = nt.buyer_totals(A[buys], B[buys], p.w[buys], p.b_min[buys], p.b_max[buys])
    x = nt.pair_volumes(lam, c, k, p.mask_float, buys)
    X = x.sum(axis=1)
    colsum = x.sum(axis=0)
    grad = p.cap - p.g * colsum
    dual = float(nt.dual_value(x, X, colsum, grad, mu, w=p.w, b_min=p.b_min, a=p.a, e=p.e))
    # K_i = A_i, the sum of k_j over the sellers the buyer buys from
    t = nt.curvature_weights(X, A, p.w, p.b_min, p.b_max) if need_t else np.zeros(n)
    return _Inner(x=x, lam=lam, t=t, dual=dual, grad=grad)


def _hessian(problem: P1Problem, inner: _Inner, free: BoolArray) -> tuple[FloatArray, BoolArray]:
    """Generalised Hessian of D on the free sellers (upper triangle is exact, lower unused).

    Also returns the diagonal before the rank-one terms, ``g^2 sum_i k`` over active pairs: zero
    for a seller nobody buys from, and the yardstick for a curvature that cancelled to ~0.

    ``H = diag(g) (diag(sum_i k) - K^T diag(t) K) diag(g)``, K the active k_j per buyer.

    For buyer i with active set A_i, ``dx_ij / dc_l = k_j (t_i k_l - delta_jl)`` (j, l in A_i).
    The rank-one sum is one symmetric rank-k update (BLAS syrk), half the work of a product.
    """
    k = 0.5 / problem.a[free]
    xf = inner.x if bool(np.all(free)) else inner.x[:, free]
    Km = (xf > 0) * k
    rows = inner.t > 0
    diag = Km.sum(axis=0)
    if np.any(rows):
        Ks = Km[rows] if not bool(np.all(rows)) else Km
        Ks *= np.sqrt(inner.t[rows])[:, None]
        H = np.asarray(dsyrk(-1.0, Ks.T))  # -Ks^T Ks, upper triangle, Fortran order
    else:
        H = np.zeros((diag.size, diag.size), order="F")
    H[np.diag_indices_from(H)] += diag
    g = problem.g[free]
    H *= g[:, None]
    H *= g[None, :]
    return H, diag * g * g


def _aggregate_start(p: P1Problem) -> FloatArray:
    """Seller prices that give every seller the same marginal cost c = pi (a one-price market).

    With c_j = pi for all j, buyer i's water-filling is ``X_i = K_i (lambda_i - pi)`` with
    ``K_i = sum_j k_j`` over its partners, so the total load on the sellers is a scalar function of
    pi; pi is its root against the total capacity. Capacities bind in the cases that reach Newton,
    and prices at the optimum differ by little when the quadratic loss is small (k_j large), so this
    starts Newton close to the answer.
    """
    k = 0.5 / p.a
    K = p.mask_float @ k
    G = p.mask_float @ (p.g * k)
    has = K > 0
    total_cap = float(p.cap.sum())

    def excess(pi: float) -> float:
        lam = nt.buyer_totals(K[has], K[has] * pi, p.w[has], p.b_min[has], p.b_max[has])
        return float(np.dot(lam - pi, G[has])) - total_cap

    lo = float(np.max(p.e))
    hi = lo + float(np.max(p.w)) + 1.0
    if not np.any(has):
        return np.zeros(p.cap.shape)
    if excess(lo) <= 0:
        return _floor_start(p, hi)
    pi = hi if excess(hi) > 0 else float(brentq(excess, lo, hi, xtol=1e-15, rtol=1e-15))
    return nt.floor_prices(pi, p.e, p.g)


def _floor_start(p: P1Problem, hi: float, evaluations: int = 5) -> FloatArray:
    """Supply is ample in total but cheap sellers are overloaded: a price floor pi for all.

    Minimises D along ``mu(pi) = max((pi - e) / g, 0)`` by regula falsi (Illinois) on the slope
    ``sum_{e_j < pi} grad_j / g_j``: the sellers that bind at the optimum are the cheap ones,
    lifted to about the buyers' marginal utility, and the others keep mu_j = 0.
    """

    def slope(pi: float) -> float:
        st = _inner(p, nt.floor_prices(pi, p.e, p.g), need_t=False)
        return float(np.sum(np.where(p.e <= pi, st.grad / p.g, 0.0)))

    a, b = float(np.min(p.e)), hi
    fa, fb = slope(a), slope(b)
    if fa >= 0 or fb <= 0:
        return nt.floor_prices(a if fa >= 0 else b, p.e, p.g)
    side = 0
    for _ in range(evaluations):
        c = (a * fb - b * fa) / (fb - fa)
        fc = slope(c)
        if fc == 0:
            return nt.floor_prices(c, p.e, p.g)
        if fc < 0:
            a, fa = c, fc
            if side == -1:
                fb *= 0.5
            side = -1
        else:
            b, fb = c, fc
            if side == 1:
                fa *= 0.5
            side = 1
        if b - a <= 1e-9 * max(abs(b), 1e-12):
            break
    return nt.floor_prices((a * fb - b * fa) / (fb - fa), p.e, p.g)


@dataclass(frozen=True)
class _NewtonResult:
    inner: _Inner
    mu: FloatArray
    iterations: int
    residual: float


def _projected_residual(state: _Inner, mu: FloatArray) -> float:
    return float(nt.projected_residual(state.grad, mu))


def _dual_newton(
    p: P1Problem, mu: FloatArray, *, tol: float, max_iter: int, patience: int | None = nt.SLOW_AFTER
) -> _NewtonResult:
    """Projected semismooth Newton on D(mu) over mu >= 0, Armijo backtracking on the arc.

    Sellers at mu_j = 0 with D's gradient >= 0 stay at 0 (Bertsekas' active set); the others take
    the Newton step. A free seller nobody buys from has zero curvature: it moves straight to the
    price at which its best partner would start buying. Stops at a projected gradient below
    ``tol * scale`` kWh, or when the steps stop improving it (rounding), keeping the best point.
    """
    scale = float(nt.energy_scale(p.cap, p.b_max))
    cur = _inner(p, mu)
    res = _projected_residual(cur, mu)
    best = _NewtonResult(cur, mu, 0, res)
    stall = 0
    it = 0
    damping = 0.0
    failures = 0
    floor = 0.0  # the residual rounding allows: eps * (curvature) * (price), from the Hessian
    for it in range(1, max_iter + 1):
        if nt.newton_stops(res, scale, tol=tol, floor=floor, stall=stall):
            break
        if patience is not None and nt.crawling(it, res, scale, patience):
            break  # linear crawl through kinks (a degenerate market): the safeguard is faster
        free = (mu > 0) | (cur.grad < 0)
        fidx = np.flatnonzero(free)
        H, raw = _hessian(p, cur, free)
        d = np.zeros_like(mu)
        diag = H.diagonal().copy()
        hmax0, mu_max = float(diag.max(initial=0.0)), float(np.max(mu, initial=0.0))
        floor = float(nt.rounding_floor(hmax0, mu_max))
        idle = raw == 0  # nobody buys from these sellers
        if np.any(idle):
            # No buyer: D is linear in mu_j; jump to the entry price (c_j = best partner's lambda).
            cols = fidx[idle]
            d[cols] = nt.entry_step(p.mask[:, cols], cur.lam, p.e[cols], p.g[cols], mu[cols])
            keep = ~idle
            Hk = H[np.ix_(keep, keep)]
            fidx = fidx[keep]
        else:
            Hk = H
        if fidx.size:
            # Levenberg-Marquardt term on flat sellers (see p1_newton.regularisation).
            hmax = max(float(diag.max(initial=0.0)), 1.0)
            Hk[np.diag_indices_from(Hk)] += nt.regularisation(
                diag[~idle], raw[~idle], damping=damping, relres=res / scale, hmax=hmax
            )
            try:
                factor = cho_factor(Hk, lower=False, check_finite=False)
                d[fidx] = cho_solve(factor, -cur.grad[fidx])
            except np.linalg.LinAlgError:
                d[fidx] = np.linalg.lstsq(np.triu(Hk) + np.triu(Hk, 1).T, -cur.grad[fidx])[0]
        step = _line_search(p, cur, mu, d, near=bool(nt.near_optimum(res, scale)))
        if step is None:
            failures += 1
            if nt.gives_up(damping, res, scale, failures):
                break  # no descent left: rounding level (or a dead end the caller's check catches)
            damping = float(nt.damping_after_failure(damping))
            continue
        mu, cur, alpha = step
        if alpha == 1.0:
            damping = float(nt.damping_after_full_step(damping))
        res = _projected_residual(cur, mu)
        stall = 0 if res < 0.9 * best.residual else stall + 1  # no progress at all
        if res < best.residual:
            best = _NewtonResult(cur, mu, it, res)
    return _NewtonResult(best.inner, best.mu, it, best.residual)


def _line_search(
    p: P1Problem, cur: _Inner, mu: FloatArray, d: FloatArray, *, near: bool
) -> tuple[FloatArray, _Inner, float] | None:
    """Backtracking along the projection arc ``max(mu + alpha d, 0)``; None if it fails.

    A step is taken when it passes Armijo's test on D, or, ``near`` the optimum, when it halves
    the projected gradient: there the decrease of D is below the rounding of D itself (a sum of
    N M terms), and only the residual still measures progress.
    """
    res = _projected_residual(cur, mu)
    alpha = 1.0
    for _ in range(nt.LINE_SEARCH_STEPS):
        trial = np.maximum(mu + alpha * d, 0.0)
        nxt = _inner(p, trial)
        decrease = float(nt.dot(cur.grad, mu - trial))
        new_res = _projected_residual(nxt, trial)
        if nt.step_accepted(nxt.dual, cur.dual, decrease, near=near, new_res=new_res, res=res):
            return trial, nxt, alpha
        alpha *= 0.5
    return None


def solve_p1(problem: P1Problem, *, tol: float = 1e-12, max_iter: int = 200) -> P1Solution:
    """Maximise P1 exactly (to rounding) for the given problem.

    Parameters
    ----------
    problem : P1Problem
        Must be feasible: every buyer with ``b_min > 0`` needs enough reachable supply
        (see :func:`evtrade.market.feasibility.exclude_unservable_buyers`).
    tol : float, keyword-only
        Relative tolerance on the capacity residuals (13) and complementarity.
    max_iter : int, keyword-only
        Iteration cap of the interior-point fallback.

    Returns
    -------
    P1Solution

    Raises
    ------
    SolverError
        If the method does not converge (for example on an infeasible problem).

    Notes
    -----
    If no capacity binds at mu = 0, one water-filling pass is the optimum. Otherwise the dual
    Newton method runs from the one-price start (:func:`_aggregate_start`); an iteration costs
    O(N M) for the water-fillings plus O(N M'^2 + M'^3) for the Hessian and its Cholesky factor
    (M' the sellers with a free price); dense markets need 5-8 iterations. The result is accepted
    when its duality gap is within ``p1_newton.GAP_RTOL`` of the welfare; otherwise (degenerate
    markets, where the remaining minimum demands use up the supply) the interior-point method of
    :mod:`evtrade.market._ipm` runs and the Newton polish finishes its point.
    """
    p = problem
    n, m = p.mask.shape
    x: FloatArray = np.zeros((n, m))
    mu: FloatArray = np.zeros(m)
    if n == 0 or m == 0:
        return P1Solution(x, mu, np.zeros(n), 0.0, 0.0, 0, "empty")
    has_partner = p.mask.any(axis=1)
    if np.any(~has_partner & (p.b_min > 0)):
        raise SolverError("P1 infeasible: a buyer with b_min > 0 has no trading partner")
    # Buyers that cannot or need not buy, and sellers with nothing to sell, are fixed at zero.
    rows = has_partner & (p.b_max > 0)
    cols = p.mask[rows].any(axis=0) & (p.cap > 0)
    rows &= p.mask[:, cols].any(axis=1)
    if np.any(~rows & (p.b_min > 0)):
        raise SolverError("P1 infeasible: a buyer with b_min > 0 has only sellers with no energy")
    iterations = 0
    method = "free-market"
    sub: P1Problem | None = None
    if np.any(rows) and np.any(cols):
        sub = p if bool(np.all(rows) and np.all(cols)) else p.restrict(rows, cols)
        scale = float(nt.energy_scale(sub.cap, sub.b_max))
        state = _inner(sub, np.zeros(sub.cap.shape), need_t=False)
        if float(np.min(state.grad)) >= -tol * scale:
            # No capacity (13) binds at mu = 0: every buyer's water-filling is the exact optimum.
            xs, mus = state.x, np.zeros(sub.cap.shape)
        else:
            with np.errstate(all="ignore"), blas_threads_for(*sub.mask.shape):
                xs, mus, state, iterations, method = _solve_binding(sub, tol=tol, max_iter=max_iter)
        if sub is p:
            x, mu = xs, mus
            lam, dual = state.lam, state.dual
        else:
            x[np.ix_(rows, cols)] = xs
            mu[cols] = mus
    if sub is not p:
        # Sellers left out have spare capacity or none to price; their mu_j is 0.
        final = _inner(p, mu, need_t=False)
        lam, dual = final.lam, final.dual
    # Weak duality: D(mu) bounds the optimum from above for any mu >= 0, so the gap certifies x.
    return P1Solution(
        x=x,
        mu=mu,
        lam=lam,
        welfare=welfare_value(p, x),
        dual_value=dual,
        iterations=iterations,
        method=method,
    )


def _solve_binding(
    p: P1Problem, *, tol: float, max_iter: int
) -> tuple[FloatArray, FloatArray, _Inner, int, str]:
    """Binding capacities: dual Newton, certified; the interior point only as a safeguard.

    Returns volumes, seller prices, the water-filling state at those prices, iterations, method.
    """
    newton = _dual_newton(p, _aggregate_start(p), tol=max(tol, nt.NEWTON_RTOL), max_iter=60)
    x = _repair(p, newton.inner.x)
    scale = float(nt.energy_scale(p.cap, p.b_max))
    if nt.converged(newton.residual, scale) and _certified(p, x, newton.inner.dual):
        return x, newton.mu, newton.inner, newton.iterations, "p1-dual-newton"
    if nt.converged(newton.residual, scale) and _violation(p, x) > nt.FEAS_RTOL:
        # Converged, but the loads left above capacity (the residual) could be cut only by taking
        # buyers below b_min: more Newton steps shrink the residual, and with it the breach.
        more = _dual_newton(p, newton.mu, tol=nt.EPS, max_iter=10, patience=None)
        x_more = _repair(p, more.inner.x)
        its = newton.iterations + more.iterations
        if _certified(p, x_more, more.inner.dual):
            return x_more, more.mu, more.inner, its, "p1-dual-newton"
    ipm = solve_separable(
        p1_model(p),
        tol=tol,
        max_iter=max_iter,
        what="P1 interior point",
        hint="; infeasible?",
        quiet=False,
    )
    x_ip, mu_ip, its = ipm.x, np.maximum(ipm.zs, 0.0), ipm.iterations
    x_ip, mu_ip = _polish(p, _repair(p, x_ip), mu_ip, tol=tol)
    state = _inner(p, mu_ip, need_t=False)
    return x_ip, mu_ip, state, newton.iterations + its, "p1-interior-point+dual-newton"


def _violation(p: P1Problem, x: FloatArray) -> float:
    return float(nt.feasibility_violation(x, p.b_min, p.b_max, p.g, p.cap))


def _certified(p: P1Problem, x: FloatArray, dual: float) -> bool:
    """Feasible (12)-(13) to rounding and duality gap within GAP_RTOL (p1_newton.certified)."""
    return bool(nt.certified(_violation(p, x), dual, welfare_value(p, x)))


def _polish(
    p: P1Problem, x_ip: FloatArray, mu: FloatArray, *, tol: float
) -> tuple[FloatArray, FloatArray]:
    """Dual Newton from the interior point's prices; keep the better certified of the two points.

    The Newton point is exact (a water-filling) when it converges; otherwise the interior point's
    own pair (x, mu) usually has the smaller duality gap. The gap decides; on a tie, the KKT
    residual (welfare is flat to second order and cannot choose).
    """
    # Interior-point prices of sellers with spare energy are noise-level positives: zero them.
    mu = np.where(mu > 1e-8 * max(float(np.max(mu, initial=0.0)), 1e-300), mu, 0.0)
    newton = _dual_newton(p, mu, tol=tol, max_iter=30, patience=None)
    x_nt = _repair(p, newton.inner.x)
    x_ip = _clean(p, x_ip)
    # A point that breaks (12)-(13) beyond rounding has no valid gap (its welfare may exceed
    # D(mu)); it is chosen only when both do, and then the less infeasible one.
    viol_nt, viol_ip = _violation(p, x_nt), _violation(p, x_ip)
    if max(viol_nt, viol_ip) > nt.FEAS_RTOL:
        return (x_nt, newton.mu) if viol_nt <= viol_ip else (x_ip, mu)
    scale = max(1.0, abs(welfare_value(p, x_ip)))
    gap_nt = (newton.inner.dual - welfare_value(p, x_nt)) / scale
    gap_ip = (_inner(p, mu, need_t=False).dual - welfare_value(p, x_ip)) / scale
    if max(gap_nt, gap_ip) <= nt.GAP_RTOL:
        if kkt_residual(p, x_nt, newton.mu) <= kkt_residual(p, x_ip, mu):
            return x_nt, newton.mu
        return x_ip, mu
    return (x_nt, newton.mu) if gap_nt <= gap_ip else (x_ip, mu)


def _clean(p: P1Problem, x: FloatArray) -> FloatArray:
    """Zero the interior point's vanishing volumes where that keeps (12) and (13)."""
    tiny = 1e-10 * max(1.0, float(np.max(x, initial=0.0)))
    y = np.where(x > tiny, x, 0.0)
    X = y.sum(axis=1)
    if np.all(p.b_min * (1 - 1e-12) <= X):
        return y
    return x


def _repair(p: P1Problem, x: FloatArray) -> FloatArray:
    """Remove rounding-level breaches of (13) and of (12)'s upper bounds (see repair_volumes)."""
    return nt.repair_volumes(x, p.b_min, p.b_max, p.g, p.cap)


def kkt_residual(problem: P1Problem, x: FloatArray, mu: FloatArray) -> float:
    """Largest violation of P1's KKT conditions by volumes ``x`` and seller prices ``mu``.

    Independent of how x was found. Per buyer, the reduced gains
    ``r_ij = U_i'(X_i) - (2 a_j x_ij + e_j + g_j mu_j)`` must be equal (to -nu_i) on the pairs it
    buys and no larger on its other partners, with nu_i > 0 only at b_min and nu_i < 0 only at
    b_max; sellers need mu_j >= 0, mu_j = 0 unless full; and (12)-(13) must hold. Prices are
    measured against max(1, max U'), energies against max(1, b_max, cap), and the larger of the
    two relative figures is returned.
    """
    p = problem
    X = x.sum(axis=1)
    escale = max(1.0, float(np.max(p.b_max, initial=0.0)), float(np.max(p.cap, initial=0.0)))
    slack = p.cap - p.g * x.sum(axis=0)
    primal = max(
        float(np.max(p.b_min - X, initial=0.0)),
        float(np.max(X - p.b_max, initial=0.0)),
        float(np.max(-slack, initial=0.0)),
        float(np.max(-x, initial=0.0)),
        float(np.max(np.abs(x[~p.mask]), initial=0.0)),
    )
    with np.errstate(divide="ignore"):
        marginal = p.w / np.maximum(X - p.b_min + 1.0, 1e-300)
    r = marginal[:, None] - (2 * p.a * x + p.e + p.g * mu)
    pscale = max(1.0, float(np.max(marginal, initial=0.0)))
    pos = x > 1e-9 * escale
    has = pos.any(axis=1)
    nu = -np.where(has, np.where(pos, r, 0.0).sum(axis=1) / np.maximum(pos.sum(axis=1), 1), 0.0)
    # A buyer buying nothing (b_min = 0): nu_i = -U'(0) bounds its partners' gains instead.
    nu = np.where(has, nu, np.minimum(0.0, -marginal))
    station = np.abs(np.where(pos, r + nu[:, None], 0.0)).max(initial=0.0)
    idle = np.where(p.mask & ~pos, r + nu[:, None], -np.inf).max(initial=0.0)
    tol_e = 1e-7 * escale
    off_min, off_max = X - p.b_min > tol_e, p.b_max - X > tol_e
    wrong_sign = np.where(
        ((nu > 0) & off_min) | ((nu < 0) & off_max & has),
        np.abs(nu),
        0.0,
    ).max(initial=0.0)
    dual = max(float(np.max(-mu, initial=0.0)), 0.0)
    comp = float(np.max(mu * np.maximum(slack, 0.0), initial=0.0)) / escale
    price_viol = max(float(station), float(max(idle, 0.0)), float(wrong_sign), dual) / pscale
    return max(primal / escale, price_viol, comp)
