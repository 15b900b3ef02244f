"""A primal-dual interior-point method for separable convex problems on a buyer-seller market.

The family (every mechanism's volume problem is one of them)::

    min  sum_ij f(x_ij) + sum_i h(u_i) + sum_j k(s_j)
    s.t. sum_j eta_j x_ij - u_i = b_i^min,  0 <= u_i <= b_i^max - b_i^min     (buyers, E1/E2)
         sum_i g_j x_ij + s_j = cap_j,       s_j >= 0                          (sellers, E3)
         x_ij >= 0 on the pairs that may trade, 0 elsewhere

with f, h, k convex, separable and twice differentiable (each given as gradient and diagonal
Hessian). ETA's P1 (:func:`p1_model`), BABG's SWM2 and IDA's auctioneer problem A
(:mod:`evtrade.market.mechanisms.babg`, :mod:`evtrade.market.mechanisms.ida`) are instances.

Mehrotra predictor-corrector. Every Newton system reduces, by eliminating the diagonal blocks, to
one dense SPD system of size min(N, M), so an iteration costs O(N M min(N, M)). For P1,
:func:`evtrade.market.welfare.solve_p1` uses it only when its dual Newton method does not certify
an optimum (a safeguard).

References
----------
.. [M92] S. Mehrotra, "On the implementation of a primal-dual interior point method",
   SIAM J. Optim. 2(4), 1992.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve

from evtrade.errors import SolverError

if TYPE_CHECKING:
    from evtrade.market.welfare import P1Problem

FloatArray = NDArray[np.float64]
#: A separable term: values -> (gradient, diagonal Hessian), elementwise.
Term = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


@dataclass(frozen=True)
class Separable:
    """One problem of the family in the module docstring (shapes: N buyers, M sellers)."""

    mask: NDArray[np.bool_]  # (N, M)
    b_min: FloatArray  # (N,)
    b_max: FloatArray  # (N,)
    cap: FloatArray  # (M,)
    eta: FloatArray  # (M,) weight of x_ij in buyer i's total
    g: FloatArray  # (M,) weight of x_ij in seller j's load
    pair: Term  # f on x (N, M)
    buyer: Term  # h on u (N,)
    slack: Term  # k on s (M,)


@dataclass(frozen=True)
class IPMResult:
    """Primal point and multipliers: y1 of the buyer rows E1, y3 of the seller rows E3, zs of
    s >= 0 (for P1, zs = -y3 is the seller price mu of constraint 13)."""

    x: FloatArray
    u: FloatArray
    s: FloatArray
    y1: FloatArray
    y3: FloatArray
    zs: FloatArray
    iterations: int


def zero_term(v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """A term that costs nothing (gradient and Hessian 0)."""
    return np.zeros_like(v), np.zeros_like(v)


def log_utility(w: FloatArray) -> Term:
    """The buyers' term h(u) = -w ln(u + 1) (ETA eq. 11, BABG U_i of eq. 3, over u = X - b^min)."""

    def buyer(u: FloatArray) -> tuple[FloatArray, FloatArray]:
        return -w / (u + 1.0), w / (u + 1.0) ** 2

    return buyer


def p1_model(p: P1Problem) -> Separable:
    """ETA's P1: f = a x^2 + e x per pair, h = -w ln(u + 1), no slack cost, eta = 1."""

    def pair(x: FloatArray) -> tuple[FloatArray, FloatArray]:
        return 2 * p.a * x + p.e, np.broadcast_to(2 * p.a, x.shape)

    return Separable(
        mask=p.mask,
        b_min=p.b_min,
        b_max=p.b_max,
        cap=p.cap,
        eta=np.ones_like(p.g),
        g=p.g,
        pair=pair,
        buyer=log_utility(p.w),
        slack=zero_term,
    )


def solve_separable(
    p: Separable, *, tol: float, max_iter: int, what: str, hint: str = "", quiet: bool = True
) -> IPMResult:
    """:func:`interior_point`, where a breakdown (non-finite entries or a failed factorisation: an
    infeasible problem) is a SolverError naming ``what`` (then ``hint``); ``quiet`` turns numpy's
    floating-point warnings off while it runs."""
    try:
        if not quiet:
            return interior_point(p, tol=tol, max_iter=max_iter)
        with np.errstate(all="ignore"):
            return interior_point(p, tol=tol, max_iter=max_iter)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise SolverError(f"{what} broke down ({exc}){hint}") from exc


