"""Start a local anvil node for the tests and benchmarks (`make test` installs it from npm).

Tooling of this repository, not of the evtrade package: it finds anvil in the repository's
``.tools/`` (next to this directory), where `make test` puts it.
"""

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

#: Past states anvil keeps in memory under ``--prune-history``. Without a number it keeps none:
#: a call anvil resolved to block N then fails with "BlockOutOfRangeError: block height is N+1
#: but requested was N" when block N+1 is mined meanwhile (issue 11, item 11). 1,024 states are
#: 100 s of history at the tests' 0.1 s block time, and the disk is still never written.
KEEP_STATES = 1024

#: Where `make test` installs @foundry-rs/anvil-linux-amd64 (the repository's .tools/).
IN_TREE = (
    Path(__file__).resolve().parents[1]
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
    """Run anvil on a free port with ``extra`` flags, keeping the last :data:`KEEP_STATES`
    states in memory (``--prune-history``); yield its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            anvil_path(),
            *("--port", str(port), "--prune-history", str(KEEP_STATES), "--silent"),
            *extra,
        ],
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
