"""Everything the CLI prints: rich tables, plain lines, JSON and the figures' progress bar.

The commands compute; this module only formats what they hand it, so a change of layout is an edit
here alone. Amounts arrive converted (kWh, tokens) by :mod:`evtrade.settlement.units`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the types only: importing the ledger side would slow every command
    from evtrade.market import ClearingResult
    from evtrade.settlement.audit import AuditReport

T = TypeVar("T")


def fmt(x: Any, digits: int = 4) -> str:
    """A table cell: ``-`` for missing, floats to ``digits`` decimals, anything else as text."""
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def sci(x: float | None) -> str:
    """A small error in scientific notation, ``-`` when missing."""
    return "-" if x is None else f"{x:.1e}"


def json_text(data: Any, *, finite: bool = False) -> str:
    """``data`` as indented JSON; ``finite`` refuses NaN and Infinity (a ``ValueError``)."""
    return json.dumps(data, indent=2, allow_nan=not finite)


def result(
    record: Mapping[str, Any],
    *,
    as_json: bool,
    table: Callable[[], None],
    warnings: Sequence[str] = (),
) -> None:
    """A command's result once its work is done: the input file's ``warnings`` on stderr, then
    ``record`` as JSON or its ``table``. The JSON text is made first: a record that is not finite
    (NaN, Infinity) is refused (a ``ValueError``, one line at the boundary) before anything is
    printed, so a command that fails says one line, the error."""
    text = json_text(record, finite=True)
    for line in warnings:
        warning(line)
    if as_json:
        echo(text)
    else:
        table()


def echo(text: str) -> None:
    """One line (or block) on stdout."""
    typer.echo(text)


def note(text: str) -> None:
    """One line on stderr (progress of a long command)."""
    typer.echo(text, err=True)


def _table(title: str, columns: Iterable[str], *, left: Iterable[str] = ()) -> Table:
    table = Table(title=title)
    flush_left = set(left)
    for col in columns:
        table.add_column(col, justify="left" if col in flush_left else "right")
    return table


# --- evtrade clear / montecarlo ---------------------------------------------------------------


#: Unit of every price in a clearing table (docs/ledger.md: prices are tokens per kWh).
PRICE_UNIT = "tokens/kWh"


class PriceColumns(NamedTuple):
    """What the ``P``, ``R`` and ``T`` fields of a mechanism's pairs mean: the three column
    headers and the legend printed under the table (docs/json-format.md, docs/babg.md)."""

    P: str
    R: str
    T: str
    legend: str


_ETA_COLUMNS = PriceColumns(
    "bid P*",
    "ask R*",
    "price T",
    "P*: the buyer's bid (Theorem 1), R*: the seller's ask (Theorem 1), T = (P* + R*)/2: the "
    "transaction price the buyer pays and the seller receives per kWh",
)
#: Each mechanism's meaning of P, R and T, by its registry name; others get :data:`_GENERIC`.
PRICE_COLUMNS: dict[str, PriceColumns] = {
    "eta": _ETA_COLUMNS,
    "complete-info": PriceColumns(
        "value v",
        "cost c",
        "price T",
        "v: the buyer's true value, c: the seller's true cost, T = (v + c)/2: the transaction "
        "price per kWh",
    ),
    "single-price": PriceColumns(
        "value v",
        "cost c",
        "posted T",
        "v: the buyer's value (the most it accepts), c: the seller's cost (the least it "
        "accepts), T: the posted price every pair trades at",
    ),
    "babg": PriceColumns(
        "bid W",
        "ask Q",
        "pays W",
        "W: the buyer's final bid, Q: the seller's final ask, both after the auctions; the "
        "buyer pays W, the seller receives Q and the auctioneer keeps W - Q (docs/babg.md)",
    ),
    "ida": PriceColumns(
        "pays P",
        "price s",
        "pays T",
        "pays P = pays T: the buyer's unit payment b_ij / (eta c_ij), price s: the seller's "
        "unit price s_ji, both after the iteration (docs/babg.md)",
    ),
}
_GENERIC = PriceColumns(
    "P", "R", "T", "P: the buyer's bid, R: the seller's ask, T: the transaction price"
)


def _cells(*values: str) -> list[Text]:
    """Table cells shown as they are: an id like ``[b]`` is text, never rich markup."""
    return [Text(v) for v in values]


def clearing(d: Mapping[str, Any], *, all_pairs: bool = False) -> None:
    """A clearing result's record (``ClearingResult.to_dict``): trades, rejected, unmatched and
    totals.

    The pairs the optimum gives nothing (volume 0) are counted but not listed unless
    ``all_pairs``; the price columns are named per mechanism (:data:`PRICE_COLUMNS`), in
    :data:`PRICE_UNIT`, with a legend. Every line of the totals fits 80 columns.
    """
    console = Console()
    cols = PRICE_COLUMNS.get(d["mechanism"], _GENERIC)
    pairs = d["pairs"] if all_pairs else [p for p in d["pairs"] if p["volume"] > 0]
    unit = f"\n{PRICE_UNIT}"
    table = _table(
        f"Trades ({d['mechanism']}, volumes {d['volumes']})",
        (
            "buyer",
            "seller",
            cols.P + unit,
            cols.R + unit,
            cols.T + unit,
            "volume\nkWh",
            "distance\nkm",
        ),
        left=("buyer", "seller"),
    )
    for p in pairs:
        table.add_row(
            *_cells(
                p["buyer"],
                p["seller"],
                fmt(p["P"]),
                fmt(p["R"]),
                fmt(p["T"]),
                fmt(p["volume"], 3),
                fmt(p["distance_km"], 2),
            )
        )
    console.print(table)
    console.print(Text(f"{cols.legend}; prices in {PRICE_UNIT}."))
    hidden = len(d["pairs"]) - len(pairs)
    if hidden:
        console.print(
            Text(
                f"{hidden} of {len(d['pairs'])} pairs may trade but get 0 kWh: not listed "
                "(--all-pairs lists them)."
            )
        )
    for key, label in (("rejected", "Rejected bids"), ("unmatched", "Unmatched")):
        if d[key]:
            t = Table(title=label)
            t.add_column("id")
            t.add_column("role")
            t.add_column("reason")
            for r in d[key]:
                t.add_row(*_cells(r["id"], r["role"], r["reason"]))
            console.print(t)
    sat = d["satisfaction"]["mean"]
    # One total a line: long numbers (up to 1e25) never wrap a line at 80 columns.
    for label, value in (
        ("total volume", f"{d['total_volume']:.3f} kWh"),
        ("total payments", f"{d['total_payment']:.4f} tokens"),
        ("welfare", f"{d['welfare']:.6f}"),
        ("gains from trade", f"{d['gains_from_trade']:.4f} tokens"),
        ("satisfaction", fmt(sat)),
    ):
        typer.echo(f"{label:17s} {value}")


def warning(text: str) -> None:
    """``warning: text`` on stderr, on one line (the market file's, see
    :func:`evtrade.model.files.load_market_with_warnings`)."""
    typer.echo(f"warning: {text}", err=True)


def key_values(record: Mapping[str, Any]) -> None:
    """One ``key value`` line per field (the Monte Carlo estimate)."""
    for k, v in record.items():
        typer.echo(f"{k:18s} {fmt(v, 6)}")


# --- evtrade reproduce ------------------------------------------------------------------------


def with_progress(label: str, names: Sequence[str], step: Callable[[str], T]) -> dict[str, T]:
    """``step(name)`` for each name, with a progress bar on stderr; each name's result."""
    results: dict[str, T] = {}
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task(f"{label} figures", total=len(names))
        for name in names:
            progress.update(task, description=f"{label} {name}")
            results[name] = step(name)
            progress.advance(task)
    return results


