"""``evtrade dv2g``: a DV2G day (Hassija et al.): each slot's EV prices, the grids' selection
probabilities, supply and demand, welfare and the games' convergence (docs/dv2g.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evtrade.cli import render
from evtrade.cli.options import FormatOption, OutputFormat
from evtrade.market.mechanisms import get
from evtrade.market.mechanisms.dv2g import dv2g_to_dict
from evtrade.model.prosumers import load_dv2g_with_warnings

ScenarioArgument = Annotated[
    Path, typer.Argument(help="DV2G scenario file (.json or .toml, docs/dv2g.md).")
]


def dv2g(scenario: ScenarioArgument, output: FormatOption = OutputFormat.table) -> None:
    """Play a DV2G day: per slot, the EVs' prices at the Stackelberg equilibrium (grids select
    EVs by replicator dynamics, EVs update prices), selection probabilities, supply and demand,
    welfare, convergence, whether any EV gains by a unilateral price change (the Nash check),
    and the first-bid auction baseline.

    A bad scenario file is a one-line error naming the participant and field (exit code 1); a
    key the scenario ignores is a warning on stderr.
    """
    loaded = load_dv2g_with_warnings(scenario)
    record = dv2g_to_dict(get("dv2g").run(loaded.scenario))
    render.result(
        record,
        as_json=output is OutputFormat.json,
        table=lambda: render.dv2g_day(record),
        warnings=loaded.warnings,
    )
    if not record["converged"]:
        render.dv2g_not_converged(record)
