"""Settlement throughput: trades settled per second, batch settlement on a chain back end.

A round of ``n_buyers x n_sellers`` bids, every pair trading 1 kWh, is prepared (vehicles
registered, bids posted and revealed); then ``rounds`` such rounds are settled back to back,
timed from the first ``settle`` sent to the last receipt, with the calldata encoded beforehand.
On anvil (manual mining) the settlements are sent without waiting and mined in one block; on
the embedded chain they are sent without waiting too and share the blocks of the seconds they
arrive in (its 1 s block time), so the time includes the wait for the last block.

The preparation sends each step's transactions from several threads, so that they share blocks:
one after another, a chain with a block time would take a block per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from eth_account import Account

from evtrade.ledger.chain import Chain, RpcChain
from evtrade.ledger.client import Ledger
from evtrade.model import Buyer, Seller
from evtrade.settlement import units
from evtrade.settlement.views import RoundParams, SealedBid

#: anvil for throughput runs: room for several 500-trade settlements in one block, and gas money.
ANVIL_FLAGS = ("--gas-limit", "300000000", "--balance", "100000000")

#: Bids per side for a settlement of n trades (every pair trades).
SHAPES = {10: (2, 5), 100: (10, 10), 500: (20, 25), 1000: (25, 40)}

#: Threads that send the preparation's transactions (the chain's lock orders the sends).
_SENDERS = 16

_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``fn`` on every item from several threads, results in order; the first error is raised."""
    with ThreadPoolExecutor(_SENDERS) as pool:
        return list(pool.map(fn, items))


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


def _post_bids(
    ledger: Ledger,
    round_id: int,
    buyers: list[Any],
    buyer: Buyer,
    sellers: list[Any],
    seller: Seller,
) -> list[tuple[Any, SealedBid]]:
    """Every buyer's request, then every seller's reply, each side sent concurrently."""
    requests = _each(lambda a: ledger.post_request(a, round_id, buyer), buyers)
    replies = _each(lambda a: ledger.post_reply(a, round_id, seller), sellers)
    return list(zip(buyers, requests, strict=True)) + list(zip(sellers, replies, strict=True))


def prepare_rounds(
    chain: Chain, n_trades: int, rounds: int
) -> tuple[Ledger, Any, list[tuple[int, list[tuple[int, int, int]]]]]:
    """Deploy, register and fill ``rounds`` revealed rounds ready to settle."""
    n_b, n_s = SHAPES[n_trades]
    authority, rsu = Account.create(), Account.create()
    ledger = Ledger.deploy(chain, authority)
    ledger.register_rsu(authority, rsu)
    buyers = [Account.create() for _ in range(n_b)]
    # Sellers per round: a reply reserves the seller's spare energy until its round ends.
    sellers = [[Account.create() for _ in range(n_s)] for _ in range(rounds)]
    expiry = chain.timestamp() + 10**8
    vehicles = list(enumerate(buyers + [a for group in sellers for a in group]))
    _each(
        lambda kv: ledger.register_vehicle(authority, kv[1].address, f"BENCH {kv[0]}", expiry),
        vehicles,
    )
    buyer = Buyer(id="b", v=0.95, v_min=0.6, v_max=1.0, b_min=0.0, b_max=float(n_s), w=3.0)
    seller = Seller(id="s", c=0.55, c_min=0.5, c_max=0.8, s_t=float(n_b) * 2 + 1, s_r=0.0, rho=0.05)
    _each(lambda a: ledger.mint(authority, a.address, 2.0 * n_s * rounds), buyers)
    _each(lambda a: ledger.mint(authority, a.address, 10.0), [a for g in sellers for a in g])
    trades = [(i, j, units.ENERGY_SCALE) for i in range(n_b) for j in range(n_s)]  # 1 kWh each
    params = RoundParams(v_floor=0.5, c_ceiling=1.0, t_limit=600, t_reveal=600, t_settle=10**6)
    ready = []
    for group in sellers:
        rid = ledger.open_round(rsu, params)
        ready.append((rid, _post_bids(ledger, rid, buyers, buyer, group, seller)))
    chain.advance_time(601)
    _each(lambda ab: ledger.reveal(ab[0], ab[1]), [ab for _, bids in ready for ab in bids])
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
