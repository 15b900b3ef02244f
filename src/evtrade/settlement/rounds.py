"""Use cases: run one market as a sealed-bid round on a ledger, end to end; settle a round.

:func:`run_round` registers a vehicle per participant, tops up the buyers (escrow) and the
sellers (their bid deposit), opens a round at the RSU, posts every bid sealed to the RSU's key,
lets the RSU reveal and settle it at the P1 optimum (:func:`settle_optimal`), pays out, and
audits the result. The CLI's ``evtrade chain run`` and the demo call it; a researcher can call it
on any market from the library. Both work on any :class:`~evtrade.settlement.port.LedgerPort`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic

from evtrade.errors import ContractRejectedError, LedgerError
from evtrade.model import Market
from evtrade.settlement.audit import AuditReport, audit_round
from evtrade.settlement.planning import plan_settlement
from evtrade.settlement.port import A, LedgerPort, Receipt
from evtrade.settlement.views import RoundParams, SealedBid, Trade, TradeView

SECONDS_PER_DAY = 24 * 3600
#: How long a vehicle's certificate lasts when not told (a round's vehicles, the service's, the
#: authority's command): days, and seconds.
VEHICLE_CERTIFICATE_DAYS = 365
VEHICLE_CERTIFICATE_SECONDS = VEHICLE_CERTIFICATE_DAYS * SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class Operators(Generic[A]):
    """The certificate authority and the RSU of a deployment."""

    authority: A
    rsu: A


@dataclass
class RoundRun:
    """What one round on chain did."""

    round_id: int
    trades: tuple[TradeView, ...]
    rejected: dict[str, str]
    addresses: dict[str, str]
    balances_before: dict[str, int]
    balances_after: dict[str, int]
    energy_after: dict[str, tuple[int, int]]
    transactions: list[dict[str, Any]] = field(default_factory=list)
    audit: AuditReport | None = None


def settle_optimal(ledger: LedgerPort[A], rsu: A, round_id: int) -> tuple[Receipt, list[Trade]]:
    """The RSU's settlement policy: clear the round's revealed bids (ETA prices, P1 volumes in
    the contract's energy units, :func:`~evtrade.settlement.planning.plan_settlement`) and settle.
    """
    trades = plan_settlement(ledger.round_view(round_id))
    return ledger.settle(rsu, round_id, trades), trades


def run_round(
    ledger: LedgerPort[A],
    operators: Operators[A],
    market: Market,
    *,
    t_limit: int = 60,
    t_reveal: int = 60,
) -> RoundRun:
    """Run ``market`` as one round: bids sealed, revealed by the RSU, settled, paid, audited."""
    chain = ledger.chain
    authority, rsu = operators.authority, operators.rsu
    if not ledger.is_rsu(rsu.address):
        ledger.register_rsu(authority, rsu)
    ids = [b.id for b in market.buyers] + [s.id for s in market.sellers]
    accounts = {ident: ledger.new_account() for ident in ids}
    expiry = chain.timestamp() + VEHICLE_CERTIFICATE_SECONDS
    for ident, account in accounts.items():
        # A plate is certified to one account: the run's fresh accounts get their own plates.
        plate = f"EV-{ident}-{account.address[2:10]}"
        ledger.register_vehicle(authority, account.address, plate, expiry)
    params = RoundParams.from_auctioneer(market.auctioneer, t_limit=t_limit, t_reveal=t_reveal)
    for b in market.buyers:  # escrow v_max * b_max, which holds the deposit
        ledger.mint(authority, accounts[b.id].address, b.v_max * b.b_max + params.deposit + 1.0)
    for s in market.sellers:  # the deposit: at most max(round's, range/12 per kWh of spare) + 1
        spare = max(s.s_t - s.s_r, 0.0)
        deposit = max(params.deposit, (s.c_max - s.c_min) * spare / 12)
        ledger.mint(authority, accounts[s.id].address, deposit + 1.0)
    before = {ident: ledger.balance(a.address) for ident, a in accounts.items()}
    round_id = ledger.open_round(rsu, params)
    pubkey = ledger.rsu_pubkey(rsu.address)
    rejected: dict[str, str] = {}
    bids: dict[str, SealedBid] = {}

    def post(vehicle: str, send: Callable[[], SealedBid]) -> None:
        """Post one bid; a bid the contract or the ledger refuses is recorded, not raised."""
        try:
            bids[vehicle] = send()
        except (ContractRejectedError, LedgerError) as exc:
            rejected[vehicle] = str(exc)

    for b in market.buyers:
        post(b.id, partial(ledger.post_request, accounts[b.id], round_id, b, rsu_pubkey=pubkey))
    for s in market.sellers:
        post(s.id, partial(ledger.post_reply, accounts[s.id], round_id, s, rsu_pubkey=pubkey))
    view = ledger.round_view(round_id)
    chain.wait_until(view.deadline)
    by_address = {a.address: ident for ident, a in accounts.items()}
    report = ledger.reveal_sealed(rsu, round_id)
    for skip in report.skipped:
        rejected.setdefault(by_address.get(skip.bidder, skip.bidder), skip.reason)
    if not report.complete:  # unrevealed bids stay out; settlement waits for the reveal window
        chain.wait_until(view.reveal_deadline)
    receipt, _ = settle_optimal(ledger, rsu, round_id)
    view = ledger.round_view(round_id)
    for ident, bid in bids.items():
        if bid.is_buyer:
            ledger.claim_refund(accounts[ident], round_id, bid.index)
        elif ledger.credit(accounts[ident].address) > 0:
            ledger.withdraw(accounts[ident])
    return RoundRun(
        round_id=round_id,
        trades=view.trades,
        rejected=rejected,
        addresses={ident: a.address for ident, a in accounts.items()},
        balances_before=before,
        balances_after={ident: ledger.balance(a.address) for ident, a in accounts.items()},
        energy_after={ident: ledger.energy(a.address) for ident, a in accounts.items()},
        transactions=[
            {
                "what": "settle",
                "block": int(receipt["blockNumber"]),
                "tx": receipt["transactionHash"].to_0x_hex(),
                "gas": int(receipt["gasUsed"]),
            }
        ],
        audit=audit_round(view),
    )
