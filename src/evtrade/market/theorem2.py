"""ETA Theorem 2 as a named variant: the price-taking supply b*_ij = (T_ij - l2 rho_j)/(2 l1 rho_j).

Eq. (18) is what a seller facing price T_ij would supply to one buyer if (12) and (13) did not
exist; it is NOT the optimum of P1. This variant clips it at zero on tradable pairs and then takes
the Euclidean projection onto the feasible set of P1 (constraints 12-14), computed by Dykstra's
alternating projections between the buyer constraints (12) and the seller constraints (13), each
of which separates into simplex-like projections solved exactly by sorting.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import SolverError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def theorem2_volumes(
    T: FloatArray, rho: FloatArray, *, l1: float, l2: float, mask: BoolArray
) -> FloatArray:
    """Unconstrained eq. (18), ``max(0, (T_ij - l2 rho_j) / (2 l1 rho_j))`` on ``mask``."""
    raw = (T - l2 * rho[None, :]) / (2.0 * l1 * rho[None, :])
    return np.where(mask, np.maximum(raw, 0.0), 0.0)


def project_rows(y: FloatArray, mask: BoolArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Project each row of ``y`` onto ``{x >= 0, x = 0 off mask, lo_i <= sum_j x_ij <= hi_i}``."""
    pos = np.where(mask, np.maximum(y, 0.0), 0.0)
    total = pos.sum(axis=1)
    target = np.clip(total, lo, hi)
    out = pos.copy()
    fix = ~np.isclose(total, target, rtol=0.0, atol=0.0)
    if np.any(fix):
        out[fix] = _shift_to_sum(np.where(mask[fix], y[fix], -np.inf), target[fix])
    return out


def _shift_to_sum(y: FloatArray, target: FloatArray) -> FloatArray:
    """Rows of ``max(0, y - tau_i)`` with sum ``target_i`` (tau_i may be negative); -inf stays 0."""
    srt = -np.sort(-y, axis=1)
    finite = np.isfinite(srt)
    csum = np.cumsum(np.where(finite, srt, 0.0), axis=1)
    k = np.arange(1, y.shape[1] + 1)
    tau = (csum - target[:, None]) / k
    nxt = np.concatenate([srt[:, 1:], np.full((y.shape[0], 1), -np.inf)], axis=1)
    ok = finite & (srt > tau) & (nxt <= tau)
    idx = np.argmax(ok, axis=1)
    t = tau[np.arange(y.shape[0]), idx]
    return np.where(np.isfinite(y), np.maximum(y - t[:, None], 0.0), 0.0)


def project_feasible(
    y: FloatArray,
    mask: BoolArray,
    b_min: FloatArray,
    b_max: FloatArray,
    deliverable: FloatArray,
    *,
    tol: float = 1e-11,
    max_iter: int = 20000,
) -> FloatArray:
    """Euclidean projection of ``y`` onto P1's feasible set, by Dykstra's algorithm.

    ``deliverable`` is (s^t - s^r) / (1 + rho_j) per seller. The feasible set must be non-empty.
    """
    x = np.where(mask, y, 0.0)
    p = np.zeros_like(x)
    q = np.zeros_like(x)
    zeros = np.zeros(x.shape[1])
    scale = max(1.0, float(np.max(np.abs(x), initial=0.0)))
    for _ in range(max_iter):
        a = project_rows(x + p, mask, b_min, b_max)
        p = x + p - a
        b = project_rows((a + q).T, mask.T, zeros, deliverable).T
        q = a + q - b
        if np.max(np.abs(b - x)) <= tol * scale and np.max(np.abs(a - b)) <= tol * scale:
            return b
        x = b
    raise SolverError("Theorem 2 projection (Dykstra) did not converge")
