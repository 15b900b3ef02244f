"""Settlement throughput: trades settled per second, batch settlement on a chain back end.

A round of ``n_buyers x n_sellers`` bids, every pair trading 1 kWh, is prepared (vehicles
registered, bids posted and revealed); then ``rounds`` such rounds are settled back to back,
timed from the first ``settle`` sent to the last receipt, with the calldata encoded beforehand.
On anvil (manual mining) the settlements are sent without waiting and mined in one block.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account

from evtrade.ledger.chain import Chain, RpcChain
from evtrade.ledger.client import Ledger, RoundParams, SealedBid
from evtrade.model import Buyer, Seller

#: anvil for throughput runs: room for several 500-trade settlements in one block, and gas money.
ANVIL_FLAGS = ("--gas-limit", "300000000", "--balance", "100000000")

#: Bids per side for a settlement of n trades (every pair trades).
SHAPES = {10: (2, 5), 100: (10, 10), 500: (20, 25), 1000: (25, 40)}


@dataclass(frozen=True, slots=True)
class ThroughputRecord:
    """One timed batch."""

    backend: str
    trades_per_settlement: int
    settlements: int
    preflight: bool
    seconds: float
    trades_per_second: float
    gas_per_trade: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _set_automine(chain: Chain, on: bool) -> None:
    if isinstance(chain, RpcChain):
        chain.w3.provider.make_request("evm_setAutomine", [on])  # type: ignore[arg-type]


def prepare_rounds(
    chain: Chain, n_trades: int, rounds: int
) -> tuple[Ledger, Any, list[tuple[int, list[tuple[int, int, int]]]]]:
    """Deploy, register and fill ``rounds`` revealed rounds ready to settle."""
    n_b, n_s = SHAPES[n_trades]
    authority, rsu = Account.create(), Account.create()
    ledger = Ledger.deploy(chain, authority)
    ledger.register_rsu(authority, rsu)
    buyers = [Account.create() for _ in range(n_b)]
    sellers = [Account.create() for _ in range(n_s)]
    expiry = chain.timestamp() + 10**8
    for k, a in enumerate(buyers + sellers):
        ledger.register_vehicle(authority, a.address, f"BENCH {k}", expiry)
    buyer = Buyer(id="b", v=0.95, v_min=0.6, v_max=1.0, b_min=0.0, b_max=float(n_s), w=3.0)
    seller = Seller(id="s", c=0.55, c_min=0.5, c_max=0.8, s_t=float(n_b) * 2 + 1, s_r=0.0, rho=0.05)
    for a in buyers:
        ledger.mint(authority, a.address, 2.0 * n_s * rounds)
    trades = [(i, j, 10**6) for i in range(n_b) for j in range(n_s)]
    params = RoundParams(v_floor=0.5, c_ceiling=1.0, t_limit=600, t_reveal=600, t_settle=10**6)
    ready = []
    for _ in range(rounds):
        rid = ledger.open_round(rsu, params)
        bids: list[tuple[Any, SealedBid]] = [
            (a, ledger.post_request(a, rid, buyer)) for a in buyers
        ] + [(a, ledger.post_reply(a, rid, seller)) for a in sellers]
        ready.append((rid, bids))
    chain.advance_time(601)
    for _, bids in ready:
        for account, bid in bids:
            ledger.reveal(account, bid)
    return ledger, rsu, [(rid, trades) for rid, _ in ready]


def settlement_throughput(
    chain: Chain, n_trades: int, *, rounds: int = 3, preflight: bool = True
) -> ThroughputRecord:
    """Time ``rounds`` settlements of ``n_trades`` trades each on ``chain``."""
    _set_automine(chain, True)
    ledger, rsu, ready = prepare_rounds(chain, n_trades, rounds)
    manual = isinstance(chain, RpcChain)
    if manual:
        _set_automine(chain, False)
    encoded = [ledger.settle_calldata(rid, trades) for rid, trades in ready]
    t0 = time.perf_counter()
    sent = [ledger.send_settle_data(rsu, data, gas, preflight=preflight) for data, gas in encoded]
    if manual:
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    receipts = [chain.wait_status(s) for s in sent]
    seconds = time.perf_counter() - t0
    if manual:
        _set_automine(chain, True)
    total = n_trades * rounds
    gas = sum(int(r["gasUsed"]) for r in receipts)
    return ThroughputRecord(
        backend=chain.kind,
        trades_per_settlement=n_trades,
        settlements=rounds,
        preflight=preflight,
        seconds=seconds,
        trades_per_second=total / seconds,
        gas_per_trade=gas / total,
    )
