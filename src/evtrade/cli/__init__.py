"""The ``evtrade`` command line. Commands only: the work lives in the library.

Error boundary: domain errors (a broken market file, a bad option, a ledger refusal) and unreadable
or unwritable paths become one line on stderr and exit code 1. Anything else is a bug; it too ends
as one line and exit code 1 (``error: internal error: ...``), with the traceback only when the
environment sets ``EVTRADE_DEBUG=1``: a user who fed a hostile file never sees a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from evtrade.errors import EvtradeError
from evtrade.market import clear as clear_market
from evtrade.market import expected_gains_exact, expected_outcome
from evtrade.model import load_market
from evtrade.model.files import MAX_BUYERS, MAX_FILE_BYTES, MAX_PAIRS, MAX_SELLERS
from evtrade.model.participants import MAX_ENERGY, MAX_PRICE, MIN_RHO

#: Most Monte Carlo samples: ~10 float arrays of this length are alive at once (~800 MB).
MAX_SAMPLES = 10_000_000
LIMITS_HELP = (
    f"Limits (docs/json-format.md#limits): a file of at most {MAX_FILE_BYTES // 2**20} MiB "
    f"nested at most 32 deep, {MAX_BUYERS:,} buyers, {MAX_SELLERS:,} sellers, "
    f"{MAX_PAIRS:,} buyer-seller pairs (memory: ~400 bytes per pair), prices in "
    f"[0, {MAX_PRICE:g}], energies in [0, {MAX_ENERGY:g}] kWh, rho in [{MIN_RHO:g}, 1]."
)

app = typer.Typer(
    help="Peer-to-peer electricity trading between electric vehicles.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
reproduce_app = typer.Typer(help="Regenerate a paper's figures from the project's own runs.")
app.add_typer(reproduce_app, name="reproduce")
chain_app = typer.Typer(help="Trading rounds on the ledger (embedded chain or a JSON-RPC node).")
app.add_typer(chain_app, name="chain")

DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Embedded chain's data, the operators' development keys and the deployment record.",
    ),
]
ChainUrlOption = Annotated[
    str | None,
    typer.Option(
        "--chain-url", help="An Ethereum JSON-RPC node (anvil, Besu) instead of the embedded chain."
    ),
]
DeploymentOption = Annotated[
    Path | None,
    typer.Option("--deployment", help="Deployment record (default: DATA_DIR/deployment.json)."),
]
DEFAULT_DATA_DIR = Path("evtrade-data")


class MechanismName(StrEnum):
    eta = "eta"
    complete_info = "complete-info"
    single_price = "single-price"
    babg = "babg"
    ida = "ida"


class VolumeRule(StrEnum):
    p1 = "p1"
    theorem2 = "theorem2"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def _fail(message: str) -> None:
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code=1)


def _one_line(message: str, limit: int = 500) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def error_boundary() -> Iterator[None]:
    """Turn every failure inside a command into one line on stderr and exit code 1 (see module
    docstring); ``typer.Exit`` and click's own usage errors pass through unchanged."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except EvtradeError as exc:
        _fail(str(exc))
    except OSError as exc:  # a path the user gave: missing, a directory, no permission, disk full
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _fail(f"{where}{exc.strerror or exc}")
    except MemoryError:
        _fail("out of memory (see the limits in docs/json-format.md#limits)")
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None
    except Exception as exc:
        if os.environ.get("EVTRADE_DEBUG") == "1":
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (a bug; EVTRADE_DEBUG=1 shows the "
            "traceback)"
        )


def _check_option(name: str, value: float | None, hi: float = MAX_PRICE) -> None:
    """A price-like option: finite and in [0, hi] (products with volumes stay finite)."""
    if value is not None and not 0.0 <= value <= hi:
        _fail(f"--{name.replace('_', '-')}: must lie in [0, {hi:g}], got {value!r}")


