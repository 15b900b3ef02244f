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
over mu >= 0 by a projected semismooth Newton method with an Armijo line search. The result is
certified by the duality gap (primal welfare of the returned feasible x minus D(mu)).

References
----------
.. [ETA] Xia et al., problem P1, eqs. (11)-(16).
.. [B82] D. P. Bertsekas, "Projected Newton methods for optimization problems with simple
   constraints", SIAM J. Control Optim. 20(2), 1982.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve

from evtrade.errors import SolverError

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
    X = x.sum(axis=1)
    utility = float(np.sum(problem.w * np.log(X - problem.b_min + 1.0)))
    cost = float(np.sum(problem.a * (x * x).sum(axis=0) + problem.e * x.sum(axis=0)))
    return utility - cost


def _buyer_totals(
    A: FloatArray, B: FloatArray, w: FloatArray, b_min: FloatArray, b_max: FloatArray
) -> FloatArray:
    """Root lambda of ``A lambda - B = Xt(lambda)``, Xt the demand implied by marginal utility.

    ``Xt(lambda) = clip(b_min - 1 + w / lambda, b_min, b_max)`` inverts U'(X) = w / (X - b_min + 1).
    Requires A > 0. The left side increases and Xt decreases in lambda, so the root is unique.
    """
    lam_hi = w  # U'(b_min): at or above it the buyer takes b_min
    lam_lo = w / (b_max - b_min + 1.0)  # U'(b_max): at or below it the buyer takes b_max
    at_min = A * lam_hi - B <= b_min
    at_max = ~at_min & (A * lam_lo - B >= b_max)
    q = B + b_min - 1.0
    interior = (q + np.sqrt(q * q + 4.0 * A * w)) / (2.0 * A)
    lam = np.where(at_min, (b_min + B) / A, np.where(at_max, (b_max + B) / A, interior))
    return np.asarray(lam)


def _inner(problem: P1Problem, mu: FloatArray, need_t: bool = True) -> _Inner:
    """Solve every buyer's water-filling for seller prices ``mu`` (vectorised over buyers)."""
    p = problem
    n = p.mask.shape[0]
    c = p.e + p.g * mu
    k = 0.5 / p.a
    order = np.argsort(c, kind="stable")
    cs, ks = c[order], k[order]
    km = p.mask[:, order] * ks  # (N, M): k_j on allowed pairs, sellers sorted by c
    cumA = np.cumsum(km, axis=1)
    cumB = np.cumsum(km * cs, axis=1)
    # h_i(c_r) = S_i(c_r) - Xt_i(c_r) at every breakpoint; h is nondecreasing along r.
    with np.errstate(divide="ignore", invalid="ignore"):
        xt = np.clip(
            p.b_min[:, None] - 1.0 + p.w[:, None] / cs[None, :], p.b_min[:, None], p.b_max[:, None]
        )
    xt = np.where(cs[None, :] > 0, xt, p.b_max[:, None])
    h = cumA * cs[None, :] - cumB - xt
    seg = np.count_nonzero(h < 0, axis=1)  # root lies in [c_{seg-1}, c_seg]
    rows = np.arange(n)
    idx = np.maximum(seg - 1, 0)
    A = np.where(seg > 0, cumA[rows, idx], 0.0)
    B = np.where(seg > 0, cumB[rows, idx], 0.0)
    buys = A > 0
    lam = np.zeros(n)
    if np.any(buys):
        lam[buys] = _buyer_totals(A[buys], B[buys], p.w[buys], p.b_min[buys], p.b_max[buys])
    x = np.maximum(lam[:, None] - c[None, :], 0.0) * k[None, :]
    x = np.where(p.mask & buys[:, None], x, 0.0)
    X = x.sum(axis=1)
    colsum = x.sum(axis=0)
    utility = p.w * np.log(np.maximum(X - p.b_min + 1.0, 1e-300))
    dual = float(
        np.sum(utility)
        - np.sum(p.a * (x * x).sum(axis=0) + p.e * colsum)
        + np.dot(mu, p.cap - p.g * colsum)
    )
    grad = p.cap - p.g * colsum
    t = np.zeros(n)
    if need_t:
        K = (x > 0).astype(float) @ k
        interior = (p.b_min * (1 + 1e-14) + 1e-14 < X) & (p.b_max * (1 - 1e-14) - 1e-14 > X)
        curv = np.where(interior, p.w / (X - p.b_min + 1.0) ** 2, np.inf)  # -U''(X)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(np.isinf(curv), 1.0 / K, curv / (1.0 + K * curv))
        t = np.where(K > 0, t, 0.0)
    return _Inner(x=x, lam=lam, t=t, dual=dual, grad=grad)


