"""Sweep benchmark: runs per second of a sweep on 1, 2 and 4 local Dask workers against a plain
loop in this process, and the overhead per run.

Run: ``.venv/bin/python benchmarks/sweep.py`` (``--replicates N`` per mechanism; ``--workers``
to choose the cluster sizes).

The runs are paper scale: ETA (Zhou et al.'s 35 buyers x 40 sellers, P1 by Newton) and BABG (Luo
et al.'s Table II, 35 x 40, the two-way auction), ``--replicates`` of each. Every configuration
writes its own records (a fresh directory), so nothing is skipped; the local cluster's start-up
is timed apart (``start s``) from the sweep itself (``sweep s``). ``overhead/run`` is the sweep's
wall time per run times the workers, less the mean time a run spends drawing and clearing its
market (the records' timing columns): scheduling, pickling and writing, per run and worker.
Workers beyond the machine's cores only share them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from evtrade.sim.sweep import Sweep, sweep_from_dict
from evtrade.sim.sweep_exec import dask_client, execute
from evtrade.sim.sweep_store import read_records


def paper_sweep(replicates: int) -> Sweep:
    return sweep_from_dict(
        {
            "sweep": {
                "name": "bench",
                "seed": 2024,
                "replicates": replicates,
                "mechanisms": ["eta", "babg"],
                "sizes": [[35, 40]],
            }
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    sweep = paper_sweep(args.replicates)
    n = sweep.size()
    print(f"{n} runs (ETA and BABG, 35 x 40), {os.cpu_count()} cores")
    print(f"{'executor':>10} {'start s':>8} {'sweep s':>8} {'runs/s':>8} {'run ms':>7} "
          f"{'overhead/run ms':>16}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [0, *args.workers]:
            out = Path(tmp) / f"w{workers}"
            start = 0.0
            if workers == 0:
                t0 = time.perf_counter()
                execute(sweep, out, workers=0)
                wall = time.perf_counter() - t0
            else:
                # the cluster is started once here and reused by execute through its address
                t0 = time.perf_counter()
                with dask_client(None, workers) as client:
                    start = time.perf_counter() - t0
                    t1 = time.perf_counter()
                    execute(sweep, out, scheduler=client.scheduler.address)
                    wall = time.perf_counter() - t1
            table = read_records(out).to_pydict()
            compute = [
                a + b for a, b in zip(table["time_market_s"], table["time_clear_s"], strict=True)
            ]
            per_run = sum(compute) / len(compute)
            lanes = max(1, workers)
            overhead = wall * lanes / n - per_run
            label = "loop" if workers == 0 else f"{workers} worker{'s' * (workers > 1)}"
            print(
                f"{label:>10} {start:8.2f} {wall:8.2f} {n / wall:8.1f} {per_run * 1e3:7.1f} "
                f"{overhead * 1e3:16.2f}"
            )


if __name__ == "__main__":
    main()
