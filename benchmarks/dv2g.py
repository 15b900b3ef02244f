"""DV2G's Stackelberg loop at scale (issue 15: 1,000 EVs x 100 grids x 24 slots in <= 10 s).

Run: ``.venv/bin/python benchmarks/dv2g.py [--evs 1000] [--grids 100] [--slots 24] [--seed 1]``.
Prints, for :func:`evtrade.market.dv2g_game.stackelberg` on a seeded random day (70 % of the EVs
sell, supply in [0, 3] kWh, needs in [0, 40] kWh, xi in [0.3, 0.6], kappa in [0.02, 0.2], floors
in [0.05, 0.15]): wall and CPU time (``time.process_time``: the machine may be shared), both
loops' iterations and how many slots converged. Then, in the same process, the reference: the
same loop on a 100 EVs x 10 grids day (its time per EV-grid-slot cell against the main run's),
and Algorithm 1 as printed (the replicator from the uniform start, eq. 32-33) once at the
reference day's first prices, the step the loop before the closed form re-ran at every price
update.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evtrade.market.dv2g_game import Equilibrium, GameOptions, first_bid, stackelberg

Day = tuple[np.ndarray, ...]


def random_day(evs: int, grids: int, slots: int, seed: int) -> Day:
    """(price0, supply, need, xi, kappa, floor) of a seeded random day."""
    rng = np.random.default_rng(seed)
    t, m, n = slots, evs, grids
    supply = rng.uniform(0.0, 3.0, (t, m)) * (rng.random((t, m)) < 0.7)
    need = rng.uniform(0.0, 40.0, (t, n))
    xi = rng.uniform(0.3, 0.6, (t, n))
    kappa = rng.uniform(0.02, 0.2, n)
    floor = np.broadcast_to(rng.uniform(0.05, 0.15, m), (t, m)).copy()
    price0 = rng.uniform(0.15, 0.4, (t, m))
    return price0, supply, need, xi, kappa, floor


def timed(day: Day) -> tuple[Equilibrium, float, float]:
    """The loop on ``day``: (equilibrium, wall s, CPU s)."""
    wall, cpu = time.perf_counter(), time.process_time()
    eq = stackelberg(*day, GameOptions())
    return eq, time.perf_counter() - wall, time.process_time() - cpu


def report(label: str, eq: Equilibrium, wall: float, cpu: float) -> str:
    slots = len(eq.converged)
    return (
        f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU; outer iterations max "
        f"{eq.iterations.max()} mean {eq.iterations.mean():.1f}; replicator steps after the "
        f"closed-form start {eq.egt_iterations.sum()}; converged {int(eq.converged.sum())}/"
        f"{slots} slots; final residual max "
        f"{eq.residuals[eq.iterations, np.arange(slots)].max():.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evs", type=int, default=1000)
    parser.add_argument("--grids", type=int, default=100)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    m, n, t = args.evs, args.grids, args.slots
    eq, wall, cpu = timed(random_day(m, n, t, args.seed))
    print(report(f"dv2g stackelberg {m} EVs x {n} grids x {t} slots", eq, wall, cpu))
    ref_day = random_day(100, 10, t, args.seed)
    ref, ref_wall, ref_cpu = timed(ref_day)
    print(report(f"reference 100 EVs x 10 grids x {t} slots", ref, ref_wall, ref_cpu))
    cells = (m * n) / (100 * 10)
    print(
        f"cells x{cells:.0f}, CPU time x{cpu / max(ref_cpu, 1e-9):.1f} "
        f"(CPU per cell {cpu / max(ref_cpu, 1e-9) / cells:.2f} of the reference's)"
    )
    w, c = time.perf_counter(), time.process_time()
    _, sel, _ = first_bid(*ref_day, GameOptions())
    print(
        f"Algorithm 1 from the uniform start at the reference's first prices: "
        f"{time.perf_counter() - w:.2f} s wall, {time.process_time() - c:.2f} s CPU, "
        f"{sel.iterations.max()} replicator steps (max per slot), converged "
        f"{int(sel.converged.sum())}/{t}"
    )


if __name__ == "__main__":
    main()
