"""The embedded chain survives SIGKILL: state and history intact, the round completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from hexbytes import HexBytes

from evtrade.ledger.chain import EmbeddedChain
from evtrade.ledger.client import Deployment, Ledger
from evtrade.settlement.rounds import settle_optimal
from evtrade.settlement.views import SealedBid
from tests.ledger_world import PARAMS

ROOT = Path(__file__).resolve().parents[1]


# Slow (`make test-slow`): by default test_service_faults SIGKILLs a service on the embedded chain
# mid-transaction and reopens the same chain, which keeps its history and state.
@pytest.mark.slow
def test_sigkill_mid_round_then_reopen_and_finish(tmp_path: Path) -> None:
    data, out = tmp_path / "chain", tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger_child", str(data), str(out)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    minted = out / "minted.txt"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if minted.exists() and len(minted.read_text().splitlines()) >= 5:
            break
        if child.poll() is not None:
            raise AssertionError(child.stderr.read().decode() if child.stderr else "child died")
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)  # in the middle of a stream of transactions
    child.wait()
    assert child.returncode == -signal.SIGKILL

    progress = json.loads((out / "progress.json").read_text())
    hashes = minted.read_text().split()
    chain = EmbeddedChain(data)
    try:
        ledger = Ledger(chain, Deployment.load(out / "deployment.json"))
        # History: every transaction the child saw mined is there, with its receipt.
        for tx_hash in hashes:
            assert chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["status"] == 1
        supply = ledger._view(ledger.token, "totalSupply")
        assert supply >= 2000 * 10**18 + len(hashes)  # the buyers' top-ups and every logged mint
        # State: the half-done round is intact.
        rid = progress["round"]
        view = ledger.round_view(rid)
        assert len(view.requests) == 2 and len(view.replies) == 3
        assert all(q.value is None for q in view.requests)
        # The round completes after the restart.
        keys = progress["keys"]
        rsu = Account.from_key(keys["rsu"])
        accounts = {a.address: a for a in map(Account.from_key, keys["buyers"] + keys["sellers"])}
        chain.advance_time(PARAMS.t_limit + 1)
        for row in progress["bids"]:
            bid = SealedBid(
                row["round_id"],
                row["is_buyer"],
                row["index"],
                row["bidder"],
                row["value"],
                bytes.fromhex(row["salt"]),
            )
            ledger.reveal(accounts[bid.bidder], bid)
        _, trades = settle_optimal(ledger, rsu, rid)
        assert trades
    finally:
        chain.close()
    # And once more: the settled round is still settled after another reopen.
    chain = EmbeddedChain(data)
    try:
        ledger = Ledger(chain, Deployment.load(out / "deployment.json"))
        assert ledger.round_view(rid).settled
        assert len(ledger.round_view(rid).trades) == len(trades)
    finally:
        chain.close()
