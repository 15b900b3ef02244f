"""The drivers' flow over HTTP (issue 13, items 1-4): the statuses and reasons a driver reads at
each step, the money (escrow, offers' totals, refunds, payouts) and each vehicle's history.

The routes run in process (FastAPI's test client) on the use cases of the service, wired on the
in-memory ledger of :mod:`tests.fake_ledger`, whose clock the test moves: no chain, no waiting.
The statuses themselves are pure functions of a round (:mod:`evtrade.service.views`), tested
for every transition first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from evtrade.model.defaults import DEFAULT_L1, DEFAULT_L2
from evtrade.service import views
from evtrade.service.api import create_app, get_rsu
from evtrade.service.clock import RoundClock
from evtrade.service.store import Store, TxEntry
from evtrade.service.trading import Trading
from evtrade.service.vehicles import Vehicles
from evtrade.service.views import Outcome, price_offers, reply_status, request_status, round_json
from evtrade.settlement import units
from evtrade.settlement.views import ReplyView, RequestView, RoundView, TradeView
from tests.fake_ledger import FakeLedger
from tests.test_service_usecases import in_process_service

PASSWORD = "correct horse"
P, E, TOKEN = units.PRICE_SCALE, units.ENERGY_SCALE, units.TOKEN_SCALE

# -- the statuses, pure ---------------------------------------------------------------------------


def request_view(value: float | None = 0.95, *, index: int = 0, buyer: str = "0xB") -> RequestView:
    return RequestView(
        index=index,
        buyer=buyer,
        b_min=4 * E,
        b_max=12 * E,
        v_min=int(0.6 * P),
        v_max=1 * P,
        w=3 * units.W_SCALE,
        lat=57_700_000,
        lon=11_970_000,
        commitment=b"",
        escrow=12 * TOKEN,
        sealed=b"",
        value=None if value is None else int(value * P),
        deposit=TOKEN // 10,
    )


def reply_view(
    value: float | None = 0.55, *, index: int = 0, seller: str = "0xS", spare: float = 15
) -> ReplyView:
    return ReplyView(
        index=index,
        seller=seller,
        c_min=P // 2,
        c_max=1 * P,
        s_t=int((5 + spare) * E),
        s_r=5 * E,
        rho=50_000,
        lat=57_700_000,
        lon=11_960_000,
        commitment=b"",
        sealed=b"",
        value=None if value is None else int(value * P),
        spare=int(spare * E),
    )


def round_view(
    requests: tuple[RequestView, ...] = (),
    replies: tuple[ReplyView, ...] = (),
    trades: tuple[TradeView, ...] = (),
) -> RoundView:
    return RoundView(
        round_id=0,
        rsu="0xR",
        deadline=100,
        reveal_deadline=200,
        settle_deadline=300,
        v_floor=P // 2,
        c_ceiling=P,
        l1=int(DEFAULT_L1 * units.LOSS_SCALE),
        l2=int(DEFAULT_L2 * units.LOSS_SCALE),
        max_distance_m=0,
        requests=requests,
        replies=replies,
        trades=trades,
        settled=bool(trades),
    )


def trade(seller: str, kwh: float, price: float) -> TradeView:
    energy, p = int(kwh * E), int(price * P)
    return TradeView("0xB", seller, energy, p, p, p, units.payment(p, energy), 7, "0x01")


def outcome(phase: str, offered: tuple[int, ...] = (), chosen: bool = False) -> Outcome:
    return Outcome(phase, frozenset({0} if offered else ()), frozenset(offered), chosen)


@pytest.mark.parametrize("phase", ["bidding", "closing", "unknown"])
def test_every_bid_is_pending_while_the_window_is_open_or_closing(phase: str) -> None:
    v = round_view((request_view(None),), (reply_view(None),))
    q_status = request_status(v, v.requests[0], outcome(phase))
    p_status = reply_status(v, v.replies[0], outcome(phase))
    assert q_status[0] == p_status[0] == "pending"
    if phase == "bidding":
        assert q_status[1] == "waiting for replies"
        assert p_status[1] == "waiting for the bid window to close"


def test_a_request_nobody_replied_to_fails_with_no_seller_replied() -> None:
    v = round_view((request_view(),))
    assert request_status(v, v.requests[0], outcome("reveal")) == ("failed", "no seller replied")


def test_unrevealed_bids_fail_not_revealed_in_time() -> None:
    v = round_view((request_view(None),), (reply_view(None),))
    out = outcome("reveal")
    assert request_status(v, v.requests[0], out) == ("failed", "not revealed in time")
    assert reply_status(v, v.replies[0], out) == ("failed", "not revealed in time")
    v = round_view((request_view(),), (reply_view(None),))
    assert request_status(v, v.requests[0], out) == ("failed", "no seller revealed in time")
    v = round_view((request_view(None),), (reply_view(),))
    assert reply_status(v, v.replies[0], out) == ("failed", "the buyer did not reveal in time")


def test_an_ask_above_the_bid_fails_with_that_reason() -> None:
    v = round_view((request_view(0.95),), (reply_view(0.9),))  # R* 0.89 > P* 0.84
    assert price_offers(v) == []
    out = outcome("reveal")
    assert reply_status(v, v.replies[0], out) == ("failed", "your ask is above the buyer's bid")
    assert request_status(v, v.requests[0], out) == (
        "failed",
        "every seller's ask is above your bid",
    )


def test_priced_then_completed_for_the_chosen_and_another_offer_for_the_others() -> None:
    bids = (request_view(),), (reply_view(0.55), reply_view(0.6, index=1, seller="0xT"))
    v = round_view(*bids)
    offers = price_offers(v)
    assert [o["seller_index"] for o in offers] == [0, 1]
    out = outcome("reveal", (0, 1))
    status, reason = request_status(v, v.requests[0], out)
    assert status == "priced" and "choose one" in reason
    assert all(reply_status(v, p, out)[0] == "priced" for p in v.replies)
    assert "accepted" not in {reply_status(v, p, out)[0] for p in v.replies}
    done = round_view(*bids, trades=(trade("0xT", 12, 0.7),))
    out = outcome("settled", (0, 1), chosen=True)
    assert request_status(done, done.requests[0], out) == (
        "completed",
        "you accepted an offer: bought 12.000 kWh for 8.4000 tokens",
    )
    assert reply_status(done, done.replies[0], out) == ("failed", "buyer chose another offer")
    assert reply_status(done, done.replies[1], out)[0] == "completed"
    # The RSU's own settlement (nobody chose): left out, not "another offer".
    out = outcome("settled", (0, 1))
    assert reply_status(done, done.replies[0], out) == (
        "failed",
        "the RSU's best allocation took nothing from this bid",
    )


def test_a_round_of_many_buyers_is_settled_by_the_rsu() -> None:
    v = round_view((request_view(), request_view(index=1, buyer="0xC")), (reply_view(),))
    status, reason = request_status(v, v.requests[0], outcome("reveal", (0,)))
    assert status == "priced" and "RSU settles" in reason


def test_no_spare_energy_and_out_of_reach() -> None:
    v = round_view((request_view(),), (reply_view(spare=0),))
    assert reply_status(v, v.replies[0], outcome("reveal")) == (
        "failed",
        "no spare energy left to sell",
    )
    v = round_view((request_view(),), (reply_view(),))
    assert reply_status(v, v.replies[0], outcome("reveal")) == ("failed", "too far from the buyer")


def test_expired_round_fails_everyone_and_refunds_the_escrow() -> None:
    v = round_view((request_view(), request_view(None, index=1, buyer="0xC")), (reply_view(),))
    assert request_status(v, v.requests[0], outcome("expired")) == (
        "failed",
        "the round expired without a settlement",
    )
    j = round_json(v, announced=90, phase="expired", offers=[], error=None)
    assert [q["refund"] for q in j["requests"]] == [12.0, 12.0 - 0.1]  # unrevealed: deposit burns
    running = round_json(v, announced=90, phase="reveal", offers=[], error=None)
    assert [q["refund"] for q in running["requests"]] == [None, None]


def test_accepting_one_offer_takes_the_sellers_spare_up_to_b_max() -> None:
    q = request_view()
    assert views.acceptance_units(q, reply_view(spare=15)) == 12 * E  # 15 / 1.05 > b_max
    assert views.acceptance_units(q, reply_view(spare=8.4)) == 8 * E  # 8.4 / 1.05 = 8
    assert views.acceptance_units(q, reply_view(spare=3)) is None  # below b_min 4
    (offer,) = price_offers(round_view((q,), (reply_view(spare=8.4),)))
    assert offer["take_kwh"] == 8.0
    assert offer["total"] == pytest.approx(8.0 * offer["T"], abs=1e-12)


# -- the flow over HTTP ---------------------------------------------------------------------------


@dataclass
class Flow:
    client: TestClient
    ledger: FakeLedger
    clock: RoundClock

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        r = self.client.post(path, json={"password": PASSWORD, **body})
        assert r.status_code == status, r.text
        return cast(dict[str, Any], r.json())

    def get(self, path: str) -> Any:
        r = self.client.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def register(self, name: str, plate: str) -> str:
        v = self.post(
            "/api/vehicles", {"name": name, "plate": plate, "lat": 57.7, "lon": 11.97}, 201
        )
        return str(v["address"])

    def round(self, round_id: int) -> dict[str, Any]:
        """The round as the pages read it (the list of rounds)."""
        (view,) = [r for r in self.get("/api/rounds") if r["round_id"] == round_id]
        return cast(dict[str, Any], view)

    def history(self, address: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.get(f"/api/vehicles/{address}/history"))


@dataclass
class _Rsu:
    """What the routes use of :class:`~evtrade.service.rsu.Rsu`, on the fake ledger."""

    vehicles: Vehicles
    trading: Trading
    clock: RoundClock


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    with in_process_service(tmp_path, faucet_tokens=1000) as svc:
        app = create_app(svc.vehicles.ctx.settings)
        app.dependency_overrides[get_rsu] = lambda: _Rsu(svc.vehicles, svc.trading, svc.clock)
        yield Flow(TestClient(app), svc.ledger, svc.clock)  # no lifespan: no chain, no clock thread


REQUEST = {
    "b_min": 4,
    "b_max": 12,
    "v": 0.95,
    "v_min": 0.6,
    "v_max": 1.0,
    "lat": 57.7,
    "lon": 11.97,
}


def reply(cost: float) -> dict[str, Any]:
    return {"c": cost, "c_min": 0.5, "c_max": 1.0, "s_t": 20, "s_r": 5, "rho": 0.05}


def test_the_seed_flow_says_status_reason_and_money_at_each_step(flow: Flow) -> None:
    buyer = flow.register("Ada", "AD 1")
    s1, s2, s3 = (flow.register(n, p) for n, p in (("Bo", "BO 1"), ("Cy", "CY 1"), ("Di", "DI 1")))
    assert [h["kind"] for h in flow.history(buyer)] == ["register"]
    assert flow.post(f"/api/vehicles/{buyer}/topup", {"tokens": 100})["balance"] == 100
    for s in (s1, s2, s3):
        flow.post(f"/api/vehicles/{s}/topup", {"tokens": 20})
    top_up = flow.history(buyer)[0]
    assert (top_up["kind"], top_up["tokens"], top_up["status"]) == ("top-up", 100, "confirmed")
    assert top_up["tx"].startswith("0x") and top_up["block"] > 0

    rid = flow.post(f"/api/vehicles/{buyer}/requests", REQUEST, 201)["round_id"]
    assert flow.get(f"/api/vehicles/{buyer}")["balance"] == 100 - 12  # v_max x b_max locked
    posted = flow.history(buyer)[0]
    assert (posted["kind"], posted["tokens"], posted["status"]) == ("request", -12, "confirmed")
    assert "12.0000 tokens locked in escrow" in posted["what"]
    flow.clock.refresh(rid)  # the index catches up with the bid (the clock does it in service)
    view = flow.round(rid)
    (q,) = view["requests"]
    assert (q["status"], q["reason"], q["escrow"], q["refund"]) == (
        "pending",
        "waiting for replies",
        12.0,
        None,
    )
    for s, cost in ((s1, 0.55), (s2, 0.6), (s3, 0.9)):
        flow.post(f"/api/rounds/{rid}/replies/{s}", {**reply(cost), "lat": 57.7, "lon": 11.96}, 201)
    flow.clock.refresh(rid)
    view = flow.round(rid)
    assert {(p["status"], p["reason"]) for p in view["replies"]} == {
        ("pending", "waiting for the bid window to close")
    }

    flow.ledger.chain.now = flow.ledger.round_view(rid).deadline + 1  # the window closes
    clock = flow.clock
    clock.tick()
    clock.tick()  # the RSU reveals the sealed bids
    view = flow.round(rid)
    assert view["phase"] == "reveal"
    (q,) = view["requests"]
    assert q["status"] == "priced" and "choose one" in q["reason"]
    assert [(p["status"], p["reason"]) for p in view["replies"]] == [
        ("priced", "your ask is below the buyer's bid: waiting for the buyer to choose"),
        ("priced", "your ask is below the buyer's bid: waiting for the buyer to choose"),
        ("failed", "your ask is above the buyer's bid"),
    ]
    offers = {o["seller_index"]: o for o in view["offers"]}
    assert sorted(offers) == [0, 1]
    chosen = offers[1]
    assert chosen["take_kwh"] == 12.0  # 15 kWh spare / 1.05 > b_max: the buyer gets b_max
    assert chosen["total"] == pytest.approx(12.0 * chosen["T"])

    view = flow.post(f"/api/rounds/{rid}/accept/{buyer}", {"seller_index": 1})  # kwh omitted
    (q,) = view["requests"]
    (t,) = view["trades"]
    assert t["kwh"] == 12.0 and t["payment"] == pytest.approx(chosen["total"])
    assert q["status"] == "completed" and "bought 12.000 kWh" in q["reason"]
    assert q["paid"] == pytest.approx(chosen["total"])
    assert q["refund"] == pytest.approx(12.0 - chosen["total"])
    assert [(p["status"], p["reason"]) for p in view["replies"]] == [
        ("failed", "buyer chose another offer"),
        (
            "completed",
            f"the buyer accepted your offer: sold 12.000 kWh for {t['payment']:.4f} tokens",
        ),
        ("failed", "your ask is above the buyer's bid"),
    ]
    accepted = flow.history(buyer)[0]
    assert (accepted["kind"], accepted["status"]) == ("accept", "confirmed")
    assert f"{chosen['total']:.4f} tokens" in accepted["what"]

    # Payouts say how much: the buyer's refund, the seller's payment (and its deposit back).
    got = flow.post(f"/api/vehicles/{buyer}/collect", {})
    assert got["refunded"] == pytest.approx(12.0 - chosen["total"]) and got["withdrawn"] == 0
    assert got["balance"] == pytest.approx(100 - chosen["total"])
    refund = flow.history(buyer)[0]
    assert (refund["kind"], refund["status"]) == ("refund", "confirmed")
    assert refund["tokens"] == pytest.approx(got["refunded"])
    again = flow.post(f"/api/vehicles/{buyer}/collect", {})
    assert again["refunded"] == again["withdrawn"] == 0  # nothing twice
    got = flow.post(f"/api/vehicles/{s2}/collect", {})
    assert got["withdrawn"] >= t["payment"] and got["refunded"] == 0
    assert got["balance"] == pytest.approx(20 + t["payment"])
    assert [h["kind"] for h in flow.history(s2)] == ["withdraw", "reply", "top-up", "register"]
    assert all(h["status"] == "confirmed" for h in flow.history(s2))


def test_a_refused_transaction_is_in_the_history_as_failed(flow: Flow) -> None:
    buyer = flow.register("Eve", "EV 1")
    seller = flow.register("Fay", "FA 1")
    flow.post(f"/api/vehicles/{buyer}/topup", {"tokens": 50})
    flow.post(f"/api/vehicles/{seller}/topup", {"tokens": 5})
    rid = flow.post(f"/api/vehicles/{buyer}/requests", REQUEST, 201)["round_id"]
    flow.post(
        f"/api/rounds/{rid}/replies/{seller}", {**reply(0.55), "lat": 57.7, "lon": 11.96}, 201
    )
    # Before the window closes the contract refuses the choice: a 409, recorded as failed.
    flow.post(f"/api/rounds/{rid}/accept/{buyer}", {"seller_index": 0, "kwh": 4}, 409)
    failed = flow.history(buyer)[0]
    assert (failed["kind"], failed["status"], failed["tx"]) == ("accept", "failed", None)
    assert "bid window still open" in failed["detail"]
    r = flow.client.get(f"/api/vehicles/0x{'12' * 20}/history")
    assert r.status_code == 404


def test_a_round_nobody_replied_to_says_so_and_refunds_after_it_expires(flow: Flow) -> None:
    buyer = flow.register("Gus", "GU 1")
    flow.post(f"/api/vehicles/{buyer}/topup", {"tokens": 50})
    rid = flow.post(f"/api/vehicles/{buyer}/requests", REQUEST, 201)["round_id"]
    clock = flow.clock
    chain_round = flow.ledger.round_view(rid)
    flow.ledger.chain.now = chain_round.deadline + 1
    clock.tick()
    clock.tick()
    (q,) = flow.round(rid)["requests"]
    assert (q["status"], q["reason"]) == ("failed", "no seller replied")
    flow.ledger.chain.now = chain_round.settle_deadline + 1
    clock.tick()
    view = flow.round(rid)
    assert view["phase"] == "expired"
    assert view["requests"][0]["refund"] == 12.0
    got = flow.post(f"/api/vehicles/{buyer}/collect", {})
    assert got["refunded"] == 12.0 and got["balance"] == 50


def test_history_survives_a_restart_of_the_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.add_tx(TxEntry("0xAb", "top-up", "top-up of 5 tokens", 5.0))
    store.close()
    store = Store(tmp_path / "s.sqlite")
    (entry,) = store.history("0xab")
    assert (entry["kind"], entry["tokens"], entry["status"]) == ("top-up", 5.0, "pending")
    store.close()
