"""A paper's figures as a sweep: each figure of ``evtrade reproduce <paper>`` is one task.

A sweep file with a ``[figures]`` table instead of ``[sweep]`` (docs/sweeps.md#the-paper-figures)
runs :func:`evtrade.sim.figures.run_figure`, the very function ``reproduce`` runs, once per
figure, in this process or on any Dask cluster; the worker returns the figure's files (CSV and
PNG) and the driver writes them to ``--out``, so the CSVs are byte-identical to ``reproduce``'s
with the same seed and ``quick``. Resumable: ``figures.json`` in ``--out`` lists the figures done
by the hash of their inputs. The papers' summaries (``summary.json``) stay with ``reproduce``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evtrade import __version__
from evtrade.errors import SweepError
from evtrade.sim.sweep import MAX_SEED, Sweep, canonical_json, read_sweep_file, sweep_from_dict

#: The papers ``reproduce`` knows, and the module of each one's FIGURES table.
PAPERS = {
    "eta": "evtrade.sim.eta_figures",
    "babg": "evtrade.sim.babg_figures",
    "dsm": "evtrade.sim.dsm_figures",
    "dv2g": "evtrade.sim.dv2g_figures",
    "tangle": "evtrade.sim.tangle_figures",
}
MANIFEST = "figures.json"


@dataclass(frozen=True)
class FigureRun:
    """One figure of one paper, with the experiment's seed and ``quick``."""

    paper: str
    figure: str
    seed: int
    quick: bool
    version: str = __version__

    @property
    def key(self) -> str:
        data = {
            "paper": self.paper,
            "figure": self.figure,
            "seed": self.seed,
            "quick": self.quick,
            "version": self.version,
        }
        return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FigureSweep:
    """A validated ``[figures]`` sweep file."""

    paper: str
    seed: int
    quick: bool
    figures: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.paper} figures"

    def runs(self) -> list[FigureRun]:
        return [FigureRun(self.paper, f, self.seed, self.quick) for f in self.figures]

    def size(self) -> int:
        return len(self.figures)


def load_sweep_file(path: str | Path) -> Sweep | FigureSweep:
    """A sweep file: a grid of runs (``[sweep]``) or a paper's figures (``[figures]``).

    Raises :class:`SweepError`: one line naming the file and the key."""
    data = read_sweep_file(path)
    try:
        if isinstance(data, dict) and "figures" in data:
            extra = sorted(k for k in data if k != "figures")
            if extra:
                raise SweepError(f"{extra[0]}: a [figures] file has no other table")
            return figure_sweep_from_dict(data["figures"])
        return sweep_from_dict(data)
    except SweepError as exc:
        raise SweepError(f"{path}: {exc}") from None


def figures_of(paper: str) -> Mapping[str, Any]:
    """The paper's FIGURES table (its module loads on first use: matplotlib, pvlib)."""
    return importlib.import_module(PAPERS[paper]).FIGURES  # type: ignore[no-any-return]


def figure_sweep_from_dict(table: Any) -> FigureSweep:
    """The ``[figures]`` table: ``paper``, ``seed``, ``quick`` (default false), ``only`` (default:
    every figure of the paper, in ``reproduce``'s order). Raises :class:`SweepError` naming the
    key."""
    if not isinstance(table, dict):
        raise SweepError("figures: must be a table")
    for k in table:
        if k not in ("paper", "seed", "quick", "only"):
            raise SweepError(f"figures.{k}: unknown key; expected one of paper, seed, quick, only")
    paper = table.get("paper")
    if paper not in PAPERS:
        raise SweepError(f"figures.paper: must be one of {', '.join(PAPERS)}, got {paper!r}")
    seed = table.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SweepError(f"figures.seed: must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    quick = table.get("quick", False)
    if not isinstance(quick, bool):
        raise SweepError(f"figures.quick: must be true or false, got {quick!r}")
    known = tuple(figures_of(paper))
    only = table.get("only", list(known))
    if not isinstance(only, list) or not only or any(f not in known for f in only):
        raise SweepError(f"figures.only: must be a list of figures of {paper}: {', '.join(known)}")
    return FigureSweep(paper, seed, quick, tuple(f for f in known if f in only))


def figure_files(run: FigureRun) -> dict[str, bytes]:
    """Run one figure (as ``reproduce`` does) in a scratch folder; its files by name."""
    from evtrade.sim.figures import run_figure

    if run.version != __version__:
        raise SweepError(
            f"worker runs evtrade {__version__}, the sweep was started with {run.version}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        run_figure(figures_of(run.paper)[run.figure], Path(tmp), seed=run.seed, quick=run.quick)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def done(out: Path) -> dict[str, str]:
    """The manifest: key -> figure of every figure written to ``out``."""
    path = out / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SweepError(f"{path}: not a figures manifest ({exc})") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: not a figures manifest")
    return {str(k): str(v) for k, v in data.items()}


def execute_figures(
    sweep: FigureSweep,
    out: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    on_figure: Callable[[Any], None] | None = None,
) -> tuple[int, int, float]:
    """Run the figures of ``sweep`` not yet in ``out``'s manifest; (computed, skipped, seconds)."""
    from evtrade.sim.sweep_exec import dask_client, on_dask

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    manifest = done(out)
    todo = [r for r in sweep.runs() if r.key not in manifest]
    computed = 0

    def keep(run: FigureRun, files: Mapping[str, bytes]) -> None:
        nonlocal computed
        for name, data in files.items():
            tmp = out / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, out / name)
        manifest[run.key] = run.figure
        tmp = out / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, out / MANIFEST)
        computed += 1
        if on_figure is not None:
            on_figure(run.figure)

    if scheduler is None and workers == 0:
        for run in todo:
            keep(run, figure_files(run))
    elif todo:
        by_key = {r.key: r for r in todo}
        with dask_client(scheduler, workers) as client:
            results = on_dask(client, todo, _keyed_files, prefix="evtrade-figure")
            for key, files in results:
                keep(by_key[key], files)
    return computed, sweep.size() - len(todo), time.perf_counter() - t0


def _keyed_files(run: FigureRun) -> tuple[str, dict[str, bytes]]:
    return run.key, figure_files(run)


__all__ = [
    "MANIFEST",
    "PAPERS",
    "FigureRun",
    "FigureSweep",
    "done",
    "execute_figures",
    "figure_files",
    "figure_sweep_from_dict",
    "load_sweep_file",
]