def gains_summary(gains: Mapping[str, float]) -> None:
    """BABG's summary: each relative gain as a signed percentage."""
    for key, value in gains.items():
        typer.echo(f"  {key:24s} {value:+.1%}")


# --- evtrade demo / chain run / audit ---------------------------------------------------------


def mechanism_comparison(
    n_buyers: int, n_sellers: int, rows: Sequence[tuple[str, ClearingResult]]
) -> None:
    """The demo's first table: one market cleared by several mechanisms (label, ClearingResult)."""
    table = _table(
        f"Paper-scale market: {n_buyers} buyers x {n_sellers} sellers",
        ("mechanism", "pairs", "traded pairs", "volume kWh", "welfare", "gains", "satisf."),
    )
    for label, r in rows:
        table.add_row(
            label,
            str(len(r.pairs)),
            str(sum(1 for p in r.pairs if p.volume > 0)),
            f"{r.total_volume:.2f}",
            f"{r.welfare:.4f}",
            f"{r.gains_from_trade:.3f}",
            fmt(r.satisfaction["mean"]),
        )
    Console(width=170).print(table)


def _trades_table(
    title: str, columns: Sequence[str], trades: Sequence[Mapping[str, Any]], tx_width: int | None
) -> Table:
    """Settled trades (kWh, tokens), each with its block and transaction (cut to ``tx_width``)."""
    table = _table(title, columns)
    for t in trades:
        table.add_row(
            t["buyer"],
            t["seller"],
            f"{t['kwh']:.3f}",
            f"{t['price']:.4f}",
            f"{t['payment']:.4f}",
            str(t["block"]),
            t["tx"] if tx_width is None else t["tx"][:tx_width] + "...",
        )
    return table


