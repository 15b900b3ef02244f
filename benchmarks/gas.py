"""Gas of every market operation, measured on the embedded chain (docs/ledger.md, "Gas").

Usage: .venv/bin/python benchmarks/gas.py [--bids 40] [--settle 10 100 500]

Deploys fresh contracts on an embedded chain in a temporary directory (a block per transaction),
runs one round of ``--bids`` sealed bids (half requests, half replies) and reads ``gasUsed`` from
each receipt. Prints one line per operation; the batch reveal also per bid. ``--settle`` also
settles rounds of 10/100/500 trades (every pair trading, as in benchmarks/settlement.py) and prints
the gas per trade.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from eth_account import Account

from evtrade.ledger.chain import EmbeddedChain
from evtrade.ledger.client import Ledger
from evtrade.model import Buyer, Seller
from evtrade.settlement import units
from evtrade.settlement.views import RoundParams
from throughput import prepare_rounds

BUYER = Buyer(id="b", v=0.95, v_min=0.6, v_max=1.0, b_min=1, b_max=4, w=3)
SELLER = Seller(id="s", c=0.55, c_min=0.5, c_max=0.8, s_t=20, s_r=10, rho=0.05)
PARAMS = RoundParams(v_floor=0.5, c_ceiling=1.0, t_limit=600, t_reveal=600, t_settle=600)


def _gas(receipt: object) -> int:
    return int(receipt["gasUsed"])  # type: ignore[index]


def measure(chain: EmbeddedChain, bids: int) -> dict[str, int]:
    """gasUsed per operation."""
    out: dict[str, int] = {}
    authority, rsu = Account.create(), Account.create()
    ledger = Ledger.deploy(chain, authority)
    ledger.register_rsu(authority, rsu)
    n_b, n_s = bids // 2, bids - bids // 2
    buyers = [Account.create() for _ in range(n_b)]
    sellers = [Account.create() for _ in range(n_s)]
    expiry = chain.timestamp() + 10**8
    for k, a in enumerate(buyers + sellers):
        receipt = ledger.register_vehicle(authority, a.address, f"GAS {k}", expiry)
        out["register_vehicle"] = _gas(receipt)
        out["mint"] = _gas(ledger.mint(authority, a.address, 100))
    rid = ledger.open_round(rsu, PARAMS)
    out["open_round"] = _gas(chain.w3.eth.get_transaction_receipt(_last_tx(chain)))
    pk = ledger.rsu_pubkey(rsu.address)
    for a in buyers:
        ledger.post_request(a, rid, BUYER, rsu_pubkey=pk)
        out["post_request"] = _gas(chain.w3.eth.get_transaction_receipt(_last_tx(chain)))
    for a in sellers:
        ledger.post_reply(a, rid, SELLER, rsu_pubkey=pk)
        out["post_reply"] = _gas(chain.w3.eth.get_transaction_receipt(_last_tx(chain)))
    # A seller with 7 open replies (the most a new one may find): the reservation loop's worst case.
    busy = sellers[0]
    for k in range(6):
        r = ledger.open_round(rsu, PARAMS)
        ledger.post_reply(busy, r, replace(SELLER, s_t=30 + k))
    last = ledger.open_round(rsu, PARAMS)
    ledger.post_reply(busy, last, replace(SELLER, s_t=40))
    out["post_reply, 7 open"] = _gas(chain.w3.eth.get_transaction_receipt(_last_tx(chain)))
    chain.advance_time(PARAMS.t_limit + 1)
    report = ledger.reveal_sealed(rsu, rid)
    assert report.complete, report.skipped
    block = chain.w3.eth.get_block("latest")
    reveal_gas = sum(_gas(chain.w3.eth.get_transaction_receipt(h)) for h in block["transactions"])
    out[f"reveal_for_many, {bids} bids"] = reveal_gas
    out["reveal_for_many, per bid"] = reveal_gas // bids
    single = ledger.open_round(rsu, PARAMS)
    buyer = Account.create()
    ledger.register_vehicle(authority, buyer.address, "GAS X", expiry)
    ledger.mint(authority, buyer.address, 100)
    bid = ledger.post_request(buyer, single, BUYER)
    chain.advance_time(PARAMS.t_limit + 1)
    out["reveal"] = _gas(ledger.reveal(buyer, bid))
    trades = [
        (i, j, units.ENERGY_SCALE // 4) for i in range(min(n_b, 4)) for j in range(min(n_s, 4))
    ]
    out[f"settle, {len(trades)} trades"] = _gas(ledger.settle(rsu, rid, trades))
    out["claim_refund"] = _gas(ledger.claim_refund(buyers[0], rid, 0))
    out["withdraw"] = _gas(ledger.withdraw(sellers[0]))
    # A withheld bid: the buyer's deposit is burned at its refund, a seller's by claim_deposit.
    lone = ledger.open_round(rsu, PARAMS)
    ledger.post_request(buyers[1], lone, BUYER)
    ledger.post_reply(sellers[1], lone, SELLER)
    chain.advance_time(PARAMS.t_limit + PARAMS.t_reveal + PARAMS.t_settle + 2)
    out["claim_refund, forfeited"] = _gas(ledger.claim_refund(buyers[1], lone, 0))
    out["claim_deposit, forfeited"] = _gas(ledger.claim_deposit(buyers[1], lone, 0))
    r2, r3 = Account.create(), Account.create()
    ledger.register_rsu(authority, r2)
    out["register_rsu"] = _gas(ledger.register_rsu(authority, r3))
    out["vote_rsu"] = _gas(ledger.vote_rsu(r2, rsu.address, False))
    out["vote_rsu, applied"] = _gas(ledger.vote_rsu(r3, rsu.address, False))
    return out


def settle_gas(chain: EmbeddedChain, n_trades: int) -> int:
    """gasUsed of one settlement of ``n_trades`` trades."""
    ledger, rsu, ready = prepare_rounds(chain, n_trades, 1)
    ((rid, trades),) = ready
    return _gas(ledger.settle(rsu, rid, trades))


def _last_tx(chain: EmbeddedChain) -> bytes:
    block = chain.w3.eth.get_block("latest")
    return bytes(block["transactions"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=40)
    parser.add_argument("--settle", type=int, nargs="*", default=[])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="evtrade-gas-"))
    try:
        try:
            chain = EmbeddedChain(tmp, block_time=0)  # type: ignore[call-arg]
        except TypeError:
            chain = EmbeddedChain(tmp)
        try:
            for name, gas in measure(chain, args.bids).items():
                print(f"{name:32s} {gas:>10,d}")
            for n in args.settle:
                gas = settle_gas(chain, n)
                print(f"{f'settle, {n} trades':32s} {gas:>10,d}  ({gas / n:,.0f} per trade)")
        finally:
            chain.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
