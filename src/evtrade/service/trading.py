"""The trading flow: rounds, buyers' requests, sellers' replies, a buyer's choice of offer, and
collecting refunds and payments afterwards (pull payments)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount

from evtrade.errors import (
    ConflictError,
    ContractRejectedError,
    ForbiddenError,
    InsufficientFundsError,
    InvalidRequestError,
    NotFoundError,
)
from evtrade.model import Buyer, Seller
from evtrade.service.clock import RoundClock
from evtrade.service.context import RsuContext, arrival
from evtrade.service.history import record
from evtrade.service.store import TxEntry
from evtrade.service.vehicles import Vehicles
from evtrade.service.views import FINAL_PHASES, accept_payment, acceptance_units
from evtrade.service.wallets import Wallets
from evtrade.settlement import units
from evtrade.settlement.views import RoundParams, SealedBid

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
                f"balance below the escrow v_max * b_max = {units.to_tokens(need):g} tokens; top up"
            )
        if round_id is None:
            round_id = self.open_round()
        escrow = units.to_tokens(need)
        entry = TxEntry(
            account.address,
            "request",
            f"request for {buyer.b_min:g}-{buyer.b_max:g} kWh: {escrow:.4f} tokens locked in"
            f" escrow (v_max {buyer.v_max:g} tokens/kWh x b_max {buyer.b_max:g} kWh)",
            -escrow,
            round_id,
        )
        key = self._sealing_key()
        return self._sent_bid(
            entry, lambda: ctx.ledger.post_request(account, round_id, buyer, rsu_pubkey=key)
        )

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
        entry = TxEntry(
            account.address,
            "reply",
            f"reply offering {seller.s_t - seller.s_r:g} kWh (a deposit, back at the reveal)",
            None,
            round_id,
        )
        key = self._sealing_key()
        return self._sent_bid(
            entry, lambda: ctx.ledger.post_reply(account, round_id, seller, rsu_pubkey=key)
        )

    def _sent_bid(self, entry: TxEntry, send: Callable[[], SealedBid]) -> dict[str, Any]:
        """Send a bid with its history entry; the round's index entry is then behind the chain."""
        assert entry.round_id is not None
        bid = record(self.ctx.store, entry, send)
        self.clock.bid_posted(entry.round_id)
        return {"round_id": entry.round_id, "index": bid.index}

    def accept(
        self, address: str, password: str, round_id: int, seller_index: int, kwh: float | None
    ) -> dict[str, Any]:
        """The buyer chooses one offer; the trade completes and the others fail.

        With ``kwh`` None the buyer takes the offer's whole amount: the seller's spare energy
        after losses up to b_max (:func:`~evtrade.service.views.acceptance_units`; docs/service.md,
        "Accepting one offer").
        """
        ctx = self.ctx
        account = self.wallets.unlock(address, password)
        ctx.take_bid(account.address)
        with ctx.lock:
            self.clock.check_round(round_id)
            self.clock.reveal_if_due(round_id)
            view = ctx.ledger.round_view(round_id)
            if not 0 <= seller_index < len(view.replies):
                raise NotFoundError(f"field 'seller_index': no reply {seller_index} in the round")
            q, p = view.requests[0] if view.requests else None, view.replies[seller_index]
            energy: int | None = None
            if kwh is not None:
                energy = units.to_fixed("kwh", kwh, units.ENERGY_SCALE)
            elif q is not None and q.value is not None and p.value is not None:
                energy = acceptance_units(q, p)
                if energy is None:
                    raise ConflictError(
                        "field 'seller_index': this seller's spare energy is below your minimum"
                        " b_min; it cannot be accepted alone"
                    )
            else:
                raise ConflictError("field 'seller_index': this offer is not priced (not revealed)")
            what = f"accept offer {seller_index}: {units.to_kwh(energy):g} kWh"
            if q is not None and q.value is not None and p.value is not None:
                cost = units.to_tokens(accept_payment(q, p, energy))
                what += f" for {cost:.4f} tokens (paid from the escrow)"
            entry = TxEntry(account.address, "accept", what, None, round_id)
            take = units.to_kwh(energy)
            record(
                ctx.store,
                entry,
                lambda: ctx.ledger.accept(account, round_id, seller_index, take),
            )
            return self.clock.refresh(round_id)

    def collect(self, address: str, password: str) -> dict[str, Any]:
        """Claim every refund due to the vehicle and withdraw its credit (pull payments); the
        vehicle's public view with the tokens refunded and withdrawn."""
        ctx = self.ctx
        account = self.wallets.unlock(address, password)
        before = ctx.ledger.balance(account.address)
        withdrawn = 0
        with ctx.lock:
            for view in ctx.store.rounds():
                if view["phase"] not in FINAL_PHASES:
                    continue
                for q in view["requests"]:
                    if q["address"].lower() == account.address.lower():
                        self._claim_refund(account, int(view["round_id"]), q)
            credit = ctx.ledger.credit(account.address)
            if credit > 0:
                entry = TxEntry(
                    account.address,
                    "withdraw",
                    f"withdraw {units.to_tokens(credit):.4f} tokens of credit (payments, deposits)",
                    units.to_tokens(credit),
                )
                record(ctx.store, entry, lambda: ctx.ledger.withdraw(account))
                withdrawn = credit
            ctx.changed()
        gained = ctx.ledger.balance(account.address) - before
        info = self.vehicles.public_info(address)
        info["refunded"] = units.to_tokens(max(0, gained - withdrawn))
        info["withdrawn"] = units.to_tokens(withdrawn)
        return info

    def _claim_refund(self, account: LocalAccount, round_id: int, q: dict[str, Any]) -> None:
        """Claim one finished request's refund, unless it was claimed already."""
        ctx = self.ctx
        if ctx.store.confirmed("refund", round_id, account.address):
            return
        refund = q.get("refund")
        entry = TxEntry(
            account.address,
            "refund",
            f"refund of the escrow of round {round_id}"
            + ("" if refund is None else f": {refund:.4f} tokens"),
            refund,
            round_id,
        )
        with contextlib.suppress(ContractRejectedError):  # claimed outside this service
            record(ctx.store, entry, lambda: ctx.ledger.claim_refund(account, round_id, q["index"]))
