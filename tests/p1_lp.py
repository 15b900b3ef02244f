"""An independent feasibility check of P1's constraints (12)-(14) by linear programming (HiGHS).

The P1 solvers raise SolverError on a market whose minimum demands cannot all be met; tests use
:func:`min_shortfall` to prove such a market really is infeasible instead of trusting the error.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from evtrade.market.welfare import P1Problem


def min_shortfall(p: P1Problem) -> float:
    """Least total kWh by which the buyers' minimums b^min must be missed (0: P1 is feasible).

    Solves ``min sum_i s_i`` over volumes x_ij >= 0 on the pairs that may trade and shortfalls
    s_i >= 0 subject to ``X_i + s_i >= b_i^min``, ``X_i <= b_i^max`` (12) and
    ``(1 + rho_j) sum_i x_ij <= s_j^t - s_j^r`` (13).
    """
    n, m = p.mask.shape
    pairs = np.argwhere(p.mask)
    k = len(pairs)
    take = np.zeros((n, k))  # X_i as a row of the pair variables
    take[pairs[:, 0], np.arange(k)] = 1.0
    load = np.zeros((m, k))  # (1 + rho_j) sum_i x_ij
    load[pairs[:, 1], np.arange(k)] = p.g[pairs[:, 1]]
    a_ub = np.block(
        [
            [-take, -np.eye(n)],
            [take, np.zeros((n, n))],
            [load, np.zeros((m, n))],
        ]
    )
    b_ub = np.concatenate([-p.b_min, p.b_max, p.cap])
    cost = np.concatenate([np.zeros(k), np.ones(n)])
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    assert res.status == 0, res.message  # s_i = b_i^min, x = 0 is always feasible
    return float(res.fun)
