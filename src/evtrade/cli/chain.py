"""``evtrade chain run``, ``evtrade audit`` and ``evtrade demo``: rounds on the ledger.

The work is the settlement layer's: :func:`evtrade.settlement.rounds.run_round` runs a round,
:func:`evtrade.settlement.audit.audit_round` audits one; the commands open the chain, call them and
hand the outcome, converted by :mod:`evtrade.settlement.units`, to :mod:`evtrade.cli.render`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from evtrade.cli import render
from evtrade.cli.boundary import fail
from evtrade.cli.options import (
    DEFAULT_DATA_DIR,
    ChainUrlOption,
    DataDirOption,
    DeploymentOption,
    FormatOption,
    MarketFileArgument,
    OutputFormat,
)
from evtrade.market import clear as clear_market
from evtrade.model import Market
from evtrade.model.files import load_market_with_warnings

if TYPE_CHECKING:  # the ledger side is imported by the commands that use it (slow to import)
    from evtrade.settlement.rounds import RoundRun

#: The demo's comparison: each mechanism with its posted price (None: the mechanism sets it).
DEMO_MECHANISMS: tuple[tuple[str, float | None], ...] = (
    ("eta", None),
    ("complete-info", None),
    ("single-price", 0.75),
)


def run_on_chain(
    market: Market,
    data_dir: Path,
    *,
    chain_url: str | None = None,
    deployment: Path | None = None,
    **windows: int,
) -> tuple[RoundRun, str]:
    """Run ``market`` as one round (:func:`~evtrade.settlement.rounds.run_round`) on the chain
    of ``data_dir`` or ``chain_url``; the run and the chain's kind."""
    from evtrade.ledger.chain import open_chain
    from evtrade.ledger.operators import load_operators, open_ledger
    from evtrade.settlement.rounds import run_round

    # A scripted round sends one transaction after another and jumps the clock over its windows:
    # a block per transaction (block_time=0) spares it a 1 s wait per step (53 s -> a few).
    chain = open_chain(data_dir=data_dir / "chain", chain_url=chain_url, block_time=0)
    try:
        ledger = open_ledger(chain, data_dir, deployment)
        return run_round(ledger, load_operators(data_dir), market, **windows), chain.kind
    finally:
        chain.close()


def trade_records(run: RoundRun) -> list[dict[str, Any]]:
    """The round's settled trades in kWh and tokens, participants by their market ids."""
    from evtrade.settlement import units

    ids = {address: ident for ident, address in run.addresses.items()}
    return [
        {
            "buyer": ids.get(t.buyer, t.buyer),
            "seller": ids.get(t.seller, t.seller),
            "kwh": units.to_kwh(t.energy),
            "price": units.to_tokens(t.price),
            "payment": units.to_tokens(t.payment),
            "block": t.block,
            "tx": t.tx_hash,
        }
        for t in run.trades
    ]


def balance_records(run: RoundRun) -> list[dict[str, Any]]:
    """Each vehicle's tokens before and after the round, and the energy it bought and sold."""
    from evtrade.settlement import units

    records = []
    for ident, address in run.addresses.items():
        bought, sold = run.energy_after[ident]
        records.append(
            {
                "vehicle": ident,
                "account": address,
                "before": units.to_tokens(run.balances_before[ident]),
                "after": units.to_tokens(run.balances_after[ident]),
                "bought": units.to_kwh(bought),
                "sold": units.to_kwh(sold),
            }
        )
    return records


def chain_run(
    market_file: MarketFileArgument,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    chain_url: ChainUrlOption = None,
    deployment: DeploymentOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Run a market as one sealed-bid round on chain: register, bid, reveal, settle, audit."""
    loaded = load_market_with_warnings(market_file)
    run, kind = run_on_chain(loaded.market, data_dir, chain_url=chain_url, deployment=deployment)
    for line in loaded.warnings:  # after the run: a command that fails says one line, the error
        render.warning(line)
    trades = trade_records(run)
    audit = run.audit.to_dict() if run.audit else None
    if output is OutputFormat.json:
        payload = {
            "round_id": run.round_id,
            "trades": trades,
            "rejected": run.rejected,
            "addresses": run.addresses,
            "audit": audit,
        }
        render.echo(render.json_text(payload))
        return
    render.round_trades(run.round_id, kind, trades)
    render.excluded(run.rejected)
    if audit is not None:
        render.audit_verdict(audit)


def audit(
    round_id: Annotated[int, typer.Option("--round", min=0, help="The round to audit.")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    chain_url: ChainUrlOption = None,
    deployment: DeploymentOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Recompute a settled round's prices and optimal volumes from chain events; report differences.

    Exit code 2 when the audit finds a settled trade that differs.
    """
    from evtrade.ledger.chain import open_chain
    from evtrade.ledger.client import Deployment, Ledger
    from evtrade.settlement.audit import audit_round

    path = deployment or data_dir / "deployment.json"
    if not path.exists():
        fail(f"no deployment record at {path}; give --deployment")
    chain = open_chain(data_dir=data_dir / "chain", chain_url=chain_url)
    try:
        ledger = Ledger(chain, Deployment.load(path))
        count = ledger.round_count()
        if round_id >= count:  # named as the user typed it (the ledger says field 'round_id')
            held = {0: "it has no round yet", 1: "its one round is 0"}.get(
                count, f"its rounds are 0 to {count - 1}"
            )
            fail(f"--round {round_id}: no round {round_id} on this chain ({held})")
        report = audit_round(ledger.round_view(round_id))
    finally:
        chain.close()
    if output is OutputFormat.json:
        render.echo(render.json_text(report.to_dict()))
    else:
        render.audit_report(report)
    if not report.ok:
        raise typer.Exit(code=2)


def demo(
    seed: Annotated[int, typer.Option(min=0, help="Seed of the demo markets.")] = 7,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo's embedded chain lives.")
    ] = Path("out/demo"),
) -> None:
    """Clear a paper-scale market under three mechanisms, then run one round on the ledger.

    The round: an embedded chain in DATA_DIR, a few registered vehicles, sealed bids revealed by
    the RSU, settlement at Theorem 1 prices and P1 volumes; prints the trades with their block and
    transaction, and the balances before and after.
    """
    from evtrade.sim import ScenarioSpec, random_market

    market = random_market(ScenarioSpec(), np.random.default_rng(seed))
    rows = [
        (mech if price is None else f"{mech} {price}", clear_market(market, mech, price=price))
        for mech, price in DEMO_MECHANISMS
    ]
    render.mechanism_comparison(market.n_buyers, market.n_sellers, rows)
    small = random_market(ScenarioSpec(n_buyers=3, n_sellers=4), np.random.default_rng(seed))
    run, _ = run_on_chain(small, data_dir, t_limit=30, t_reveal=30)
    render.demo_round(run.round_id, trade_records(run), balance_records(run))
    render.excluded(run.rejected)
    if run.audit is not None:
        render.demo_audit(run.audit)
    # Vehicles with wallets, registered as the web app registers them, for `make serve` after.
    from evtrade.service.demo import DEMO_PASSWORD, add_demo_vehicles
    from evtrade.service.settings import Settings

    added = add_demo_vehicles(Settings(data_dir=data_dir))
    vehicles = [(r.vehicle.name, r.vehicle.role, r.address) for r in added]
    render.serve_hint(data_dir, vehicles, DEMO_PASSWORD)