def _hessian(problem: P1Problem, inner: _Inner, free: BoolArray) -> FloatArray:
    """Generalised Hessian of D on the free sellers.

    ``H = diag(g) (diag(sum_i k) - K^T diag(t) K) diag(g)``, K the active k_j per buyer.

    For buyer i with active set A_i, ``dx_ij / dc_l = k_j (t_i k_l - delta_jl)`` (j, l in A_i).
    """
    k = 0.5 / problem.a[free]
    act = inner.x[:, free] > 0
    Km = act * k
    rows = inner.t > 0
    Kr = Km[rows]
    H = -(Kr.T * inner.t[rows]) @ Kr
    H[np.diag_indices_from(H)] += Km.sum(axis=0)
    g = problem.g[free]
    return np.asarray(H * g[:, None] * g[None, :])


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
        Iteration cap of the interior-point phase.

    Returns
    -------
    P1Solution

    Raises
    ------
    SolverError
        If the method does not converge (for example on an infeasible problem).

    Notes
    -----
    Two phases. (1) A primal-dual interior-point method (Mehrotra predictor-corrector) on the
    separable reformulation ``u_i = X_i - b_i^min``: every Newton system reduces, by eliminating
    the diagonal blocks, to one dense SPD system of size min(N, M) (a Schur complement built with
    one matrix product), so an iteration costs O(N M min(N, M)). (2) A polish: from the interior
    point's seller prices mu, buyers' water-fillings give the exact active sets, and semismooth
    Newton steps on the dual (see module docstring) drive the capacity residuals to rounding. The
    polished point is kept only if it is feasible and at least as good.
    """
    p = problem
    n, m = p.mask.shape
    x = np.zeros((n, m))
    mu = np.zeros(m)
    if n == 0 or m == 0:
        return P1Solution(x, mu, np.zeros(n), 0.0, 0.0, 0)
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
    if np.any(rows) and np.any(cols):
        sub = P1Problem(
            mask=p.mask[np.ix_(rows, cols)],
            w=p.w[rows],
            b_min=p.b_min[rows],
            b_max=p.b_max[rows],
            a=p.a[cols],
            e=p.e[cols],
            g=p.g[cols],
            cap=p.cap[cols],
        )
        scale = max(1.0, float(np.max(sub.cap)), float(np.max(sub.b_max)))
        free_market = _inner(sub, np.zeros(sub.cap.shape), need_t=False)
        if float(np.min(free_market.grad)) >= -tol * scale:
            # No capacity (13) binds at mu = 0: every buyer's water-filling is the exact optimum.
            xs, mus = free_market.x, np.zeros(sub.cap.shape)
        else:
            try:
                with np.errstate(all="ignore"):
                    xs, mus, iterations = _interior_point(sub, tol=tol, max_iter=max_iter)
            except (ValueError, np.linalg.LinAlgError) as exc:
                raise SolverError(f"P1 interior point broke down ({exc}); infeasible?") from exc
            xs, mus = _polish(sub, xs, mus, tol=tol)
        x[np.ix_(rows, cols)] = xs
        mu[cols] = mus
    # Sellers left out have spare capacity or none to price; their price mu_j is 0 unless unused.
    final = _inner(p, mu, need_t=False)
    lam = final.lam
    welfare = welfare_value(p, x)
    # Weak duality: D(mu) bounds the optimum from above for any mu >= 0, so the gap certifies x.
    dual = final.dual
    return P1Solution(
        x=x, mu=mu, lam=lam, welfare=welfare, dual_value=float(dual), iterations=iterations
    )


def _interior_point(
    p: P1Problem, *, tol: float, max_iter: int
) -> tuple[FloatArray, FloatArray, int]:
    """Mehrotra predictor-corrector on ``min cost(x) - sum w ln(u + 1)``.

    Variables z = (x >= 0 on the mask, u >= 0, t >= 0, s >= 0) with equalities
    ``sum_j x_ij - u_i = b_i^min`` (E1), ``u_i + t_i = b_i^max - b_i^min`` (E2, only where the
    range is non-empty) and ``(1 + rho_j) sum_i x_ij + s_j = cap_j`` (E3).
    Returns the volumes, the seller prices mu = the multipliers of E3, and the iteration count.
    """
    n, m = p.mask.shape
    M = p.mask.astype(float)
    r = p.b_max - p.b_min
    hu = r > 1e-12 * np.maximum(1.0, p.b_max)  # buyers with a free total in [b_min, b_max]
    hf = hu.astype(float)
    scale = max(1.0, float(np.max(p.cap)), float(np.max(p.b_max)))
    # Start: a positive point, not necessarily feasible.
    x = M * (np.maximum(p.b_min, 1.0) / M.sum(axis=1))[:, None]
    u = np.where(hu, r / 2, 0.0)
    t = np.where(hu, r / 2, 0.0)
    s = np.maximum(p.cap / 2, 1e-3)
    zx, zu, zt, zs = M.copy(), hf.copy(), hf.copy(), np.ones(m)
    y1, y2, y3 = np.zeros(n), np.zeros(n), np.zeros(m)
    n_pairs = float(M.sum()) + 2.0 * float(hf.sum()) + m
    for it in range(1, max_iter + 1):
        # Residuals of stationarity (dual) and equalities (primal).
        rdx = M * (2 * p.a * x + p.e - y1[:, None] - p.g * y3 - zx)
        rdu = hf * (-p.w / (u + 1.0) + y1 - y2 - zu)
        rdt = hf * (-y2 - zt)
        rds = -y3 - zs
        rp1 = x.sum(axis=1) - hf * u - p.b_min
        rp2 = hf * (u + t - r)
        rp3 = p.g * x.sum(axis=0) + s - p.cap
        gap = float((zx * x).sum() + (zu * u).sum() + (zt * t).sum() + (zs * s).sum())
        mu_c = gap / n_pairs
        res_p = max(np.abs(rp1).max(), np.abs(rp2).max(initial=0.0), np.abs(rp3).max())
        res_d = max(np.abs(rdx).max(), np.abs(rdu).max(), np.abs(rdt).max(), np.abs(rds).max())
        converged = res_p <= tol * scale and res_d <= tol * 10 and mu_c <= tol * 1e-2
        # Rounding in the normal equations floors the primal residual near 1e-10 on badly scaled
        # markets; once complementarity is negligible the point is as good as doubles allow.
        stalled = res_p <= 1e-9 * scale and res_d <= 1e-9 and mu_c <= 1e-15 * scale
        if converged or stalled:
            return _repair(p, x), np.maximum(zs, 0.0), it
        # Diagonal of the Hessian plus barrier terms; inverse on variables that exist.
        hx = M * (2 * p.a + zx / np.where(M > 0, x, 1.0))
        dx = np.where(M > 0, 1.0 / np.where(M > 0, hx, 1.0), 0.0)
        du = np.where(hu, 1.0 / (p.w / (u + 1.0) ** 2 + zu / np.where(hu, u, 1.0)), 0.0)
        dt = np.where(hu, 1.0 / (zt / np.where(hu, t, 1.0)), 0.0)
        ds = s / zs
        # Non-finite entries (an infeasible market) make cho_factor raise ValueError; solve_p1
        # turns that into a SolverError in one place.
        system = _NormalEquations(dx, du, dt, ds, p.g)

        def direction(
            cx: FloatArray, cu: FloatArray, ct: FloatArray, cs: FloatArray
        ) -> tuple[FloatArray, ...]:
            # c*: complementarity targets; returns the full Newton direction.
            rhx = -rdx + M * cx / np.where(M > 0, x, 1.0)
            rhu = -rdu + hf * cu / np.where(hu, u, 1.0)
            rht = -rdt + hf * ct / np.where(hu, t, 1.0)
            rhs_ = -rds + cs / s
            b1 = -rp1 - ((dx * rhx).sum(axis=1) - hf * du * rhu)
            b2 = -rp2 - hf * (du * rhu + dt * rht)
            b3 = -rp3 - (p.g * (dx * rhx).sum(axis=0) + ds * rhs_)
            d1, d2, d3 = system.solve(b1, b2, b3)
            for _ in range(2):  # iterative refinement of the ill-conditioned normal equations
                dxv = dx * (rhx + d1[:, None] + p.g * d3)
                duv = du * (rhu - d1 + d2)
                dtv = dt * (rht + d2)
                dsv = ds * (rhs_ + d3)
                e1 = dxv.sum(axis=1) - hf * duv + rp1
                e2 = hf * (duv + dtv) + rp2
                e3 = p.g * dxv.sum(axis=0) + dsv + rp3
                c1, c2, c3 = system.solve(-e1, -e2, -e3)
                d1, d2, d3 = d1 + c1, d2 + c2, d3 + c3
            dxv = dx * (rhx + d1[:, None] + p.g * d3)
            duv = du * (rhu - d1 + d2)
            dtv = dt * (rht + d2)
            dsv = ds * (rhs_ + d3)
            dzx = M * (cx - zx * dxv) / np.where(M > 0, x, 1.0)
            dzu = hf * (cu - zu * duv) / np.where(hu, u, 1.0)
            dzt = hf * (ct - zt * dtv) / np.where(hu, t, 1.0)
            dzs = (cs - zs * dsv) / s
            return dxv, duv, dtv, dsv, d1, d2, d3, dzx, dzu, dzt, dzs

        aff = direction(-zx * x, -zu * u * hf, -zt * t * hf, -zs * s)
        ap, ad = _step_lengths((x, u, t, s), (zx, zu, zt, zs), aff, M, hf, 1.0)
        gap_aff = float(
            ((x + ap * aff[0]) * (zx + ad * aff[7])).sum()
            + ((u + ap * aff[1]) * (zu + ad * aff[8]) * hf).sum()
            + ((t + ap * aff[2]) * (zt + ad * aff[9]) * hf).sum()
            + ((s + ap * aff[3]) * (zs + ad * aff[10])).sum()
        )
        sigma = min(1.0, (gap_aff / max(gap, 1e-300)) ** 3)
        target = sigma * mu_c
        cor = direction(
            M * (target - zx * x - aff[0] * aff[7]),
            hf * (target - zu * u - aff[1] * aff[8]),
            hf * (target - zt * t - aff[2] * aff[9]),
            target - zs * s - aff[3] * aff[10],
        )
        ap, ad = _step_lengths((x, u, t, s), (zx, zu, zt, zs), cor, M, hf, 0.995)
        x = x + ap * cor[0]
        u = u + ap * cor[1]
        t = t + ap * cor[2]
        s = s + ap * cor[3]
        y1, y2, y3 = y1 + ad * cor[4], y2 + ad * cor[5], y3 + ad * cor[6]
        zx, zu, zt, zs = zx + ad * cor[7], zu + ad * cor[8], zt + ad * cor[9], zs + ad * cor[10]
    raise SolverError(f"P1 interior point did not converge in {max_iter} iterations")


def _step_lengths(
    primal: tuple[FloatArray, ...],
    dual: tuple[FloatArray, ...],
    d: tuple[FloatArray, ...],
    M: FloatArray,
    hf: FloatArray,
    frac: float,
) -> tuple[float, float]:
    """Largest steps in (0, 1] keeping primal and dual variables positive (fraction ``frac``)."""
    masks = (M > 0, hf > 0, hf > 0, np.ones_like(primal[3], dtype=bool))

    def longest(vals: tuple[FloatArray, ...], dirs: tuple[FloatArray, ...]) -> float:
        alpha = 1.0
        for v, dv, mk in zip(vals, dirs, masks, strict=True):
            neg = mk & (dv < 0)
            if np.any(neg):
                alpha = min(alpha, float(np.min(-v[neg] / dv[neg])) * frac)
        return alpha

    return longest(primal, d[0:4]), longest(dual, d[7:11])


class _NormalEquations:
    """Solves ``A D A^T y = b`` for the three equality blocks E1, E2, E3 by block elimination."""

    def __init__(
        self, dx: FloatArray, du: FloatArray, dt: FloatArray, ds: FloatArray, g: FloatArray
    ) -> None:
        self.du, self.dt, self.g = du, dt, g
        self.e2 = du + dt
        safe = np.where(self.e2 > 0, self.e2, 1.0)
        self.b1 = dx.sum(axis=1) + np.where(self.e2 > 0, du * dt / safe, 0.0)
        self.b3 = g * g * dx.sum(axis=0) + ds
        self.C = dx * g  # coupling E1 x E3
        n, m = dx.shape
        if m <= n:
            S = np.diag(self.b3) - (self.C.T / self.b1) @ self.C
            self.on_sellers = True
        else:
            S = np.diag(self.b1) - (self.C / self.b3) @ self.C.T
            self.on_sellers = False
        S[np.diag_indices_from(S)] *= 1.0 + 1e-14
        try:
            self.factor: tuple[FloatArray, bool] | None = cho_factor(S)
            self.S = S
        except np.linalg.LinAlgError:
            self.factor = None
            self.S = S

    def _schur_solve(self, rhs: FloatArray) -> FloatArray:
        if self.factor is not None:
            return np.asarray(cho_solve(self.factor, rhs))
        return np.asarray(np.linalg.lstsq(self.S, rhs, rcond=None)[0])

    def solve(
        self, b1: FloatArray, b2: FloatArray, b3: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        safe = np.where(self.e2 > 0, self.e2, 1.0)
        # Eliminate E2: y2 = (b2 + du y1) / (du + dt).
        b1e = b1 + np.where(self.e2 > 0, self.du * b2 / safe, 0.0)
        if self.on_sellers:
            y3 = self._schur_solve(b3 - self.C.T @ (b1e / self.b1))
            y1 = (b1e - self.C @ y3) / self.b1
        else:
            y1 = self._schur_solve(b1e - self.C @ (b3 / self.b3))
            y3 = (b3 - self.C.T @ y1) / self.b3
        y2 = np.where(self.e2 > 0, (b2 + self.du * y1) / safe, 0.0)
        return y1, y2, y3


def _polish(
    p: P1Problem, x_ip: FloatArray, mu: FloatArray, *, tol: float
) -> tuple[FloatArray, FloatArray]:
    """Semismooth Newton on the dual from the interior point's prices; keep it if it is better."""
    scale = max(1.0, float(np.max(p.cap)), float(np.max(p.b_max)))
    # Interior-point prices of sellers with spare energy are noise-level positives: zero them.
    mu = np.where(mu > 1e-8 * max(float(np.max(mu, initial=0.0)), 1e-300), mu, 0.0)
    cur = _inner(p, mu)

    def residual(state: _Inner, prices: FloatArray) -> float:
        free = (prices > 0) | (state.grad < 0)
        return float(np.max(np.abs(state.grad[free]), initial=0.0))

    best = (residual(cur, mu), cur, mu)
    for _ in range(30):
        if best[0] <= tol * scale:
            break
        free = (mu > 0) | (cur.grad < 0)
        fidx = np.flatnonzero(free)
        H = _hessian(p, cur, free)
        H[np.diag_indices_from(H)] += 1e-13 * max(1.0, float(np.max(np.diag(H), initial=0.0)))
        try:
            step = np.linalg.solve(H, -cur.grad[fidx])
        except np.linalg.LinAlgError:
            break
        trial = mu.copy()
        trial[fidx] = np.maximum(mu[fidx] + step, 0.0)
        if np.array_equal(trial, mu):
            break
        cur, mu = _inner(p, trial), trial
        res = residual(cur, mu)
        if res < best[0]:
            best = (res, cur, mu)
    res, cur, mu = best
    feasible = float(np.max(-cur.grad, initial=0.0)) <= tol * scale * 10
    if feasible and welfare_value(p, cur.x) >= welfare_value(p, x_ip) - tol * scale:
        return cur.x, mu
    return _clean(p, x_ip), mu


def _clean(p: P1Problem, x: FloatArray) -> FloatArray:
    """Zero the interior point's vanishing volumes where that keeps (12) and (13)."""
    tiny = 1e-10 * max(1.0, float(np.max(x, initial=0.0)))
    y = np.where(x > tiny, x, 0.0)
    X = y.sum(axis=1)
    if np.all(p.b_min * (1 - 1e-12) <= X):
        return y
    return x


def _repair(p: P1Problem, x: FloatArray) -> FloatArray:
    """Remove rounding-level breaches of (12) upper bounds and (13) by scaling down."""
    load = p.g * x.sum(axis=0)
    over = load > p.cap
    if np.any(over):
        x = x * np.where(over, p.cap / np.where(over, load, 1.0), 1.0)[None, :]
    X = x.sum(axis=1)
    high = p.b_max < X
    if np.any(high):
        x = x * np.where(high, p.b_max / np.where(high, X, 1.0), 1.0)[:, None]
    return x