def demo_round(
    round_id: int, trades: Sequence[Mapping[str, Any]], balances: Sequence[Mapping[str, Any]]
) -> None:
    """The demo's round: its trades with block and transaction, then each vehicle's balances."""
    console = Console(width=170)
    title = f"Round {round_id} on the embedded chain: sealed bids, settled at P*, R*, T"
    columns = ("buyer", "seller", "kWh", "price T", "payment", "block", "transaction")
    console.print(_trades_table(title, columns, trades, None))
    table = _table(
        "Balances (tokens) and energy on chain",
        ("vehicle", "account", "before", "after", "kWh bought", "kWh sold"),
    )
    for b in balances:
        table.add_row(
            b["vehicle"],
            b["account"],
            f"{b['before']:.4f}",
            f"{b['after']:.4f}",
            f"{b['bought']:.3f}",
            f"{b['sold']:.3f}",
        )
    console.print(table)


def demo_audit(report: AuditReport) -> None:
    """The demo's audit: ``ok`` or the findings."""
    typer.echo(f"audit: {'ok' if report.ok else report.findings}")


def serve_hint(data_dir: object, vehicles: Sequence[tuple[str, str, str]], password: str) -> None:
    """Where the demo's chain can be seen in the web app, and the vehicles (name, role,
    account) a newcomer can act as there with ``password``."""
    typer.echo("\nDemo vehicles for the web app (wallet password: " + password + "):")
    for name, role, account in vehicles:
        typer.echo(f"  {name:5s} {role:6s} http://127.0.0.1:8000/{role}?address={account}")
    typer.echo(
        "\nNext: make serve  (or EVTRADE_FAUCET_TOKENS=1000 .venv/bin/evtrade serve"
        f" --data-dir {data_dir})\n"
        "then open http://127.0.0.1:8000/ (vehicles), /rsu (dashboard), /docs (API)."
    )


def round_trades(round_id: int, chain_kind: str, trades: Sequence[Mapping[str, Any]]) -> None:
    """``evtrade chain run``'s table: the settled trades, transactions shortened."""
    title = f"Round {round_id} settled on chain ({chain_kind})"
    columns = ("buyer", "seller", "kWh", "price", "payment", "block", "tx")
    Console(width=150).print(_trades_table(title, columns, trades, 18))


def excluded(rejected: Mapping[str, str]) -> None:
    """One line per participant the round left out, with the reason."""
    for ident, reason in rejected.items():
        typer.echo(f"excluded {ident}: {reason}")


def audit_verdict(audit: Mapping[str, Any]) -> None:
    """One line: the audit of a round just run."""
    verdict = "ok" if audit["ok"] else f"{len(audit['findings'])} findings"
    typer.echo(f"audit: {verdict} (max volume gap {audit['max_volume_gap_kwh']:.2e} kWh)")


def audit_report(report: AuditReport) -> None:
    """``evtrade audit``'s report (an ``AuditReport``): counts, largest errors, each finding."""
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


# --- evtrade serve ---------------------------------------------------------------------------


def serving(host: str, port: int, chain_url: str | None, data_dir: object) -> None:
    """Where the service listens, on which chain, with its data where."""
    typer.echo(
        f"evtrade RSU service on http://{host}:{port}/ "
        f"({'node ' + chain_url if chain_url else 'embedded chain'}, "
        f"data in {data_dir})"
    )


# --- evtrade bench ----------------------------------------------------------------------------


