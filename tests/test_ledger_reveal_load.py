"""Issue 12, item 3: the number of sealed bids never decides who gets revealed.

40 sealed bids (20 requests, 20 replies), posted from 16 threads on the embedded chain with its
real 1 s wall-clock block time, are all revealed by the RSU inside a 30 s reveal window, in one
transaction. Before, one block per transaction at +1 s each revealed 30 of 40.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.ledger.chain import EmbeddedChain
from evtrade.ledger.client import Ledger
from evtrade.model.participants import Buyer, Seller
from evtrade.settlement.views import RoundParams, SealedBid

N = 20  # per side


# Slow (`make test-slow`): by default test_ledger_contracts'
# test_reveal_sealed_is_one_transaction_and_skips_bad_entries proves the one-transaction reveal.
@pytest.mark.slow
def test_forty_sealed_bids_are_all_revealed_in_one_transaction(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")  # block_time=1: blocks follow the wall clock
    try:
        authority, rsu = Account.create(), Account.create()
        ledger = Ledger.deploy(chain, authority)
        ledger.register_rsu(authority, rsu)
        buyers = [Account.create() for _ in range(N)]
        sellers = [Account.create() for _ in range(N)]
        expiry = chain.timestamp() + 10**7

        def certify(k: int, car: LocalAccount) -> None:
            ledger.register_vehicle(authority, car.address, f"LOAD {k:03d}", expiry)
            ledger.mint(authority, car.address, 1000)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(certify, range(2 * N), buyers + sellers))
        # A generous bid window, so that a loaded machine posts every bid in time; the reveal
        # window is the 30 s.
        params = RoundParams(v_floor=0.5, c_ceiling=1.0, t_limit=600, t_reveal=30, t_settle=600)
        rid = ledger.open_round(rsu, params)
        pk = ledger.rsu_pubkey(rsu.address)

        def request(k: int) -> SealedBid:
            b = Buyer(id=f"B{k}", v=0.9, v_min=0.6, v_max=1.0, b_min=1, b_max=5, w=1.0)
            return ledger.post_request(buyers[k], rid, b, rsu_pubkey=pk)

        def reply(k: int) -> SealedBid:
            s = Seller(id=f"S{k}", c=0.6, c_min=0.5, c_max=0.8, s_t=20, s_r=10, rho=0.05)
            return ledger.post_reply(sellers[k], rid, s, rsu_pubkey=pk)

        with ThreadPoolExecutor(16) as pool:
            bids = list(pool.map(request, range(N))) + list(pool.map(reply, range(N)))
        assert len(bids) == 2 * N
        view = ledger.round_view(rid)
        assert len(view.requests) == N and len(view.replies) == N
        chain.advance_time(view.deadline - chain.timestamp() + 1)  # the bid window closes
        report = ledger.reveal_sealed(rsu, rid)
        assert report.transactions == 1
        assert not report.skipped
        assert sorted(report.revealed) == sorted(b.bidder for b in bids)
        after = ledger.round_view(rid)
        assert all(q.value is not None for q in after.requests)
        assert all(p.value is not None for p in after.replies)
        assert chain.timestamp() <= after.reveal_deadline  # revealed inside the reveal window
    finally:
        chain.close()
