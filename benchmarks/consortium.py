"""Bid and settlement latency with several RSUs on one anvil (issue 16, docs/consortium.md).

The authority deploys and registers ``rsus`` RSUs, which run as ``evtrade serve --deployment
--rsu-key`` processes. At every RSU a round is opened for ``pairs`` buyer/seller pairs of
certified vehicles that keep their own keys and bid on chain, all RSUs at once. Measured:

- **bid latency**: from sending a request or reply to its receipt (anvil mines every 0.1 s);
- **settlement latency**: from the end of a round's reveal window (chain time) to the moment its
  RSU's index shows it settled, which includes the RSU's poll interval.

Run: ``python -m benchmarks.consortium [--rsus 3] [--pairs 4]`` (anvil from ``make test``).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from benchmarks.anvil import free_port, running_anvil
from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.ledger.chain import open_chain
from evtrade.ledger.client import Ledger
from evtrade.ledger.keystore import new_keystore
from evtrade.model import Buyer, Seller
from evtrade.settlement.views import RoundParams

PASSWORD = "benchmark"
WINDOWS = {"T_LIMIT": "10", "BID_GRACE": "2", "T_REVEAL": "4", "T_SETTLE": "30"}


def start_rsu(
    url: str, deployment: Path, key: Path, data: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        **{f"EVTRADE_{k}": v for k, v in WINDOWS.items()},
        "EVTRADE_RSU_KEY_PASSWORD": PASSWORD,
        "EVTRADE_POLL_SECONDS": "0.2",
    }
    argv = [
        sys.executable, "-m", "evtrade", "serve", "--chain-url", url, "--deployment",
        str(deployment), "--rsu-key", str(key), "--data-dir", str(data), "--port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/api/rounds", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("an RSU did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rsus", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=4, help="buyer/seller pairs per RSU")
    args = parser.parse_args()
    with TemporaryDirectory() as tmp, running_anvil("--block-time", "0.1") as url:
        root = Path(tmp)
        chain = open_chain(chain_url=url)
        authority: LocalAccount = Account.create()
        ledger = Ledger.deploy(chain, authority)
        deployment = root / "deployment.json"
        ledger.deployment.save(deployment)
        rsus: list[LocalAccount] = []
        procs: list[subprocess.Popen[bytes]] = []
        bases: list[str] = []
        try:
            for i in range(args.rsus):
                account = new_keystore(root / f"rsu{i}.json", PASSWORD)
                ledger.register_rsu(authority, account)
                rsus.append(account)
                proc, base = start_rsu(url, deployment, root / f"rsu{i}.json", root / f"rsu{i}")
                procs.append(proc)
                bases.append(base)
            expiry = chain.timestamp() + 86_400
            vehicles: list[tuple[LocalAccount, LocalAccount]] = []
            for n in range(args.rsus * args.pairs):
                pair = (Account.create(), Account.create())
                for k, v in enumerate(pair):
                    ledger.register_vehicle(authority, v.address, f"B{n}X{k}", expiry)
                    ledger.mint(authority, v.address, 100.0)
                vehicles.append(pair)
            params = RoundParams(
                v_floor=0.5, c_ceiling=1.0, t_limit=12, t_reveal=4, t_settle=30,
                l1=0.0025, l2=0.005, max_distance_km=None,
            )  # fmt: skip
            rounds = [ledger.open_round(rsu, params) for rsu in rsus]
            bid_seconds: list[float] = []

            def bid(n: int) -> None:
                i = n // args.pairs
                buyer, seller = vehicles[n]
                key = ledger.rsu_pubkey(rsus[i].address)
                b = Buyer(buyer.address, 0.95, 0.6, 1.0, 2, 10, 1.0, 29.0, 119.6)
                s = Seller(seller.address, 0.55, 0.5, 0.8, 20, 10, 0.05, 29.0, 119.6)
                sends: tuple[Callable[[], object], ...] = (
                    lambda: ledger.post_request(buyer, rounds[i], b, rsu_pubkey=key),
                    lambda: ledger.post_reply(seller, rounds[i], s, rsu_pubkey=key),
                )
                for send in sends:
                    start = time.monotonic()
                    send()
                    bid_seconds.append(time.monotonic() - start)

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(bid, range(len(vehicles))))
            # Every round watched at once: when the chain passes its reveal window, when its
            # RSU's index shows it settled.
            ends = [ledger.round_view(rid).reveal_deadline for rid in rounds]
            passed: dict[int, float] = {}
            done: dict[int, float] = {}
            while len(done) < len(rounds):
                now = chain.timestamp()
                for i, rid in enumerate(rounds):
                    if i not in passed and now > ends[i]:
                        passed[i] = time.monotonic()
                    if i in passed and i not in done:
                        phase = httpx.get(f"{bases[i]}/api/rounds/{rid}").json()["phase"]
                        if phase == "settled":
                            done[i] = time.monotonic()
                time.sleep(0.05)
            settle_seconds = [done[i] - passed[i] for i in range(len(rounds))]
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            chain.close()
    print(f"{args.rsus} RSUs on one anvil (0.1 s blocks), {args.pairs} pairs per RSU")
    print(
        f"bid latency (send to receipt), {len(bid_seconds)} bids: median "
        f"{statistics.median(bid_seconds):.2f} s, max {max(bid_seconds):.2f} s"
    )
    print(
        "settlement latency (end of the reveal window to settled in the RSU's index): "
        + ", ".join(f"{s:.2f} s" for s in settle_seconds)
    )


if __name__ == "__main__":
    main()
