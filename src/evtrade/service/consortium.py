"""The consortium the RSU belongs to: the authority, the member RSUs and the open votes.

Read from the registry's state and events (docs/consortium.md): ``RsuAdded`` and ``RsuRemoved``
give the members and when they joined, ``RsuVote`` the votes (Registry.vote_rsu). A membership
change bumps the registry's epoch, and votes cast before it lapse, so the open votes are those
cast since the last change. Votes are cast with the RSU's own key (``evtrade rsu vote``), never
through this service: the service holds no operator's session to authorise it.

Also the one use case a vehicle that keeps its own key needs from an RSU of a consortium besides
the relay: asking it to open a round (a request signed by a certified vehicle that joined it).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from hexbytes import HexBytes
from pydantic import BaseModel, Field

from evtrade.errors import ForbiddenError
from evtrade.ledger.artifacts import load_artifact
from evtrade.ledger.chain import Chain
from evtrade.ledger.client import Ledger, plate_hash
from evtrade.service.context import RsuContext
from evtrade.service.wallets import Wallets
from evtrade.settlement.rounds import Operators


class MemberOut(BaseModel):
    """A current RSU of the consortium."""

    address: str = Field(description="the RSU's account")
    term: int = Field(description="the registry's epoch at which it joined")
    joined_block: int | None = Field(description="the block of its RsuAdded event")
    this_rsu: bool = Field(description="true for the RSU answering")


class VoteOut(BaseModel):
    """An open vote: the change applies once more than half of the current RSUs voted for it."""

    candidate: str = Field(description="the RSU voted in or out")
    add: bool = Field(description="true: to add it; false: to remove it")
    voters: list[str] = Field(description="the RSUs that voted for this outcome so far")
    votes: int = Field(description="votes cast")
    needed: int = Field(description="votes that make a majority of the current members")


class ConsortiumOut(BaseModel):
    """The consortium of RSUs on the chain (GET /api/consortium)."""

    mode: str = Field(
        description="consortium (deployment shared, authority apart) or development "
        "(this service deployed the contracts and is the authority)"
    )
    authority: str = Field(description="the certificate authority's account (registry)")
    epoch: int = Field(description="membership changes so far (votes lapse at each)")
    members: list[MemberOut] = Field(description="the current RSUs")
    votes: list[VoteOut] = Field(description="the open votes of this epoch")


class OpenRoundIn(BaseModel):
    """A certified vehicle that keeps its own key asks the RSU to open a round: signed (EIP-191)
    over :func:`open_round_message`, fresh (two minutes), used once."""

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the vehicle's account")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="EIP-191 signature")
    timestamp: int = Field(ge=0, le=2**40, description="unix seconds")
    nonce: int = Field(ge=0, le=2**63, description="any number, new per request")


def open_round_message(rsu: str, address: str, timestamp: int, nonce: int) -> str:
    """What a vehicle signs (EIP-191) to ask RSU ``rsu`` to open a round."""
    return f"evtrade: open a round at RSU {rsu} for {address} at {timestamp} nonce {nonce}"


def registry_authority(chain: Chain, registry: str) -> str:
    """The certificate authority's account, as the registry at ``registry`` records it."""
    contract = chain.contract(registry, load_artifact("Registry").abi)
    return str(contract.functions.authority().call())


class Consortium:
    """The consortium's view from one RSU, and rounds opened on a signed request."""

    def __init__(self, ctx: RsuContext, chain: Chain, ledger: Ledger, wallets: Wallets) -> None:
        self.ctx = ctx
        self.chain = chain
        self.ledger = ledger
        self.wallets = wallets
        # The registry's events read so far (:meth:`_read_events`).
        self._lock = threading.Lock()
        self._next_block = ledger.deployment.block
        self._joined: dict[str, int] = {}
        self._votes: dict[tuple[str, bool], list[str]] = defaultdict(list)

    @property
    def _operators(self) -> Operators[Any]:
        return self.ctx.operators

    def _read_events(self) -> None:
        """Fold the registry's events since the last read into the members and open votes (the
        log query covers the new blocks only: the embedded chain walks every block it is asked
        about)."""
        registry = self.ledger.registry
        events = {
            name: getattr(registry.events, name)() for name in ("RsuAdded", "RsuRemoved", "RsuVote")
        }
        by_topic = {bytes(HexBytes(e.topic)): e for e in events.values()}
        latest = self.chain.block_number()
        if latest < self._next_block:
            return
        logs = self.chain.logs(
            {"address": registry.address, "fromBlock": self._next_block, "toBlock": latest}
        )
        for log in sorted(logs, key=lambda g: (int(g["blockNumber"]), int(g["logIndex"]))):
            event = by_topic.get(bytes(log["topics"][0]))
            if event is None:
                continue
            args = event.process_log(log)["args"]
            if event.event_name == "RsuVote":
                self._votes[(str(args["candidate"]), bool(args["add"]))].append(str(args["voter"]))
                continue
            self._votes.clear()  # a membership change bumps the epoch: earlier votes lapse
            if event.event_name == "RsuAdded":
                self._joined[str(args["rsu"])] = int(log["blockNumber"])
        self._next_block = latest + 1

    def view(self) -> dict[str, Any]:
        """The authority, the members and the open votes (:class:`ConsortiumOut`)."""
        registry = self.ledger.registry
        with self._lock:
            self._read_events()
            joined = dict(self._joined)
            votes = {k: list(v) for k, v in self._votes.items()}
        me = self._operators.rsu.address.lower()
        members = []
        for address, block in joined.items():
            term = int(registry.functions.rsu_term(address).call())
            if term:
                members.append(
                    {
                        "address": address,
                        "term": term,
                        "joined_block": block,
                        "this_rsu": address.lower() == me,
                    }
                )
        count = len(members)
        return {
            "mode": "development" if self.ctx.settings.deployment is None else "consortium",
            "authority": registry_authority(self.chain, registry.address),
            "epoch": int(registry.functions.epoch().call()),
            "members": members,
            "votes": [
                {
                    "candidate": candidate,
                    "add": add,
                    "voters": voters,
                    "votes": len(voters),
                    "needed": count // 2 + 1,
                }
                for (candidate, add), voters in votes.items()
            ],
        }

    def certified_plate(self, address: str, plate: str) -> bool:
        """Whether the registry certified ``plate`` (normalised) to ``address``."""
        record = self.ledger.registry.functions.vehicles(address).call()
        return bytes(record[0]) == plate_hash(plate)

    def check_open_request(self, body: OpenRoundIn) -> str:
        """The vehicle asking for a round: joined this RSU, certified, signed it, within its
        bid rate; its account."""
        ctx = self.ctx
        row = self.wallets.vehicle(body.address)
        rsu = self._operators.rsu.address
        self.wallets.check_signed(
            row.address,
            lambda t, n: open_round_message(rsu, row.address, t, n),
            body.signature,
            body.timestamp,
            body.nonce,
        )
        if not ctx.ledger.is_valid_vehicle(row.address):
            raise ForbiddenError(f"vehicle {row.address}: certificate revoked or expired")
        ctx.take_bid(row.address)
        return row.address
