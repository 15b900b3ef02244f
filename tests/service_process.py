"""Run `evtrade serve` as a real process on a free port, for the service and browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from benchmarks.anvil import free_port

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse"


class Service:
    def __init__(self, data_dir: Path, **settings: object) -> None:
        # The tests top vehicles up through the development faucet (off by default in
        # production: docs/security.md); pass faucet_tokens=0 to test the default.
        settings = {"faucet_tokens": 1_000_000, **settings}
        # A short grace after the announced bid window: a test sends its bids one after another,
        # so none queues for long (docs/service.md, "Bid windows").
        settings = {"bid_grace": 5, **settings}
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **{f"EVTRADE_{k.upper()}": str(v) for k, v in settings.items()}}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evtrade",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode() if self.proc.stderr else "died")
            try:
                if httpx.get(self.url + "/api/rounds", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("service did not start")

    def wait_exit(self, timeout: float = 300) -> int:
        """Wait for the process to end by itself (a fault hook killed it); its return code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the service did not stop by itself in {timeout} s") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)


@contextmanager
def running_service(data_dir: Path, **settings: object) -> Iterator[Service]:
    service = Service(data_dir, **settings)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def register(
    client: httpx.Client, name: str, plate: str, lat: float = 57.70, lon: float = 11.97
) -> str:
    r = client.post(
        "/api/vehicles",
        json={"name": name, "plate": plate, "password": PASSWORD, "lat": lat, "lon": lon},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["address"])


def request_body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "password": PASSWORD,
        "b_min": 2,
        "b_max": 10,
        "v": 0.95,
        "v_min": 0.6,
        "v_max": 1.0,
        "lat": 57.70,
        "lon": 11.97,
    }
    body.update(over)
    return body


def reply_body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "password": PASSWORD,
        "c": 0.55,
        "c_min": 0.5,
        "c_max": 0.8,
        "s_t": 20,
        "s_r": 10,
        "rho": 0.05,
        "lat": 57.70,
        "lon": 11.96,
    }
    body.update(over)
    return body


def wait_for(
    client: httpx.Client, round_id: int, phase: str, timeout: float = 180
) -> dict[str, Any]:
    """The round's view once it reaches ``phase`` (polling; generous for a busy machine)."""
    return wait_until(client, round_id, lambda view: view["phase"] == phase, phase, timeout)


def wait_until(
    client: httpx.Client,
    round_id: int,
    ok: Callable[[dict[str, Any]], bool],
    what: str = "the condition",
    timeout: float = 180,
) -> dict[str, Any]:
    """The round's view once ``ok(view)`` holds (polling)."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/api/rounds/{round_id}")
        if r.status_code == 200:
            view = dict(r.json())
            if ok(view):
                return view
        time.sleep(0.3)
    raise AssertionError(f"round {round_id} never reached {what}: {view}")
