"""Each vehicle's history of the transactions the service sends for it, like a wallet's.

A transaction is recorded *pending* before it is sent, then *confirmed* with its hash and block
once mined, or *failed* with the reason (a revert, a refusal, a node that did not answer). The
rows live in the service's index (:class:`~evtrade.service.store.Store`), so they survive a
restart; the chain itself keeps the transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from evtrade.service.store import Store, TxEntry
from evtrade.settlement.port import Receipt

T = TypeVar("T")

#: Kinds of recorded transactions (``kind``); ``what`` says the rest in words.
KINDS = ("register", "top-up", "request", "reply", "accept", "refund", "withdraw")


def _receipt_fields(result: object) -> tuple[str | None, int | None, bool]:
    """Hash, block and success of a receipt; a result without one (a sealed bid) is mined."""
    if not hasattr(result, "get"):
        return None, None, True
    receipt: Receipt = result  # type: ignore[assignment]
    raw = receipt.get("transactionHash")
    tx: str | None = None
    if raw is not None:
        tx = str(raw.to_0x_hex()) if hasattr(raw, "to_0x_hex") else str(raw)
    block = receipt.get("blockNumber")
    return tx, None if block is None else int(block), int(receipt.get("status", 1)) == 1


def record(store: Store, entry: TxEntry, send: Callable[[], T]) -> T:
    """Run ``send`` (a transaction for ``entry.address``) with its history entry: pending while
    it waits for its block, then confirmed or failed. The error, if any, is raised again."""
    row = store.add_tx(entry)
    try:
        result = send()
    except Exception as exc:  # recorded as failed, then raised again for the error mapping
        store.finish_tx(row, "failed", tx=None, block=None, detail=str(exc))
        raise
    tx, block, ok = _receipt_fields(result)
    store.finish_tx(
        row, "confirmed" if ok else "failed", tx=tx, block=block, detail=None if ok else "reverted"
    )
    return result
