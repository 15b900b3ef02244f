"""Embedded chain under concurrent load: clock drift against the wall clock, throughput, latency.

Usage: .venv/bin/python benchmarks/chain_clock.py [--transactions 200] [--threads 16]
       [--block-time 1 0] [--mode closed burst] [--format json]

For each block time and mode, a fresh embedded chain in a temporary directory gets the token
contract (Ledger.deploy), gas money and tokens for ``--threads`` senders; then the senders make
``--transactions`` token transfers between them, concurrently, and the run reports:

- drift: the latest block's timestamp minus the wall clock, before the first transfer (after the
  set-up's transactions) and when the last receipt came back (positive: the chain's clock is
  ahead, and bid windows close early); and the largest lead of a receipt's block over the wall
  clock when that receipt came back;
- throughput: transfers per second from the first send to the last receipt;
- receipt latency p50/p95/max, from send to receipt;
- blocks used and the most transfers in one block.

``--block-time 0`` is the chain as it was (a block per transaction, each +1 s after its parent);
1 is the wall-clock block time. Mode ``closed``: each sender waits for its receipt before the
next transfer (a driver's app). Mode ``burst``: each sender sends all its transfers, then waits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.ledger.chain import EmbeddedChain
from evtrade.ledger.client import Ledger

_TRANSFER_GAS = 80_000


def _run(block_time: int, mode: str, n: int, threads: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="evtrade-clock-"))
    chain = EmbeddedChain(tmp, block_time=block_time)
    try:
        authority = Account.create()
        ledger = Ledger.deploy(chain, authority)
        senders: list[LocalAccount] = [Account.create() for _ in range(threads)]
        for sent in [
            chain.send_value(chain.faucet, a.address, 10**20, what="gas") for a in senders
        ]:
            chain.wait(sent)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda a: ledger.mint(authority, a.address, 1000), senders))
        shares = [n // threads + (1 if k < n % threads else 0) for k in range(threads)]
        first_block = int(chain.w3.eth.block_number) + 1

        def transfer(k: int) -> Any:
            to = senders[(k + 1) % threads].address
            fn = ledger.token.functions.transfer(to, 1)
            return chain.send_call(senders[k], fn, _TRANSFER_GAS, what="transfer")

        def worker(k: int) -> list[tuple[float, float, int]]:
            out = []  # (latency s, lead of the block over the wall clock s, block number)
            if mode == "closed":
                for _ in range(shares[k]):
                    t = time.time()
                    status = chain.wait_status(transfer(k))
                    out.append(_observe(chain, status, t))
            else:
                sent = [(time.time(), transfer(k)) for _ in range(shares[k])]
                out = [_observe(chain, chain.wait_status(s), t) for t, s in sent]
            return out

        t0 = time.time()
        drift_start = chain.timestamp() - t0
        with ThreadPoolExecutor(threads) as pool:
            seen = [row for rows in pool.map(worker, range(threads)) for row in rows]
        end = time.time()
        drift = chain.timestamp() - end
        latest = int(chain.w3.eth.block_number)
        per_block = [
            len(chain.w3.eth.get_block(b)["transactions"]) for b in range(first_block, latest + 1)
        ]
        latencies = sorted(s[0] for s in seen)
        return {
            "block_time": block_time,
            "mode": mode,
            "transactions": len(seen),
            "threads": threads,
            "seconds": round(end - t0, 2),
            "throughput_per_s": round(len(seen) / (end - t0), 1),
            "drift_start_s": round(drift_start, 2),
            "drift_s": round(drift, 2),
            "max_lead_s": round(max(s[1] for s in seen), 2),
            "latency_p50_s": round(statistics.median(latencies), 3),
            "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "latency_max_s": round(latencies[-1], 3),
            "blocks": len({s[2] for s in seen}),
            "max_per_block": max(per_block),
        }
    finally:
        chain.close()
        shutil.rmtree(tmp, ignore_errors=True)


_STAMPS: dict[tuple[int, int], int] = {}


def _observe(
    chain: EmbeddedChain, status: dict[str, int], sent_at: float
) -> tuple[float, float, int]:
    now = time.time()
    block = int(status["blockNumber"])
    key = (id(chain), block)
    if key not in _STAMPS:  # one block read per block, not per receipt (blocks hold many)
        _STAMPS[key] = int(chain.w3.eth.get_block(block)["timestamp"])
    return now - sent_at, _STAMPS[key] - now, block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--block-time", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--mode", choices=["closed", "burst"], nargs="+", default=["closed", "burst"]
    )
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args()
    if args.transactions < 1 or not 1 <= args.threads <= 64:
        parser.error("--transactions must be positive and --threads 1 to 64")
    rows = [
        _run(bt, mode, args.transactions, args.threads)
        for bt in args.block_time
        for mode in args.mode
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return
    keys = list(rows[0])
    print(" ".join(f"{k:>16s}" for k in keys))
    for row in rows:
        print(" ".join(f"{row[k]!s:>16s}" for k in keys))


if __name__ == "__main__":
    main()
