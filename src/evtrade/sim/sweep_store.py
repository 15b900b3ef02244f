"""A sweep's records on disk: Parquet shards in one directory, read back as one table.

Only the process that drives a sweep writes, one shard per batch of finished runs
(``part-<ns>-<random>.parquet``, written under a temporary name then renamed, so a shard is
whole or absent). A run's ``key`` (the hash of its inputs) says whether it is done: resuming a
sweep reads the keys of every shard and skips those runs.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evtrade.errors import SweepError
from evtrade.sim.sweep import OUTPUT_COLUMNS, TIMING_COLUMNS, Sweep

SHARD_GLOB = "part-*.parquet"
_ARROW = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}
_INT_OUTPUTS = ("pairs_traded", "rejected", "unmatched", "solver_iterations")
_STR_OUTPUTS = ("error", "solver_method")


def schema(sweep: Sweep) -> pa.Schema:
    """The columns of the sweep's records: inputs, ``param_<option>`` per option of the grid,
    outputs, then the timing columns (:data:`~evtrade.sim.sweep.TIMING_COLUMNS`)."""
    cols: list[tuple[str, pa.DataType]] = [
        ("key", pa.string()),
        ("mechanism", pa.string()),
        ("n_buyers", pa.int64()),
        ("n_sellers", pa.int64()),
        ("replicate", pa.int64()),
        ("root_seed", pa.int64()),
        ("version", pa.string()),
        ("scenario", pa.string()),
    ]
    cols += [(f"param_{k}", _ARROW[t]) for k, t in sweep.param_types().items()]
    for c in OUTPUT_COLUMNS:
        if c in _INT_OUTPUTS:
            cols.append((c, pa.int64()))
        elif c in _STR_OUTPUTS:
            cols.append((c, pa.string()))
        elif c == "solver_converged":
            cols.append((c, pa.bool_()))
        else:
            cols.append((c, pa.float64()))
    cols += [("time_market_s", pa.float64()), ("time_clear_s", pa.float64())]
    cols.append(("worker", pa.string()))
    return pa.schema(cols)


def write_shard(out: Path, records: Sequence[Mapping[str, Any]], columns: pa.Schema) -> Path:
    """Write ``records`` as one new shard in ``out``; whole or absent (rename after write)."""
    name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = out / f".{name}.tmp"
    pq.write_table(pa.Table.from_pylist(list(records), schema=columns), tmp)
    os.replace(tmp, out / name)
    return out / name


def shards(out: Path) -> list[Path]:
    """The shards in ``out``, oldest first."""
    return sorted(out.glob(SHARD_GLOB))


def done_keys(out: Path) -> set[str]:
    """The keys of every run recorded in ``out`` (empty for a new directory)."""
    keys: set[str] = set()
    for path in shards(out):
        keys.update(_read(path, ["key"]).column("key").to_pylist())
    return keys


def read_records(out: Path, *, timing: bool = True) -> pa.Table:
    """Every record in ``out`` as one table sorted by key; without the timing columns unless
    ``timing``. Shards of sweeps with other options get null in the options they lack.

    Raises :class:`SweepError` when ``out`` holds no shard or a shard cannot be read.
    """
    paths = shards(out)
    if not paths:
        raise SweepError(f"{out}: no sweep records (part-*.parquet) in this directory")
    try:
        table = pa.concat_tables([_read(p) for p in paths], promote_options="default")
    except pa.ArrowException as exc:  # two sweeps in one folder with one option of two types
        raise SweepError(f"{out}: shards that do not fit together ({exc})") from None
    if not timing:
        table = table.drop_columns([c for c in TIMING_COLUMNS if c in table.column_names])
    return table.sort_by("key")


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise SweepError(f"{path}: not a readable sweep shard ({exc})") from None


# --- summary ----------------------------------------------------------------------------------

#: The summarised outputs: mean and standard deviation over a cell's replicates.
METRICS = ("welfare", "total_volume", "gains_from_trade", "total_payment", "satisfaction_mean")


def summarize(table: pa.Table) -> list[dict[str, Any]]:
    """One row per cell (mechanism, size, options): runs, failed runs, mean and standard deviation
    of each of :data:`METRICS`, the share of converged solves and the mean clearing time."""
    params = sorted(c for c in table.column_names if c.startswith("param_"))
    keys = ["mechanism", "n_buyers", "n_sellers", *params]
    table = table.append_column("failed", pc.cast(pc.is_valid(table["error"]), pa.int64()))
    table = table.append_column("converged", pc.cast(table["solver_converged"], pa.float64()))
    aggs: list[Any] = [("key", "count"), ("failed", "sum")]
    sample = pc.VarianceOptions(ddof=1)  # the replicates are a sample: n - 1 degrees of freedom
    for m in METRICS:
        aggs += [(m, "mean"), (m, "stddev", sample)]
    aggs.append(("converged", "mean"))
    if "time_clear_s" in table.column_names:
        aggs.append(("time_clear_s", "mean"))
    grouped = table.group_by(keys, use_threads=False).aggregate(aggs)
    rows = grouped.sort_by([(k, "ascending") for k in keys]).to_pylist()
    out: list[dict[str, Any]] = []
    for r in rows:
        row: dict[str, Any] = {k: r[k] for k in keys}
        row["runs"] = r["key_count"]
        row["failed"] = r["failed_sum"]
        for m in METRICS:
            row[f"{m}_mean"] = r[f"{m}_mean"]
            row[f"{m}_std"] = r[f"{m}_stddev"]
        row["converged_share"] = r["converged_mean"]
        row["time_clear_s_mean"] = r.get("time_clear_s_mean")
        out.append(row)
    return out


def cell_label(row: Mapping[str, Any]) -> str:
    """``mechanism option=value ...`` (the options the cell sets)."""
    opts = " ".join(
        f"{k[len('param_') :]}={v}"
        for k, v in row.items()
        if k.startswith("param_") and v is not None
    )
    return f"{row['mechanism']} {opts}".strip()


def plot_summary(rows: Iterable[Mapping[str, Any]], out: Path) -> list[Path]:
    """One PNG per metric in ``out``: its mean (error bars: standard deviation) against the market
    size, one line per mechanism and options."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    sizes = sorted({(r["n_buyers"], r["n_sellers"]) for r in rows})
    x_of = {s: k for k, s in enumerate(sizes)}
    written: list[Path] = []
    for m in METRICS:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        lines: dict[str, list[Mapping[str, Any]]] = {}
        for r in rows:
            lines.setdefault(cell_label(r), []).append(r)
        for label, sel in lines.items():
            pts = [r for r in sel if r[f"{m}_mean"] is not None]
            xs = [x_of[(r["n_buyers"], r["n_sellers"])] for r in pts]
            ys = [r[f"{m}_mean"] for r in pts]
            err = [r[f"{m}_std"] or 0.0 for r in pts]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
        ax.set_xticks(range(len(sizes)), [f"{n}x{k}" for n, k in sizes])
        ax.set_xlabel("buyers x sellers")
        ax.set_ylabel(m.replace("_", " "))
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


__all__ = [
    "METRICS",
    "cell_label",
    "done_keys",
    "plot_summary",
    "read_records",
    "schema",
    "shards",
    "summarize",
    "write_shard",
]
