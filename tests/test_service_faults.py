"""Faults: a round that cannot be cleared stalls nothing else, a bid admitted in time reaches the
chain, and a service killed (SIGKILL) during the reveal sequence or during settlement loses and
doubles nothing when it starts again.

The kill points are deterministic: the service kills itself at a named point
(``EVTRADE_TEST_FAULT``, :mod:`evtrade.service.faults`). Every wait polls with a generous timeout,
for a busy two-core machine; nothing asserts on elapsed time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.errors import ServiceError
from evtrade.model import Buyer, Seller
from evtrade.service import faults
from evtrade.service.rsu import Rsu, build_rsu
from evtrade.service.settings import Settings
from evtrade.settlement.views import RoundParams
from tests.service_process import (
    PASSWORD,
    Service,
    register,
    reply_body,
    request_body,
    wait_for,
)

# -- one bad round stalls nothing (in process: the RSU's clock is driven by hand) ----------------


@contextmanager
def rsu_at(data_dir: Path, **settings: Any) -> Iterator[Rsu]:
    values: dict[str, Any] = {"data_dir": data_dir, "poll_seconds": 30, **settings}
    rsu = build_rsu(Settings(**values))
    try:
        yield rsu
    finally:
        rsu.close()


def vehicle(rsu: Rsu, plate: str, tokens: float = 50) -> LocalAccount:
    """A vehicle that keeps its own key, certified and funded on the chain directly."""
    account: LocalAccount = Account.create()
    expiry = rsu.chain.timestamp() + 24 * 3600
    rsu.ledger.register_vehicle(rsu.operators.authority, account.address, plate, expiry)
    rsu.ledger.mint(rsu.operators.authority, account.address, tokens)
    return account


def bid_pair(rsu: Rsu, round_id: int, buyer: LocalAccount, seller: LocalAccount) -> None:
    key = rsu.ledger.rsu_pubkey(rsu.operators.rsu.address)
    rsu.ledger.post_request(
        buyer,
        round_id,
        Buyer(buyer.address, v=0.9, v_min=0.6, v_max=1.0, b_min=1, b_max=5, w=3, lat=57.7, lon=12),
        rsu_pubkey=key,
    )
    rsu.ledger.post_reply(
        seller,
        round_id,
        Seller(seller.address, 0.55, 0.5, 0.8, s_t=20, s_r=10, rho=0.05, lat=57.7, lon=12),
        rsu_pubkey=key,
    )


def pass_chain_time(rsu: Rsu, moment: float) -> None:
    """Move the embedded chain's clock past ``moment``: windows are long, so that no step of a
    test races them on a busy machine, and the test skips them instead of sleeping."""
    gap = int(moment - rsu.next_block_time()) + 1
    if gap > 0:
        rsu.chain.advance_time(gap)


def tick_until(rsu: Rsu, round_id: int, phase: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        rsu.tick()
        view = rsu.store.round(round_id)
        if view is not None and view["phase"] == phase:
            return view
        time.sleep(0.2)
    raise AssertionError(f"round {round_id} never reached {phase}: {view}")


def test_a_round_that_cannot_be_cleared_stalls_no_other_round_nor_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    windows = {"t_limit": 600, "bid_grace": 1, "t_reveal": 600}
    with rsu_at(tmp_path, **windows) as rsu:
        b0, s0, b1, s1 = (vehicle(rsu, f"F {k}") for k in range(4))
        good = rsu.open_round()
        bid_pair(rsu, good, b0, s0)
        # A round the model refuses to clear (l1 = 0: eq. (16) needs l1 > 0), opened on chain by
        # this RSU with another tool; it is newer, so the clock meets it first.
        bad = rsu.ledger.open_round(
            rsu.operators.rsu,
            RoundParams(v_floor=0.5, c_ceiling=1.0, t_limit=600, t_reveal=600, l1=0.0),
        )
        assert bad > good
        bid_pair(rsu, bad, b1, s1)
        rounds = [rsu.ledger.round_view(r) for r in (good, bad)]
        pass_chain_time(rsu, max(r.deadline for r in rounds))  # the RSU reveals both
        for r in (good, bad):
            tick_until_revealed(rsu, r)
        pass_chain_time(rsu, max(r.reveal_deadline for r in rounds) + 1)  # and settles

        view = tick_until(rsu, good, "settled")  # the good round settles all the same
        assert len(view["trades"]) == 1 and view["error"] is None
        failed = wait_until_failed(rsu, bad)
        error = failed["error"]
        assert "'l1'" in error["message"] and "MarketError" in error["message"], error
        assert error["since"] <= time.time() and error["attempts"] >= 1
        assert error["retry_at"] > error["since"]  # back-off, not a hot loop
        logged = [
            r
            for r in caplog.records
            if r.name == "evtrade.service" and f"round {bad}:" in r.getMessage()
        ]
        assert logged and logged[0].levelname == "ERROR" and logged[0].exc_info  # the traceback

        # An immediate tick does not retry it (poll_seconds = 30: the next try is >= 60 s away).
        attempts = rsu.round_failures()[bad]["attempts"]
        rsu.tick()
        rsu.tick()
        assert rsu.round_failures()[bad]["attempts"] == attempts
        # Once the back-off has passed, it is tried again (and fails again).
        rsu.clock.failures[bad] = dataclasses.replace(rsu.clock.failures[bad], retry_at=0.0)
        rsu.tick()
        assert rsu.round_failures()[bad]["attempts"] == attempts + 1
        assert rsu.round_failures()[bad]["since"] == error["since"]

    # Start-up rebuilds the index from the chain: the bad round is recorded, not fatal.
    with rsu_at(tmp_path, **windows) as again:
        assert again.store.round(good)["trades"] == view["trades"]  # type: ignore[index]
        bad_view = again.store.round(bad)
        assert bad_view is not None and bad_view["error"] is not None
        assert "'l1'" in bad_view["error"]["message"]
        assert bad in again.round_failures()


def test_a_round_whose_windows_passed_while_the_rsu_was_away_expires_without_error(
    tmp_path: Path,
) -> None:
    # The RSU's clock does not run (no ticks) through the reveal and settlement windows, as if
    # the service were down; afterwards it must neither reveal nor settle (the contract would
    # refuse) but mark the round expired, and show no error.
    with rsu_at(tmp_path, t_limit=600, bid_grace=0, t_reveal=600, t_settle=600) as rsu:
        buyer, seller = vehicle(rsu, "X 1"), vehicle(rsu, "X 2")
        round_id = rsu.open_round()
        bid_pair(rsu, round_id, buyer, seller)
        pass_chain_time(rsu, rsu.ledger.round_view(round_id).settle_deadline)
        head = rsu.chain.w3.eth.block_number
        view = tick_until(rsu, round_id, "expired")
        assert view["error"] is None and rsu.round_failures() == {}
        assert not any(b["revealed"] for b in view["requests"] + view["replies"])
        assert rsu.chain.w3.eth.block_number == head  # nothing sent


def tick_until_revealed(rsu: Rsu, round_id: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rsu.tick()
        view = rsu.ledger.round_view(round_id)
        if all(q.value is not None for q in view.requests) and all(
            p.value is not None for p in view.replies
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"round {round_id}: the RSU never revealed every bid")


def wait_until_failed(rsu: Rsu, round_id: int, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rsu.tick()
        view = rsu.store.round(round_id)
        if view is not None and view.get("error"):
            return view
        time.sleep(0.2)
    raise AssertionError(f"round {round_id} never recorded an error: {rsu.store.round(round_id)}")


# -- every bid sent inside the announced window is admitted, even when it reaches the chain late --


def test_a_bid_received_inside_the_window_is_admitted_after_the_deadline(tmp_path: Path) -> None:
    with rsu_at(tmp_path, t_limit=2, bid_grace=60, t_reveal=2, faucet_tokens=100) as rsu:
        seller = rsu.register_vehicle("S", "S 1", PASSWORD, 57.7, 11.96)
        late = rsu.register_vehicle("L", "L 1", PASSWORD, 57.7, 11.96)
        for car in (seller, late):
            rsu.ledger.mint(rsu.operators.authority, car, 20)
        round_id = rsu.open_round()
        announced = rsu.store.round(round_id)["deadline"]  # type: ignore[index]
        chain_deadline = rsu.store.round(round_id)["chain_deadline"]  # type: ignore[index]
        assert chain_deadline >= announced + 60
        while time.time() <= announced + 2:  # the announced window is over...
            time.sleep(0.2)
        reply = Seller(seller, 0.55, 0.5, 0.8, s_t=20, s_r=10, rho=0.05, lat=57.7, lon=12)
        # ...but this bid reached the service in time, and waited its turn: it is admitted.
        out = rsu.post_reply(seller, PASSWORD, round_id, reply, received=announced - 0.5)
        assert out["round_id"] == round_id
        assert [p.seller for p in rsu.ledger.round_view(round_id).replies] == [seller]
        # One that reached the service after the announced deadline is refused, chain untouched.
        head = rsu.chain.w3.eth.block_number
        with pytest.raises(ServiceError, match="bid window closed") as info:
            rsu.post_reply(late, PASSWORD, round_id, reply, received=announced + 1.5)
        assert info.value.status == 409
        assert rsu.chain.w3.eth.block_number == head
        assert len(rsu.ledger.round_view(round_id).replies) == 1


# -- SIGKILL during the reveal sequence and during settlement ------------------------------------


def test_fault_specs_are_checked() -> None:
    assert faults.parse("mined:reveal:1") == ("mined", "reveal", 1)
    for bad in ("mined:reveal", "later:settle:1", "sent::1", "sent:settle:0", "sent:settle:x"):
        with pytest.raises(ValueError):
            faults.parse(bad)


def money_and_energy(client: Any, cars: list[str]) -> tuple[float, float, float, float]:
    """(balances, credit, energy bought, energy sold) summed over ``cars``, from the chain."""
    infos = [client.get(f"/api/vehicles/{c}").json() for c in cars]
    return (
        sum(i["balance"] for i in infos),
        sum(i["credit"] for i in infos),
        sum(i["energy_bought"] for i in infos),
        sum(i["energy_sold"] for i in infos),
    )


# "mined" runs by default: SIGKILL with the reveal (then the settlement) on chain but unread, and
# the restarted service neither loses nor doubles. "sent" (the transaction dies unmined and is
# sent again) is slow, as is test_service_restart's plain kill in the bid window (`make test-slow`).
@pytest.mark.parametrize("when", [pytest.param("sent", marks=pytest.mark.slow), "mined"])
def test_sigkill_during_reveal_and_during_settlement_loses_and_doubles_nothing(
    tmp_path: Path, when: str
) -> None:
    """The first life dies in the reveal sequence, the second in the settlement: right after
    sending the RSU's first reveal (settlement) transaction, which dies unmined with the
    in-process chain ("sent"), or right after it is mined, before the service reads the outcome
    ("mined"; the reveal is batched, so with more bids than a batch the others are still
    sealed). Windows are generous: the test's bids go one after another on a busy machine."""
    service = Service(
        tmp_path / "svc", t_limit=30, bid_grace=5, t_reveal=10, test_fault=f"{when}:reveal:1"
    )
    service.start()
    tokens = 40.0
    try:
        with service.client() as client:
            buyers = [register(client, f"B{k}", f"KB {k}") for k in range(2)]
            sellers = [register(client, f"S{k}", f"KS {k}", lon=11.96) for k in range(2)]
            cars = buyers + sellers
            for car in cars:
                r = client.post(
                    f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": tokens}
                )
                assert r.status_code == 200, r.text
            minted = tokens * len(cars)
            r = client.post(f"/api/vehicles/{buyers[0]}/requests", json=request_body())
            assert r.status_code == 201, r.text
            rid = r.json()["round_id"]
            r = client.post(
                f"/api/vehicles/{buyers[1]}/requests",
                json=request_body(round_id=rid, v=0.9, b_min=1, b_max=6),
            )
            assert r.status_code == 201, r.text
            for s, cost in zip(sellers, (0.55, 0.58), strict=True):
                r = client.post(f"/api/rounds/{rid}/replies/{s}", json=reply_body(c=cost))
                assert r.status_code == 201, r.text
        assert service.wait_exit() == -9  # killed itself during the reveal sequence

        service.env["EVTRADE_TEST_FAULT"] = f"{when}:settle:1"
        service.start()
        assert service.wait_exit() == -9  # killed itself during settlement

        del service.env["EVTRADE_TEST_FAULT"]
        service.start()
        with service.client() as client:
            view = wait_for(client, rid, "settled")
            assert view["error"] is None
            assert sorted(q["address"] for q in view["requests"]) == sorted(buyers)
            assert sorted(p["address"] for p in view["replies"]) == sorted(sellers)
            assert all(b["revealed"] for b in view["requests"] + view["replies"])
            trades = view["trades"]
            assert len(trades) == len([o for o in view["offers"] if o["kwh"] > 1e-6]) > 0
            assert len({t["block"] for t in trades}) == 1  # settled once, in one transaction
        service.kill()

        service.start()  # and once more: the same history, nothing settled twice
        with service.client() as client:
            view = wait_for(client, rid, "settled")
            assert view["trades"] == trades
            for car in cars:  # everyone takes back escrow and deposits, sellers their pay
                r = client.post(f"/api/vehicles/{car}/collect", json={"password": PASSWORD})
                assert r.status_code == 200, r.text
            balances, credit, bought, sold = money_and_energy(client, cars)
            assert balances + credit == pytest.approx(minted, abs=1e-9)  # minted = held
            assert credit == 0
            traded = sum(t["kwh"] for t in trades)
            assert bought == pytest.approx(traded, abs=1e-6)
            assert sold == pytest.approx(traded, abs=1e-6)
            paid = sum(t["payment"] for t in trades)
            for s in sellers:
                earned = sum(t["payment"] for t in trades if t["seller"] == s)
                info = client.get(f"/api/vehicles/{s}").json()
                assert info["balance"] == pytest.approx(tokens + earned, abs=1e-9)
            spent = sum(client.get(f"/api/vehicles/{b}").json()["balance"] for b in buyers)
            assert spent == pytest.approx(tokens * len(buyers) - paid, abs=1e-9)
    finally:
        service.stop()
