"""The block explorer of the RSU's dashboard: which chain and contracts, the latest blocks with
their transactions decoded (what, who, how much), and the detail of one round (its revealed bids
once the bid window is over, and the audit of its settlement).

Transactions are decoded from their receipts (the chain adapter's read methods): the sender, the
status, and the events the three contracts logged, read with the contracts' ABIs from the shipped
artifacts. Amounts are converted from the contracts' fixed point (:mod:`evtrade.settlement.units`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from hexbytes import HexBytes

from evtrade.errors import LedgerError
from evtrade.ledger.artifacts import CONTRACTS, load_artifact
from evtrade.ledger.chain import Chain
from evtrade.ledger.client import Deployment
from evtrade.service.consortium import registry_authority
from evtrade.service.context import RsuContext
from evtrade.settlement import units
from evtrade.settlement.audit import audit_round
from evtrade.settlement.views import RoundView

#: How many of the latest blocks the dashboard lists.
RECENT_BLOCKS = 10
#: Decoded transactions kept (a mined transaction never changes); the oldest go first.
DECODED_CACHE = 2048
#: Phases in which the bids are still sealed: their values are never shown.
SEALED_PHASES = ("bidding", "closing", "unknown")
#: The price history reads a block's time back at most this many blocks behind the head (the
#: times are kept: a block never changes); an older trade is listed without its time.
TIMES_BACK = 2000
#: How long to wait for the receipt of a transaction listed in a mined block, seconds.
_RECEIPT_TIMEOUT = 5.0

Args = Mapping[str, Any]
#: A transaction in words: (what, who, kWh, tokens, summary); who None: the sender.
Described = tuple[str, str | None, float | None, float | None, str]


def _open_round(a: Args, n: int) -> Described:
    floor, ceiling = units.to_tokens(a["v_floor"]), units.to_tokens(a["c_ceiling"])
    return "open round", a["rsu"], None, None, f"v_min {floor:g}, c_max {ceiling:g} tokens/kWh"


def _request(a: Args, n: int) -> Described:
    b_min, b_max = units.to_kwh(a["b_min"]), units.to_kwh(a["b_max"])
    v_min, v_max = units.to_tokens(a["v_min"]), units.to_tokens(a["v_max"])
    escrow = units.to_tokens(a["escrow"])
    note = f"{b_min:g}-{b_max:g} kWh, values {v_min:g}-{v_max:g} tokens/kWh (sealed)"
    return "request", a["buyer"], b_max, escrow, f"{note}; escrow {escrow:g} tokens"


def _reply(a: Args, n: int) -> Described:
    spare, deposit = units.to_kwh(a["spare"]), units.to_tokens(a["deposit"])
    c_min, c_max = units.to_tokens(a["c_min"]), units.to_tokens(a["c_max"])
    note = f"{spare:g} kWh spare, costs {c_min:g}-{c_max:g} tokens/kWh (sealed)"
    return "reply", a["seller"], spare, deposit, f"{note}; deposit {deposit:g} tokens"


def _revealed(a: Args, n: int) -> Described:
    who = "by the RSU" if a["by_rsu"] else "by the bidder"
    what = f"{n} sealed values revealed" if n > 1 else "sealed value revealed"
    return "reveal", None if n > 1 else a["bidder"], None, None, f"{what} {who}"


def _settled(a: Args, n: int) -> Described:
    kwh, paid = units.to_kwh(a["energy"]), units.to_tokens(a["payment"])
    note = f"{a['trades']} trade(s), {kwh:g} kWh for {paid:g} tokens"
    return "settle", None, kwh, paid, note


def _refunded(a: Args, n: int) -> Described:
    amount = units.to_tokens(a["amount"])
    return "collect", a["buyer"], None, amount, f"refund of {amount:g} tokens"


def _withdrawn(a: Args, n: int) -> Described:
    amount = units.to_tokens(a["amount"])
    return "withdraw", a["account"], None, amount, f"{amount:g} tokens withdrawn"


def _forfeited(a: Args, n: int) -> Described:
    amount = units.to_tokens(a["amount"])
    return "forfeit", a["bidder"], None, amount, f"deposit of {amount:g} tokens burned"


def _registered(a: Args, n: int) -> Described:
    return "register", a["vehicle"], None, None, "vehicle certified by the authority"


def _revoked(a: Args, n: int) -> Described:
    return "revoke", a["vehicle"], None, None, "vehicle revoked by the authority"


def _rsu_added(a: Args, n: int) -> Described:
    return "add RSU", a["rsu"], None, None, "RSU registered with its public key"


def _transfer(a: Args, n: int) -> Described:
    amount = units.to_tokens(a["value"])
    if int(a["sender"], 16) == 0:
        return "mint", a["receiver"], None, amount, f"{amount:g} tokens minted"
    return "transfer", a["sender"], None, amount, f"{amount:g} tokens to {a['receiver']}"


def _approval(a: Args, n: int) -> Described:
    amount = units.to_tokens(a["value"])
    return "approve", a["owner"], None, amount, f"allows the market {amount:g} tokens"


Describe = Callable[[Args, int], Described]

#: The event that names a transaction, first found first: a request also logs the escrow's
#: token transfer, a settlement its trades, a refund a burned deposit.
_DESCRIBE: tuple[tuple[str, Describe], ...] = (
    ("RoundSettled", _settled),
    ("RoundOpened", _open_round),
    ("RequestPosted", _request),
    ("ReplyPosted", _reply),
    ("Revealed", _revealed),
    ("Refunded", _refunded),
    ("Withdrawn", _withdrawn),
    ("DepositForfeited", _forfeited),
    ("VehicleRegistered", _registered),
    ("VehicleRevoked", _revoked),
    ("RsuAdded", _rsu_added),
    ("Transfer", _transfer),
    ("Approval", _approval),
)


def _round_of(events: Sequence[tuple[str, Args]]) -> int | None:
    for _, args in events:
        if "round_id" in args:
            return int(args["round_id"])
    return None


def describe(
    sender: str, to: str | None, ok: bool, events: Sequence[tuple[str, Args]]
) -> dict[str, Any]:
    """What a transaction did, from its sender, target, status and decoded events.

    ``what`` is the action (register, request, reply, reveal, settle, accept, collect,
    withdraw, mint, ...), ``who`` the account it concerns, ``kwh`` and ``tokens`` its amounts
    (null when it has none) and ``summary`` one line in words.
    """
    names = [name for name, _ in events]
    out: dict[str, Any] = {
        "what": "call",
        "who": sender,
        "kwh": None,
        "tokens": None,
        "summary": "",
        "round_id": _round_of(events),
    }
    if not ok:
        out.update(what="failed", summary="reverted: the contract refused it, nothing changed")
        return out
    if to is None:
        out.update(what="deploy", summary="contract deployed")
        return out
    for name, describe_event in _DESCRIBE:
        if name in names:
            first = events[names.index(name)][1]
            what, who, kwh, tokens, summary = describe_event(first, names.count(name))
            out.update(what=what, who=who or sender, kwh=kwh, tokens=tokens, summary=summary)
            break
    else:
        if not events:
            out.update(what="gas money", who=to, summary="ether for the account's fees")
    # The single buyer of a round accepting an offer settles it itself (Market.accept).
    if out["what"] == "settle":
        buyers = {args["buyer"] for name, args in events if name == "TradeSettled"}
        if buyers == {sender}:
            out.update(what="accept", who=sender)
    return out


class Explorer:
    """What the chain and the RSU's deployment look like, for the dashboard."""

    def __init__(self, ctx: RsuContext, chain: Chain, deployment: Deployment) -> None:
        self.ctx = ctx
        self.chain = chain
        self.deployment = deployment
        addresses = (deployment.registry, deployment.token, deployment.market)
        # (contract address, event topic) -> the event that decodes it, from the shipped ABIs
        self._events: dict[tuple[str, bytes], Any] = {}
        for name, address in zip(CONTRACTS, addresses, strict=True):
            abi = load_artifact(name).abi
            contract = chain.contract(address, abi)
            for entry in abi:
                if entry.get("type") == "event":
                    event = getattr(contract.events, entry["name"])()
                    self._events[(address.lower(), bytes(HexBytes(event.topic)))] = event
        self._decoded: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Per settled round: its bids, who settled it and the audit (a settled round never
        # changes, so the detail is read from the chain once).
        self._settled: dict[int, dict[str, Any]] = {}
        self._times: dict[int, int] = {}

    # -- blocks and transactions ------------------------------------------------------------------

    def decode(self, tx_hash: str) -> dict[str, Any]:
        """One transaction in words (cached once mined: a mined transaction never changes)."""
        cached = self._decoded.get(tx_hash)
        if cached is not None:
            return cached
        try:
            receipt = self.chain.receipt(HexBytes(tx_hash), _RECEIPT_TIMEOUT)
        except LedgerError:  # not mined yet: shown as pending, decoded on a later call
            return {
                "hash": tx_hash,
                "status": "pending",
                "sender": None,
                "to": None,
                "what": "pending",
                "who": None,
                "kwh": None,
                "tokens": None,
                "summary": "waiting for its block",
                "round_id": None,
                "events": [],
            }
        events: list[tuple[str, Args]] = []
        for log in receipt["logs"]:
            topics = log["topics"]
            if not topics:  # an anonymous event: none of the three contracts logs one
                continue
            event = self._events.get((str(log["address"]).lower(), bytes(topics[0])))
            if event is not None:
                events.append((event.event_name, event.process_log(log)["args"]))
        ok = int(receipt["status"]) == 1
        to = receipt.get("to")
        sender = str(receipt["from"])
        out = {
            "hash": tx_hash,
            "status": "confirmed" if ok else "failed",
            "sender": sender,
            "to": None if to is None else str(to),
            **describe(sender, None if to is None else str(to), ok, events),
            "events": [name for name, _ in events],
        }
        self._decoded[tx_hash] = out
        while len(self._decoded) > DECODED_CACHE:
            self._decoded.popitem(last=False)
        return out

    def recent_blocks(self, count: int = RECENT_BLOCKS) -> list[dict[str, Any]]:
        """The latest ``count`` blocks, newest first, with their transactions (hashes, decoded)."""
        with self.ctx.lock:
            blocks = self.chain.recent_blocks(count)
            self._times.update((b.number, b.timestamp) for b in blocks)
            return [
                {
                    "number": b.number,
                    "hash": b.hash,
                    "timestamp": b.timestamp,
                    "transactions": list(b.transactions),
                    "decoded": [
                        {**self.decode(t), "block": b.number, "timestamp": b.timestamp}
                        for t in b.transactions
                    ],
                }
                for b in blocks
            ]

    def chain_info(self) -> dict[str, Any]:
        """The chain, the contracts, the RSU and the authority, and the latest blocks."""
        ctx = self.ctx
        return {
            "kind": self.chain.kind,
            "chain_id": self.chain.chain_id,
            "deployment": asdict(self.deployment),
            "rsu": {
                "address": ctx.operators.rsu.address,
                "lat": ctx.settings.rsu_lat,
                "lon": ctx.settings.rsu_lon,
            },
            "authority": registry_authority(self.chain, self.deployment.registry),
            "faucet_tokens": ctx.settings.faucet_tokens,
            "blocks": self.recent_blocks(),
        }

    def block_times(self, numbers: set[int]) -> dict[int, int]:
        """The timestamps of blocks ``numbers`` that lie within :data:`TIMES_BACK` of the head."""
        missing = numbers - self._times.keys()
        if missing:
            # Reads only, without the service's lock: a first long read must not hold up the
            # clock's reveals and settlements (the chain adapter serialises its own calls).
            head = self.chain.block_number()
            reachable = [n for n in missing if 0 <= n <= head and head - n < TIMES_BACK]
            if reachable:
                blocks = self.chain.recent_blocks(head - min(reachable) + 1)
                self._times.update({b.number: b.timestamp for b in blocks})
        return {n: self._times[n] for n in numbers if n in self._times}

    def price_history(self, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every settled trade of the indexed ``rounds`` as a point of the price history: its
        block's time (null when too far back), price T (tokens/kWh) and energy, oldest first."""
        trades = [(int(r["round_id"]), t) for r in rounds for t in r["trades"]]
        times = self.block_times({int(t["block"]) for _, t in trades})
        points = [
            {
                "round_id": rid,
                "time": times.get(int(t["block"])),
                "block": int(t["block"]),
                "price": t["price"],
                "kwh": t["kwh"],
                "buyer": t["buyer"],
                "seller": t["seller"],
            }
            for rid, t in trades
        ]
        return sorted(points, key=lambda p: (p["block"], p["round_id"]))

    # -- one round --------------------------------------------------------------------------------

    def round_detail(self, indexed: dict[str, Any]) -> dict[str, Any]:
        """One indexed round with its revealed bids and the audit of its settlement.

        Sealed bids stay sealed: while the bid window is open (or closing) ``bids`` is null,
        whatever the chain holds. After it, each bid's value (v_i or c_j, tokens/kWh) once
        revealed on chain. A settled round carries the audit's verdict
        (:func:`evtrade.settlement.audit.audit_round`: Theorem 1's prices and the P1 volumes
        recomputed from the chain's events) and who settled it: the RSU at the P1 optimum, or
        the single buyer accepting one offer at an amount of its choosing (``settled_by``), whose
        volume the audit then reports as differing from the optimum.
        """
        out = dict(indexed)
        out["bids"] = None
        out["audit"] = None
        out["settled_by"] = None
        if indexed.get("phase") in SEALED_PHASES:
            return out
        round_id = int(indexed["round_id"])
        known = self._settled.get(round_id)
        if known is not None:
            return {**out, **known}
        with self.ctx.lock:
            view = self.ctx.ledger.round_view(round_id)
            detail: dict[str, Any] = {"bids": _revealed_bids(view), "settled_by": None}
            if view.trades:
                # Market.accept (the round's single buyer) or Market.settle (the RSU, at P1).
                settling = self.decode(view.trades[0].tx_hash)["what"]
                detail["settled_by"] = "buyer" if settling == "accept" else "rsu"
            detail["audit"] = audit_round(view).to_dict() if view.settled else None
            if view.settled:
                self._settled[round_id] = detail
        return {**out, **detail}


def _revealed_bids(view: RoundView) -> list[dict[str, Any]]:
    """Every bid of the round with its revealed value (null: not revealed), tokens/kWh."""
    requests = [
        {
            "side": "request",
            "index": q.index,
            "address": q.buyer,
            "value": None if q.value is None else units.to_tokens(q.value),
        }
        for q in view.requests
    ]
    replies = [
        {
            "side": "reply",
            "index": p.index,
            "address": p.seller,
            "value": None if p.value is None else units.to_tokens(p.value),
        }
        for p in view.replies
    ]
    return requests + replies
