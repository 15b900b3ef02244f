"""An in-memory ledger for the settlement use cases: the port without a chain.

:class:`FakeLedger` implements :class:`evtrade.settlement.port.LedgerPort` in plain Python, so a
use case (:func:`evtrade.settlement.rounds.run_round`, ``settle_optimal``) runs in-process in
milliseconds. It keeps the rules of ``Market.vy`` a use case depends on, in the contract's fixed
point: the bid checks (ranges, the round's floor and ceiling, spare energy), escrow and deposits
(``request_lock``, ``_option_bound``), the bid, reveal and settlement windows, and the settlement
checks through :func:`evtrade.settlement.planning.settlement_refusal` (the planner's Python
mirror of ``_settle``); prices and payments are :mod:`evtrade.settlement.units`' Theorem 1.
Sealing is not simulated (the RSU "opens" a bid by reading the value the fake kept), nor gas,
voting, reservations across rounds, or void rounds: the real contracts are tested on the EVM.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hexbytes import HexBytes

from evtrade.errors import ContractRejectedError, LedgerError
from evtrade.model import Buyer, Seller
from evtrade.settlement import units
from evtrade.settlement.planning import settlement_refusal
from evtrade.settlement.port import LedgerPort, Receipt
from evtrade.settlement.views import (
    ReplyView,
    RequestView,
    RevealReport,
    RoundParams,
    RoundView,
    SealedBid,
    Trade,
    TradeView,
)

E = units.ENERGY_SCALE


@dataclass(frozen=True, slots=True)
class FakeAccount:
    """An identity of the fake ledger: an address and nothing to sign with."""

    address: str


class FakeClock:
    """The fake chain's clock: whole seconds that move only when asked."""

    def __init__(self, start: int = 1_700_000_000) -> None:
        self.now = start

    def timestamp(self) -> int:
        return self.now

    def wait_until(self, timestamp: int) -> None:
        self.now = max(self.now, timestamp + 1)


def _option_bound(value_range: int, energy: int) -> int:
    """``Market._option_bound``: what withholding a reveal can gain, the least deposit."""
    return (value_range * energy + 12 * E - 1) // (12 * E) + (energy + E - 1) // E + 1


def _require(ok: bool, reason: str) -> None:
    if not ok:
        raise ContractRejectedError(f"market: {reason}")


@dataclass
class _Round:
    view: RoundView
    values: dict[tuple[bool, int], int] = field(default_factory=dict)
    refunded: set[int] = field(default_factory=set)


