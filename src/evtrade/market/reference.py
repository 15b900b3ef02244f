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

    p = problem
    n, m = p.mask.shape
    x: Any = cp.Variable((n, m), nonneg=True)
    X = cp.sum(x, axis=1)
    objective = (
        cp.sum(cp.multiply(p.w, cp.log(X - p.b_min + 1)))
        - cp.sum(cp.multiply(p.a, cp.sum(cp.square(x), axis=0)))
        - cp.sum(cp.multiply(p.e, cp.sum(x, axis=0)))
    )
    # cvxpy expression on the left so the comparison builds a constraint, not a numpy array
    cons = [X >= p.b_min, X <= p.b_max, cp.multiply(p.g, cp.sum(x, axis=0)) <= p.cap]  # noqa: SIM300
    if (~p.mask).any():
        cons.append(cp.multiply(x, (~p.mask).astype(float)) == 0)
    prob = cp.Problem(cp.Maximize(objective), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise SolverError(f"cvxpy reference: status {prob.status}")
    return float(prob.value), np.asarray(x.value, dtype=float)
