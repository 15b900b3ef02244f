"""``evtrade tangle``: the tangle (DV2G's ledger) as a discrete-event simulation
(:mod:`evtrade.sim.tangle`, docs/dv2g.md#the-tangle)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import numpy as np
import typer

from evtrade.cli import render
from evtrade.cli.options import FormatOption, OutputFormat
from evtrade.sim.tangle import (
    MAX_TRANSACTIONS,
    TangleParams,
    result_to_dict,
    simulate,
)


class TipSelectionName(StrEnum):
    urts = "urts"
    mcmc = "mcmc"
    weighted = "weighted"


def tangle(
    rate: Annotated[
        float, typer.Option("--rate", help="lambda: transactions per unit of time (> 0).")
    ] = 20.0,
    delay: Annotated[
        float,
        typer.Option("--delay", help="h: time before a transaction is visible to tip selection."),
    ] = 1.0,
    tip_selection: Annotated[
        TipSelectionName,
        typer.Option(
            "--tip-selection",
            help="urts: uniform random tips; mcmc: unweighted random walk; weighted: the walk "
            "with exp(alpha (H_y - H_x)).",
        ),
    ] = TipSelectionName.urts,
    alpha: Annotated[
        float, typer.Option("--alpha", help="alpha of the weighted walk (>= 0; weighted only).")
    ] = 0.0,
    transactions: Annotated[
        int,
        typer.Option(
            "--transactions",
            help=f"N arrivals, at most {MAX_TRANSACTIONS:,} (about 90 bytes each).",
        ),
    ] = 10_000,
    walk_window: Annotated[
        float | None,
        typer.Option(
            "--walk-window",
            help="W: walks start at a visible transaction of age in [W, 2W] (default "
            "10 max(h, 1/lambda)).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the run's generator.")] = 0,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Simulate a tangle: Poisson arrivals at RATE, visibility delay DELAY, each transaction
    approving two tips. Reports the tip count over time (theory for urts: 2 lambda h), the
    time to first approval, the confirmation latency and the fraction left behind.

    A bad option is a one-line error naming it (exit code 1).
    """
    params = TangleParams(
        rate=rate,
        delay=delay,
        tip_selection=tip_selection.value,
        alpha=alpha,
        transactions=transactions,
        walk_window=walk_window,
    )
    result = simulate(params, np.random.default_rng(seed), seed=seed)
    record = result_to_dict(result)
    if output is OutputFormat.json:
        render.echo(render.json_text(record, finite=True))
    else:
        render.tangle_run(record)
