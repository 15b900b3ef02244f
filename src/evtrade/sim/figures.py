"""A paper figure as data: an experiment that returns flat records (saved as CSV) and the plots
that read only those records (saved as PNG). :func:`run_figure` runs one; the figures of each
paper are a table of them (:mod:`evtrade.sim.eta_figures`, :mod:`evtrade.sim.babg_figures`,
:mod:`evtrade.sim.dsm_figures`, :mod:`evtrade.sim.dv2g_figures`,
:mod:`evtrade.sim.tangle_figures`)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Record = dict[str, Any]
#: ``experiment(seed, quick)``: generators are created from the seed, never globally.
Experiment = Callable[[int, bool], list[Record]]
#: ``plot(records, axes)``: one Axes, or an array of ``panels`` Axes side by side.
Plot = Callable[[Sequence[Record], Any], None]


@dataclass(frozen=True)
class Figure:
    """``<name>.csv`` from ``experiment``, and one ``<stem>.png`` per ``(stem, plot)``, each of
    ``panels`` Axes on a canvas of ``size`` inches."""

    name: str
    experiment: Experiment
    plots: tuple[tuple[str, Plot], ...]
    panels: int = 1
    size: tuple[float, float] = (6.4, 4.8)


def write_csv(rows: Sequence[Record], path: Path) -> None:
    """Write flat records to CSV (None becomes an empty cell)."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})


def run_figure(figure: Figure, out: Path, *, seed: int, quick: bool = False) -> list[Record]:
    """Run ``figure``'s experiment, save its CSV and its PNG file(s) under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = figure.experiment(seed, quick)
    write_csv(rows, out / f"{figure.name}.csv")
    for stem, plot in figure.plots:
        fig, axes = plt.subplots(1, figure.panels, figsize=figure.size)
        plot(rows, axes)
        fig.tight_layout()
        fig.savefig(out / f"{stem}.png", dpi=110)
        plt.close(fig)
    return rows


def table(*figures: Figure) -> dict[str, Figure]:
    """Figures by name, in the given order."""
    return {f.name: f for f in figures}


__all__ = ["Experiment", "Figure", "Plot", "Record", "run_figure", "table", "write_csv"]
