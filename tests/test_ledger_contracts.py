"""Every external contract function: one test that it works, one or more that it refuses.

Runs on the embedded chain (real py-evm, real signed transactions). A refused call raises
ContractRejectedError with the contract's reason and writes nothing: the tests check the block
number and balances where that matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from eth_account import Account
from web3.logs import DISCARD

from evtrade.errors import ContractRejectedError
from evtrade.ledger.client import public_key
from evtrade.ledger.sealing import commitment, new_salt, seal
from evtrade.settlement import units
from evtrade.settlement.rounds import settle_optimal
from evtrade.settlement.views import SealedBid
from tests.ledger_world import BUYERS, PARAMS, SELLER_TOKENS, SELLERS, World, embedded_chain


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    chain = embedded_chain(tmp_path / "chain")
    yield World.build(chain)
    chain.close()


def refused(match: str) -> pytest.RaisesExc[ContractRejectedError]:
    return pytest.raises(ContractRejectedError, match=match)


def _unchanged(world: World) -> int:
    return int(world.chain.w3.eth.block_number)


# -- registry ---------------------------------------------------------------------------------


def test_register_and_revoke_vehicle(world: World) -> None:
    car = Account.create()
    assert not world.ledger.is_valid_vehicle(car.address)
    world.ledger.register_vehicle(
        world.authority, car.address, "ABC 123", world.chain.timestamp() + 100
    )
    assert world.ledger.is_valid_vehicle(car.address)
    world.ledger.revoke_vehicle(world.authority, car.address)
    assert not world.ledger.is_valid_vehicle(car.address)


def test_register_vehicle_refusals(world: World) -> None:
    car = Account.create()
    now = world.chain.timestamp()
    block = _unchanged(world)
    with refused("registry: caller is not the authority"):
        world.ledger.register_vehicle(world.rsu, car.address, "ABC 123", now + 100, gas_wei=0)
    with refused("registry: expiry in the past"):
        world.ledger.register_vehicle(world.authority, car.address, "ABC 123", now - 1, gas_wei=0)
    with refused("registry: address is an RSU"):
        world.ledger.register_vehicle(world.authority, world.rsu.address, "X", now + 100, gas_wei=0)
    assert _unchanged(world) == block
    with refused("registry: vehicle not registered"):
        world.ledger.revoke_vehicle(world.authority, car.address)
    with refused("registry: caller is not the authority"):
        world.ledger.revoke_vehicle(world.rsu, world.buyers[0].address)


def test_certificate_expires(world: World) -> None:
    car = Account.create()
    world.ledger.register_vehicle(
        world.authority, car.address, "EXP 1", world.chain.timestamp() + 50
    )
    assert world.ledger.is_valid_vehicle(car.address)
    world.chain.advance_time(100)
    assert not world.ledger.is_valid_vehicle(car.address)


def test_a_plate_is_certified_to_one_vehicle(world: World) -> None:
    car, clone = Account.create(), Account.create()
    now = world.chain.timestamp()
    world.ledger.register_vehicle(world.authority, car.address, "SYB 1", now + 100)
    with refused("registry: plate certified to another vehicle"):  # one identity, one account
        world.ledger.register_vehicle(world.authority, clone.address, "syb1", now + 100, gas_wei=0)
    world.ledger.register_vehicle(world.authority, car.address, "SYB 1", now + 200)  # renewal
    world.ledger.revoke_vehicle(world.authority, car.address)
    world.ledger.register_vehicle(world.authority, clone.address, "SYB 1", now + 100)  # a new key
    assert world.ledger.is_valid_vehicle(clone.address)
    assert not world.ledger.is_valid_vehicle(car.address)


def test_register_and_revoke_rsu(world: World) -> None:
    other = Account.create()
    world.ledger.register_rsu(world.authority, other)
    assert world.ledger.is_rsu(other.address)
    assert world.ledger.rsu_pubkey(other.address) == public_key(other)
    world.ledger.revoke_rsu(world.authority, other.address)
    assert not world.ledger.is_rsu(other.address)


def test_register_rsu_refusals(world: World) -> None:
    other, impostor = Account.create(), Account.create()
    with refused("registry: caller is not the authority"):
        world.ledger.register_rsu(world.rsu, other, gas_wei=0)
    with refused("registry: public key does not match address"):
        world.ledger._do(
            world.authority,
            world.ledger.registry,
            "register_rsu",
            other.address,
            public_key(impostor),
        )
    with refused("registry: address is a vehicle"):
        world.ledger._do(
            world.authority,
            world.ledger.registry,
            "register_rsu",
            world.buyers[0].address,
            public_key(world.buyers[0]),
        )
    with refused("registry: not an RSU"):
        world.ledger.revoke_rsu(world.authority, other.address)


def test_rsu_vote_needs_a_strict_majority(world: World) -> None:
    r2, r3, newcomer = Account.create(), Account.create(), Account.create()
    world.ledger.register_rsu(world.authority, r2)
    world.ledger.register_rsu(world.authority, r3)
    # 3 RSUs: one vote (33 %) does not add the newcomer, two (67 %) do.
    world.ledger.vote_rsu(world.rsu, newcomer.address, True, public_key(newcomer))
    assert not world.ledger.is_rsu(newcomer.address)
    with refused("registry: already voted"):
        world.ledger.vote_rsu(world.rsu, newcomer.address, True, public_key(newcomer))
    world.ledger.vote_rsu(r2, newcomer.address, True, public_key(newcomer))
    assert world.ledger.is_rsu(newcomer.address)
    world.chain.fund(newcomer.address, 10**19)
    # 4 RSUs: removing r3 needs 3 votes; 2 (50 %) are not enough.
    world.ledger.vote_rsu(world.rsu, r3.address, False)
    world.ledger.vote_rsu(r2, r3.address, False)
    assert world.ledger.is_rsu(r3.address)
    world.ledger.vote_rsu(newcomer, r3.address, False)
    assert not world.ledger.is_rsu(r3.address)


def test_rsu_vote_refusals(world: World) -> None:
    newcomer = Account.create()
    with refused("registry: caller is not an RSU"):
        world.ledger.vote_rsu(world.buyers[0], newcomer.address, True, public_key(newcomer))
    with refused("registry: public key does not match address"):
        world.ledger.vote_rsu(world.rsu, newcomer.address, True, public_key(world.rsu))
    with refused("registry: already an RSU"):
        world.ledger.vote_rsu(world.rsu, world.rsu.address, True, public_key(world.rsu))
    with refused("registry: not an RSU"):
        world.ledger.vote_rsu(world.rsu, newcomer.address, False)


# -- token ------------------------------------------------------------------------------------


def test_mint_transfer_approve(world: World) -> None:
    a, b = world.buyers
    world.ledger.mint(world.authority, a.address, 5)
    assert world.ledger.balance(a.address) == 1005 * 10**18
    world.ledger._do(a, world.ledger.token, "transfer", b.address, 10**18, gas=80_000)
    assert world.ledger.balance(b.address) == 1001 * 10**18
    world.ledger.approve_escrow(a, 7)
    world.ledger._do(b, world.ledger.token, "approve", a.address, 3, gas=80_000)
    world.ledger._do(a, world.ledger.token, "transferFrom", b.address, a.address, 3, gas=80_000)
    assert world.ledger.balance(a.address) == 1004 * 10**18 + 3


def test_token_refusals(world: World) -> None:
    a, b = world.buyers
    with refused("token: caller is not the minter"):
        world.ledger.mint(a, a.address, 5)
    with refused("token: insufficient balance"):
        world.ledger._do(a, world.ledger.token, "transfer", b.address, 2000 * 10**18, gas=80_000)
    with refused("token: insufficient allowance"):
        world.ledger._do(a, world.ledger.token, "transferFrom", b.address, a.address, 1, gas=80_000)


# -- market: rounds and bids --------------------------------------------------------------------


def test_open_round(world: World) -> None:
    first = world.open()
    second = world.open()
    assert (first, second) == (0, 1)
    view = world.ledger.round_view(second)
    assert view.rsu == world.rsu.address
    assert view.deadline - world.chain.timestamp() <= PARAMS.t_limit


def test_open_round_refusals(world: World) -> None:
    with refused("market: caller is not an RSU"):
        world.ledger.open_round(world.buyers[0], PARAMS)
    with refused("market: t_limit must be positive"):
        world.ledger.open_round(world.rsu, replace(PARAMS, t_limit=0))
    with refused("market: v_floor above c_ceiling"):
        world.ledger.open_round(world.rsu, replace(PARAMS, v_floor=2.0))


def test_post_request_escrows_and_seals(world: World) -> None:
    rid = world.open()
    before = world.ledger.balance(world.buyers[0].address)
    bid = world.ledger.post_request(
        world.buyers[0], rid, BUYERS[0], rsu_pubkey=world.ledger.rsu_pubkey(world.rsu.address)
    )
    escrow = units.escrow(10**18, 10 * units.ENERGY_SCALE)
    assert world.ledger.balance(world.buyers[0].address) == before - escrow
    (request,) = world.ledger.round_view(rid).requests
    assert request.escrow == escrow and request.value is None
    assert request.sealed and bid.value == units.to_fixed("v", 0.95, units.PRICE_SCALE)


def test_post_request_refusals(world: World) -> None:
    rid = world.open()
    outsider, revoked = Account.create(), world.buyers[1]
    world.chain.fund(outsider.address, 10**19)
    world.ledger.revoke_vehicle(world.authority, revoked.address)
    block = _unchanged(world)
    with refused("market: vehicle not registered or expired"):
        world.ledger.post_request(outsider, rid, BUYERS[0])
    with refused("market: vehicle not registered or expired"):
        world.ledger.post_request(revoked, rid, BUYERS[0])
    with refused("market: v_min below the round's v_floor"):
        world.ledger.post_request(world.buyers[0], rid, replace(BUYERS[0], v_min=0.4))
    with refused("market: unknown round"):
        world.ledger.post_request(world.buyers[0], rid + 5, BUYERS[0])
    rich = replace(BUYERS[0], v_max=100.0, v=50.0, b_max=100.0)
    with refused("token: insufficient balance"):  # overspend: escrow above the balance
        world.ledger.post_request(world.buyers[0], rid, rich)
    world.ledger.post_request(world.buyers[0], rid, BUYERS[0])
    with refused("market: already bid in this round"):
        world.ledger.post_request(world.buyers[0], rid, BUYERS[0])
    with refused("market: already bid in this round"):  # wrong role: a buyer cannot also sell
        world.ledger.post_reply(world.buyers[0], rid, SELLERS[0])
    world.chain.advance_time(PARAMS.t_limit + 1)
    with refused("market: bid window closed"):
        world.ledger.post_request(world.sellers[0], rid, BUYERS[1])
    assert world.chain.w3.eth.block_number > block  # only the accepted request and the clock


def test_expired_vehicle_cannot_bid(world: World) -> None:
    car = Account.create()
    world.ledger.register_vehicle(
        world.authority, car.address, "OLD 1", world.chain.timestamp() + 5
    )
    world.chain.advance_time(10)
    rid = world.open()
    with refused("market: vehicle not registered or expired"):
        world.ledger.post_reply(car, rid, SELLERS[0])


def test_post_reply_refusals(world: World) -> None:
    rid = world.open()
    s = world.sellers[0]
    with refused("market: c_max above the round's c_ceiling"):
        world.ledger.post_reply(s, rid, replace(SELLERS[0], c_max=1.5))
    with refused("market: reserve s_r must be below energy s_t"):
        world.ledger.post_reply(s, rid, replace(SELLERS[0], s_r=20))
    with refused("market: caller is not an RSU|market: vehicle not registered"):
        world.ledger.post_reply(world.rsu, rid, SELLERS[0])  # wrong role: an RSU cannot sell
    index = world.ledger.post_reply(s, rid, SELLERS[0]).index
    assert index == 0


# -- market: reveal ---------------------------------------------------------------------------


def test_reveal_by_bidder_and_by_rsu(world: World) -> None:
    rid = world.open()
    bids = world.bid(rid)
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.ledger.reveal(world.buyers[0], bids[0])
    report = world.ledger.reveal_sealed(world.rsu, rid)
    assert report.complete and report.transactions == 1 and len(report.revealed) == 4
    view = world.ledger.round_view(rid)
    assert [q.value for q in view.requests] == [bids[0].value, bids[1].value]
    assert [p.value for p in view.replies] == [b.value for b in bids[2:]]


def test_reveal_refusals(world: World) -> None:
    rid = world.open()
    bids = world.bid(rid)
    buyer = world.buyers[0]
    with refused("market: bid window still open"):
        world.ledger.reveal(buyer, bids[0])
    world.chain.advance_time(PARAMS.t_limit + 1)
    with refused("market: reveal does not match the commitment"):
        world.ledger.reveal(buyer, replace(bids[0], value=bids[0].value + 1))
    with refused("market: reveal does not match the commitment"):
        world.ledger.reveal(buyer, replace(bids[0], salt=b"\x01" * 32))
    with refused("market: caller is not the bidder"):
        world.ledger.reveal(world.buyers[1], bids[0])
    with refused("market: caller is not the round's RSU"):
        world.ledger.reveal_for(buyer, bids[1])
    world.ledger.reveal(buyer, bids[0])
    with refused("market: already revealed"):
        world.ledger.reveal(buyer, bids[0])
    world.chain.advance_time(PARAMS.t_reveal + 1)
    with refused("market: reveal window closed"):
        world.ledger.reveal(world.buyers[1], bids[1])
    with refused("market: reveal window closed"):
        world.ledger.reveal_for(world.rsu, bids[2])


def test_reveal_outside_declared_range_is_refused(world: World) -> None:
    rid = world.open()
    # A commitment to a value outside [v_min, v_max] can never be revealed: the bid is excluded.
    from evtrade.ledger.sealing import commitment, new_salt

    salt = new_salt()
    value = units.to_fixed("v", 1.2, units.PRICE_SCALE)
    buyer = world.buyers[0]
    world.ledger.approve_escrow(buyer, 10**21)
    world.ledger._do(
        buyer,
        world.ledger.market,
        "post_request",
        rid,
        2 * 10**6,
        10 * 10**6,
        6 * 10**17,
        10**18,
        3 * 10**6,
        0,
        0,
        commitment(world.ledger.market.address, rid, buyer.address, value, salt),
        b"",
    )
    world.chain.advance_time(PARAMS.t_limit + 1)
    with refused(r"market: value outside \[v_min, v_max\]"):
        world.ledger.reveal(buyer, SealedBid(rid, True, 0, buyer.address, value, salt))


# -- market: settlement -----------------------------------------------------------------------


def _revealed_round(world: World) -> int:
    rid = world.open()
    world.bid(rid)
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.reveal_all()
    return rid


def test_settle_moves_tokens_and_energy(world: World) -> None:
    rid = _revealed_round(world)
    before = [world.ledger.balance(a.address) for a in world.buyers]
    _, trades = settle_optimal(world.ledger, world.rsu, rid)
    view = world.ledger.round_view(rid)
    assert view.settled and len(view.trades) == len(trades) > 0
    for k, buyer in enumerate(world.buyers):
        paid = sum(t.payment for t in view.trades if t.buyer == buyer.address)
        bought = sum(t.energy for t in view.trades if t.buyer == buyer.address)
        assert world.ledger.energy(buyer.address) == (bought, 0)
        world.ledger.claim_refund(buyer, rid, k)
        assert world.ledger.balance(buyer.address) == before[k] + view.requests[k].escrow - paid
    for k, seller in enumerate(world.sellers):
        earned = sum(t.payment for t in view.trades if t.seller == seller.address)
        deposit = view.replies[k].deposit
        assert deposit > 0
        assert world.ledger.credit(seller.address) == earned + deposit  # revealed: deposit back
        balance = world.ledger.balance(seller.address)
        world.ledger.withdraw(seller)
        assert world.ledger.balance(seller.address) == balance + earned + deposit
        assert balance + deposit == SELLER_TOKENS * 10**18
    for t in view.trades:
        q = next(q for q in view.requests if q.buyer == t.buyer)
        p = next(p for p in view.replies if p.seller == t.seller)
        assert (t.buyer_price, t.seller_price, t.price, True) == units.fixed_prices(
            cast(int, q.value), q.v_max, cast(int, p.value), p.c_min
        )


def test_settle_refusals(world: World) -> None:
    rid = _revealed_round(world)
    ok = [(0, 0, 3 * 10**6), (1, 1, 2 * 10**6)]
    with refused("market: caller is not the round's RSU"):
        world.ledger.settle(world.buyers[0], rid, ok)
    with refused(r"market: energy above b_max \(12\)"):
        world.ledger.settle(world.rsu, rid, [(1, 0, 5 * 10**6), (1, 1, 2 * 10**6)])
    with refused(r"market: energy below b_min \(12\)"):
        world.ledger.settle(world.rsu, rid, [(0, 0, 10**6)])
    with refused(r"market: energy above the seller's spare energy \(13\)"):
        # spare 10 kWh at rho = 0.05 covers 9.52 kWh
        world.ledger.settle(world.rsu, rid, [(0, 0, 6 * 10**6), (1, 0, 4 * 10**6)])
    with refused("market: unknown reply"):
        world.ledger.settle(world.rsu, rid, [(0, 7, 10**6)])
    with refused("market: zero energy"):
        world.ledger.settle(world.rsu, rid, [(0, 0, 0)])
    world.ledger.settle(world.rsu, rid, ok)
    with refused("market: round already settled"):
        world.ledger.settle(world.rsu, rid, ok)


def test_settle_refuses_bid_below_ask(world: World) -> None:
    rid = world.open()
    # v - c = 0.05 < (v_max - c_min) / 4 = 0.125: P* < R*
    world.bid(rid, (replace(BUYERS[0], v=0.65),), (replace(SELLERS[0], c=0.6),))
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.reveal_all()
    with refused(r"market: bid below ask \(P\* < R\*\)"):
        world.ledger.settle(world.rsu, rid, [(0, 0, 3 * 10**6)])


def test_settle_excludes_unrevealed_bids(world: World) -> None:
    rid = world.open()
    bids = world.bid(rid)
    world.chain.advance_time(PARAMS.t_limit + 1)
    for bid in bids[1:]:
        world.ledger.reveal(world.account_of(bid), bid)
    with refused("market: reveal window still open"):
        world.ledger.settle(world.rsu, rid, [(1, 0, 2 * 10**6)])
    world.chain.advance_time(PARAMS.t_reveal + 1)
    with refused("market: buyer's value not revealed"):
        world.ledger.settle(world.rsu, rid, [(0, 0, 3 * 10**6)])
    _, trades = settle_optimal(world.ledger, world.rsu, rid)
    assert trades and all(i == 1 for i, _, _ in trades)
    before = world.ledger.balance(world.buyers[0].address)
    supply = world.ledger._view(world.ledger.token, "totalSupply")
    world.ledger.claim_refund(world.buyers[0], rid, 0)  # excluded: the escrow less the deposit
    view = world.ledger.round_view(rid)
    deposit = view.requests[0].deposit
    # The deposit bounds the gain of withholding: (v_max - v_min) / 12 per kWh of b_max, rounded up.
    assert deposit == -(-(4 * 10**17) * 10 // 12) + 10 + 1
    assert (
        world.ledger.balance(world.buyers[0].address) == before + view.requests[0].escrow - deposit
    )
    assert world.ledger.burned() == deposit  # burned, not paid to the RSU or anyone
    assert world.ledger._view(world.ledger.token, "totalSupply") == supply - deposit
    assert world.ledger.balance(world.rsu.address) == 0


def test_settlement_window_closes(world: World) -> None:
    rid = _revealed_round(world)
    world.chain.advance_time(PARAMS.t_reveal + PARAMS.t_settle + 1)
    with refused("market: settlement window closed"):
        world.ledger.settle(world.rsu, rid, [(1, 1, 2 * 10**6)])
    before = world.ledger.balance(world.buyers[1].address)
    world.ledger.claim_refund(world.buyers[1], rid, 1)
    assert world.ledger.balance(world.buyers[1].address) > before


def test_accept_single_buyer_round(world: World) -> None:
    rid = world.open()
    world.bid(rid, BUYERS[:1], SELLERS)
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.reveal_all()
    world.ledger.accept(world.buyers[0], rid, 2, 4.0)
    (trade,) = world.ledger.round_view(rid).trades
    assert trade.seller == world.sellers[2].address and trade.energy == 4 * 10**6
    with refused("market: round already settled"):
        world.ledger.accept(world.buyers[0], rid, 1, 4.0)


def test_accept_refusals(world: World) -> None:
    rid = _revealed_round(world)
    with refused("market: accept needs a single-buyer round"):
        world.ledger.accept(world.buyers[0], rid, 0, 3.0)
    rid = world.open()
    # The sellers' replies in the first round still reserve their 10 kWh: they declare more.
    world.bid(rid, BUYERS[:1], tuple(replace(s, s_t=30) for s in SELLERS))
    with refused("market: caller is not the round's buyer"):
        world.ledger.accept(world.sellers[0], rid, 0, 3.0)
    with refused("market: bid window still open"):
        world.ledger.accept(world.buyers[0], rid, 0, 3.0)
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.reveal_all()
    with refused(r"market: energy above b_max \(12\)"):
        world.ledger.accept(world.buyers[0], rid, 0, 11.0)


def test_refund_and_withdraw_refusals(world: World) -> None:
    rid = _revealed_round(world)
    with refused("market: round not settled yet"):
        world.ledger.claim_refund(world.buyers[0], rid, 0)
    with refused("market: caller is not the request's buyer"):
        world.ledger.claim_refund(world.buyers[1], rid, 0)
    world.ledger.settle(world.rsu, rid, [(0, 0, 3 * 10**6)])
    world.ledger.claim_refund(world.buyers[0], rid, 0)
    with refused("market: already refunded"):
        world.ledger.claim_refund(world.buyers[0], rid, 0)
    world.ledger.withdraw(world.sellers[1])  # its deposit, back to credit at the reveal
    with refused("market: nothing to withdraw"):
        world.ledger.withdraw(world.sellers[1])
    world.ledger.withdraw(world.sellers[0])
    with refused("market: nothing to withdraw"):
        world.ledger.withdraw(world.sellers[0])


# -- issue 12: energy reserved across rounds (13) -----------------------------------------------


def test_spare_energy_is_reserved_across_open_rounds(world: World) -> None:
    # The attack: one seller replies "10 kWh spare" in three open rounds.
    seller, account = SELLERS[0], world.sellers[0]
    rounds = [world.open() for _ in range(3)]
    world.ledger.post_reply(account, rounds[0], seller)
    assert world.ledger.reserved_energy(account.address) == 10 * 10**6
    for rid in rounds[1:]:
        with refused("market: spare energy already reserved by the seller's open rounds"):
            world.ledger.post_reply(account, rid, seller)
    # Offering only 4 kWh in the first round (a higher s_r) leaves 6 kWh for the next one.
    other = world.sellers[1]
    world.ledger.post_reply(other, rounds[0], replace(seller, s_r=16))
    world.ledger.post_reply(other, rounds[1], seller)
    spares = [world.ledger.round_view(rid).replies[-1] for rid in rounds[:2]]
    assert [p.spare for p in spares] == [4 * 10**6, 6 * 10**6]
    assert spares[1].s_t - spares[1].s_r == 6 * 10**6 and spares[1].declared_s_r == 10 * 10**6
    assert world.ledger.reserved_energy(other.address) == 10 * 10**6


def test_settlement_checks_the_reserved_energy(world: World) -> None:
    first, second = world.open(), world.open()
    account = world.sellers[0]
    world.ledger.post_reply(account, first, replace(SELLERS[0], s_r=16))  # reserves 4 kWh
    request = world.ledger.post_request(world.buyers[0], second, BUYERS[0])
    reply = world.ledger.post_reply(account, second, SELLERS[0])  # declares 10, gets the other 6
    world.chain.advance_time(PARAMS.t_limit + 1)
    report = world.ledger.reveal_sealed(world.rsu, second)  # nothing sealed: the bidders reveal
    assert {s.reason for s in report.skipped} == {"no sealed value; the bidder must reveal"}
    world.ledger.reveal(world.buyers[0], request)
    world.ledger.reveal(account, reply)
    # 6 kWh spare at rho = 0.05 covers 5.71 kWh: the declaration's 9.52 kWh no longer fits.
    with refused(r"market: energy above the seller's spare energy \(13\)"):
        world.ledger.settle(world.rsu, second, [(0, 0, 6 * 10**6)])
    world.ledger.settle(world.rsu, second, [(0, 0, 5_700_000)])
    # Settled: its reservation is released; the first round's 4 kWh stay reserved until it ends.
    assert world.ledger.reserved_energy(account.address) == 4 * 10**6
    world.chain.advance_time(PARAMS.t_reveal + PARAMS.t_settle + 1)
    assert world.ledger.reserved_energy(account.address) == 0
    third = world.open()
    world.ledger.post_reply(account, third, SELLERS[0])
    assert world.ledger.round_view(third).replies[0].spare == 10 * 10**6


def test_one_seller_has_a_bounded_number_of_open_replies(world: World) -> None:
    account = world.sellers[0]
    # Each reply declares 1 kWh more than the last, so each reserves 1 kWh.
    for k in range(8):
        rid = world.open()
        world.ledger.post_reply(account, rid, replace(SELLERS[0], s_t=11 + k))
    rid = world.open()
    with refused("market: too many open replies for this seller"):
        world.ledger.post_reply(account, rid, replace(SELLERS[0], s_t=30))
    spent = replace(SELLERS[0], s_t=18)  # declares 8 kWh: all reserved by the open replies
    assert world.ledger.reply_deposit_for(rid, account.address, spent) == 0


# -- issue 12: the RSU reveals a round's sealed bids in one transaction -------------------------


def test_reveal_sealed_is_one_transaction_and_skips_bad_entries(world: World) -> None:
    rid = world.open()
    pk = world.ledger.rsu_pubkey(world.rsu.address)
    good = world.bid(rid)  # two requests and three replies, sealed
    # A reply whose sealed value is not the committed one, and a request sealed to another key.
    liar = Account.create()
    stranger = Account.create()
    for k, car in enumerate((liar, stranger)):
        world.ledger.register_vehicle(world.authority, car.address, f"XX {k}", 10**10)
        world.ledger.mint(world.authority, car.address, 100)
    salt = new_salt()
    c = units.to_fixed("c", 0.6, units.PRICE_SCALE)
    world.ledger.approve_escrow(liar, 10**21)
    world.ledger._do(
        liar,
        world.ledger.market,
        "post_reply",
        rid,
        *(5 * 10**17, 8 * 10**17, 20 * 10**6, 10 * 10**6, 50_000, 0, 0),
        commitment(world.ledger.market.address, rid, liar.address, c, salt),
        seal(pk, c + 1, salt),
    )
    world.ledger.post_request(stranger, rid, BUYERS[1], rsu_pubkey=public_key(Account.create()))
    world.chain.advance_time(PARAMS.t_limit + 1)
    block = _unchanged(world)
    report = world.ledger.reveal_sealed(world.rsu, rid)
    assert report.transactions == 1 and _unchanged(world) == block + 1
    assert sorted(report.revealed) == sorted(b.bidder for b in good)
    reasons = {s.bidder: s.reason for s in report.skipped}
    assert reasons[liar.address] == "value does not match the commitment"
    assert "cannot be opened" in reasons[stranger.address]
    view = world.ledger.round_view(rid)
    assert [q.value is not None for q in view.requests] == [True, True, False]
    assert [p.value is not None for p in view.replies] == [True, True, True, False]


def test_reveal_for_many_skips_and_refusals(world: World) -> None:
    rid = world.open()
    bids = world.bid(rid)
    entries = [(b.is_buyer, b.index, b.value, b.salt) for b in bids]
    with refused("market: bid window still open"):
        world.ledger._do(world.rsu, world.ledger.market, "reveal_for_many", rid, entries, gas=10**6)
    world.chain.advance_time(PARAMS.t_limit + 1)
    with refused("market: caller is not the round's RSU"):
        world.ledger._do(
            world.buyers[0], world.ledger.market, "reveal_for_many", rid, entries, gas=10**6
        )
    world.ledger.reveal(world.buyers[0], bids[0])
    bad = [
        (True, 0, bids[0].value, bids[0].salt),  # already revealed: skipped (3)
        (True, 1, bids[1].value + 1, bids[1].salt),  # does not match: skipped (4)
        (False, 9, 1, bids[2].salt),  # unknown: skipped (1)
        *entries[2:],  # the sellers: revealed
    ]
    receipt = world.ledger._do(
        world.rsu, world.ledger.market, "reveal_for_many", rid, bad, gas=2 * 10**6
    )
    skipped = world.ledger.market.events.RevealSkipped().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["index"], e["args"]["reason"]) for e in skipped] == [(0, 3), (1, 4), (9, 1)]
    view = world.ledger.round_view(rid)
    assert view.requests[1].value is None and all(p.value is not None for p in view.replies)
    world.chain.advance_time(PARAMS.t_reveal + 1)
    with refused("market: reveal window closed"):
        world.ledger._do(world.rsu, world.ledger.market, "reveal_for_many", rid, entries, gas=10**6)


# -- issue 12: a removed RSU's open rounds are void ----------------------------------------------


def test_removed_rsu_cannot_reveal_or_settle_and_bidders_recover_at_once(world: World) -> None:
    rid = _revealed_round(world)
    other = world.open()
    late = world.bid(other, BUYERS[:1], (replace(SELLERS[0], s_t=40),))  # the sellers' 2nd round
    world.chain.advance_time(PARAMS.t_limit + 1)
    r2, r3 = Account.create(), Account.create()
    world.ledger.register_rsu(world.authority, r2)
    world.ledger.register_rsu(world.authority, r3)
    assert not world.ledger.round_void(rid)
    # Two of three RSUs vote the round's RSU out.
    world.ledger.vote_rsu(r2, world.rsu.address, False)
    world.ledger.vote_rsu(r3, world.rsu.address, False)
    assert not world.ledger.is_rsu(world.rsu.address)
    assert world.ledger.round_void(rid) and world.ledger.round_void(other)
    with refused("market: the round's RSU was removed"):
        world.ledger.settle(world.rsu, rid, [(0, 0, 3 * 10**6)])
    with refused("market: the round's RSU was removed"):
        world.ledger.reveal_sealed(world.rsu, other)
    with refused("market: the round's RSU was removed"):
        world.ledger.reveal(world.buyers[0], late[0])
    # Re-admitted, it does not get its old rounds back: they belong to its earlier term.
    world.ledger.register_rsu(world.authority, world.rsu, gas_wei=0)
    with refused("market: the round's RSU was removed"):
        world.ledger.settle(world.rsu, rid, [(0, 0, 3 * 10**6)])
    # Everyone recovers at once (before the settlement window), deposits included.
    for k, buyer in enumerate(world.buyers):
        before = world.ledger.balance(buyer.address)
        world.ledger.claim_refund(buyer, rid, k)
        escrow = world.ledger.round_view(rid).requests[k].escrow
        assert world.ledger.balance(buyer.address) - before == escrow
    before = world.ledger.balance(world.buyers[0].address)
    world.ledger.claim_refund(world.buyers[0], other, 0)  # unrevealed, yet not forfeited
    escrow = world.ledger.round_view(other).requests[0].escrow
    assert world.ledger.balance(world.buyers[0].address) - before == escrow
    credit = world.ledger.credit(world.sellers[0].address)
    world.ledger.claim_deposit(world.sellers[1], other, 0)  # anyone may close it
    view = world.ledger.round_view(other)
    assert world.ledger.credit(world.sellers[0].address) == credit + view.replies[0].deposit
    assert world.ledger.burned() == 0
    # The void rounds released the sellers' reservations.
    assert world.ledger.reserved_energy(world.sellers[0].address) == 0


def test_open_rounds_of_a_live_rsu_are_not_void(world: World) -> None:
    rid = _revealed_round(world)
    with refused("market: round not settled yet"):
        world.ledger.claim_refund(world.buyers[0], rid, 0)
    with refused("market: deposit already returned or forfeited"):
        world.ledger.claim_deposit(world.sellers[0], rid, 0)  # revealed: back at the reveal
    other = Account.create()
    world.ledger.register_rsu(world.authority, other)
    world.ledger.revoke_rsu(world.authority, other.address)  # another RSU's removal
    assert not world.ledger.round_void(rid)
    world.ledger.settle(world.rsu, rid, [(0, 0, 3 * 10**6)])


# -- issue 12: a vote is for an outcome --------------------------------------------------------


def test_removal_votes_do_not_split_on_the_pubkey_bytes(world: World) -> None:
    r2, r3 = Account.create(), Account.create()
    world.ledger.register_rsu(world.authority, r2)
    world.ledger.register_rsu(world.authority, r3)
    world.ledger.vote_rsu(world.rsu, r3.address, False, b"")
    with refused("registry: already voted"):  # a different byte string is the same vote
        world.ledger.vote_rsu(world.rsu, r3.address, False, b"\x02")
    world.ledger.vote_rsu(r2, r3.address, False, b"\x01")
    assert not world.ledger.is_rsu(r3.address)


def test_add_votes_still_need_the_candidates_key(world: World) -> None:
    r2, newcomer = Account.create(), Account.create()
    world.ledger.register_rsu(world.authority, r2)
    world.ledger.vote_rsu(world.rsu, newcomer.address, True, public_key(newcomer))
    with refused("registry: public key must be 64 bytes"):
        world.ledger.vote_rsu(r2, newcomer.address, True, b"\x01")
    assert not world.ledger.is_rsu(newcomer.address)
    world.ledger.vote_rsu(r2, newcomer.address, True, public_key(newcomer))
    assert world.ledger.is_rsu(newcomer.address)
    assert world.ledger.rsu_pubkey(newcomer.address) == public_key(newcomer)


# -- issue 12: deposits against round filling and the free option -------------------------------


def test_seller_deposit_back_at_reveal_burned_when_withheld(world: World) -> None:
    rid = world.open()
    s0, s1 = world.sellers[:2]
    before = world.ledger.balance(s0.address)
    kept = world.ledger.post_reply(s0, rid, SELLERS[0])
    world.ledger.post_reply(s1, rid, SELLERS[1])
    view = world.ledger.round_view(rid)
    deposit = view.replies[0].deposit
    # (c_max - c_min) / 12 per kWh of the reserved 10 kWh, rounded up, plus the rounding margin.
    assert deposit == -(-(3 * 10**17) * 10 // 12) + 10 + 1
    assert world.ledger.balance(s0.address) == before - deposit
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.ledger.reveal(s0, kept)
    assert world.ledger.credit(s0.address) == deposit
    with refused("market: reveal window still open"):
        world.ledger.claim_deposit(world.buyers[0], rid, 1)
    world.chain.advance_time(PARAMS.t_reveal + 1)
    world.ledger.claim_deposit(world.buyers[0], rid, 1)  # s1 withheld: anyone can burn it
    assert world.ledger.burned() == view.replies[1].deposit
    assert world.ledger.credit(s1.address) == 0
    with refused("market: deposit already returned or forfeited"):
        world.ledger.claim_deposit(world.buyers[0], rid, 1)


def test_a_bid_needs_its_deposit(world: World) -> None:
    rid = world.open(replace(PARAMS, deposit=500.0))
    poor = Account.create()
    world.ledger.register_vehicle(world.authority, poor.address, "POOR 1", 10**10)
    with refused("token: insufficient balance"):  # a seller with no tokens cannot fill a round
        world.ledger.post_reply(poor, rid, SELLERS[0])
    with refused("token: insufficient balance"):
        world.ledger.post_reply(world.sellers[0], rid, SELLERS[0])  # 100 tokens < 500
    world.ledger.post_request(world.buyers[0], rid, BUYERS[0])
    (request,) = world.ledger.round_view(rid).requests
    assert request.deposit == 500 * 10**18 == request.escrow  # above v_max * b_max = 10
    escrow, deposit = world.ledger.request_lock(rid, 10**6, 6 * 10**17, 10**18)
    assert (escrow, deposit) == (500 * 10**18, 500 * 10**18)


def test_withholding_after_seeing_a_cost_costs_the_deposit(world: World) -> None:
    # The free option: a buyer leaves its value unsealed, sees the seller's cost, withholds.
    rid = world.open()
    buyer, seller = world.buyers[0], world.sellers[0]
    world.ledger.post_request(buyer, rid, BUYERS[0])
    world.ledger.post_reply(
        seller, rid, SELLERS[0], rsu_pubkey=world.ledger.rsu_pubkey(world.rsu.address)
    )
    world.chain.advance_time(PARAMS.t_limit + 1)
    world.ledger.reveal_sealed(world.rsu, rid)
    world.chain.advance_time(PARAMS.t_reveal + PARAMS.t_settle + 1)
    before = world.ledger.balance(buyer.address)
    world.ledger.claim_refund(buyer, rid, 0)
    request = world.ledger.round_view(rid).requests[0]
    lost = request.escrow - (world.ledger.balance(buyer.address) - before)
    # What it could have avoided losing on 10 kWh: T - v <= (v_max - v)/12 <= (1.0 - 0.6)/12.
    assert lost == request.deposit >= (4 * 10**17) * 10 // 12
