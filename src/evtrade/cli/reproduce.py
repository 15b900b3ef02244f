"""``evtrade reproduce eta|babg``: a paper's figures (PNG + CSV) from the project's own runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evtrade.cli import render

SeedOption = Annotated[int, typer.Option(min=0, help="Seed of every experiment's generator.")]


def reproduce_eta(
    out: Annotated[Path, typer.Option("--out", help="Output folder for PNG and CSV files.")] = Path(
        "out/eta"
    ),
    seed: SeedOption = 2024,
    quick: Annotated[bool, typer.Option(help="Fewer samples (smoke test).")] = False,
) -> None:
    """Regenerate ETA's Fig. 4, 5, 6, 7/8, 9, 10, 13, 14 (PNG + CSV) from the project's own runs."""
    from evtrade.sim.eta_figures import FIGURES, run_figure

    out.mkdir(parents=True, exist_ok=True)
    render.with_progress(
        "ETA", list(FIGURES), lambda name: run_figure(name, out, seed=seed, quick=quick)
    )
    render.echo(f"wrote {len(FIGURES)} figures (PNG + CSV) to {out}")


def reproduce_babg(
    out: Annotated[Path, typer.Option("--out", help="Output folder for PNG and CSV files.")] = Path(
        "out/babg"
    ),
    seed: SeedOption = 2024,
    quick: Annotated[bool, typer.Option(help="Fewer sizes and repetitions (smoke test).")] = False,
) -> None:
    """Regenerate Luo et al.'s Fig. 3-8 (BABG vs IDA vs ETA) as PNG + CSV, with a summary."""
    from evtrade.sim.babg_figures import FIGURES, run_figure, summary

    out.mkdir(parents=True, exist_ok=True)
    results = render.with_progress(
        "BABG", list(FIGURES), lambda name: run_figure(name, out, seed=seed, quick=quick)
    )
    gains = summary(results["fig3_7_8"])
    (out / "summary.json").write_text(render.json_text(gains))
    render.echo(f"wrote Fig. 3-8 (PNG + CSV) and summary.json to {out}")
    render.gains_summary(gains)