def interior_point(p: Separable, *, tol: float, max_iter: int) -> IPMResult:
    """Mehrotra predictor-corrector on the problem ``p`` (see the module docstring).

    Variables z = (x >= 0 on the mask, u >= 0, t >= 0, s >= 0) with equalities
    ``sum_j eta_j x_ij - u_i = b_i^min`` (E1), ``u_i + t_i = b_i^max - b_i^min`` (E2, only where
    the range is non-empty) and ``sum_i g_j x_ij + s_j = cap_j`` (E3).
    """
    n, m = p.mask.shape
    eta = p.eta
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
        fx, hxx = p.pair(x)
        fu, huu = p.buyer(u)
        fs, hss = p.slack(s)
        rdx = M * (fx - eta * y1[:, None] - p.g * y3 - zx)
        rdu = hf * (fu + y1 - y2 - zu)
        rdt = hf * (-y2 - zt)
        rds = fs - y3 - zs
        rp1 = (x * eta).sum(axis=1) - hf * u - p.b_min
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
            return IPMResult(x=x, u=u, s=s, y1=y1, y3=y3, zs=zs, iterations=it)
        # Diagonal of the Hessian plus barrier terms; inverse on variables that exist.
        hx = M * (hxx + zx / np.where(M > 0, x, 1.0))
        dx = np.where(M > 0, 1.0 / np.where(M > 0, hx, 1.0), 0.0)
        du = np.where(hu, 1.0 / (huu + zu / np.where(hu, u, 1.0)), 0.0)
        dt = np.where(hu, 1.0 / (zt / np.where(hu, t, 1.0)), 0.0)
        ds = 1.0 / (hss + zs / s)
        # Non-finite entries (an infeasible market) make cho_factor raise ValueError; callers
        # turn that into a SolverError.
        system = _NormalEquations(dx, du, dt, ds, p.g, eta)

        def direction(
            cx: FloatArray, cu: FloatArray, ct: FloatArray, cs: FloatArray
        ) -> tuple[FloatArray, ...]:
            # c*: complementarity targets; returns the full Newton direction.
            rhx = -rdx + M * cx / np.where(M > 0, x, 1.0)
            rhu = -rdu + hf * cu / np.where(hu, u, 1.0)
            rht = -rdt + hf * ct / np.where(hu, t, 1.0)
            rhs_ = -rds + cs / s
            b1 = -rp1 - ((dx * rhx * eta).sum(axis=1) - hf * du * rhu)
            b2 = -rp2 - hf * (du * rhu + dt * rht)
            b3 = -rp3 - (p.g * (dx * rhx).sum(axis=0) + ds * rhs_)
            d1, d2, d3 = system.solve(b1, b2, b3)

            def primal(
                d1: FloatArray, d2: FloatArray, d3: FloatArray
            ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
                # The primal steps (x, u, t, s) from the multipliers' steps (back-substitution).
                dxv = dx * (rhx + eta * d1[:, None] + p.g * d3)
                return dxv, du * (rhu - d1 + d2), dt * (rht + d2), ds * (rhs_ + d3)

            for _ in range(2):  # iterative refinement of the ill-conditioned normal equations
                dxv, duv, dtv, dsv = primal(d1, d2, d3)
                e1 = (dxv * eta).sum(axis=1) - hf * duv + rp1
                e2 = hf * (duv + dtv) + rp2
                e3 = p.g * dxv.sum(axis=0) + dsv + rp3
                c1, c2, c3 = system.solve(-e1, -e2, -e3)
                d1, d2, d3 = d1 + c1, d2 + c2, d3 + c3
            dxv, duv, dtv, dsv = primal(d1, d2, d3)
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
    raise SolverError(f"interior point did not converge in {max_iter} iterations")


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
        self,
        dx: FloatArray,
        du: FloatArray,
        dt: FloatArray,
        ds: FloatArray,
        g: FloatArray,
        eta: FloatArray,
    ) -> None:
        self.du, self.dt, self.g = du, dt, g
        self.e2 = du + dt
        safe = np.where(self.e2 > 0, self.e2, 1.0)
        self.b1 = (dx * (eta * eta)).sum(axis=1) + np.where(self.e2 > 0, du * dt / safe, 0.0)
        self.b3 = g * g * dx.sum(axis=0) + ds
        self.C = dx * (g * eta)  # coupling E1 x E3
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
