"""The trading flow: rounds, buyers' requests, sellers' replies, a buyer's choice of offer, and
collecting refunds and payments afterwards (pull payments)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from evtrade.errors import (
    ConflictError,
    ContractRejectedError,
    ForbiddenError,
    InsufficientFundsError,
    InvalidRequestError,
)
from evtrade.model import Buyer, Seller
from evtrade.service.clock import RoundClock
from evtrade.service.context import RsuContext, arrival
from evtrade.service.vehicles import Vehicles
from evtrade.service.views import FINAL_PHASES
from evtrade.service.wallets import Wallets
from evtrade.settlement import units
from evtrade.settlement.views import RoundParams

#: A bid arriving this long after the announced deadline is still admitted: the deadline is a
#: whole second, and a busy event loop stamps an arrival late (the grace on chain absorbs it).
ADMISSION_SLACK_SECONDS = 1.0


class Trading:
    """Rounds and bids, signed with the vehicles' wallet keys and sealed to the RSU."""

    def __init__(
        self, ctx: RsuContext, wallets: Wallets, vehicles: Vehicles, clock: RoundClock
    ) -> None:
        self.ctx = ctx
        self.wallets = wallets
        self.vehicles = vehicles
        self.clock = clock
        self._rsu_pubkey: bytes | None = None

    def open_round(self) -> int:
        """Open a round: drivers are told the bid window ``t_limit`` (wall clock); the chain's
        window is ``bid_grace`` longer, so that a bid admitted before the announced deadline
        still reaches the chain after waiting its turn (issue 11, item 9)."""
        s = self.ctx.settings
        params = RoundParams(
            v_floor=s.v_floor,
            c_ceiling=s.c_ceiling,
            t_limit=s.t_limit + s.bid_grace,
            t_reveal=s.t_reveal,
            t_settle=s.t_settle,
            l1=s.l1,
            l2=s.l2,
            max_distance_km=s.max_distance_km,
        )
        # The chain stamps the opening block no earlier than this second, so the chain's deadline
        # is at least ``bid_grace`` after the announced one.
        opened = int(time.time())
        round_id = self.ctx.ledger.open_round(self.ctx.operators.rsu, params)
        self.clock.opened(round_id, opened + s.t_limit)
        return round_id

    def _admit_bid(self, round_id: int, received: float) -> None:
        """Refuse a bid that reached the service after the round's announced deadline.

        Checked against the time the request arrived, before any key work or queueing, so every
        bid sent inside the window as the driver's clock sees it is admitted; the chain's window
        is ``bid_grace`` longer to take it in (:meth:`open_round`).
        """
        view = self.ctx.store.round(round_id)
        if view is None:  # not in the index: the chain decides (NotFound if there is no such round)
            self.clock.check_round(round_id)
            return
        deadline = view.get("deadline")
        late = deadline is not None and received > deadline + ADMISSION_SLACK_SECONDS
        if view.get("phase") in FINAL_PHASES or late:
            raise ConflictError(
                f"field 'round_id': bid window closed: round {round_id} took bids until"
                f" {deadline} (unix time); this bid arrived at {received:.0f}"
            )

    def _sealing_key(self) -> bytes:
        """The RSU's public key the bids are sealed to (read from the registry once)."""
        if self._rsu_pubkey is None:
            self._rsu_pubkey = self.ctx.ledger.rsu_pubkey(self.ctx.operators.rsu.address)
        return self._rsu_pubkey

    def post_request(
        self,
        address: str,
        password: str,
        round_id: int | None,
        buyer: Buyer,
        *,
        received: float | None = None,
    ) -> dict[str, Any]:
        """A buyer's request; with no round given, the RSU opens one (the seed app's flow).

        ``received`` is when the request reached the service (default: the HTTP request's
        arrival, stamped by the middleware before any queueing; now outside one). No lock is held
        while the transactions wait for their block, so bids of many vehicles share blocks; the
        round's index entry catches up on the clock's next tick.
        """
        ctx = self.ctx
        received = arrival() if received is None else received
        if round_id is not None:
            self._admit_bid(round_id, received)
        account = self.wallets.unlock(address, password)
        ctx.take_bid(account.address)
        if buyer.v_min < ctx.settings.v_floor:
            raise InvalidRequestError(
                f"field 'v_min' ({buyer.v_min}) is below the RSU's floor ({ctx.settings.v_floor})"
            )
        if not ctx.ledger.is_valid_vehicle(account.address):
            raise ForbiddenError(f"vehicle {account.address}: certificate revoked or expired")
        need = units.escrow(
            units.to_fixed("v_max", buyer.v_max, units.PRICE_SCALE),
            units.to_fixed("b_max", buyer.b_max, units.ENERGY_SCALE),
        )
        if ctx.ledger.balance(account.address) < need:
            raise InsufficientFundsError(
                f"balance below the escrow v_max * b_max = {need / units.TOKEN_SCALE:g} tokens;"
                " top up"
            )
        if round_id is None:
            round_id = self.open_round()
        bid = ctx.ledger.post_request(account, round_id, buyer, rsu_pubkey=self._sealing_key())
        self.clock.bid_posted(round_id)
        return {"round_id": round_id, "index": bid.index}

    def post_reply(
        self,
        address: str,
        password: str,
        round_id: int,
        seller: Seller,
        *,
        received: float | None = None,
    ) -> dict[str, Any]:
        """A seller's reply to an open round (admitted as :meth:`post_request`)."""
        ctx = self.ctx
        received = arrival() if received is None else received
        self._admit_bid(round_id, received)
        account = self.wallets.unlock(address, password)
        ctx.take_bid(account.address)
        bid = ctx.ledger.post_reply(account, round_id, seller, rsu_pubkey=self._sealing_key())
        self.clock.bid_posted(round_id)
        return {"round_id": round_id, "index": bid.index}

    def accept(
        self, address: str, password: str, round_id: int, seller_index: int, kwh: float
    ) -> dict[str, Any]:
        """The buyer chooses one offer; the trade completes and the others fail."""
        ctx = self.ctx
        account = self.wallets.unlock(address, password)
        ctx.take_bid(account.address)
        with ctx.lock:
            self.clock.check_round(round_id)
            self.clock.reveal_if_due(round_id)
            ctx.ledger.accept(account, round_id, seller_index, kwh)
            return self.clock.refresh(round_id)

    def collect(self, address: str, password: str) -> dict[str, Any]:
        """Claim every refund due to the vehicle and withdraw its credit (pull payments)."""
        ctx = self.ctx
        account = self.wallets.unlock(address, password)
        with ctx.lock:
            for view in ctx.store.rounds():
                if view["phase"] not in FINAL_PHASES:
                    continue
                for q in view["requests"]:
                    if q["address"].lower() == account.address.lower():
                        with contextlib.suppress(ContractRejectedError):  # already refunded
                            ctx.ledger.claim_refund(account, view["round_id"], q["index"])
            if ctx.ledger.credit(account.address) > 0:
                ctx.ledger.withdraw(account)
            ctx.changed()
        return self.vehicles.public_info(address)
