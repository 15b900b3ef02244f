"""The embedded chain keeps time with the wall clock: blocks on a 1 s block time, many
transactions per block, never stamped ahead of the wall clock unless a development
``advance_time`` moved it on (issue 12, item 3)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionNotFound
from hexbytes import HexBytes

from evtrade.errors import LedgerError
from evtrade.ledger.chain import EmbeddedChain, Sent

#: Creation code that returns BALANCE(CALLER): CALLER BALANCE PUSH1 0 MSTORE PUSH1 32 PUSH1 0
#: RETURN. An eth_call without a recipient runs it and answers the caller's balance.
_OWN_BALANCE = HexBytes("0x333160005260206000f3")


@pytest.fixture
def chain(tmp_path: Path) -> EmbeddedChain:
    return EmbeddedChain(tmp_path / "chain")


def _blocks(chain: EmbeddedChain, first: int) -> list[dict[str, int]]:
    latest = int(chain.w3.eth.block_number)
    out = []
    for n in range(first, latest + 1):
        block = chain.w3.eth.get_block(n)
        out.append({"timestamp": int(block["timestamp"]), "txs": len(block["transactions"])})
    return out


def test_clock_keeps_to_the_wall_clock_under_load(chain: EmbeddedChain) -> None:
    # 300 transfers from 16 threads, 12 from each thread's own account, the rest from the faucet:
    # before, each was a block +1 s after its parent, so the clock ran ~300 s ahead.
    senders = [Account.create() for _ in range(16)]
    funds = [chain.send_value(chain.faucet, a.address, 10**18, what="fund") for a in senders]
    for fund in funds:
        chain.wait(fund)
    first = int(chain.w3.eth.block_number) + 1
    sink = Account.create().address

    def burst(k: int) -> list[Sent]:
        sent = [chain.send_value(senders[k], sink, 1, what="own") for _ in range(12)]
        sent += [chain.send_value(chain.faucet, sink, 1, what="faucet") for _ in range(6)]
        return sent

    with ThreadPoolExecutor(16) as pool:
        sent = [s for batch in pool.map(burst, range(16)) for s in batch]
    sent += [chain.send_value(chain.faucet, sink, 1, what="faucet") for _ in range(12)]
    assert len(sent) == 300
    receipts = [chain.wait_status(s) for s in sent]
    wall = time.time()

    # A correctness bound, not a speed one: it holds however slow the machine.
    assert chain.timestamp() <= wall + 1
    blocks = _blocks(chain, first)
    stamps = [b["timestamp"] for b in blocks]
    assert stamps == sorted(set(stamps))  # strictly increasing
    assert sum(b["txs"] for b in blocks) == 300
    assert len({r["blockNumber"] for r in receipts}) < 300  # several transactions share a block
    assert max(b["txs"] for b in blocks) > 1
    assert chain.w3.eth.get_balance(sink) == 300
    # Every sender's nonces went through, none skipped or reused.
    for account in senders:
        assert chain.w3.eth.get_transaction_count(account.address) == 12


def test_receipt_comes_once_the_block_is_mined_and_not_ahead(chain: EmbeddedChain) -> None:
    for _ in range(3):
        receipt = chain.wait(chain.send_value(chain.faucet, Account.create().address, 1, what="x"))
        seen = time.time()
        block = chain.w3.eth.get_block(receipt["blockNumber"])
        assert block["timestamp"] <= seen
        assert receipt["blockNumber"] <= chain.w3.eth.block_number
        # The next transaction's block: after the latest, not ahead of the wall clock.
        assert chain.timestamp() < chain.next_timestamp() <= time.time()


def test_pending_transactions_are_seen_by_later_ones_in_the_block(
    chain: EmbeddedChain,
) -> None:
    newcomer: LocalAccount = Account.create()
    sink = Account.create().address
    funded = chain.send_value(chain.faucet, newcomer.address, 10**18, what="fund")
    # Not mined yet: the newcomer's money exists only in the pending block.
    pending_balance = chain.w3.eth.call({"from": newcomer.address, "data": _OWN_BALANCE}, "pending")
    # (the call's gas is bought from that balance before BALANCE reads it)
    assert 0 < int.from_bytes(pending_balance, "big") <= 10**18
    assert chain.w3.eth.get_balance(newcomer.address, "pending") == 10**18
    chain.preflight(newcomer.address, None, _OWN_BALANCE, what="preflight")
    # The newcomer spends it in the same block, twice (nonces 0 and 1).
    spent = [chain.send_value(newcomer, sink, 5, what="spend") for _ in range(2)]
    blocks = {chain.wait(s)["blockNumber"] for s in [funded, *spent]}
    assert len(blocks) <= 2  # usually one; two if a second boundary fell between the sends
    assert chain.w3.eth.get_balance(sink) == 10
    assert chain.w3.eth.get_transaction_count(newcomer.address) == 2


def test_no_receipt_for_a_pending_transaction(chain: EmbeddedChain) -> None:
    # Direct calls on the back end do not tick its clock, so the block stays open here.
    sent = chain.send_value(chain.faucet, Account.create().address, 1, what="x")
    tx_hash = bytes(sent.tx_hash)
    assert tx_hash in chain.backend._pending
    with pytest.raises(TransactionNotFound, match="pending"):
        chain.backend.get_transaction_receipt(tx_hash)
    assert chain.backend.get_transaction_by_hash(tx_hash)["block_hash"] is None
    assert chain.wait(sent)["status"] == 1


def test_a_transaction_that_does_not_fit_waits_for_the_next_block(chain: EmbeddedChain) -> None:
    # Creation code that is one INVALID opcode: it burns its whole gas limit at once, so two
    # fill most of the 120M block and the third needs the next block.
    burner = HexBytes("0xfe")
    sent = [
        chain.send_data(chain.faucet, None, burner, 50_000_000, what="burn", preflight=False)
        for _ in range(3)
    ]
    receipts = [chain.w3.eth.wait_for_transaction_receipt(s.tx_hash) for s in sent]
    assert all(r["status"] == 0 and r["gasUsed"] == 50_000_000 for r in receipts)
    first, _, third = (int(r["blockNumber"]) for r in receipts)
    assert third > first
    stamps = [int(chain.w3.eth.get_block(int(r["blockNumber"]))["timestamp"]) for r in receipts]
    assert stamps[2] > stamps[0]
    assert stamps[2] <= time.time() + 1


def test_advance_time_still_moves_the_clock(chain: EmbeddedChain) -> None:
    before = chain.timestamp()
    chain.advance_time(1000)
    after = chain.timestamp()
    assert after >= before + 1000
    # The chain goes on from there (it does not wait 1000 s for the wall clock).
    receipt = chain.wait(chain.send_value(chain.faucet, Account.create().address, 1, what="x"))
    assert chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] > after
    with pytest.raises(LedgerError, match="positive"):
        chain.advance_time(0)


def test_restart_after_close_keeps_state(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain")
    sink = Account.create().address
    waited = chain.wait(chain.send_value(chain.faucet, sink, 7, what="x"))
    unwaited = chain.send_value(chain.faucet, sink, 8, what="y")  # close mines it
    chain.close()
    chain = EmbeddedChain(tmp_path / "chain")
    try:
        assert chain.w3.eth.get_balance(sink) == 15
        assert chain.wait(Sent(waited["transactionHash"], "x"))["status"] == 1
        assert chain.wait(unwaited)["status"] == 1
        before = chain.timestamp()
        receipt = chain.wait(chain.send_value(chain.faucet, sink, 1, what="z"))
        assert chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] > before
        assert chain.w3.eth.get_balance(sink) == 16
    finally:
        chain.close()


def test_block_time_zero_mines_each_transaction(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path / "chain", block_time=0)
    try:
        start = int(chain.w3.eth.block_number)
        for _ in range(3):
            chain.send_value(chain.faucet, Account.create().address, 1, what="x")
        assert int(chain.w3.eth.block_number) == start + 3
    finally:
        chain.close()


def test_waiting_for_an_unknown_transaction_is_a_ledger_error(chain: EmbeddedChain) -> None:
    unknown = Sent(HexBytes(b"\x01" * 32), "ghost")
    with pytest.raises(LedgerError, match="ghost: no receipt"):
        chain.wait(unknown, timeout=0.2)
    with pytest.raises(LedgerError, match="ghost: no receipt"):
        chain.wait_status(unknown, timeout=0.2)


@pytest.mark.parametrize("bad", [-1, 61, 1.5, True, "1"])
def test_block_time_refuses_bad_values(tmp_path: Path, bad: object) -> None:
    with pytest.raises(LedgerError, match="block_time"):
        EmbeddedChain(tmp_path / "chain", block_time=bad)  # type: ignore[arg-type]
