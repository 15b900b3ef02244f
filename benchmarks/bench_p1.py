"""Benchmark: the project's P1 solver vs cvxpy + Clarabel on the same markets, in one process.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_p1.py [--sizes 35x40 100x100]``).
Prints, per case, the median seconds of both, their ratio and the relative welfare gap.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from evtrade.market.reference import solve_p1_cvxpy
from evtrade.market.welfare import P1Problem, solve_p1


def cvxpy_solve(p: P1Problem) -> float:
    return solve_p1_cvxpy(p)[0]


def tight_problem(n: int, m: int, seed: int) -> P1Problem:
    """A market where seller capacities bind (the hard case): 60 % dense, scarce supply."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n, m)) < 0.6
    b_min = rng.uniform(0, 2, n)
    return P1Problem.from_arrays(
        mask=mask,
        w=rng.uniform(1, 5, n),
        b_min=b_min,
        b_max=b_min + rng.uniform(6, 12, n),
        rho=rng.uniform(0.05, 0.15, m),
        spare=rng.uniform(5, 20, m) * 0.5 * n / m,
        l1=0.0025,
        l2=0.005,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", nargs="*", default=["35x40", "100x100", "200x200"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    header = ("case", "ours s", "cvxpy s", "ratio", "welfare gap", "cert gap")
    print("{:>10} {:>9} {:>9} {:>8} {:>12} {:>10}".format(*header))
    for size in args.sizes:
        n, m = (int(k) for k in size.split("x"))
        p = tight_problem(n, m, seed=n * 7 + m)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sol = solve_p1(p)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = cvxpy_solve(p)
        ref_t = time.perf_counter() - t0
        ours = statistics.median(times)
        gap = (ref - sol.welfare) / abs(ref)
        cert = sol.duality_gap / max(1.0, abs(sol.welfare))
        print(f"{size:>10} {ours:9.4f} {ref_t:9.4f} {ref_t / ours:8.1f} {gap:12.2e} {cert:10.1e}")


if __name__ == "__main__":
    main()
