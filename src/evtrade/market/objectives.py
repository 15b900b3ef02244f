"""The welfare objectives of the mechanisms, each written once (ETA eq. (11), BABG eq. (12)).

Every function takes volumes with optional leading batch axes: ``x`` is (..., N, M) (buyers by
sellers) and per-buyer arrays are (..., N), per-seller arrays (..., M); the result has the
leading axes (a 0-d float for a single market). Callers convert with ``float()``.

Signatures::

    buyer_utility(X, w, b_min, in_round=None) -> sum_i w_i ln(X_i - b_i^min + 1)
    eta_welfare(x, w, b_min, rho, l1, l2, *, in_round=None, squares="sum") -> ETA eq. (11)
    seller_cost(s, *, l1, l2) -> sum_j C_j(S_j) (BABG eq. 4)
    swm2_welfare(s, d, w, d_min, *, l1, l2) -> BABG SWM2 eq. (12)
    cost_performance(welfare, cost) -> BABG eq. (36), None without loss

The order of every sum is the one the outputs were first computed with (issue 17: the clearing
JSON and the figures' CSVs stay bit for bit the same); do not reorder the arithmetic.

References
----------
.. [ETA] Xia et al., problem P1, eq. (11) with the loss of eqs. (15)-(16).
.. [BABG] Luo et al., utility U_i and loss C_j (eqs. 3-4), SWM2 (eq. 12), cost performance (36).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
#: An array broadcast against the others, or one number for every slot.
Floats = FloatArray | float

#: Floor of the logarithm's argument: a buyer far below b^min - 1 counts a large finite loss
#: instead of -inf (such volumes are infeasible; the floor keeps sums and comparisons defined).
LOG_FLOOR = 1e-300


def buyer_utility(
    X: FloatArray, w: Floats, b_min: Floats, in_round: BoolArray | None = None
) -> FloatArray:
    """``sum_i w_i ln(X_i - b_i^min + 1)`` over the last axis (ETA eq. 11, BABG U_i of eq. 3).

    ``X`` are the buyers' totals (..., N). Buyers outside ``in_round`` (when given) count 0.
    """
    util = w * np.log(np.maximum(X - b_min + 1.0, LOG_FLOOR))
    if in_round is not None:
        util = np.where(in_round, util, 0.0)
    return np.asarray(util.sum(axis=-1))


def eta_welfare(
    x: FloatArray,
    w: Floats,
    b_min: Floats,
    rho: Floats,
    l1: Floats,
    l2: Floats,
    *,
    in_round: BoolArray | None = None,
    squares: Literal["sum", "einsum"] = "sum",
) -> FloatArray:
    """ETA eq. (11): ``sum_i w_i ln(X_i - b_i^min + 1) - sum_j rho_j (l1 sum_i x_ij^2 + l2 X_j)``.

    Parameters
    ----------
    x : (..., N, M) volumes in kWh
    w, b_min : (..., N) buyers' weights and minimum demands
    rho, l1, l2 : the loss of eq. (16) per seller, broadcast against (..., M). A problem that
        stores the folded coefficients ``a_j = l1 rho_j``, ``e_j = l2 rho_j`` passes ``rho=1.0,
        l1=a, l2=e`` (multiplying by 1.0 is exact).
    in_round : (..., N) bool, optional
        Buyers whose utility counts; the others count 0 (ETA's round excludes them).
    squares : {"sum", "einsum"}, keyword-only
        How ``sum_i x_ij^2`` is reduced: ``numpy.sum`` or ``numpy.einsum``. They agree to the
        last bit except on one-seller markets, where numpy's sum is pairwise; the clearing result
        uses "sum" and the P1 solvers "einsum", and each keeps its own so that the reported
        welfare and duality gap do not change by a bit.
    """
    xx = np.asarray(x, dtype=float)
    by_einsum = squares == "einsum"
    sq = np.einsum("...ij,...ij->...j", xx, xx) if by_einsum else (xx * xx).sum(axis=-2)
    cost = rho * (l1 * sq + l2 * xx.sum(axis=-2))
    return np.asarray(buyer_utility(xx.sum(axis=-1), w, b_min, in_round) - cost.sum(axis=-1))


def seller_cost(s: FloatArray, *, l1: float, l2: float) -> FloatArray:
    """Total loss ``sum_j C_j(S_j) = sum_j l1 S_j^2 + l2 S_j`` of drained energy s (..., N, M)
    (BABG eq. 4), ``S_j = sum_i s_ji``."""
    S = s.sum(axis=-2)
    return np.asarray(np.sum(l1 * S * S + l2 * S, axis=-1))


def swm2_welfare(
    s: FloatArray, d: FloatArray, w: Floats, d_min: Floats, *, l1: float, l2: float
) -> FloatArray:
    """SWM2's objective (BABG eq. 12) ``sum_i U_i(D_i) - sum_j C_j(S_j)`` of an allocation.

    ``s`` (..., N, M) is the energy drained from the sellers, ``d`` what the buyers receive
    (d = rho s). Buyers served below d^min count 0 (unserved), to a relative slack of 1e-9.
    """
    D = d.sum(axis=-1)
    served = D - d_min * (1 - 1e-9) >= -1e-9
    return np.asarray(buyer_utility(D, w, d_min, served) - seller_cost(s, l1=l1, l2=l2))


def cost_performance(welfare: float, cost: float) -> float | None:
    """BABG's cost performance (eq. 36), ``welfare / sum_j C_j``; None when the sellers lose
    nothing (no trade), where the ratio is undefined."""
    return None if cost <= 0 else welfare / cost
