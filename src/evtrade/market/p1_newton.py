"""The pieces of P1's dual Newton method shared by the single and the batch solver.

:mod:`evtrade.market.welfare` solves one market, :mod:`evtrade.market.welfare_batch` a stack of
markets with a leading batch axis; both run the same method (projected semismooth Newton on the
dual D(mu) of the seller capacities (13), certified by the duality gap), and every formula and
tolerance of that method lives here once. Arrays may carry leading batch axes: per-buyer arrays
are (..., N), per-seller (..., M), volumes (..., N, M); per-market figures come out with the
leading axes (0-d for one market).

The arithmetic of each function is the one the single solver used (its output feeds the CLI's
JSON, which must not change by a bit); :func:`dot` keeps BLAS's dot product for one market.
The method, with its references (ETA's P1, Bertsekas' projected Newton), is described in
:mod:`evtrade.market.welfare`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from evtrade.market.objectives import buyer_utility

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: A solution is accepted when its duality gap is at most this fraction of max(1, |welfare|).
GAP_RTOL = 1e-9
#: ... and its projected dual gradient (the capacity residuals) at most this fraction of the scale.
RESIDUAL_RTOL = 1e-8
#: The dual Newton method stops at a projected gradient of this fraction of the energy scale
#: (1e-10 of ~20 kWh); the certificate, not this, decides whether the point is accepted.
NEWTON_RTOL = 1e-10
EPS = float(np.finfo(float).eps)
#: Weight of the Levenberg-Marquardt term of the dual Newton step (see :func:`regularisation`).
LM_WEIGHT = 1e-2
#: Newton iterations after which a residual still above CRAWL_RTOL of the scale means a crawl.
SLOW_AFTER = 12
#: A residual above this fraction of the scale after SLOW_AFTER iterations: a linear crawl
#: through kinks (a degenerate market), where the interior-point safeguard is faster.
CRAWL_RTOL = 1e-5
#: Below this fraction of the scale the residual is at rounding level: a run of steps without
#: progress, or repeated failed line searches, end the method there.
ROUNDING_RTOL = 1e-7
#: Near the optimum (residual below this fraction of the scale) a step that halves the residual
#: is accepted even without Armijo's decrease, which is then below the rounding of D itself.
NEAR_RTOL = 1e-6
#: Halvings of the step before a line search gives up.
LINE_SEARCH_STEPS = 13
#: A certificate needs volumes that break (12)-(13) by at most this fraction of the energy scale.
#: Weak duality, D(mu) >= welfare, holds for feasible volumes only: a point that gives buyers
#: 1e-8 kWh less than b_min can show a welfare above D(mu), a negative gap that certifies nothing
#: (issue 11: gap -3.7e-8, the repaired Newton point ~1e-9 of the scale below b_min). A breach of
#: at most 1e-10 of the scale overstates the welfare by at most ~1e-10 x scale x the largest
#: marginal utility, below the gap tolerance; converged Newton points breach by ~1e-11 (the
#: capacity residual the repair must cut from buyers at b_min), which stays accepted.
FEAS_RTOL = 1e-10


def dot(u: FloatArray, v: FloatArray) -> FloatArray:
    """``sum_j u_j v_j`` over the last axis: BLAS's dot for one market, per market for a stack."""
    if u.ndim <= 1:
        return np.asarray(np.dot(u, v))
    return np.asarray((u * v).sum(axis=-1))


def energy_scale(cap: FloatArray, b_max: FloatArray) -> FloatArray:
    """The energy yardstick ``max(1, max_j cap_j, max_i b_i^max)`` of each market (kWh)."""
    return np.asarray(np.maximum(1.0, np.maximum(cap.max(axis=-1), b_max.max(axis=-1))))


