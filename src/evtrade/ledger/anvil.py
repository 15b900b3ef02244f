"""Start a local anvil node for development and benchmarks (`make test` installs it from npm)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evtrade.errors import LedgerError

#: Where `make test` installs @foundry-rs/anvil-linux-amd64 (the repository's .tools/).
IN_TREE = (
    Path(__file__).resolve().parents[3]
    / ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
)


def anvil_path() -> str:
    """The anvil binary: $EVTRADE_ANVIL, the repository's .tools/, or the PATH."""
    found = os.environ.get("EVTRADE_ANVIL") or (
        str(IN_TREE) if IN_TREE.exists() else shutil.which("anvil")
    )
    if found is None:
        raise LedgerError("anvil is not installed: `make test` installs it into .tools/")
    return found


def free_port() -> int:
    """A free TCP port on the loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_anvil(*extra: str) -> Iterator[str]:
    """Run anvil with ``--prune-history`` (and ``extra`` flags) on a free port; yield its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [anvil_path(), "--port", str(port), "--prune-history", "--silent", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise LedgerError("anvil did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
