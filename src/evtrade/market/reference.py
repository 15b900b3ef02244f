"""P1 by a generic conic solver (cvxpy + Clarabel): the independent reference for tests and
benchmarks. Never used at run time; cvxpy is a development dependency (``pip install .[dev]``).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import SolverError
from evtrade.market.welfare import P1Problem


def solve_p1_cvxpy(problem: P1Problem) -> tuple[float, NDArray[np.float64]]:
    """Return (optimal welfare, volumes) of P1 as computed by cvxpy with Clarabel."""
    # Imported dynamically: cvxpy is optional and only partly typed.
    cp: Any = importlib.import_module("cvxpy")

    sp: Any = importlib.import_module("scipy.sparse")

    p = problem
    n, m = p.mask.shape
    bi, sj = np.nonzero(p.mask)
    if bi.size == 0:
        if np.any(p.b_min > 0):
            raise SolverError("cvxpy reference: infeasible (a buyer with b_min > 0, no pairs)")
        return 0.0, np.zeros((n, m))
    # One variable per pair that may trade (x_ij = 0 elsewhere), sums by sparse matrices.
    k = bi.size
    rows_of = sp.csr_matrix((np.ones(k), (bi, np.arange(k))), shape=(n, k))
    cols_of = sp.csr_matrix((np.ones(k), (sj, np.arange(k))), shape=(m, k))
    x: Any = cp.Variable(k, nonneg=True)
    X = rows_of @ x
    objective = (
        cp.sum(cp.multiply(p.w, cp.log(X - p.b_min + 1)))
        - cp.sum(cp.multiply(p.a[sj], cp.square(x)))
        - cp.sum(cp.multiply(p.e[sj], x))
    )
    # cvxpy expression on the left so the comparison builds a constraint, not a numpy array
    cons = [X >= p.b_min, X <= p.b_max, cp.multiply(p.g, cols_of @ x) <= p.cap]  # noqa: SIM300
    value = _maximise(cp, objective, cons)
    out = np.zeros((n, m))
    out[bi, sj] = np.asarray(x.value, dtype=float)
    return value, out


def solve_swm2_cvxpy(
    mask: NDArray[np.bool_],
    w: NDArray[np.float64],
    d_min: NDArray[np.float64],
    d_max: NDArray[np.float64],
    efficiency: NDArray[np.float64],
    s_max: NDArray[np.float64],
    *,
    l1: float,
    l2: float,
) -> float:
    """BABG's SWM2 (eqs. 12-15) by cvxpy with Clarabel: its optimal welfare."""
    cp: Any = importlib.import_module("cvxpy")
    n, m = mask.shape
    s: Any = cp.Variable((n, m), nonneg=True)
    D = cp.sum(cp.multiply(s, np.broadcast_to(efficiency, (n, m))), axis=1)
    S = cp.sum(s, axis=0)
    rows = np.flatnonzero(mask.any(axis=1))
    objective = cp.sum(cp.multiply(w[rows], cp.log(D[rows] - d_min[rows] + 1))) - cp.sum(
        l1 * cp.square(S) + l2 * S
    )
    # cvxpy expressions on the left so the comparisons build constraints
    cons = [D[rows] >= d_min[rows], D[rows] <= d_max[rows], S <= s_max]  # noqa: SIM300
    if (~mask).any():
        cons.append(cp.multiply(s, (~mask).astype(float)) == 0)
    return _maximise(cp, objective, cons)


def _maximise(cp: Any, objective: Any, cons: list[Any]) -> float:
    """Solve ``max objective s.t. cons`` with Clarabel: the optimal value (SolverError if none)."""
    prob = cp.Problem(cp.Maximize(objective), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise SolverError(f"cvxpy reference: status {prob.status}")
    return float(prob.value)
