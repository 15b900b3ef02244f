"""``evtrade schedule``: a day of EV charging (DSM: PV, then V2G, then the grid's price game);
``evtrade reproduce dsm``: the Chalmers thesis's figures and claims from the project's runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evtrade.cli import render
from evtrade.cli.options import FormatOption, OutputFormat
from evtrade.cli.reproduce import OutOption, SeedOption, _run_figures
from evtrade.market.mechanisms import get
from evtrade.market.mechanisms.dsm import DsmParams, schedule_to_dict
from evtrade.model.day import load_day

ScenarioArgument = Annotated[
    Path, typer.Argument(help="Day scenario file (.json or .toml, docs/dsm.md).")
]


def schedule(
    scenario: ScenarioArgument,
    output: FormatOption = OutputFormat.table,
    optimum: Annotated[
        bool,
        typer.Option(
            help="Compute the social optimum with HiGHS (slow beyond about 1,000 grid vehicles; "
            "--no-optimum reports it as null).",
        ),
    ] = True,
) -> None:
    """Schedule a day: each vehicle's source (PV, V2G, grid), energy per slot and bill; the grid's
    dynamic prices lambda_t = phi_t + mu (q_t - Q_t) at the Nash equilibrium of the charging game,
    its convergence report, the social optimum and the no-DSM baseline.

    A bad scenario file is a one-line error naming the participant and field (exit code 1).
    """
    result = get("dsm").run(load_day(scenario), DsmParams(optimum=optimum))
    record = schedule_to_dict(result)
    render.result(
        record, as_json=output is OutputFormat.json, table=lambda: render.day_schedule(record)
    )
    if not record["equilibrium"]["converged"]:
        render.not_converged(record["equilibrium"])


def reproduce_dsm(out: OutOption = Path("out/dsm"), seed: SeedOption = 2024) -> None:
    """Regenerate the Chalmers thesis's Fig. 7.2-7.5 and 7.7 (PNG + CSV), Fig. 7.6's table (CSV)
    and summary.json: the thesis's claims checked against the project's runs (docs/dsm.md)."""
    from evtrade.sim.dsm_figures import FIGURES, claims

    _run_figures("DSM", FIGURES, out, seed=seed, quick=False)
    checked = claims(seed)
    (out / "summary.json").write_text(render.json_text(checked, finite=True))
    render.echo(f"wrote Fig. 7.2-7.7 (PNG + CSV) and summary.json to {out}")
    render.dsm_claims(checked)
