"""Scaling figure: seconds to clear P1 vs number of buyer-seller pairs, project and reference.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/scaling.py --out docs/figures/performance``).
Two market families, both square (N = M): the paper-scale scenario of ``evtrade.sim`` scaled up
(through ``evtrade.clear``) and the all-capacities-bind P1 of ``evtrade.bench`` (through
``solve_p1``). The reference, cvxpy + Clarabel on the same P1, runs up to ``--ref-max`` per side;
its failures are plotted as crosses. Writes ``scaling.csv`` and ``scaling.png``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from evtrade.bench import binding_problem
from evtrade.market.mechanisms.eta import clear, p1_problem
from evtrade.market.reference import solve_p1_cvxpy
from evtrade.market.welfare import solve_p1
from evtrade.sim.scenarios import ScenarioSpec, random_market


def timed(fn) -> tuple[float, bool]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    try:
        fn()
        ok = True
    except Exception:
        ok = False
    return time.perf_counter() - t0, ok


def measure(n: int, *, with_reference: bool) -> dict[str, float | bool]:
    market = random_market(ScenarioSpec().scaled(n, n), np.random.default_rng(n))
    clear(market)
    t_clear = min(timed(lambda: clear(market))[0] for _ in range(2 if n <= 1000 else 1))
    bind = binding_problem(n, n, seed=n)
    solve_p1(bind)
    t_bind = timed(lambda: solve_p1(bind))[0]
    row: dict[str, float | bool] = {
        "n": n,
        "pairs": n * n,
        "scenario_s": t_clear,
        "binding_s": t_bind,
    }
    if with_reference:
        p = p1_problem(market)
        row["ref_scenario_s"], row["ref_scenario_ok"] = timed(lambda: solve_p1_cvxpy(p))
        row["ref_binding_s"], row["ref_binding_ok"] = timed(lambda: solve_p1_cvxpy(bind))
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("docs/figures/performance"))
    sizes = [20, 35, 50, 100, 150, 200, 300, 500, 1000, 2000, 3000]
    ap.add_argument("--sizes", type=int, nargs="*", default=sizes)
    ap.add_argument("--ref-max", type=int, default=250)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        rows.append(measure(n, with_reference=n <= args.ref_max))
    keys = sorted({k for r in rows for k in r})
    with (args.out / "scaling.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pairs = np.array([r["pairs"] for r in rows])
    ax.loglog(pairs, [r["scenario_s"] for r in rows], "o-", label="evtrade.clear, scenario")
    ax.loglog(pairs, [r["binding_s"] for r in rows], "s-", label="solve_p1, all capacities bind")
    for key, style, label in (
        ("ref_scenario", "o--", "cvxpy+Clarabel, scenario"),
        ("ref_binding", "s--", "cvxpy+Clarabel, binding"),
    ):
        ref = [r for r in rows if f"{key}_s" in r]
        ok = [r for r in ref if r[f"{key}_ok"]]
        bad = [r for r in ref if not r[f"{key}_ok"]]
        ax.loglog([r["pairs"] for r in ok], [r[f"{key}_s"] for r in ok], style, label=label)
        if bad:
            ax.loglog(
                [r["pairs"] for r in bad],
                [r[f"{key}_s"] for r in bad],
                "x",
                color="red",
                markersize=9,
                label=f"{label}: failed",
            )
    ax.set_xlabel("buyer-seller pairs (N x M)")
    ax.set_ylabel("seconds (this machine, 2 cores)")
    ax.set_title("P1 clearing time vs market size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "scaling.png", dpi=120)
    print(f"wrote {args.out / 'scaling.png'}")


if __name__ == "__main__":
    main()
