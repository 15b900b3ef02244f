"""DV2G's Stackelberg loop at scale (issue 15: 1,000 EVs x 100 grids x 24 slots in <= 10 s).

Run: ``.venv/bin/python benchmarks/dv2g.py [--evs 1000] [--grids 100] [--slots 24] [--seed 1]``.
Prints the wall time of :func:`evtrade.market.dv2g_game.stackelberg` on a seeded random day
(supply and need drawn per slot, xi in [0.3, 0.6], kappa in [0.02, 0.2], floors in [0.05, 0.15]),
the iterations of both loops and how many slots converged.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evtrade.market.dv2g_game import GameOptions, stackelberg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evs", type=int, default=1000)
    parser.add_argument("--grids", type=int, default=100)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    t, m, n = args.slots, args.evs, args.grids
    supply = rng.uniform(0.0, 3.0, (t, m)) * (rng.random((t, m)) < 0.7)
    need = rng.uniform(0.0, 40.0, (t, n))
    xi = rng.uniform(0.3, 0.6, (t, n))
    kappa = rng.uniform(0.02, 0.2, n)
    floor = np.broadcast_to(rng.uniform(0.05, 0.15, m), (t, m)).copy()
    price0 = rng.uniform(0.15, 0.4, (t, m))
    start = time.perf_counter()
    eq = stackelberg(price0, supply, need, xi, kappa, floor, GameOptions())
    elapsed = time.perf_counter() - start
    print(
        f"dv2g stackelberg: {m} EVs x {n} grids x {t} slots in {elapsed:.2f} s; "
        f"outer iterations max {eq.iterations.max()} mean {eq.iterations.mean():.1f}; "
        f"EGT iterations total {eq.egt_iterations.sum()}; "
        f"converged {int(eq.converged.sum())}/{t} slots; "
        f"last residual max {eq.residuals[-1].max():.2e}"
    )


if __name__ == "__main__":
    main()
