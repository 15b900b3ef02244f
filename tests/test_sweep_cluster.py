"""A sweep on a real Dask cluster (issue 16 item 3): ``dask scheduler`` and two ``dask worker``
processes on loopback, started as separate processes; the records equal an in-process run's,
and a worker SIGKILLed mid-sweep loses no run and records none twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evtrade.sim.sweep import sweep_from_dict
from evtrade.sim.sweep_exec import execute
from evtrade.sim.sweep_store import read_records

DASK = str(Path(sys.executable).parent / "dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class Cluster:
    """A scheduler and its workers, each its own process; stopped by the fixture's finalizer."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = (self.tmp / log).open("wb")
        proc = subprocess.Popen(
            [DASK, *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp, env=_env()
        )
        self.procs.append(proc)
        return proc

    def start(self, workers: int) -> None:
        port = self.address.rsplit(":", 1)[1]
        self._spawn(
            "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard", log="sched.log"
        )
        for k in range(workers):
            self.workers.append(
                self._spawn(
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"w{k}",
                    "--local-directory",
                    str(self.tmp / f"w{k}"),
                    "--death-timeout",
                    "60",
                    log=f"w{k}.log",
                )
            )
        self.wait_for_workers(workers)

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        client = Client(self.address, timeout="60s")
        try:
            client.wait_for_workers(n, timeout=90)
        finally:
            client.close()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start(workers=2)
        yield c
    finally:
        c.stop()


def _sweep(replicates: int, size: int) -> Any:
    return sweep_from_dict(
        {
            "sweep": {
                "name": "cluster",
                "seed": 5,
                "replicates": replicates,
                "mechanisms": ["eta", "babg"],
                "sizes": [[size, size + 3]],
            },
            "params": {"babg": {"beta": [0.4, 0.6]}},
        }
    )


def test_records_on_a_dask_cluster_equal_an_in_process_run(cluster, tmp_path):
    sweep = _sweep(replicates=3, size=8)
    report = execute(sweep, tmp_path / "cluster", scheduler=cluster.address)
    assert report.computed == sweep.size() == 9
    execute(sweep, tmp_path / "local", workers=0)
    remote = read_records(tmp_path / "cluster", timing=False)
    assert remote.equals(read_records(tmp_path / "local", timing=False))
    workers = {
        w.rsplit(":", 1)[1] for w in read_records(tmp_path / "cluster")["worker"].to_pylist()
    }
    assert str(os.getpid()) not in workers  # computed on the workers, not here
    # a paper's figures as a sweep: each figure one task, its CSV byte-identical to the loop's
    from evtrade.sim.sweep_figures import FigureSweep, execute_figures

    figures = FigureSweep("eta", seed=3, quick=True, figures=("fig4", "fig5", "fig6"))
    assert execute_figures(figures, tmp_path / "fc", scheduler=cluster.address)[0] == 3
    execute_figures(figures, tmp_path / "fl", workers=0)
    for name in ("fig4.csv", "fig5.csv", "fig6.csv"):
        assert (tmp_path / "fc" / name).read_bytes() == (tmp_path / "fl" / name).read_bytes()


def test_a_worker_killed_mid_sweep_loses_no_run_and_records_none_twice(cluster, tmp_path):
    sweep = _sweep(replicates=20, size=60)  # 60 runs of 60 x 63, a few hundredths of a second each
    victim = cluster.workers[0]
    seen: list[str] = []

    def kill_after_5(record: Any) -> None:
        seen.append(record["key"])
        if len(seen) == 5:
            victim.send_signal(signal.SIGKILL)

    report = execute(sweep, tmp_path / "cluster", scheduler=cluster.address, on_record=kill_after_5)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    assert report.computed == sweep.size()
    table = read_records(tmp_path / "cluster")
    keys = table.column("key").to_pylist()
    assert len(keys) == len(set(keys)) == sweep.size()
    assert {r.key for r in sweep.runs()} == set(keys)
    assert len(seen) == sweep.size()
    # every record, those computed again after the kill included, is the in-process one
    execute(sweep, tmp_path / "local", workers=0)
    assert read_records(tmp_path / "cluster", timing=False).equals(
        read_records(tmp_path / "local", timing=False)
    )
