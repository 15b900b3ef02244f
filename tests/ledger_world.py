"""A small trading world on a chain, shared by the ledger tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.ledger.chain import Chain, EmbeddedChain
from evtrade.ledger.client import Ledger
from evtrade.model import Buyer, Seller
from evtrade.settlement.views import RoundParams, SealedBid

BUYERS = (
    Buyer(id="b0", v=0.95, v_min=0.6, v_max=1.0, b_min=2, b_max=10, w=3, lat=57.70, lon=11.97),
    Buyer(id="b1", v=0.90, v_min=0.55, v_max=0.95, b_min=1, b_max=6, w=2, lat=57.71, lon=11.96),
)
SELLERS = tuple(
    Seller(
        id=f"s{j}",
        c=0.55 + 0.02 * j,
        c_min=0.5,
        c_max=0.8,
        s_t=20,
        s_r=10,
        rho=0.05,
        lat=57.70,
        lon=11.95,
    )
    for j in range(3)
)
PARAMS = RoundParams(v_floor=0.5, c_ceiling=1.0, t_limit=30, t_reveal=30, t_settle=600)
#: Tokens each world vehicle starts with: buyers escrow from it, sellers deposit from it.
BUYER_TOKENS = 1000
SELLER_TOKENS = 100


def embedded_chain(path: Path) -> EmbeddedChain:
    """An embedded chain that mines a block per transaction at once.

    The contract tests care about what the contract does, not about block time; a wall-clock
    block time would make each transaction wait for its second.
    """
    return EmbeddedChain(path, block_time=0)


@dataclass
class World:
    chain: Chain
    ledger: Ledger
    authority: LocalAccount
    rsu: LocalAccount
    buyers: list[LocalAccount]
    sellers: list[LocalAccount]
    bids: list[SealedBid] = field(default_factory=list)

    @classmethod
    def build(cls, chain: Chain, n_buyers: int = 2, n_sellers: int = 3) -> World:
        authority, rsu = Account.create(), Account.create()
        ledger = Ledger.deploy(chain, authority)
        ledger.register_rsu(authority, rsu)
        buyers = [Account.create() for _ in range(n_buyers)]
        sellers = [Account.create() for _ in range(n_sellers)]
        expiry = chain.timestamp() + 10**7
        for k, account in enumerate(buyers + sellers):
            ledger.register_vehicle(authority, account.address, f"GB {k:03d}", expiry)
        for account in buyers:
            ledger.mint(authority, account.address, BUYER_TOKENS)
        for account in sellers:
            ledger.mint(authority, account.address, SELLER_TOKENS)
        return cls(chain, ledger, authority, rsu, buyers, sellers)

    def open(self, params: RoundParams = PARAMS) -> int:
        return self.ledger.open_round(self.rsu, params)

    def bid(
        self,
        round_id: int,
        buyers: tuple[Buyer, ...] = BUYERS,
        sellers: tuple[Seller, ...] = SELLERS,
        *,
        sealed: bool = True,
    ) -> list[SealedBid]:
        pk = self.ledger.rsu_pubkey(self.rsu.address) if sealed else None
        bids = [
            self.ledger.post_request(a, round_id, b, rsu_pubkey=pk)
            for a, b in zip(self.buyers, buyers, strict=False)
        ]
        bids += [
            self.ledger.post_reply(a, round_id, s, rsu_pubkey=pk)
            for a, s in zip(self.sellers, sellers, strict=False)
        ]
        self.bids = bids
        return bids

    def account_of(self, bid: SealedBid) -> LocalAccount:
        return next(a for a in self.buyers + self.sellers if a.address == bid.bidder)

    def reveal_all(self) -> None:
        for bid in self.bids:
            self.ledger.reveal(self.account_of(bid), bid)
