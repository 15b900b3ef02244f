"""``evtrade reproduce eta|babg|dv2g``: a paper's figures (PNG + CSV) from the project's runs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evtrade.cli import render

if TYPE_CHECKING:  # matplotlib and the experiments load when a figure runs
    from evtrade.sim.figures import Figure, Record

OutOption = Annotated[Path, typer.Option("--out", help="Output folder for PNG and CSV files.")]
SeedOption = Annotated[int, typer.Option(min=0, help="Seed of every experiment's generator.")]


def _run_figures(
    label: str, figures: Mapping[str, Figure], out: Path, *, seed: int, quick: bool
) -> dict[str, list[Record]]:
    """Each figure's records, written to ``out`` as PNG + CSV, with a progress bar."""
    from evtrade.sim.figures import run_figure

    out.mkdir(parents=True, exist_ok=True)
    return render.with_progress(
        label, list(figures), lambda name: run_figure(figures[name], out, seed=seed, quick=quick)
    )


def reproduce_eta(
    out: OutOption = Path("out/eta"),
    seed: SeedOption = 2024,
    quick: Annotated[bool, typer.Option(help="Fewer samples (smoke test).")] = False,
) -> None:
    """Regenerate ETA's Fig. 4, 5, 6, 7/8, 9, 10, 13, 14 (PNG + CSV) from the project's own runs."""
    from evtrade.sim.eta_figures import FIGURES

    _run_figures("ETA", FIGURES, out, seed=seed, quick=quick)
    render.echo(f"wrote {len(FIGURES)} figures (PNG + CSV) to {out}")


def reproduce_babg(
    out: OutOption = Path("out/babg"),
    seed: SeedOption = 2024,
    quick: Annotated[bool, typer.Option(help="Fewer sizes and repetitions (smoke test).")] = False,
) -> None:
    """Regenerate Luo et al.'s Fig. 3-8 (BABG vs IDA vs ETA) as PNG + CSV, with a summary."""
    from evtrade.sim.babg_figures import FIGURES, summary

    results = _run_figures("BABG", FIGURES, out, seed=seed, quick=quick)
    gains = summary(results["fig3_7_8"])
    (out / "summary.json").write_text(render.json_text(gains))
    render.echo(f"wrote Fig. 3-8 (PNG + CSV) and summary.json to {out}")
    render.gains_summary(gains)


def reproduce_dv2g(
    out: OutOption = Path("out/dv2g"),
    seed: SeedOption = 2024,
    quick: Annotated[
        bool, typer.Option(help="Shorter tangles, fewer lambda and alpha points (smoke test).")
    ] = False,
) -> None:
    """Regenerate Hassija et al.'s Fig. 5-11 (DV2G), the day's trades on the tangle and the
    tangle's own figures (PNG + CSV), with summary.json: the paper's claims checked."""
    from evtrade.sim import dv2g_figures, tangle_figures

    figures = {**dv2g_figures.FIGURES, **tangle_figures.FIGURES}
    results = _run_figures("DV2G", figures, out, seed=seed, quick=quick)
    checked = {"dv2g": dv2g_figures.claims(results), "tangle": tangle_figures.claims(results)}
    (out / "summary.json").write_text(render.json_text(checked, finite=True))
    render.echo(f"wrote Fig. 5-11, the tangle's figures (PNG + CSV) and summary.json to {out}")
    render.echo(render.json_text(checked))
