"""Use case: run one market as a sealed-bid round on the ledger, end to end.

Registers a vehicle per participant, tops up the buyers (escrow) and the sellers (their bid
deposit), opens a round at the RSU, posts every bid
sealed to the RSU's key, lets the RSU reveal and settle it at the P1 optimum, pays out, and audits
the result. The CLI's ``evtrade chain run`` and the demo call this; a researcher can call it on any
market from the library.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.errors import ContractRejectedError, LedgerError
from evtrade.ledger.audit import AuditReport, audit_round
from evtrade.ledger.chain import Chain, read_json
from evtrade.ledger.client import Deployment, Ledger, RoundParams, SealedBid, TradeView
from evtrade.model import Market

_KEYS_FILE = "operator-keys.json"
_DEPLOYMENT_FILE = "deployment.json"


@dataclass(frozen=True, slots=True)
class Operators:
    """The certificate authority and the RSU of a development deployment."""

    authority: LocalAccount
    rsu: LocalAccount


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


def load_operators(data_dir: Path) -> Operators:
    """The operators' keys kept in ``data_dir`` (created, mode 0600, on first use).

    Development only: a production RSU keeps its key in its own keystore or HSM.
    """
    path = data_dir / _KEYS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        keys = {"authority": Account.create().key.hex(), "rsu": Account.create().key.hex()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keys, handle)
    data = read_json(path)
    return Operators(Account.from_key(data["authority"]), Account.from_key(data["rsu"]))


def open_ledger(chain: Chain, data_dir: Path, deployment_file: Path | None = None) -> Ledger:
    """The deployment recorded for this chain, or a fresh one (recorded in ``data_dir``)."""
    path = deployment_file or data_dir / _DEPLOYMENT_FILE
    if path.exists():
        return Ledger(chain, Deployment.load(path))
    operators = load_operators(data_dir)
    ledger = Ledger.deploy(chain, operators.authority)
    ledger.register_rsu(operators.authority, operators.rsu)
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger.deployment.save(path)
    return ledger


def wait_until(chain: Chain, timestamp: int) -> None:
    """Let the chain's clock pass ``timestamp``: jump on development chains, wait on real ones."""
    gap = timestamp - chain.timestamp()
    if gap < 0:
        return
    try:
        chain.advance_time(gap + 1)
    except LedgerError:
        while chain.timestamp() <= timestamp:
            time.sleep(0.5)


def run_round(
    ledger: Ledger,
    operators: Operators,
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
    accounts = {ident: Account.create() for ident in ids}
    expiry = chain.timestamp() + 365 * 24 * 3600
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
    for b in market.buyers:
        try:
            bids[b.id] = ledger.post_request(accounts[b.id], round_id, b, rsu_pubkey=pubkey)
        except (ContractRejectedError, LedgerError) as exc:
            rejected[b.id] = str(exc)
    for s in market.sellers:
        try:
            bids[s.id] = ledger.post_reply(accounts[s.id], round_id, s, rsu_pubkey=pubkey)
        except (ContractRejectedError, LedgerError) as exc:
            rejected[s.id] = str(exc)
    view = ledger.round_view(round_id)
    wait_until(chain, view.deadline)
    by_address = {a.address: ident for ident, a in accounts.items()}
    report = ledger.reveal_sealed(rsu, round_id)
    for skip in report.skipped:
        rejected.setdefault(by_address.get(skip.bidder, skip.bidder), skip.reason)
    if not report.complete:  # unrevealed bids stay out; settlement waits for the reveal window
        wait_until(chain, view.reveal_deadline)
    receipt, _ = ledger.settle_optimal(rsu, round_id)
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
