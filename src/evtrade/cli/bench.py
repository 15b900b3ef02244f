"""``evtrade bench``: the clearing engine timed against cvxpy + Clarabel (:mod:`evtrade.bench`)."""

from __future__ import annotations

from typing import Annotated

import typer

from evtrade.cli import render
from evtrade.cli.options import FormatOption, OutputFormat


def bench(
    quick: Annotated[
        bool, typer.Option(help="Small cases only (seconds; the smoke run of make test).")
    ] = False,
    output: FormatOption = OutputFormat.table,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats per case (median).")] = 3,
) -> None:
    """Time the clearing engine against cvxpy + Clarabel on the same markets (one process)."""
    from evtrade.bench import suite

    records = []
    for rec in suite(quick=quick, repeats=repeats):
        records.append(rec.to_dict())
        render.note(f"{rec.case}: {rec.seconds:.4f} s")
    if output is OutputFormat.json:
        render.echo(render.json_text(records))
    else:
        render.bench(records)