def bench(records: Sequence[Mapping[str, Any]]) -> None:
    """The benchmark's table (medians, the reference's time, accuracy) and each case's note."""
    cols = ("case", "seconds", "reference_seconds", "ratio", "welfare_gap", "certificate", "kkt")
    table = _table(
        "evtrade bench (seconds: median; ratio: reference / project)", (*cols, "peak_mb")
    )
    for r in records:
        table.add_row(
            str(r["case"]),
            fmt(r["seconds"], 4),
            fmt(r["reference_seconds"], 4),
            fmt(r["ratio"], 3),
            sci(r["welfare_gap"]),
            sci(r["certificate"]),
            sci(r["kkt"]),
            f"{r['peak_mb']:.0f}",
        )
    Console(width=150).print(table)
    for r in records:
        typer.echo(f"{r['case']}: {r['note']}")


# --- evtrade schedule -------------------------------------------------------------------------


def _slot_ranges(energy: Sequence[float]) -> str:
    """The slots a vehicle draws in, as ranges (``9-11,14``); ``-`` for none."""
    used = [t for t, e in enumerate(energy) if e > 0.0]
    parts: list[str] = []
    for t in used:
        if parts and t - 1 in used:
            first = parts[-1].split("-")[0]
            parts[-1] = f"{first}-{t}"
        else:
            parts.append(str(t))
    return ",".join(parts) or "-"


def day_schedule(d: Mapping[str, Any]) -> None:
    """A day's schedule (``schedule_to_dict``): prices and loads per slot, each vehicle's source,
    supplier, energy and bill, then the game's convergence report and the baselines."""
    console = Console()
    slots = _table(
        "Grid per slot (lambda = phi + mu (q - Q))",
        ("slot", "phi (base)", "Q (forecast)", "q (load)", "lambda (price)", "PV price"),
    )
    for t, s in enumerate(d["slots"]):
        slots.add_row(
            str(t),
            fmt(s["base_price"]),
            fmt(s["forecast"], 3),
            fmt(s["load"], 3),
            fmt(s["price"]),
            fmt(s["pv_price"]),
        )
    console.print(slots)
    vehicles = _table(
        "Vehicles",
        ("vehicle", "source", "supplier", "kWh drawn", "slots", "cost", "unmet kWh"),
        left=("vehicle", "source", "supplier", "slots"),
    )
    for v in d["vehicles"]:
        vehicles.add_row(
            v["id"],
            v["source"],
            fmt(v["supplier"]),
            fmt(sum(v["energy_kwh"]), 3),
            _slot_ranges(v["energy_kwh"]),
            fmt(v["cost"]),
            fmt(v["unmet_kwh"], 3),
        )
    console.print(vehicles)
    for p in d["pv"]:
        typer.echo(
            f"PV {p['id']}: sold {p['sold_kwh']:.3f} kWh for {p['revenue']:.4f}, "
            f"{p['to_grid_kwh']:.3f} kWh to the grid for {p['feed_in_revenue']:.4f}"
        )
    eq = d["equilibrium"]
    residual = eq["residuals"][-1] if eq["residuals"] else None
    typer.echo(
        f"equilibrium ({eq['method']}): {'converged' if eq['converged'] else 'NOT CONVERGED'} "
        f"after {eq['iterations']} iterations, max gain {sci(eq['max_gain'])}, "
        f"last residual {sci(residual)}, grid cost {eq['cost']:.4f}"
    )
    opt = d["social_optimum"] or {}
    typer.echo(
        f"social optimum {fmt(opt.get('cost'))}   "
        f"price of anarchy {fmt(opt.get('price_of_anarchy'), 6)}   "
        f"no DSM {d['no_dsm']['cost']:.4f}   cheapest hours {d['cheapest_hours']['cost']:.4f}"
    )


def not_converged(eq: Mapping[str, Any]) -> None:
    """A loud warning on stderr: the game stopped at its iteration cap, not at an equilibrium."""
    typer.echo(
        f"WARNING: the charging game did NOT converge after {eq['iterations']} iterations: a "
        f"vehicle could still save {eq['max_gain']:.3e} by deviating alone; the prices and "
        "bills are not a Nash equilibrium",
        err=True,
    )


