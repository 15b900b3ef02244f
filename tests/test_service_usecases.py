"""The service's use cases in process, on the in-memory ledger (no chain, no HTTP): the seed app's
flow from registration to a settled trade, and each refusal as the domain error it is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.errors import (
    ConflictError,
    ForbiddenError,
    InsufficientFundsError,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
)
from evtrade.model import Buyer, Seller
from evtrade.service.clock import RoundClock
from evtrade.service.context import RsuContext
from evtrade.service.security import BidRate
from evtrade.service.settings import Settings
from evtrade.service.store import Store
from evtrade.service.trading import Trading
from evtrade.service.vehicles import Vehicles
from evtrade.service.wallets import Wallets
from evtrade.settlement.port import LedgerPort
from evtrade.settlement.rounds import Operators
from tests.fake_ledger import FakeAccount, FakeLedger

PASSWORD = "correct horse"


class FakeChainClock:
    """The fake ledger's clock as the service reads it, set to the wall clock at the start."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger
        ledger.chain.now = int(time.time())

    def timestamp(self) -> int:
        return self.ledger.chain.now

    def next_timestamp(self) -> int:
        return self.ledger.chain.now + 1


@dataclass
class Service:
    ledger: FakeLedger
    vehicles: Vehicles
    trading: Trading
    clock: RoundClock


@contextmanager
def in_process_service(tmp_path: Path, *, faucet_tokens: float) -> Iterator[Service]:
    """The service's use cases wired as build_rsu wires them, on the fake ledger (no chain)."""
    ledger = FakeLedger()
    authority: LocalAccount = Account.create()
    rsu: LocalAccount = Account.create()
    ledger.register_rsu(FakeAccount(authority.address), FakeAccount(rsu.address))
    settings = Settings(
        data_dir=tmp_path, t_limit=600, bid_grace=0, t_reveal=600, faucet_tokens=faucet_tokens
    )
    ctx = RsuContext(
        settings=settings,
        chain=FakeChainClock(ledger),
        # The fake signs with nothing; it reads only the accounts' addresses.
        ledger=cast(LedgerPort[LocalAccount], ledger),
        operators=Operators(authority=authority, rsu=rsu),
        store=Store(tmp_path / "service.sqlite"),
        bid_rate=BidRate(settings.bids_per_minute),
    )
    wallets = Wallets(ctx.store)
    clock = RoundClock(ctx)
    vehicles = Vehicles(ctx, wallets)
    try:
        yield Service(ledger, vehicles, Trading(ctx, wallets, vehicles, clock), clock)
    finally:
        ctx.store.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with in_process_service(tmp_path, faucet_tokens=100) as svc:
        yield svc


def buyer(address: str, *, v_min: float = 0.6) -> Buyer:
    return Buyer(address, 0.95, v_min, 1.0, b_min=2, b_max=10, w=3, lat=57.70, lon=11.97)


def seller(address: str) -> Seller:
    return Seller(address, 0.55, 0.5, 0.8, s_t=20, s_r=10, rho=0.05, lat=57.70, lon=11.96)


def test_from_registration_to_a_settled_trade(service: Service) -> None:
    b = service.vehicles.register("Ada", "AB 123", PASSWORD, 57.70, 11.97)
    assert (b["name"], b["plate"], b["wallet"], b["balance"]) == ("Ada", "AB123", True, 0.0)
    s = service.vehicles.register("Bo", "BO 1", PASSWORD, 57.70, 11.96)["address"]
    b = service.vehicles.top_up(b["address"], 50, password=PASSWORD)
    assert b["balance"] == 50 and b["faucet_left"] == 50
    service.vehicles.top_up(s, 20, password=PASSWORD)

    posted = service.trading.post_request(b["address"], PASSWORD, None, buyer(b["address"]))
    rid = posted["round_id"]
    assert posted == {"round_id": rid, "index": 0}
    assert service.trading.post_reply(s, PASSWORD, rid, seller(s)) == {"round_id": rid, "index": 0}
    assert service.clock.round(rid)["phase"] == "bidding"

    service.ledger.chain.now = service.ledger.round_view(rid).deadline + 1  # the window closes
    service.clock.tick()  # the index catches up with the bids (it refreshes at most so often)
    service.clock.tick()  # the RSU reveals both bids
    view = service.clock.round(rid)
    assert view["phase"] == "reveal" and view["error"] is None
    assert all(bid["revealed"] for bid in view["requests"] + view["replies"])
    (offer,) = view["offers"]
    assert (offer["buyer"], offer["seller"]) == (b["address"], s)
    assert view["requests"][0]["status"] == "priced"

    view = service.trading.accept(b["address"], PASSWORD, rid, offer["seller_index"], 4.0)
    assert view["phase"] == "settled"
    (trade,) = view["trades"]
    assert trade["kwh"] == 4.0 and trade["payment"] == pytest.approx(4.0 * offer["T"])
    assert view["requests"][0]["status"] == "completed"
    assert service.vehicles.public_info(s)["energy_sold"] == 4.0


def test_each_refusal_is_its_domain_error(service: Service) -> None:
    b = service.vehicles.register("Cy", "CY 1", PASSWORD, None, None)["address"]
    with pytest.raises(ConflictError, match="already registered"):
        service.vehicles.register("Cy again", "cy1", PASSWORD, None, None)
    with pytest.raises(NotFoundError, match="unknown vehicle"):
        service.vehicles.public_info("0x" + "12" * 20)
    with pytest.raises(UnauthorizedError, match="wrong password"):
        service.vehicles.details(b, password="not it")
    with pytest.raises(UnauthorizedError, match="unsigned request"):
        service.vehicles.details(b)
    with pytest.raises(ForbiddenError, match="faucet gives each vehicle 100 tokens"):
        service.vehicles.top_up(b, 101, password=PASSWORD)
    with pytest.raises(InvalidRequestError, match="below the RSU's floor"):
        service.trading.post_request(b, PASSWORD, None, buyer(b, v_min=0.4))
    with pytest.raises(InsufficientFundsError, match="balance below the escrow"):
        service.trading.post_request(b, PASSWORD, None, buyer(b))
    with pytest.raises(NotFoundError, match="no round 7"):
        service.trading.post_reply(b, PASSWORD, 7, seller(b))
    with pytest.raises(NotFoundError, match="no round 7"):
        service.clock.round(7)
    assert service.ledger.round_count() == 0  # nothing reached the ledger


def test_a_bid_after_the_announced_window_is_a_conflict(service: Service) -> None:
    s = service.vehicles.register("Di", "DI 1", PASSWORD, None, None)["address"]
    rid = service.trading.open_round()
    deadline = service.clock.round(rid)["deadline"]
    with pytest.raises(ConflictError, match="bid window closed"):
        service.trading.post_reply(s, PASSWORD, rid, seller(s), received=deadline + 2)
    assert service.ledger.round_view(rid).replies == ()