def buyer_totals(
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


def pair_volumes(
    lam: FloatArray, c: FloatArray, k: FloatArray, mask_float: FloatArray, buys: BoolArray
) -> FloatArray:
    """The water-filling ``x_ij = k_j (lambda_i - c_j)^+`` on the pairs that may trade.

    ``c_j = e_j + g_j mu_j`` is seller j's marginal cost at prices mu, ``k_j = 1 / (2 a_j)``;
    buyers outside ``buys`` take nothing.
    """
    x = lam[..., :, None] - c[..., None, :]
    np.maximum(x, 0.0, out=x)
    x *= k[..., None, :]
    x *= mask_float
    x[~buys] = 0.0
    return x


def dual_value(
    x: FloatArray,
    X: FloatArray,
    colsum: FloatArray,
    grad: FloatArray,
    mu: FloatArray,
    *,
    w: FloatArray,
    b_min: FloatArray,
    a: FloatArray,
    e: FloatArray,
) -> FloatArray:
    """D(mu) at the water-filling ``x`` for prices mu: eq. (11) at x plus ``mu . grad``.

    ``X`` are the buyers' totals, ``colsum`` the sellers', ``grad = cap - g colsum`` = dD/dmu.
    """
    sq = np.einsum("...ij,...ij->...j", x, x)
    return np.asarray(buyer_utility(X, w, b_min) - dot(a, sq) - dot(e, colsum) + dot(mu, grad))


def curvature_weights(
    X: FloatArray, K: FloatArray, w: FloatArray, b_min: FloatArray, b_max: FloatArray
) -> FloatArray:
    """Per buyer, d lambda_i / d c per unit of k: ``t_i`` of the generalised Hessian.

    ``K_i`` is the sum of k_j over the sellers buyer i buys from. A buyer inside (b_min, b_max)
    has ``t = u / (1 + K u)`` with ``u = -U''(X) = w / (X - b_min + 1)^2``; one held at a bound
    ``t = 1 / K``; one that buys nothing 0.
    """
    interior = (b_min * (1 + 1e-14) + 1e-14 < X) & (b_max * (1 - 1e-14) - 1e-14 > X)
    curv = np.where(interior, w / (X - b_min + 1.0) ** 2, np.inf)  # -U''(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.isinf(curv), 1.0 / K, curv / (1.0 + K * curv))
    return np.asarray(np.where(K > 0, t, 0.0))


def projected_residual(grad: FloatArray, mu: FloatArray) -> FloatArray:
    """Optimality of mu >= 0: the gradient vanishes where mu > 0 and is >= 0 where mu = 0."""
    pg = np.where(mu > 0, grad, np.minimum(grad, 0.0))
    return np.asarray(np.max(np.abs(pg), axis=-1, initial=0.0))


def floor_prices(pi: FloatArray | float, e: FloatArray, g: FloatArray) -> FloatArray:
    """Prices that lift every seller whose own cost e_j is below pi to marginal cost pi."""
    return np.asarray(np.maximum((pi - e) / g, 0.0))


def entry_step(
    mask: BoolArray, lam: FloatArray, e: FloatArray, g: FloatArray, mu: FloatArray
) -> FloatArray:
    """Step of a seller nobody buys from: D is linear in its mu_j, so it jumps to the entry
    price, where its best partner's marginal utility lambda meets its cost (c_j = lambda)."""
    best = np.max(np.where(mask, lam[..., None], 0.0), axis=-2)
    return np.asarray(np.maximum((best - e) / g, 0.0) - mu)


def regularisation(
    h_diag: FloatArray,
    raw: FloatArray,
    *,
    damping: FloatArray | float,
    relres: FloatArray | float,
    hmax: FloatArray | float,
) -> FloatArray:
    """What the Newton system adds to its diagonal.

    A Levenberg-Marquardt term proportional to the relative residual ``relres`` on flat sellers:
    when all of a seller's buyers are held at b_min or b_max its curvature ``h_diag`` cancels
    against ``raw = g^2 sum_i k`` and D is linear along mu_j; there the step is a scaled gradient
    step, and the term vanishes as the residual does (local convergence kept). ``damping`` is the
    adaptive part (:func:`damping_after_failure`); ``1e-14 hmax`` keeps the factorisation defined.
    """
    flat = h_diag <= 1e-8 * raw
    lm = (damping + np.where(flat, LM_WEIGHT * relres, 0.0)) * raw
    return np.asarray(lm + 1e-14 * hmax)


def rounding_floor(hmax: FloatArray | float, mu_max: FloatArray | float) -> FloatArray:
    """The residual rounding allows: eps x (curvature) x (price)."""
    return np.asarray(64 * EPS * hmax * mu_max)


def newton_stops(
    res: FloatArray | float,
    scale: FloatArray | float,
    *,
    tol: float,
    floor: FloatArray | float,
    stall: NDArray[np.int64] | int,
) -> BoolArray:
    """Converged (``tol`` of the scale, or the rounding floor), or stalled at rounding level."""
    done = res <= np.maximum(tol * scale, floor)
    return np.asarray(done | ((stall >= 3) & (res <= ROUNDING_RTOL * scale)))


def crawling(
    iterations: NDArray[np.int64] | int,
    res: FloatArray | float,
    scale: FloatArray | float,
    patience: int = SLOW_AFTER,
) -> BoolArray:
    """A linear crawl through kinks: the interior-point safeguard is faster from here."""
    return np.asarray((iterations > patience) & (res > CRAWL_RTOL * scale))


def near_optimum(res: FloatArray | float, scale: FloatArray | float) -> BoolArray:
    """Where the line search may accept a step on the residual alone (see NEAR_RTOL)."""
    return np.asarray(res <= NEAR_RTOL * scale)


def step_accepted(
    new_dual: FloatArray | float,
    dual: FloatArray | float,
    decrease: FloatArray | float,
    *,
    near: BoolArray | bool,
    new_res: FloatArray | float,
    res: FloatArray | float,
) -> BoolArray:
    """Armijo's test on D (to D's rounding), or, ``near`` the optimum, a halved residual.

    ``decrease = grad . (mu - trial)``: the first-order decrease of D along the projection arc.
    """
    slack = 1e-15 * np.maximum(np.abs(dual), 1.0)  # the dual is only known to rounding
    armijo = new_dual <= dual - 1e-4 * decrease + slack
    return np.asarray(armijo | (near & (new_res <= 0.5 * res)))


def damping_after_full_step(damping: FloatArray | float) -> FloatArray:
    """The adaptive damping shrinks after a full step, so pure Newton steps are kept wherever
    they work."""
    d = np.asarray(damping)
    return np.asarray(np.where(d < 1e-8, 0.0, d / 10))


def damping_after_failure(damping: FloatArray | float) -> FloatArray:
    """... and grows after a failed line search, towards a scaled gradient step."""
    return np.asarray(np.maximum(100 * np.asarray(damping), 1e-2))


def gives_up(
    damping: FloatArray | float,
    res: FloatArray | float,
    scale: FloatArray | float,
    failures: NDArray[np.int64] | int,
) -> BoolArray:
    """After a failed line search: no descent left (rounding level, or a dead end)."""
    return np.asarray((damping >= 1e4) | ((res <= ROUNDING_RTOL * scale) & (failures > 2)))


def feasibility_violation(
    x: FloatArray, b_min: FloatArray, b_max: FloatArray, g: FloatArray, cap: FloatArray
) -> FloatArray:
    """Largest breach of (12), (13) and x >= 0 by ``x``, relative to max(1, b_max, cap).

    Works on (..., N, M) stacks (one figure per market). A certificate needs it at rounding level
    (:data:`FEAS_RTOL`): weak duality bounds the welfare of feasible volumes only.
    """
    X = x.sum(axis=-1)
    load = g * x.sum(axis=-2)
    scale = np.maximum(np.maximum(b_max.max(axis=-1), cap.max(axis=-1)), 1.0)
    breach = np.maximum.reduce(
        [
            np.max(b_min - X, axis=-1),
            np.max(X - b_max, axis=-1),
            np.max(load - cap, axis=-1),
            np.max(-x, axis=(-2, -1)),
            np.zeros(np.shape(scale)),
        ]
    )
    return np.asarray(breach / scale)


def converged(residual: FloatArray | float, scale: FloatArray | float) -> BoolArray:
    """The projected gradient is small: the duality gap alone is weak on volumes (welfare is
    flat to second order), so a certificate asks for this too."""
    return np.asarray(residual <= RESIDUAL_RTOL * scale)


def gap_closed(dual: FloatArray | float, welfare: FloatArray | float) -> BoolArray:
    """Duality gap within GAP_RTOL of max(1, |welfare|)."""
    return np.asarray(dual - welfare <= GAP_RTOL * np.maximum(1.0, np.abs(welfare)))


def certified(
    violation: FloatArray | float, dual: FloatArray | float, welfare: FloatArray | float
) -> BoolArray:
    """Feasible (12)-(13) to rounding and the duality gap closed.

    Feasibility comes first: only then is D(mu) an upper bound on the welfare of x (weak
    duality), so that a small gap proves x optimal.
    """
    return np.asarray((violation <= FEAS_RTOL) & gap_closed(dual, welfare))


def repair_volumes(
    x: FloatArray, b_min: FloatArray, b_max: FloatArray, g: FloatArray, cap: FloatArray
) -> FloatArray:
    """Make a nearly feasible x feasible: cut a seller's excess load from the buyers that are above
    their b_min (in proportion to what they take from it, never below b_min), scale down whatever
    excess is left, then scale down buyers above b_max. Works on (..., N, M) stacks.
    """
    load = g * x.sum(axis=-2)
    excess = np.maximum(load - cap, 0.0) / g  # kWh to remove per seller
    if np.any(excess > 0):
        room = np.maximum(x.sum(axis=-1) - b_min, 0.0)
        wgt = x * (room > 0)[..., None]
        avail = wgt.sum(axis=-2)
        frac = np.where(avail > 0, np.minimum(excess / np.where(avail > 0, avail, 1.0), 1.0), 0.0)
        cut = wgt * frac[..., None, :]
        per_buyer = cut.sum(axis=-1)
        limit = np.where(per_buyer > room, room / np.where(per_buyer > 0, per_buyer, 1.0), 1.0)
        x = x - cut * limit[..., None]
        load = g * x.sum(axis=-2)
        over = load > cap
        x = x * np.where(over, cap / np.where(over, load, 1.0), 1.0)[..., None, :]
    X = x.sum(axis=-1)
    high = b_max < X
    if np.any(high):
        x = x * np.where(high, b_max / np.where(high, X, 1.0), 1.0)[..., None]
    return np.asarray(np.maximum(x, 0.0))
