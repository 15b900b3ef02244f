"""One full round (register, request, replies, reveal, settle, audit) on both back ends.

The anvil back end runs the node that `make test` installs from the npm registry
(@foundry-rs/anvil-linux-amd64), started by this module on a free port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.anvil import running_anvil
from hypothesis import given
from hypothesis import strategies as st

from evtrade.ledger.chain import Chain, RpcChain
from evtrade.market.pricing import buyer_bid, seller_ask, transaction_price
from evtrade.settlement import units
from evtrade.settlement.audit import audit_round
from evtrade.settlement.rounds import settle_optimal
from tests.ledger_world import BUYER_TOKENS, PARAMS, SELLER_TOKENS, World, embedded_chain


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil("--block-time", "0.1") as url:
        yield url


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    if request.param == "embedded":
        embedded = embedded_chain(tmp_path / "chain")
        yield embedded
        embedded.close()
    else:
        yield RpcChain(request.getfixturevalue("anvil_url"))


def test_full_round_then_audit(chain: Chain) -> None:
    world = World.build(chain)
    rid = world.open()
    world.bid(rid)  # values sealed to the RSU's key; the vehicles go offline
    chain.advance_time(PARAMS.t_limit + 1)
    report = world.ledger.reveal_sealed(world.rsu, rid)
    assert report.complete and report.transactions == 1 and len(report.revealed) == 5
    _, trades = settle_optimal(world.ledger, world.rsu, rid)
    view = world.ledger.round_view(rid)
    assert view.settled and len(view.trades) == len(trades) == 6
    audit = audit_round(view)
    assert audit.ok, audit.findings
    assert audit.max_price_error < 1e-15
    assert audit.max_volume_gap_kwh < 1e-5
    paid = sum(t.payment for t in view.trades)
    for k, buyer in enumerate(world.buyers):
        world.ledger.claim_refund(buyer, rid, k)
    for seller in world.sellers:
        world.ledger.withdraw(seller)  # payments and the deposit, back at the reveal
    sellers = len(world.sellers) * SELLER_TOKENS * 10**18
    buyers = len(world.buyers) * BUYER_TOKENS * 10**18
    assert sum(world.ledger.balance(s.address) for s in world.sellers) == sellers + paid
    assert sum(world.ledger.balance(b.address) for b in world.buyers) == buyers - paid


def test_audit_flags_a_suboptimal_settlement(chain: Chain) -> None:
    world = World.build(chain)
    rid = world.open()
    world.bid(rid)
    chain.advance_time(PARAMS.t_limit + 1)
    world.reveal_all()
    # Feasible for the contract (prices, (12), (13)) but not the P1 optimum: the RSU favours s0.
    world.ledger.settle(world.rsu, rid, [(0, 0, 9 * 10**6), (1, 1, 6 * 10**6)])
    report = audit_round(world.ledger.round_view(rid))
    assert not report.ok
    kinds = {f.kind for f in report.findings}
    assert kinds == {"volume", "missing"}
    assert any(f.seller == world.sellers[2].address for f in report.findings)


@pytest.fixture(scope="module")
def price_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chain = embedded_chain(tmp_path_factory.mktemp("prices"))
    yield World.build(chain, 0, 0)
    chain.close()


prices = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False, allow_subnormal=False)


@given(v=prices, v_max=prices, c=prices, c_min=prices)
def test_onchain_prices_equal_the_library(
    price_world: World, v: float, v_max: float, c: float, c_min: float
) -> None:
    fixed = [
        units.to_fixed(n, x, units.PRICE_SCALE)
        for n, x in zip("vVcC", (v, v_max, c, c_min), strict=True)
    ]
    onchain = tuple(price_world.ledger.market.functions.bayesian_prices(*fixed).call())
    assert onchain == units.fixed_prices(*fixed)
    P = float(buyer_bid(v, v_max, c_min)[0, 0])
    R = float(seller_ask(c, c_min, v_max)[0, 0])
    T = float(transaction_price(buyer_bid(v, v_max, c_min), seller_ask(c, c_min, v_max))[0, 0])
    # Equal to the fixed-point resolution: one unit of 1e-18 per division, plus float rounding.
    for got, want in zip(onchain[:3], (P, R, T), strict=True):
        assert abs(got / units.PRICE_SCALE - want) <= 2e-18 + 4e-16 * max(1.0, abs(want))
    if abs((8 * v + v_max + 3 * c_min) - (8 * c + c_min + 3 * v_max)) > 1e-9 * max(1.0, v_max):
        assert onchain[3] == (P >= R)
