"""Settlement throughput on both back ends: trades settled per second for batches of 10/100/500.

Usage: .venv/bin/python benchmarks/settlement.py [--rounds 3] [--sizes 10 100 500] [--format json]

Starts its own anvil (installed by `make test` into .tools/) with --prune-history and manual
mining (the settlements of one run are mined in one block), and an embedded chain in a
temporary directory. Prints one row per back end, batch size and preflight setting.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_ledger_e2e import _free_port, anvil_path  # noqa: E402

from evtrade.ledger.chain import EmbeddedChain, RpcChain  # noqa: E402
from evtrade.ledger.throughput import settlement_throughput  # noqa: E402


def _start_anvil() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            anvil_path(),
            "--port",
            str(port),
            "--prune-history",
            "--silent",
            "--gas-limit",
            "300000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("anvil did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args()
    records = []
    proc, url = _start_anvil()
    try:
        for n in args.sizes:
            for preflight in (True, False):
                tmp = Path(tempfile.mkdtemp(prefix="evtrade-bench-"))
                embedded = EmbeddedChain(tmp)
                try:
                    records.append(
                        settlement_throughput(embedded, n, rounds=args.rounds, preflight=preflight)
                    )
                finally:
                    embedded.close()
                    shutil.rmtree(tmp, ignore_errors=True)
                records.append(
                    settlement_throughput(RpcChain(url), n, rounds=args.rounds, preflight=preflight)
                )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return
    print(
        f"{'backend':10s} {'trades':>7s} {'batches':>7s} {'preflight':>9s} "
        f"{'seconds':>8s} {'trades/s':>9s} {'gas/trade':>9s}"
    )
    for r in records:
        print(
            f"{r.backend:10s} {r.trades_per_settlement:7d} {r.settlements:7d} "
            f"{r.preflight!s:>9s} {r.seconds:8.3f} {r.trades_per_second:9.0f} "
            f"{r.gas_per_trade:9.0f}"
        )


if __name__ == "__main__":
    main()
