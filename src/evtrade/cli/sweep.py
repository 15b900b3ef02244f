"""``evtrade sweep``: a grid of mechanisms x market sizes x options x seeds, on Dask;
``evtrade sweep-summary``: the table and plots of a sweep's records (docs/sweeps.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evtrade.cli import render

SweepArgument = Annotated[Path, typer.Argument(help="Sweep file (.toml or .json, docs/sweeps.md).")]
DirOption = Annotated[
    Path, typer.Option("--out", help="Folder of the records (Parquet shards); resumed if present.")
]


def sweep(
    file: SweepArgument,
    out: DirOption,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="A Dask scheduler's address (tcp://HOST:PORT); default: a local cluster."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=1024,
            help="Local worker processes (default: one per core); 0 runs in this process.",
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(help="Then print the summary table and write its plots (--out/_summary)."),
    ] = False,
) -> None:
    """Run every run of a sweep not yet recorded in --out, one Parquet record per run.

    A run's market comes from its own seed (the sweep's root seed, its size and replicate), so the
    records are the same on a local cluster, on any Dask cluster (--scheduler) and in this process
    (--workers 0). A bad sweep file is a one-line error naming the key (exit code 1).
    """
    from evtrade.sim.sweep_exec import execute, pending
    from evtrade.sim.sweep_figures import FigureSweep, done, execute_figures, load_sweep_file

    spec = load_sweep_file(file)
    if scheduler is not None and workers is not None:
        raise typer.BadParameter("--workers sizes a local cluster; omit it with --scheduler")
    if isinstance(spec, FigureSweep):
        on_disk = done(out) if out.is_dir() else {}
        already = sum(r.key in on_disk for r in spec.runs())
        with render.sweep_progress(spec.name, spec.size(), already) as advance:
            computed, skipped, seconds = execute_figures(
                spec, out, scheduler=scheduler, workers=workers, on_figure=advance
            )
        render.figures_report(computed, skipped, seconds, out)
        return
    _, skipped = pending(spec, out)
    with render.sweep_progress(spec.name, spec.size(), skipped) as advance:
        report = execute(spec, out, scheduler=scheduler, workers=workers, on_record=advance)
    render.sweep_report(report, out)
    if summary:
        _summary(out)


def sweep_summary(
    directory: Annotated[Path, typer.Argument(help="A sweep's --out folder.")],
    plots: Annotated[
        bool, typer.Option(help="Write summary.csv and one PNG per metric to DIRECTORY/_summary.")
    ] = True,
) -> None:
    """Summarise a sweep's records: per mechanism, size and options, the runs, failures, and the
    mean and standard deviation of welfare, volume, gains from trade, payments and satisfaction."""
    _summary(directory, plots=plots)


def _summary(directory: Path, *, plots: bool = True) -> None:
    from evtrade.sim.figures import write_csv
    from evtrade.sim.sweep_store import plot_summary, read_records, summarize

    rows = summarize(read_records(directory))
    render.sweep_summary(rows)
    if plots and rows:
        # "_summary": a folder that readers of the records (pyarrow, pandas) skip
        target = directory / "_summary"
        target.mkdir(exist_ok=True)
        write_csv(rows, target / "summary.csv")
        written = plot_summary(rows, target)
        render.echo(f"wrote summary.csv and {len(written)} plots to {target}")
