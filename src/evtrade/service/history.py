"""Each vehicle's history of the transactions the service sends for it, like a wallet's.

A transaction is recorded *pending* before it is sent, then *confirmed* with its hash and block
once mined, or *failed* with the reason (a revert, a refusal, a node that did not answer). The
rows live in the service's index (:class:`~evtrade.service.store.Store`), so they survive a
restart; the chain itself keeps the transactions.

In a consortium a vehicle trades at several RSUs, each of which records only what it sent, so
:class:`ChainHistory` reads the vehicle's market events back from the chain, whichever RSU's
round they belong to (requests, replies, trades, refunds, withdrawals), and :func:`merge` folds
them into the recorded rows by transaction hash: the history follows the vehicle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hexbytes import HexBytes

from evtrade.ledger.client import Ledger
from evtrade.service.store import Store, TxEntry
from evtrade.settlement import units
from evtrade.settlement.port import Receipt

T = TypeVar("T")

#: Kinds of recorded transactions (``kind``); ``what`` says the rest in words.
KINDS = ("register", "top-up", "request", "reply", "accept", "trade", "refund", "withdraw")

#: The market's events that concern a vehicle, and the indexed topic that names it (1: first).
_VEHICLE_EVENTS = (
    ("RequestPosted", 2),
    ("ReplyPosted", 2),
    ("TradeSettled", 2),  # as buyer
    ("TradeSettled", 3),  # as seller
    ("Refunded", 2),
    ("Withdrawn", 1),
)


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


def _topic(address: str) -> str:
    return "0x" + bytes(HexBytes(address)).rjust(32, b"\0").hex()


def _describe(
    name: str, a: Mapping[str, Any], me: str, rsu: str | None
) -> tuple[str, str, float | None]:
    """(kind, what, tokens into (+) or out of (-) the wallet) of one decoded market event."""
    rid = a.get("round_id")
    where = "" if rid is None else f" in round {rid}" + ("" if rsu is None else f" at RSU {rsu}")
    if name == "RequestPosted":
        escrow = units.to_tokens(a["escrow"])
        return "request", f"request{where}: {escrow:.4f} tokens locked in escrow", -escrow
    if name == "ReplyPosted":
        return "reply", f"reply{where} offering {units.to_kwh(a['spare']):g} kWh", None
    if name == "TradeSettled":
        kwh, paid = units.to_kwh(a["energy"]), units.to_tokens(a["payment"])
        verb = "bought" if str(a["buyer"]).lower() == me else "sold"
        return "trade", f"{verb} {kwh:g} kWh for {paid:.4f} tokens{where}", None
    amount = units.to_tokens(a["amount"])
    if name == "Refunded":
        return "refund", f"refund of {amount:.4f} tokens of escrow{where}", amount
    return "withdraw", f"withdraw {amount:.4f} tokens of credit", amount


class ChainHistory:
    """A vehicle's market events read back from the chain, across every RSU's rounds.

    ``block_times`` gives the timestamps of the blocks it can reach (the explorer's); an entry
    whose block it cannot reach has time 0. The RSU of each round is read once from its
    ``RoundOpened`` event and kept (a round's RSU never changes).
    """

    def __init__(self, ledger: Ledger, block_times: Callable[[set[int]], dict[int, int]]) -> None:
        self.ledger = ledger
        self.block_times = block_times
        self._rsu_of: dict[int, str] = {}
        self._lock = threading.Lock()

    def _logs(self, topics: list[str | None]) -> list[Any]:
        return list(
            self.ledger.chain.logs(
                {
                    "address": self.ledger.market.address,
                    "fromBlock": self.ledger.deployment.block,
                    "toBlock": "latest",
                    "topics": topics,
                }
            )
        )

    def _rsus(self, round_ids: set[int]) -> dict[int, str]:
        """The RSU of each round (its ``RoundOpened`` event, indexed by round id)."""
        with self._lock:
            missing = round_ids - self._rsu_of.keys()
        if missing:
            event = self.ledger.market.events.RoundOpened()
            for log in self._logs([event.topic]):
                args = event.process_log(log)["args"]
                with self._lock:
                    self._rsu_of[int(args["round_id"])] = str(args["rsu"])
        with self._lock:
            return {r: self._rsu_of[r] for r in round_ids if r in self._rsu_of}

    def entries(self, address: str) -> list[dict[str, Any]]:
        """The vehicle's confirmed market events as history rows (:class:`HistoryOut`), each
        with its round, the round's RSU, its block and its transaction's hash."""
        me = address.lower()
        market = self.ledger.market
        found: list[tuple[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        for name, position in _VEHICLE_EVENTS:
            event = getattr(market.events, name)()
            topics: list[str | None] = [event.topic, None, None, None][: position + 1]
            topics[position] = _topic(address)
            for log in self._logs(topics):
                key = (HexBytes(log["transactionHash"]).to_0x_hex(), int(log["logIndex"]))
                if key not in seen:
                    seen.add(key)
                    found.append((name, event.process_log(log)))
        rounds = {int(d["args"]["round_id"]) for _, d in found if "round_id" in d["args"]}
        rsus = self._rsus(rounds)
        times = self.block_times({int(d["blockNumber"]) for _, d in found})
        rows = []
        for name, decoded in found:
            a = decoded["args"]
            rid = int(a["round_id"]) if "round_id" in a else None
            rsu = None if rid is None else rsus.get(rid)
            kind, what, tokens = _describe(name, a, me, rsu)
            block = int(decoded["blockNumber"])
            rows.append(
                {
                    "kind": kind,
                    "what": what,
                    "tokens": tokens,
                    "round_id": rid,
                    "tx": HexBytes(decoded["transactionHash"]).to_0x_hex(),
                    "block": block,
                    "status": "confirmed",
                    "detail": None,
                    "time": float(times.get(block, 0)),
                    "rsu": rsu,
                }
            )
        return rows


def merge(recorded: list[dict[str, Any]], chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded rows and the chain's, newest first, one row per transaction: a chain row of
    a transaction this service recorded only lends the recorded row its RSU."""
    rsu_of = {r["tx"]: r["rsu"] for r in chain}
    out = [{**row, "rsu": rsu_of.get(row["tx"]) if row["tx"] else None} for row in recorded]
    recorded_txs = {r["tx"] for r in recorded if r["tx"]}
    out.extend(r for r in chain if r["tx"] not in recorded_txs)
    pending = float("inf")  # not yet mined: newest
    out.sort(key=lambda r: (pending if r["block"] is None else r["block"], r["time"]), reverse=True)
    return out