class FakeLedger:
    """The settlement port in memory (see the module docstring for what it keeps)."""

    def __init__(self) -> None:
        self.chain = FakeClock()
        self._accounts = 0
        self._vehicles: dict[str, int] = {}  # address -> certificate expiry
        self._plates: set[str] = set()
        self._rsus: set[str] = set()
        self._balances: dict[str, int] = {}
        self._credit: dict[str, int] = {}
        self._energy: dict[str, tuple[int, int]] = {}
        self._rounds: list[_Round] = []
        self._block = 0

    def _receipt(self) -> Receipt:
        self._block += 1
        return {
            "status": 1,
            "blockNumber": self._block,
            "transactionHash": HexBytes(self._block.to_bytes(32, "big")),
            "gasUsed": 0,
        }

    def new_account(self) -> FakeAccount:
        self._accounts += 1  # distinct, deterministic, spread over the digits like real ones
        return FakeAccount("0x" + hashlib.sha256(b"%d" % self._accounts).hexdigest()[:40])

    # -- identities ------------------------------------------------------------------------------

    def register_vehicle(
        self, authority: FakeAccount, vehicle: str, plate: str, expiry: int, *, gas_wei: int = 0
    ) -> Receipt:
        _require(plate not in self._plates, "plate already registered")
        self._plates.add(plate)
        self._vehicles[vehicle] = expiry
        return self._receipt()

    def register_rsu(
        self, authority: FakeAccount, rsu: FakeAccount, *, gas_wei: int = 0
    ) -> Receipt:
        self._rsus.add(rsu.address)
        return self._receipt()

    def is_valid_vehicle(self, address: str) -> bool:
        return self._vehicles.get(address, 0) > self.chain.now

    def is_rsu(self, address: str) -> bool:
        return address in self._rsus

    def rsu_pubkey(self, address: str) -> bytes:
        return b"fake key of " + address.encode()

    # -- tokens and energy -----------------------------------------------------------------------

    def mint(self, authority: FakeAccount, to: str, tokens: float) -> Receipt:
        amount = units.to_fixed("tokens", tokens, units.TOKEN_SCALE)
        self._balances[to] = self._balances.get(to, 0) + amount
        return self._receipt()

    def _take(self, address: str, amount: int, what: str) -> None:
        _require(self._balances.get(address, 0) >= amount, f"{what} failed")
        self._balances[address] -= amount

    def balance(self, address: str) -> int:
        return self._balances.get(address, 0)

    def credit(self, address: str) -> int:
        return self._credit.get(address, 0)

    def energy(self, address: str) -> tuple[int, int]:
        return self._energy.get(address, (0, 0))

    def withdraw(self, account: FakeAccount) -> Receipt:
        amount = self._credit.pop(account.address, 0)
        self._balances[account.address] = self.balance(account.address) + amount
        return self._receipt()

    # -- rounds ----------------------------------------------------------------------------------

    def open_round(self, rsu: FakeAccount, params: RoundParams) -> int:
        _require(self.is_rsu(rsu.address), "caller is not an RSU")
        deadline = self.chain.now + params.t_limit
        distance = params.max_distance_km
        view = RoundView(
            round_id=len(self._rounds),
            rsu=rsu.address,
            deadline=deadline,
            reveal_deadline=deadline + params.t_reveal,
            settle_deadline=deadline + params.t_reveal + params.t_settle,
            v_floor=units.to_fixed("v_floor", params.v_floor, units.PRICE_SCALE),
            c_ceiling=units.to_fixed("c_ceiling", params.c_ceiling, units.PRICE_SCALE),
            l1=units.to_fixed("l1", params.l1, units.LOSS_SCALE),
            l2=units.to_fixed("l2", params.l2, units.LOSS_SCALE),
            max_distance_m=0
            if distance is None
            else units.to_fixed("max_distance_km", distance, 1000),
            requests=(),
            replies=(),
            deposit=units.to_fixed("deposit", params.deposit, units.TOKEN_SCALE),
        )
        self._rounds.append(_Round(view))
        return view.round_id

    def round_count(self) -> int:
        return len(self._rounds)

    def _round(self, round_id: int) -> _Round:
        if not 0 <= round_id < len(self._rounds):
            raise LedgerError(f"field 'round_id': no round {round_id} on this market")
        return self._rounds[round_id]

    def round_view(self, round_id: int) -> RoundView:
        return self._round(round_id).view

    def _open_for_bids(self, account: FakeAccount, rnd: _Round) -> None:
        _require(self.is_valid_vehicle(account.address), "caller is not a valid vehicle")
        _require(self.chain.now <= rnd.view.deadline, "bid window closed")

    @staticmethod
    def _location(lat: float | None, lon: float | None) -> tuple[int, int]:
        if lat is None or lon is None:
            return 0, 0
        return (
            units.to_fixed("lat", lat, units.DEGREE_SCALE, signed=True),
            units.to_fixed("lon", lon, units.DEGREE_SCALE, signed=True),
        )

    def post_request(
        self,
        account: FakeAccount,
        round_id: int,
        buyer: Buyer,
        *,
        rsu_pubkey: bytes | None = None,
    ) -> SealedBid:
        rnd = self._round(round_id)
        self._open_for_bids(account, rnd)
        v = units.to_fixed("v", buyer.v, units.PRICE_SCALE)
        v_min = units.to_fixed("v_min", buyer.v_min, units.PRICE_SCALE)
        v_max = units.to_fixed("v_max", buyer.v_max, units.PRICE_SCALE)
        b_min = units.to_fixed("b_min", buyer.b_min, E)
        b_max = units.to_fixed("b_max", buyer.b_max, E)
        w = units.to_fixed("w", buyer.w, units.W_SCALE)
        _require(b_max > 0, "b_max must be positive")
        _require(b_min <= b_max, "b_min above b_max")
        _require(v_max > 0, "v_max must be positive")
        _require(v_min <= v_max, "v_min above v_max")
        _require(v_min >= rnd.view.v_floor, "v_min below the round's v_floor")
        _require(w <= 5 * units.W_SCALE, "willingness w above 5")
        deposit = max(rnd.view.deposit, _option_bound(v_max - v_min, b_max))
        escrow = max(units.escrow(v_max, b_max), deposit)
        self._take(account.address, escrow, "escrow")
        index = len(rnd.view.requests)
        lat, lon = self._location(buyer.lat, buyer.lon)
        request = RequestView(
            index=index,
            buyer=account.address,
            b_min=b_min,
            b_max=b_max,
            v_min=v_min,
            v_max=v_max,
            w=w,
            lat=lat,
            lon=lon,
            commitment=b"",
            escrow=escrow,
            sealed=b"sealed" if rsu_pubkey else b"",
            deposit=deposit,
        )
        rnd.view = dataclasses.replace(rnd.view, requests=(*rnd.view.requests, request))
        rnd.values[(True, index)] = v
        return SealedBid(round_id, True, index, account.address, v, b"")

    def post_reply(
        self,
        account: FakeAccount,
        round_id: int,
        seller: Seller,
        *,
        rsu_pubkey: bytes | None = None,
    ) -> SealedBid:
        rnd = self._round(round_id)
        self._open_for_bids(account, rnd)
        c = units.to_fixed("c", seller.c, units.PRICE_SCALE)
        c_min = units.to_fixed("c_min", seller.c_min, units.PRICE_SCALE)
        c_max = units.to_fixed("c_max", seller.c_max, units.PRICE_SCALE)
        s_t = units.to_fixed("s_t", seller.s_t, E)
        s_r = units.to_fixed("s_r", seller.s_r, E)
        rho = units.to_fixed("rho", seller.rho, units.RHO_SCALE)
        _require(c_max > 0, "c_max must be positive")
        _require(c_min <= c_max, "c_min above c_max")
        _require(c_max <= rnd.view.c_ceiling, "c_max above the round's c_ceiling")
        _require(s_t > s_r, "reserve s_r must be below energy s_t (no spare energy)")
        _require(0 < rho <= units.RHO_SCALE, "loss rate rho must lie in (0, 1]")
        spare = s_t - s_r
        deposit = max(rnd.view.deposit, _option_bound(c_max - c_min, spare))
        self._take(account.address, deposit, "deposit")
        index = len(rnd.view.replies)
        lat, lon = self._location(seller.lat, seller.lon)
        reply = ReplyView(
            index=index,
            seller=account.address,
            c_min=c_min,
            c_max=c_max,
            s_t=s_t,
            s_r=s_r,
            rho=rho,
            lat=lat,
            lon=lon,
            commitment=b"",
            sealed=b"sealed" if rsu_pubkey else b"",
            spare=spare,
            declared_s_r=s_r,
            deposit=deposit,
        )
        rnd.view = dataclasses.replace(rnd.view, replies=(*rnd.view.replies, reply))
        rnd.values[(False, index)] = c
        return SealedBid(round_id, False, index, account.address, c, b"")

    def reveal_sealed(self, rsu: FakeAccount, round_id: int) -> RevealReport:
        rnd = self._round(round_id)
        _require(rsu.address == rnd.view.rsu, "caller is not the round's RSU")
        _require(self.chain.now > rnd.view.deadline, "bid window still open")
        _require(self.chain.now <= rnd.view.reveal_deadline, "reveal window closed")
        requests = tuple(
            dataclasses.replace(q, value=rnd.values[(True, q.index)]) if q.sealed else q
            for q in rnd.view.requests
        )
        replies = []
        for p in rnd.view.replies:
            if p.sealed and p.value is None:  # a revealed reply's deposit goes back to credit
                self._credit[p.seller] = self.credit(p.seller) + p.deposit
                p = dataclasses.replace(p, value=rnd.values[(False, p.index)])
            replies.append(p)
        revealed = [q.buyer for q in requests if q.sealed] + [p.seller for p in replies if p.sealed]
        rnd.view = dataclasses.replace(rnd.view, requests=requests, replies=tuple(replies))
        return RevealReport(tuple(revealed), (), 1)

    def settle(self, rsu: FakeAccount, round_id: int, trades: Sequence[Trade]) -> Receipt:
        rnd = self._round(round_id)
        view = rnd.view
        _require(not view.settled, "round already settled")
        _require(self.chain.now <= view.settle_deadline, "settlement window closed")
        _require(rsu.address == view.rsu, "caller is not the round's RSU")
        everyone = all(q.value is not None for q in view.requests) and all(
            p.value is not None for p in view.replies
        )
        _require(everyone or self.chain.now > view.reveal_deadline, "reveal window still open")
        refusal = settlement_refusal(view, trades)
        if refusal is not None:
            raise ContractRejectedError(refusal)
        receipt = self._receipt()
        settled = []
        for i, j, energy in trades:
            q, p = view.requests[i], view.replies[j]
            assert q.value is not None and p.value is not None  # settlement_refusal checked
            P, R, T, _ = units.fixed_prices(q.value, q.v_max, p.value, p.c_min)
            pay = units.payment(T, energy)
            self._credit[p.seller] = self.credit(p.seller) + pay
            bought, sold = self.energy(q.buyer)
            self._energy[q.buyer] = (bought + energy, sold)
            bought, sold = self.energy(p.seller)
            self._energy[p.seller] = (bought, sold + energy)
            tx = receipt["transactionHash"].to_0x_hex()
            settled.append(TradeView(q.buyer, p.seller, energy, P, R, T, pay, self._block, tx))
        rnd.view = dataclasses.replace(view, trades=tuple(settled), settled=True)
        return receipt

    def accept(
        self, account: FakeAccount, round_id: int, seller_index: int, energy_kwh: float
    ) -> Receipt:
        rnd = self._round(round_id)
        _require(len(rnd.view.requests) == 1, "accept needs a round of one buyer")
        _require(rnd.view.requests[0].buyer == account.address, "caller is not the buyer")
        _require(self.chain.now > rnd.view.deadline, "bid window still open")
        energy = units.to_fixed("energy", energy_kwh, E)
        return self.settle(FakeAccount(rnd.view.rsu), round_id, [(0, seller_index, energy)])

    def claim_refund(self, account: FakeAccount, round_id: int, index: int) -> Receipt:
        rnd = self._round(round_id)
        view = rnd.view
        q = view.requests[index]
        _require(q.buyer == account.address, "caller is not the request's buyer")
        _require(index not in rnd.refunded, "already refunded")
        _require(view.settled or self.chain.now > view.settle_deadline, "round not settled yet")
        paid = sum(t.payment for t in view.trades if t.buyer == q.buyer)
        forfeit = q.deposit if q.value is None else 0  # an unrevealed request's deposit burns
        rnd.refunded.add(index)
        self._balances[q.buyer] = self.balance(q.buyer) + q.escrow - paid - forfeit
        return self._receipt()


if TYPE_CHECKING:  # mypy checks that the fake implements the port

    def _implements_port(ledger: FakeLedger) -> LedgerPort[FakeAccount]:
        return ledger


__all__ = ["FakeAccount", "FakeClock", "FakeLedger"]