def dsm_claims(c: Mapping[str, Any]) -> None:
    """``reproduce dsm``'s summary: each thesis claim, what the runs give, and whether it holds."""
    s1, s2, sv, fl = c["scenario1"], c["scenario2"], c["saving"], c["flattening"]
    windows = ", ".join(f"{k} {v:.1%}" for k, v in sv["ev1_cheapest_hours_by_window"].items())
    lines = (
        f"Fig. 7.6: lambda recomputed, largest difference {c['fig7_6_max_abs_error']:.1e} SEK/kWh",
        f"scenario 1: thesis {s1['thesis_supplier']}, nearest covering PV {s1['supplier']} "
        f"({'holds' if s1['holds'] else 'does not hold'})",
        f"scenario 2: thesis {s2['thesis_supplier']}, scheduler {s2['supplier']} "
        f"({'holds' if s2['holds'] else 'does not hold'})",
        f"saving: thesis about {sv['thesis']:.0%}; EV1 cheapest hours vs on arrival by window: "
        f"{windows}; fleet equilibrium vs no DSM {sv['fleet']:.1%}",
        f"peaks (kWh/h): no DSM {fl['peak_no_dsm']:.1f}, cheapest hours "
        f"{fl['peak_cheapest_hours']:.1f}, equilibrium {fl['peak_equilibrium']:.1f}",
    )
    for line in lines:
        typer.echo(f"  {line}")


def tangle_run(d: Mapping[str, Any]) -> None:
    """``evtrade tangle``'s table: the run's parameters, its measures and the theory's tip count."""
    theory = f" (theory for urts: 2 lambda h = {d['theory_tips_urts']:.4g})"
    lines = (
        f"tangle: {d['transactions']:,} transactions, lambda {d['rate']:g}, h {d['delay']:g}, "
        f"tip selection {d['tip_selection']}, alpha {d['alpha']:g}, seed {d['seed']}",
        f"mean tip count {d['tips_mean']:.2f}{theory}, last {d['tips'][-1]}",
        f"first approval after {fmt(d['first_approval_mean'])} time units on average",
        f"confirmation latency {fmt(d['confirmation_latency_mean'])} time units on average "
        f"(confidence >= {d['threshold']:g} over {d['confidence_samples']} tip selections; "
        f"confirmed {fmt(d['confirmed_fraction'])})",
        f"left behind {fmt(d['left_behind_fraction'])} of the transactions old enough to judge",
    )
    for line in lines:
        typer.echo(line)


def key_created(path: object, address: str, pubkey: str) -> None:
    """``authority new-key``: where the keystore is, its address and public key."""
    typer.echo(f"keystore {path}\naddress  {address}\npubkey   0x{pubkey}")


def deployed(
    path: object, authority: str, chain_id: int, registry: str, token: str, market: str
) -> None:
    """``authority init``: the contracts deployed and the record written."""
    typer.echo(
        f"deployed on chain {chain_id} by the authority {authority}\n"
        f"registry {registry}\ntoken    {token}\nmarket   {market}\nrecord   {path}"
    )


def authority_done(what: str, tx_hash: str) -> None:
    """One operator's transaction, confirmed."""
    typer.echo(f"{what} (transaction {tx_hash})")


# --- evtrade sweep ----------------------------------------------------------------------------


@contextmanager
def sweep_progress(
    name: str, total: int, skipped: int
) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """A progress bar on stderr over a sweep's runs (those already on disk count as done); yields
    the callback that advances it by one record."""
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task(f"sweep {name}", total=total, completed=skipped)
        yield lambda _record: progress.advance(task)


def sweep_report(report: Any, out: object) -> None:
    """What a sweep did: runs computed, skipped (already on disk), failed, shards and time."""
    typer.echo(
        f"{report.computed} runs recorded in {report.shards} shards, {report.skipped} already in "
        f"{out}, {report.failed} failed; {report.total} in the sweep ({report.seconds:.1f} s)"
    )


def sweep_summary(rows: Sequence[Mapping[str, Any]]) -> None:
    """The sweep's cells: runs, failures, mean (+- sd) welfare, volume, gains and satisfaction."""
    from evtrade.sim.sweep_store import cell_label

    table = _table(
        "Sweep summary (mean +- sd over replicates)",
        ("cell", "size", "runs", "failed", "welfare", "volume kWh", "gains", "satisfaction"),
        left=("cell",),
    )
    for r in rows:
        table.add_row(
            cell_label(r),
            f"{r['n_buyers']}x{r['n_sellers']}",
            str(r["runs"]),
            str(r["failed"]),
            *(
                f"{fmt(r[f'{m}_mean'], 3)} +- {fmt(r[f'{m}_std'], 3)}"
                for m in ("welfare", "total_volume", "gains_from_trade", "satisfaction_mean")
            ),
        )
    Console(width=170).print(table)


def figures_report(computed: int, skipped: int, seconds: float, out: object) -> None:
    """What a ``[figures]`` sweep did: figures written (PNG + CSV), those already in ``out``."""
    typer.echo(
        f"wrote {computed} figures (PNG + CSV) to {out}, {skipped} already there ({seconds:.1f} s)"
    )


