"""The domain's view of a round on the ledger: what an RSU declares, what the chain recorded.

The ledger adapter (:class:`evtrade.ledger.client.Ledger`) decodes the contracts' events into
these types; the settlement use cases (planning, audit, offers, running a round) read them and
never the chain. Amounts are the contracts' fixed-point integers (:mod:`evtrade.settlement.units`);
:func:`round_market` turns a round's revealed bids into the market model the library clears.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evtrade.model import Auctioneer, Buyer, Market, Seller
from evtrade.model.defaults import DEFAULT_L1, DEFAULT_L2
from evtrade.settlement import units

#: One trade of a settlement: (request index, reply index, energy units).
Trade = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class RoundParams:
    """What an RSU declares when it opens a round (the auctioneer of ETA Table II)."""

    v_floor: float
    c_ceiling: float
    t_limit: int = 60
    t_reveal: int = 60
    t_settle: int = 3600
    l1: float = DEFAULT_L1
    l2: float = DEFAULT_L2
    max_distance_km: float | None = None
    #: The least deposit of a bid, in tokens; burned when the bid is not revealed (the contract
    #: raises it to the bid's bounded gain from withholding, docs/ledger.md).
    deposit: float = 0.1

    @classmethod
    def from_auctioneer(cls, auctioneer: Auctioneer, **windows: int) -> RoundParams:
        """The round of an auctioneer from the market model."""
        return cls(
            v_floor=auctioneer.v_min,
            c_ceiling=auctioneer.c_max,
            l1=auctioneer.l1,
            l2=auctioneer.l2,
            max_distance_km=auctioneer.max_distance_km,
            **windows,
        )


@dataclass(frozen=True, slots=True)
class SealedBid:
    """What a bidder keeps to reveal its value later."""

    round_id: int
    is_buyer: bool
    index: int
    bidder: str
    value: int
    salt: bytes


@dataclass(frozen=True, slots=True)
class RequestView:
    """A buyer's request as the chain recorded it (fixed-point integers)."""

    index: int
    buyer: str
    b_min: int
    b_max: int
    v_min: int
    v_max: int
    w: int
    lat: int
    lon: int
    commitment: bytes
    escrow: int
    sealed: bytes
    value: int | None = None
    #: The part of the escrow burned if the value is not revealed.
    deposit: int = 0


@dataclass(frozen=True, slots=True)
class ReplyView:
    """A seller's reply as the chain recorded it (fixed-point integers).

    ``s_t - s_r`` is the spare energy *this round* may sell from, (13): the contract reserved it
    from the seller's declaration less what its other open replies had reserved. ``s_r`` is
    therefore the effective reserve; ``declared_s_r`` is what the seller declared.
    """

    index: int
    seller: str
    c_min: int
    c_max: int
    s_t: int
    s_r: int
    rho: int
    lat: int
    lon: int
    commitment: bytes
    sealed: bytes
    value: int | None = None
    #: Energy units this reply reserved (= s_t - s_r), losses included.
    spare: int = 0
    declared_s_r: int = 0
    #: Tokens (base units) burned if the value is not revealed; back to credit at the reveal.
    deposit: int = 0


@dataclass(frozen=True, slots=True)
class SkippedBid:
    """A sealed bid the RSU could not reveal, and why; it stays excluded."""

    is_buyer: bool
    index: int
    bidder: str
    reason: str


@dataclass(frozen=True, slots=True)
class RevealReport:
    """What :meth:`Ledger.reveal_sealed` did: bids revealed, bids skipped, transactions sent."""

    revealed: tuple[str, ...]
    skipped: tuple[SkippedBid, ...]
    transactions: int

    @property
    def complete(self) -> bool:
        """True when no bid was skipped."""
        return not self.skipped


@dataclass(frozen=True, slots=True)
class TradeView:
    """A settled trade: energy units and prices as the contract computed them."""

    buyer: str
    seller: str
    energy: int
    buyer_price: int
    seller_price: int
    price: int
    payment: int
    block: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class RoundView:
    """A round rebuilt from the chain's events."""

    round_id: int
    rsu: str
    deadline: int
    reveal_deadline: int
    settle_deadline: int
    v_floor: int
    c_ceiling: int
    l1: int
    l2: int
    max_distance_m: int
    requests: tuple[RequestView, ...]
    replies: tuple[ReplyView, ...]
    trades: tuple[TradeView, ...] = field(default=())
    settled: bool = False
    #: The least deposit of a bid in this round (token base units).
    deposit: int = 0


def has_revealed_pair(view: RoundView) -> bool:
    """True when at least one buyer and one seller revealed (a market to clear exists)."""
    return any(q.value is not None for q in view.requests) and any(
        p.value is not None for p in view.replies
    )


def round_market(view: RoundView) -> Market:
    """A round's revealed bids as :class:`~evtrade.model.Market` (ids are addresses).

    Needs at least one revealed buyer and one revealed seller (:func:`has_revealed_pair`).
    """
    buyers = [
        Buyer(
            id=q.buyer,
            v=units.to_tokens(q.value),
            v_min=units.to_tokens(q.v_min),
            v_max=units.to_tokens(q.v_max),
            b_min=units.to_kwh(q.b_min),
            b_max=units.to_kwh(q.b_max),
            w=q.w / units.W_SCALE,
            lat=q.lat / units.DEGREE_SCALE,
            lon=q.lon / units.DEGREE_SCALE,
        )
        for q in view.requests
        if q.value is not None
    ]
    sellers = [
        Seller(
            id=p.seller,
            c=units.to_tokens(p.value),
            c_min=units.to_tokens(p.c_min),
            c_max=units.to_tokens(p.c_max),
            s_t=units.to_kwh(p.s_t),
            s_r=units.to_kwh(p.s_r),
            rho=p.rho / units.RHO_SCALE,
            lat=p.lat / units.DEGREE_SCALE,
            lon=p.lon / units.DEGREE_SCALE,
        )
        for p in view.replies
        if p.value is not None
    ]
    auctioneer = Auctioneer(
        v_min=units.to_tokens(view.v_floor),
        c_max=units.to_tokens(view.c_ceiling),
        l1=view.l1 / units.LOSS_SCALE,
        l2=view.l2 / units.LOSS_SCALE,
        max_distance_km=view.max_distance_m / 1000 if view.max_distance_m else None,
    )
    return Market(buyers=tuple(buyers), sellers=tuple(sellers), auctioneer=auctioneer)