@app.command(epilog=LIMITS_HELP)
def clear(
    market_file: Annotated[Path, typer.Argument(help="Market file (.json or .toml).")],
    mechanism: Annotated[
        MechanismName, typer.Option(help="Pricing mechanism.")
    ] = MechanismName.eta,
    price: Annotated[float | None, typer.Option(help="Posted price (single-price only).")] = None,
    volumes: Annotated[
        VolumeRule, typer.Option(help="p1: welfare optimum; theorem2: ETA eq. 18 projected.")
    ] = VolumeRule.p1,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
    alpha: Annotated[
        float | None, typer.Option(help="babg: buyers' price adjustment in [0, 1] (0.5).")
    ] = None,
    beta: Annotated[
        float | None, typer.Option(help="babg: sellers' price adjustment in [0, 1] (0.5).")
    ] = None,
    grid_buy: Annotated[
        float | None, typer.Option(help="babg: price the grid pays, p^G (0.6).")
    ] = None,
    grid_sell: Annotated[
        float | None, typer.Option(help="babg: price the grid charges, r^G (1.0).")
    ] = None,
) -> None:
    """Clear one round: tradable pairs, rejected bids, unmatched participants, totals.

    Every input gets an answer or a one-line error (exit code 1).
    """
    from evtrade.market.mechanisms import run_mechanism

    for name, value in (
        ("price", price),
        ("grid_buy", grid_buy),
        ("grid_sell", grid_sell),
        ("alpha", alpha),
        ("beta", beta),
    ):
        _check_option(name, value, 1.0 if name in ("alpha", "beta") else MAX_PRICE)
    with error_boundary():
        market = load_market(market_file)
        result = run_mechanism(
            market,
            mechanism.value,
            price=price,
            volumes=volumes.value,
            alpha=alpha,
            beta=beta,
            grid_buy=grid_buy,
            grid_sell=grid_sell,
        )
        record = result.to_dict()
        # Refuses NaN / Infinity: a result that is not finite is reported, never printed.
        text = json.dumps(record, indent=2, allow_nan=False)
    if output is OutputFormat.json:
        typer.echo(text)
        return
    with error_boundary():
        _print_table(record)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _sci(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def _print_table(d: dict[str, Any]) -> None:
    console = Console()
    title = f"Trades ({d['mechanism']}, volumes {d['volumes']})"
    table = Table(title=title)
    for col in ("buyer", "seller", "P", "R", "T", "volume (kWh)", "distance (km)"):
        table.add_column(col, justify="right" if col not in ("buyer", "seller") else "left")
    for p in d["pairs"]:
        table.add_row(
            p["buyer"],
            p["seller"],
            _fmt(p["P"]),
            _fmt(p["R"]),
            _fmt(p["T"]),
            _fmt(p["volume"], 3),
            _fmt(p["distance_km"], 2),
        )
    console.print(table)
    for key, label in (("rejected", "Rejected bids"), ("unmatched", "Unmatched")):
        if d[key]:
            t = Table(title=label)
            t.add_column("id")
            t.add_column("role")
            t.add_column("reason")
            for r in d[key]:
                t.add_row(r["id"], r["role"], r["reason"])
            console.print(t)
    sat = d["satisfaction"]["mean"]
    console.print(
        f"total volume {d['total_volume']:.3f} kWh   welfare {d['welfare']:.6f}   "
        f"gains from trade {d['gains_from_trade']:.4f}   payments {d['total_payment']:.4f}   "
        f"satisfaction {_fmt(sat)}"
    )


@app.command()
def montecarlo(
    mechanism: Annotated[MechanismName, typer.Option(help="Mechanism.")] = MechanismName.eta,
    price: Annotated[float | None, typer.Option(help="Posted price (single-price).")] = None,
    v_lo: Annotated[
        float, typer.Option(min=0.0, max=MAX_PRICE, help="Buyer values ~ U[v_lo, v_hi].")
    ] = 0.0,
    v_hi: Annotated[float, typer.Option(min=0.0, max=MAX_PRICE)] = 1.0,
    c_lo: Annotated[
        float, typer.Option(min=0.0, max=MAX_PRICE, help="Seller costs ~ U[c_lo, c_hi].")
    ] = 0.0,
    c_hi: Annotated[float, typer.Option(min=0.0, max=MAX_PRICE)] = 1.0,
    samples: Annotated[
        int,
        typer.Option(
            min=2, max=MAX_SAMPLES, help=f"Number of buyer-seller draws (at most {MAX_SAMPLES:,})."
        ),
    ] = 1_000_000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the generator.")] = 0,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Expected gains from trade of one unit trade (9/64 for ETA with U[0,1] types)."""
    _check_option("price", price)
    with error_boundary():
        out = expected_outcome(
            mechanism.value,
            v_range=(v_lo, v_hi),
            c_range=(c_lo, c_hi),
            price=price,
            samples=samples,
            rng=np.random.default_rng(seed),
        )
        exact = None
        if (v_lo, v_hi, c_lo, c_hi) == (0.0, 1.0, 0.0, 1.0):
            exact = expected_gains_exact(mechanism.value, price=0.5 if price is None else price)
    record = {
        "mechanism": mechanism.value,
        "samples": samples,
        "gains_from_trade": out.gains.mean,
        "stderr": out.gains.stderr,
        "exact": exact,
        "trade_probability": out.trade_probability,
        "satisfaction": out.satisfaction,
    }
    if output is OutputFormat.json:
        with error_boundary():
            typer.echo(json.dumps(record, indent=2, allow_nan=False))
        return
    for k, v in record.items():
        typer.echo(f"{k:18s} {_fmt(v, 6)}")


@reproduce_app.command("eta")
def reproduce_eta(
    out: Annotated[Path, typer.Option("--out", help="Output folder for PNG and CSV files.")] = Path(
        "out/eta"
    ),
    seed: Annotated[int, typer.Option(min=0, help="Seed of every experiment's generator.")] = 2024,
    quick: Annotated[bool, typer.Option(help="Fewer samples (smoke test).")] = False,
) -> None:
    """Regenerate ETA's Fig. 4, 5, 6, 7/8, 9, 10, 13, 14 (PNG + CSV) from the project's own runs."""
    from evtrade.sim.eta_figures import FIGURES, run_figure

    with error_boundary():
        _run_figures("ETA", list(FIGURES), run_figure, out, seed=seed, quick=quick)
    typer.echo(f"wrote {len(FIGURES)} figures (PNG + CSV) to {out}")


def _run_figures(
    label: str,
    names: list[str],
    run_figure: Any,
    out: Path,
    *,
    seed: int,
    quick: bool,
) -> dict[str, Any]:
    """Run each named figure with a progress bar on stderr; returns each figure's records."""
    from rich.progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task(f"{label} figures", total=len(names))
        for name in names:
            progress.update(task, description=f"{label} {name}")
            results[name] = run_figure(name, out, seed=seed, quick=quick)
            progress.advance(task)
    return results


@reproduce_app.command("babg")
def reproduce_babg(
    out: Annotated[Path, typer.Option("--out", help="Output folder for PNG and CSV files.")] = Path(
        "out/babg"
    ),
    seed: Annotated[int, typer.Option(min=0, help="Seed of every experiment's generator.")] = 2024,
    quick: Annotated[bool, typer.Option(help="Fewer sizes and repetitions (smoke test).")] = False,
) -> None:
    """Regenerate Luo et al.'s Fig. 3-8 (BABG vs IDA vs ETA) as PNG + CSV, with a summary."""
    from evtrade.sim.babg_figures import FIGURES, run_figure, summary

    with error_boundary():
        results = _run_figures("BABG", list(FIGURES), run_figure, out, seed=seed, quick=quick)
        scale_rows = results["fig3_7_8"]
        gains = summary(scale_rows)
        (out / "summary.json").write_text(json.dumps(gains, indent=2))
    typer.echo(f"wrote Fig. 3-8 (PNG + CSV) and summary.json to {out}")
    for key, value in gains.items():
        typer.echo(f"  {key:24s} {value:+.1%}")


@app.command()
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
    with error_boundary():
        _demo(seed, data_dir)


def _demo(seed: int, data_dir: Path) -> None:
    from evtrade.sim import ScenarioSpec, random_market

    market = random_market(ScenarioSpec(), np.random.default_rng(seed))
    console = Console(width=170)
    table = Table(
        title=f"Paper-scale market: {market.n_buyers} buyers x {market.n_sellers} sellers"
    )
    for col in ("mechanism", "pairs", "traded pairs", "volume kWh", "welfare", "gains", "satisf."):
        table.add_column(col, justify="right")
    for mech, price in (("eta", None), ("complete-info", None), ("single-price", 0.75)):
        r = clear_market(market, mech, price=price)
        traded = sum(1 for p in r.pairs if p.volume > 0)
        label = mech if price is None else f"{mech} {price}"
        table.add_row(
            label,
            str(len(r.pairs)),
            str(traded),
            f"{r.total_volume:.2f}",
            f"{r.welfare:.4f}",
            f"{r.gains_from_trade:.3f}",
            _fmt(r.satisfaction["mean"]),
        )
    console.print(table)
    _demo_round(console, seed, data_dir)


def _demo_round(console: Console, seed: int, data_dir: Path) -> None:
    from evtrade.ledger.chain import EmbeddedChain
    from evtrade.ledger.operators import load_operators, open_ledger
    from evtrade.settlement.rounds import run_round
    from evtrade.sim import ScenarioSpec, random_market

    spec = ScenarioSpec(n_buyers=3, n_sellers=4)
    market = random_market(spec, np.random.default_rng(seed))
    # A scripted round sends one transaction after another and jumps the clock over its windows:
    # a block per transaction (block_time=0) spares it a 1 s wait per step (53 s -> a few).
    chain = EmbeddedChain(data_dir / "chain", block_time=0)
    try:
        ledger = open_ledger(chain, data_dir)
        run = run_round(ledger, load_operators(data_dir), market, t_limit=30, t_reveal=30)
    finally:
        chain.close()
    table = Table(
        title=f"Round {run.round_id} on the embedded chain: sealed bids, settled at P*, R*, T"
    )
    for col in ("buyer", "seller", "kWh", "price T", "payment", "block", "transaction"):
        table.add_column(col, justify="right")
    names = {address: ident for ident, address in run.addresses.items()}
    for t in run.trades:
        table.add_row(
            names[t.buyer],
            names[t.seller],
            f"{t.energy / 1e6:.3f}",
            f"{t.price / 1e18:.4f}",
            f"{t.payment / 1e18:.4f}",
            str(t.block),
            t.tx_hash,
        )
    console.print(table)
    balances = Table(title="Balances (tokens) and energy on chain")
    for col in ("vehicle", "account", "before", "after", "kWh bought", "kWh sold"):
        balances.add_column(col, justify="right")
    for ident, address in run.addresses.items():
        bought, sold = run.energy_after[ident]
        balances.add_row(
            ident,
            address,
            f"{run.balances_before[ident] / 1e18:.4f}",
            f"{run.balances_after[ident] / 1e18:.4f}",
            f"{bought / 1e6:.3f}",
            f"{sold / 1e6:.3f}",
        )
    console.print(balances)
    for ident, reason in run.rejected.items():
        typer.echo(f"excluded {ident}: {reason}")
    if run.audit is not None:
        typer.echo(f"audit: {'ok' if run.audit.ok else run.audit.findings}")
    typer.echo(
        "\nOpen the web app on this chain with the development faucet on: make serve, or\n"
        f"EVTRADE_FAUCET_TOKENS=1000 .venv/bin/evtrade serve --data-dir {data_dir}\n"
        "then browse http://127.0.0.1:8000/ (vehicles), /rsu (dashboard), /docs (API)."
    )


@chain_app.command("run", epilog=LIMITS_HELP)
def chain_run(
    market_file: Annotated[Path, typer.Argument(help="Market file (.json or .toml).")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    chain_url: ChainUrlOption = None,
    deployment: DeploymentOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
) -> None:
    """Run a market as one sealed-bid round on chain: register, bid, reveal, settle, audit."""
    from evtrade.ledger.chain import open_chain
    from evtrade.ledger.operators import load_operators, open_ledger
    from evtrade.settlement.rounds import run_round

    with error_boundary():
        market = load_market(market_file)
        # one transaction after another, clock jumped over the windows: a block per transaction
        chain = open_chain(data_dir=data_dir / "chain", chain_url=chain_url, block_time=0)
        try:
            ledger = open_ledger(chain, data_dir, deployment)
            run = run_round(ledger, load_operators(data_dir), market)
        finally:
            chain.close()
    ids = {address: ident for ident, address in run.addresses.items()}
    trades: list[dict[str, Any]] = [
        {
            "buyer": ids.get(t.buyer, t.buyer),
            "seller": ids.get(t.seller, t.seller),
            "kwh": t.energy / 10**6,
            "price": t.price / 10**18,
            "payment": t.payment / 10**18,
            "block": t.block,
            "tx": t.tx_hash,
        }
        for t in run.trades
    ]
    audit = run.audit.to_dict() if run.audit else None
    if output is OutputFormat.json:
        payload = {
            "round_id": run.round_id,
            "trades": trades,
            "rejected": run.rejected,
            "addresses": run.addresses,
            "audit": audit,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title=f"Round {run.round_id} settled on chain ({chain.kind})")
    for col in ("buyer", "seller", "kWh", "price", "payment", "block", "tx"):
        table.add_column(col, justify="right")
    for t in trades:
        table.add_row(
            t["buyer"],
            t["seller"],
            f"{t['kwh']:.3f}",
            f"{t['price']:.4f}",
            f"{t['payment']:.4f}",
            str(t["block"]),
            t["tx"][:18] + "...",
        )
    Console(width=150).print(table)
    for ident, reason in run.rejected.items():
        typer.echo(f"excluded {ident}: {reason}")
    if audit is not None:
        verdict = "ok" if audit["ok"] else f"{len(audit['findings'])} findings"
        typer.echo(f"audit: {verdict} (max volume gap {audit['max_volume_gap_kwh']:.2e} kWh)")


@app.command()
def audit(
    round_id: Annotated[int, typer.Option("--round", min=0, help="The round to audit.")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    chain_url: ChainUrlOption = None,
    deployment: DeploymentOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
) -> None:
    """Recompute a settled round's prices and optimal volumes from chain events; report differences.

    Exit code 2 when the audit finds a settled trade that differs.
    """
    from evtrade.ledger.chain import open_chain
    from evtrade.ledger.client import Deployment, Ledger
    from evtrade.settlement.audit import audit_round

    path = deployment or data_dir / "deployment.json"
    if not path.exists():
        _fail(f"no deployment record at {path}; give --deployment")
    with error_boundary():
        chain = open_chain(data_dir=data_dir / "chain", chain_url=chain_url)
        try:
            report = audit_round(Ledger(chain, Deployment.load(path)).round_view(round_id))
        finally:
            chain.close()
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(
            f"round {report.round_id}: settled={report.settled} trades={report.trades} "
            f"revealed buyers={report.revealed_buyers} sellers={report.revealed_sellers}"
        )
        typer.echo(
            f"max price error {report.max_price_error:.2e}, "
            f"max volume gap {report.max_volume_gap_kwh:.2e} kWh"
        )
        for f in report.findings:
            typer.echo(f"  {f.kind}: {f.buyer} -> {f.seller}: {f.message}")
        typer.echo("audit: ok" if report.ok else f"audit: {len(report.findings)} findings")
    if not report.ok:
        raise typer.Exit(code=2)


@app.command()
def serve(
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="TOML settings file (EVTRADE_* env vars win).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Service and chain data.")
    ] = None,
    chain_url: ChainUrlOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Start the RSU service: REST API (/docs), the drivers' pages and the RSU dashboard."""
    import os

    import uvicorn

    from evtrade.service.api import create_app
    from evtrade.service.settings import Settings

    for name, value in (
        ("DATA_DIR", data_dir),
        ("CHAIN_URL", chain_url),
        ("HOST", host),
        ("PORT", port),
    ):
        if value is not None:
            os.environ[f"EVTRADE_{name}"] = str(value)
    with error_boundary():
        settings = Settings.load(settings_file)
    typer.echo(
        f"evtrade RSU service on http://{settings.host}:{settings.port}/ "
        f"({'node ' + settings.chain_url if settings.chain_url else 'embedded chain'}, "
        f"data in {settings.data_dir})"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option(help="Small cases only (seconds; the smoke run of make test).")
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats per case (median).")] = 3,
) -> None:
    """Time the clearing engine against cvxpy + Clarabel on the same markets (one process)."""
    from evtrade.bench import suite

    records = []
    for rec in suite(quick=quick, repeats=repeats):
        records.append(rec.to_dict())
        typer.echo(f"{rec.case}: {rec.seconds:.4f} s", err=True)
    if output is OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
        return
    table = Table(title="evtrade bench (seconds: median; ratio: reference / project)")
    cols = ("case", "seconds", "reference_seconds", "ratio", "welfare_gap", "certificate", "kkt")
    for col in (*cols, "peak_mb"):
        table.add_column(col, justify="right")
    for r in records:
        table.add_row(
            str(r["case"]),
            _fmt(r["seconds"], 4),
            _fmt(r["reference_seconds"], 4),
            _fmt(r["ratio"], 3),
            _sci(r["welfare_gap"]),
            _sci(r["certificate"]),
            _sci(r["kkt"]),
            f"{r['peak_mb']:.0f}",
        )
    Console(width=150).print(table)
    for r in records:
        typer.echo(f"{r['case']}: {r['note']}")


def main() -> None:  # pragma: no cover - console entry point
    """The console entry point: the last line of the error boundary (see module docstring)."""
    try:
        app()
    except EvtradeError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("EVTRADE_DEBUG") == "1":
            raise
        typer.echo(f"error: internal error: {type(exc).__name__}: {_one_line(str(exc))}", err=True)
        sys.exit(1)