# --- evtrade dv2g -----------------------------------------------------------------------------


def dv2g_day(d: Mapping[str, Any]) -> None:
    """A DV2G day (``dv2g_to_dict``): per slot with sellers, each EV's price (first bid ->
    equilibrium), selection probability, supply, demand and sale; then the slots' totals, welfare
    and convergence."""
    console = Console()
    totals = _table(
        "Slots (kWh; welfare = grids' welfare + EVs' revenue)",
        (
            "slot",
            "supply",
            "need",
            "demand",
            "sold",
            "welfare",
            "first-bid welfare",
            "iter",
            "EGT",
            "Nash",
        ),
    )
    for s in d["slots"]:
        if not s["evs"]:
            continue
        c, fb = s["convergence"], s["first_bid"]
        totals.add_row(
            str(s["slot"]),
            fmt(s["supply_kwh"], 3),
            fmt(s["need_kwh"], 3),
            fmt(s["demand_kwh"], 3),
            fmt(s["sold_kwh"], 3),
            fmt(s["welfare"]),
            fmt(fb["grid_welfare"] + fb["ev_revenue"]),
            f"{c['iterations']}{_convergence_note(c)}",
            str(c["egt_iterations"]),
            _nash_cell(s),
        )
    console.print(totals)
    evs = _table(
        "EVs per slot (price per kWh)",
        ("slot", "EV", "first price", "price", "floor", "Q", "supply", "demand", "sold"),
        left=("EV",),
    )
    for s in d["slots"]:
        for e in s["evs"]:
            evs.add_row(
                str(s["slot"]),
                e["id"],
                fmt(e["first_price"]),
                fmt(e["price"]),
                fmt(e["floor"]),
                fmt(e["probability"]),
                fmt(e["supply_kwh"], 3),
                fmt(e["demand_kwh"], 3),
                fmt(e["sold_kwh"], 3),
            )
    console.print(evs)
    _dv2g_deviations(d)
    for e in d["evs"]:
        typer.echo(
            f"EV {e['id']}: sold {e['sold_kwh']:.3f} kWh for {e['revenue']:.4f}, degradation cost "
            f"{e['degradation_cost']:.4f}/kWh, storage cost {e['esu_cost_per_day']:.4f}/day"
        )


def _nash_cell(s: Mapping[str, Any]) -> str:
    """A slot's verdict on the price game: yes, NO (the EVs that gain: lines below the table),
    or - (not checked)."""
    if s["nash"] is None:
        return "-"
    return "yes" if s["nash"] else "NO"


def _dv2g_deviations(d: Mapping[str, Any]) -> None:
    """Whether the prices are a Nash equilibrium of the EVs' price game; each EV that gains by a
    unilateral price change, with its best deviation and gain (pivotal: Bertrand-Edgeworth)."""
    check = d["nash_check"]
    if not check["checked"]:
        typer.echo(f"Nash check of the prices: not done ({check['reason']})")
        return
    verdict = "every slot" if d["nash"] else "NOT in every slot (docs/dv2g.md#nash-check)"
    typer.echo(
        f"Nash equilibrium of the price game (no EV gains by a unilateral price change on "
        f"{check['even_points']} + own and rivals' prices): {verdict}"
    )
    for s in d["slots"]:
        for e in s["evs"]:
            if e["id"] in s["deviating"]:
                typer.echo(
                    f"  slot {s['slot']}: EV {e['id']}{' (pivotal)' if e['pivotal'] else ''} "
                    f"gains {e['deviation_gain']:.6g} by moving its price {e['price']:.6g} -> "
                    f"{e['best_deviation_price']:.6g}"
                )


def _convergence_note(c: Mapping[str, Any]) -> str:
    """'' for a slot cleared by eq. 40; say when it is not, or only to the price's float step."""
    if not c["converged"]:
        return " (NOT converged)"
    return " (to float resolution)" if c["price_resolution"] else ""


def dv2g_not_converged(d: Mapping[str, Any]) -> None:
    """A loud warning on stderr naming the slots whose Stackelberg loop hit its iteration cap."""
    slots = [str(s["slot"]) for s in d["slots"] if not s["convergence"]["converged"]]
    typer.echo(
        f"WARNING: the DV2G games did NOT converge in slot(s) {', '.join(slots)}: the prices "
        "there are not a Stackelberg equilibrium",
        err=True,
    )
