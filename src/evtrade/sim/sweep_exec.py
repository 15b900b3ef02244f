"""Running a sweep: in this process, on a local Dask cluster, or on any Dask cluster.

The driver (this process) lists the runs whose key is not yet on disk, sends them to the
executor, and writes each finished record into a Parquet shard; it alone writes, so a run is
recorded once even when a Dask worker dies mid-run and the scheduler runs it again elsewhere.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from evtrade.errors import SweepError
from evtrade.sim.sweep import Run, Sweep, run_one
from evtrade.sim.sweep_store import done_keys, schema, write_shard

#: A shard is written after this many records, or this many seconds after the last one.
SHARD_RECORDS = 500
SHARD_SECONDS = 30.0
#: Runs in flight per worker (the rest wait on the driver: a million futures would not fit).
IN_FLIGHT_PER_WORKER = 8
#: How often the scheduler retries a run whose task failed (a worker that died holding it does
#: not count: the scheduler reschedules those itself).
RETRIES = 2
#: How long a sweep waits for the first worker of a cluster it is sent to.
WORKER_WAIT_S = 120

OnRecord = Callable[[Mapping[str, Any]], None]
T = TypeVar("T")


@dataclass(frozen=True)
class SweepReport:
    """What one call of :func:`execute` did."""

    total: int  # runs in the grid
    skipped: int  # already on disk
    computed: int  # recorded by this call
    failed: int  # of those, runs whose mechanism refused or failed (their ``error``)
    shards: int  # shards written by this call
    seconds: float


def pending(sweep: Sweep, out: Path) -> tuple[list[Run], int]:
    """The runs of ``sweep`` not yet recorded in ``out``, in grid order, and how many are."""
    done = done_keys(out) if out.exists() else set()
    todo = [r for r in sweep.runs() if r.key not in done]
    return todo, sweep.size() - len(todo)


def execute(
    sweep: Sweep,
    out: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    on_record: OnRecord | None = None,
    shard_records: int = SHARD_RECORDS,
) -> SweepReport:
    """Run every pending run of ``sweep``, recording them in ``out``.

    ``scheduler``: a Dask scheduler's address (``tcp://host:port``); otherwise ``workers`` local
    worker processes (default: one per core), or ``workers=0``: a plain loop in this process.
    ``on_record(record)`` is called after each run (the progress bar).

    Raises :class:`SweepError` when the scheduler cannot be reached or a run fails on every try
    (the records finished before it are kept).
    """
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    todo, skipped = pending(sweep, out)
    writer = _Writer(out, schema(sweep), shard_records)
    try:
        if scheduler is None and workers == 0:
            records: Iterator[dict[str, Any]] = (run_one(r) for r in todo)
            _drain(records, writer, on_record)
        elif todo:
            with dask_client(scheduler, workers) as client:
                _drain(on_dask(client, todo, run_one), writer, on_record)
    finally:
        writer.flush()
    return SweepReport(
        total=sweep.size(),
        skipped=skipped,
        computed=writer.written,
        failed=writer.failed,
        shards=writer.shards,
        seconds=time.perf_counter() - t0,
    )


def _drain(records: Iterator[dict[str, Any]], writer: _Writer, on_record: OnRecord | None) -> None:
    for record in records:
        if writer.add(record) and on_record is not None:
            on_record(record)


class _Writer:
    """Buffers records and writes them as shards; a key seen twice is recorded once."""

    def __init__(self, out: Path, columns: Any, limit: int) -> None:
        self.out, self.columns, self.limit = out, columns, max(1, limit)
        self.buffer: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.written = self.failed = self.shards = 0
        self.last = time.monotonic()

    def add(self, record: dict[str, Any]) -> bool:
        if record["key"] in self.seen:
            return False
        self.seen.add(record["key"])
        self.buffer.append(record)
        self.failed += record["error"] is not None
        if len(self.buffer) >= self.limit or time.monotonic() - self.last > SHARD_SECONDS:
            self.flush()
        return True

    def flush(self) -> None:
        if self.buffer:
            write_shard(self.out, self.buffer, self.columns)
            self.written += len(self.buffer)
            self.shards += 1
            self.buffer = []
        self.last = time.monotonic()


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A Dask client of the scheduler at ``scheduler``, or of a local cluster of ``workers``
    processes (one thread each; default one per core) closed on exit."""
    Client, LocalCluster = _dask("Client"), _dask("LocalCluster")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"--scheduler: cannot reach {scheduler} ({exc})") from None
        try:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise SweepError(
                    f"--scheduler: no worker joined {scheduler} within {WORKER_WAIT_S} s"
                ) from None
            yield client
        finally:
            client.close()
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def on_dask(
    client: Any, todo: Sequence[Any], task: Callable[[Any], T], prefix: str = "evtrade-run"
) -> Iterator[T]:
    """``task(item)`` of each item of ``todo`` on the cluster (Dask key ``<prefix>-<item.key>``),
    yielded as they finish, a bounded number in flight."""
    as_completed = _dask("as_completed")
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = IN_FLIGHT_PER_WORKER * workers
    queue = iter(todo)

    def submit(item: Any) -> Any:
        return client.submit(task, item, key=f"{prefix}-{item.key}", retries=RETRIES)

    first = [submit(r) for _, r in zip(range(window), queue, strict=False)]
    finished = as_completed(first)
    for future in finished:
        try:
            result: T = future.result()
        except SweepError:
            raise
        except Exception as exc:  # a worker's failure, pickled back: one line for the user
            raise SweepError(f"run {future.key}: {type(exc).__name__}: {exc}") from None
        future.release()
        nxt = next(queue, None)
        if nxt is not None:
            finished.add(submit(nxt))
        yield result


def _dask(name: str) -> Any:
    """``distributed.<name>``, typed Any: distributed's annotations are partial (mypy --strict
    would refuse every call), and it loads only when a sweep runs on Dask."""
    return getattr(importlib.import_module("distributed"), name)


__all__ = ["SweepReport", "dask_client", "execute", "on_dask", "pending"]
