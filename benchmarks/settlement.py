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
import tempfile
from pathlib import Path

from anvil import running_anvil
from evtrade.ledger.chain import EmbeddedChain, RpcChain
from throughput import ANVIL_FLAGS, settlement_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args()
    records = []
    with running_anvil(*ANVIL_FLAGS) as url:
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
