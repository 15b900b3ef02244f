"""The RSU dashboard, the round page and the API's docs (issue 13 items 6, 7 and 10).

One round is run on a real service (``evtrade serve`` on the embedded chain): a buyer and a seller
register, top up and bid, the RSU reveals the sealed bids after the window, the buyer accepts the
offer. On the way the round's detail must keep the bids sealed until the window closes and show
them after, with the audit's verdict once settled, and the recent blocks must say what each
transaction did. Then chromium (Playwright, Debian's binary) opens the dashboard, the round page
and /docs with every request off this machine aborted: the chart, the map (its grid instead of
OpenStreetMap's tiles) and Swagger UI must render from the package alone. Screenshots go to
test-artifacts/dashboard/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from evtrade.service import assets
from evtrade.service.explorer import describe
from tests.service_process import (
    PASSWORD,
    Service,
    register,
    reply_body,
    request_body,
    wait_until,
)
from tests.test_service_browser import CHROMIUM, FLAGS, ROOT, service

ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
#: Sealed values no other number of the round's JSON is equal to.
VALUE, COST = 0.8765, 0.5432
#: What `make vendor` puts into static/vendor/ and the pages load.
VENDORED = (
    "uPlot.iife.min.js",
    "uPlot.min.css",
    "leaflet.js",
    "leaflet.css",
    "swagger-ui-bundle.js",
    "swagger-ui.css",
)

__all__ = ["service"]  # the browser tests' running service, shared (module scope)


@dataclass
class Flow:
    """What the round's run saw at each step."""

    buyer: str
    seller: str
    round_id: int
    sealed: dict[str, Any]
    sealed_text: str
    revealed: dict[str, Any]
    settled: dict[str, Any]
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)


def _collect(client: httpx.Client, seen: dict[str, dict[str, Any]]) -> None:
    """Keep the decoded transactions of the recent blocks (older ones leave the list)."""
    for block in client.get("/api/chain").json()["blocks"]:
        for tx in block["decoded"]:
            seen[tx["hash"]] = tx


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


@pytest.fixture(scope="module")
def flow(client: httpx.Client) -> Flow:
    seen: dict[str, dict[str, Any]] = {}
    rsu = client.get("/api/chain").json()["rsu"]
    # Near the RSU, a few hundred metres apart (the map frames the three).
    here = {"lat": rsu["lat"] + 0.004, "lon": rsu["lon"] + 0.006}
    there = {"lat": rsu["lat"] - 0.003, "lon": rsu["lon"] - 0.005}
    buyer = register(client, "Dana", "DA 1", **here)
    seller = register(client, "Eli", "EL 2", **there)
    _collect(client, seen)
    for car in (buyer, seller):
        r = client.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 50})
        assert r.status_code == 200, r.text
    _collect(client, seen)
    r = client.post(f"/api/vehicles/{buyer}/requests", json=request_body(v=VALUE, **here))
    assert r.status_code == 201, r.text
    rid = int(r.json()["round_id"])
    _collect(client, seen)
    r = client.post(f"/api/rounds/{rid}/replies/{seller}", json=reply_body(c=COST, **there))
    assert r.status_code == 201, r.text
    _collect(client, seen)
    # The index catches up with the reply within a poll; the bid window is still open.
    wait_until(client, rid, lambda v: len(v["replies"]) == 1, "the reply indexed")
    sealed_response = client.get(f"/api/rounds/{rid}")
    assert sealed_response.status_code == 200
    revealed = wait_until(
        client,
        rid,
        lambda v: v["bids"] is not None and all(b["value"] is not None for b in v["bids"]),
        "its bids revealed",
    )
    _collect(client, seen)
    r = client.post(
        f"/api/rounds/{rid}/accept/{buyer}",
        json={"password": PASSWORD, "seller_index": 0, "kwh": 4},
    )
    assert r.status_code == 200, r.text
    settled = wait_until(client, rid, lambda v: v["audit"] is not None, "its audit")
    _collect(client, seen)
    return Flow(
        buyer=buyer,
        seller=seller,
        round_id=rid,
        sealed=sealed_response.json(),
        sealed_text=sealed_response.text,
        revealed=revealed,
        settled=settled,
        transactions=seen,
    )


# -- HTTP -----------------------------------------------------------------------------------------


def test_bids_stay_sealed_until_the_window_closes(flow: Flow) -> None:
    assert flow.sealed["phase"] in ("bidding", "closing")
    assert flow.sealed["bids"] is None and flow.sealed["audit"] is None
    assert str(VALUE) not in flow.sealed_text and str(COST) not in flow.sealed_text
    assert [len(flow.sealed["requests"]), len(flow.sealed["replies"])] == [1, 1]


def test_bids_are_shown_after_the_window(flow: Flow) -> None:
    assert flow.revealed["phase"] not in ("bidding", "closing")
    bids = {(b["side"], b["address"]): b["value"] for b in flow.revealed["bids"]}
    assert bids == {
        ("request", flow.buyer): pytest.approx(VALUE),
        ("reply", flow.seller): pytest.approx(COST),
    }
    assert flow.revealed["audit"] is None  # not settled yet
    (offer,) = flow.revealed["offers"]
    assert offer["R"] <= offer["T"] <= offer["P"]


def test_a_settled_round_carries_its_trades_and_the_audits_verdict(flow: Flow) -> None:
    s = flow.settled
    assert s["phase"] == "settled"
    (trade,) = s["trades"]
    assert (trade["buyer"], trade["seller"]) == (flow.buyer, flow.seller)
    assert trade["kwh"] == pytest.approx(4)
    # The buyer accepted one offer at 4 kWh: prices are Theorem 1's; the volume is its choice,
    # which the audit reports against the P1 optimum (and nothing else).
    assert s["settled_by"] == "buyer"
    audit = s["audit"]
    assert {f["kind"] for f in audit["findings"]} <= {"volume"}
    assert all("P1 optimum" in f["message"] for f in audit["findings"])
    assert audit["max_price_error"] < 1e-12
    assert (audit["trades"], audit["revealed_buyers"], audit["revealed_sellers"]) == (1, 1, 1)
    assert audit["settled"] is True and audit["round_id"] == flow.round_id
    assert audit["ok"] is (audit["findings"] == [])


def test_recent_blocks_say_what_each_transaction_did(flow: Flow) -> None:
    txs = list(flow.transactions.values())
    by_what: dict[str, list[dict[str, Any]]] = {}
    for tx in txs:
        by_what.setdefault(tx["what"], []).append(tx)
    assert {"register", "mint", "request", "reply", "reveal", "accept"} <= by_what.keys()
    assert {t["who"] for t in by_what["register"]} >= {flow.buyer, flow.seller}
    assert {t["who"] for t in by_what["mint"]} >= {flow.buyer, flow.seller}
    assert all(t["tokens"] == pytest.approx(50) for t in by_what["mint"])
    (request,) = by_what["request"]
    # The escrow locks v_max * b_max (request_body: 1.0 tokens/kWh x 10 kWh).
    assert request["who"] == flow.buyer and request["tokens"] == pytest.approx(10)
    assert request["kwh"] == pytest.approx(10) and request["round_id"] == flow.round_id
    (reply,) = by_what["reply"]
    assert reply["who"] == flow.seller and reply["round_id"] == flow.round_id
    (accept,) = by_what["accept"]
    assert accept["who"] == flow.buyer and accept["sender"] == flow.buyer
    assert accept["kwh"] == pytest.approx(4)
    assert accept["tokens"] == pytest.approx(flow.settled["trades"][0]["payment"])
    assert all(t["status"] == "confirmed" for t in txs)
    assert all(t["timestamp"] > 0 and t["block"] > 0 for t in txs)


def test_price_history_has_each_trade_with_its_time(client: httpx.Client, flow: Flow) -> None:
    points = [p for p in client.get("/api/prices").json() if p["round_id"] == flow.round_id]
    (trade,) = flow.settled["trades"]
    assert [(p["block"], p["price"], p["kwh"]) for p in points] == [
        (trade["block"], trade["price"], trade["kwh"])
    ]
    blocks = {b["number"]: b["timestamp"] for b in client.get("/api/chain").json()["blocks"]}
    if trade["block"] in blocks:
        assert points[0]["time"] == blocks[trade["block"]]
    assert points[0]["time"] is not None


def test_an_unknown_round_is_a_404(client: httpx.Client) -> None:
    r = client.get("/api/rounds/9999")
    assert r.status_code == 404 and "no round 9999" in r.json()["detail"]


def test_favicon_and_the_vendored_libraries_are_served(client: httpx.Client) -> None:
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in r.content
    for page in ("/", "/rsu", "/rounds/0"):
        assert '<link rel="icon" href="/favicon.ico"' in client.get(page).text
    missing = [name for name in VENDORED if not assets.vendored(name)]
    assert missing == [], f"{missing} not vendored: run `make vendor`"
    for name in VENDORED:
        assert client.get(f"/static/vendor/{name}").status_code == 200


def test_docs_reference_only_local_assets(client: httpx.Client) -> None:
    html = client.get("/docs").text
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "/static/vendor/swagger-ui-bundle.js" in urls
    assert "http" not in html.replace("http-equiv", "")
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_docs_say_how_to_get_swagger_ui_when_it_is_not_vendored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(assets, "vendored", lambda name: False)
    html = bytes(assets.docs_page("/openapi.json", "evtrade").body).decode()
    assert "make vendor" in html and 'href="/openapi.json"' in html
    assert "<script" not in html


def test_every_field_of_the_api_is_described(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    missing = [
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert missing == []


def test_a_buyer_settling_its_own_round_is_an_accept() -> None:
    settled: list[tuple[str, dict[str, Any]]] = [
        ("TradeSettled", {"round_id": 3, "buyer": "0xB", "seller": "0xS"}),
        ("RoundSettled", {"round_id": 3, "trades": 1, "energy": 4 * 10**6, "payment": 3 * 10**18}),
    ]
    by_buyer = describe("0xB", "0xMarket", True, settled)
    by_rsu = describe("0xR", "0xMarket", True, settled)
    assert (by_buyer["what"], by_buyer["who"]) == ("accept", "0xB")
    assert (by_rsu["what"], by_rsu["who"]) == ("settle", "0xR")
    assert by_rsu["kwh"] == 4 and by_rsu["tokens"] == 3 and by_rsu["round_id"] == 3
    assert describe("0xR", "0xMarket", False, [])["what"] == "failed"
    assert describe("0xF", "0xV", True, [])["what"] == "gas money"
    assert describe("0xA", None, True, [])["what"] == "deploy"


# -- the browser, network cut ---------------------------------------------------------------------


def test_dashboard_round_page_and_docs_render_offline(service: Service, flow: Flow) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    aborted: list[str] = []
    errors: list[str] = []

    def local_only(route: Any) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1100, "height": 1300})
        context.route("**/*", local_only)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(60_000)
        expect = sync_api.expect
        expect.set_options(timeout=60_000)

        page.goto(service.url + "/rsu")
        expect(page.locator("#live-text")).to_have_text("live")
        # The chart: uPlot's canvas, its legend naming the series in tokens/kWh.
        expect(page.locator("#prices .uplot canvas").first).to_be_visible()
        expect(page.locator("#prices .u-legend")).to_contain_text("price T")
        expect(page.locator("#prices-note")).to_contain_text("1 trade")
        # The map: Leaflet with scale and legend; no tile loads, so the grid and a note.
        expect(page.locator("#map-note")).to_contain_text("could not be loaded")
        expect(page.locator("#map .leaflet-control-scale")).to_be_visible()
        expect(page.locator("#map .legend")).to_contain_text("seller (reply)")
        markers = page.locator("#map path.leaflet-interactive")
        expect(markers).to_have_count(3)  # the RSU, the buyer, the seller
        expect(page.locator("#blocks")).to_contain_text("accept")
        page.screenshot(path=str(ARTIFACTS / "rsu-dashboard-offline.png"), full_page=True)
        assert any("openstreetmap" in u for u in aborted), aborted

        page.click(f"#rounds a[href='/rounds/{flow.round_id}']")
        expect(page.locator("h1")).to_have_text(f"Round {flow.round_id}")
        expect(page.locator("#verdict")).to_contain_text("Passed: every price is Theorem 1's")
        expect(page.locator("#verdict")).to_contain_text("accepted one offer")
        expect(page.locator("#round-bids")).to_contain_text(f"{VALUE:.4f}")
        expect(page.locator("#round-bids")).to_contain_text(f"{COST:.4f}")
        expect(page.locator("#round-trades")).to_contain_text("4.000")
        page.screenshot(path=str(ARTIFACTS / "round.png"), full_page=True)

        page.goto(service.url + "/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        assert page.locator(".opblock").count() >= 10
        expect(page.locator(".information-container")).to_contain_text("evtrade RSU service")
        page.screenshot(path=str(ARTIFACTS / "docs-offline.png"))

        # A development install without `make vendor`: the dashboard says so and shows tables.
        bare = context.new_page()
        bare.on("pageerror", lambda exc: errors.append(str(exc)))
        bare.route("**/static/vendor/**", lambda route: route.fulfill(status=404, body=""))
        bare.goto(service.url + "/rsu")
        expect(bare.locator("#prices-note")).to_contain_text("make vendor")
        expect(bare.locator("#prices table")).to_contain_text(f"Round {flow.round_id}")
        expect(bare.locator("#map-note")).to_contain_text("make vendor")
        expect(bare.locator("#map table")).to_contain_text("RSU")
        bare.screenshot(path=str(ARTIFACTS / "rsu-dashboard-no-vendor.png"), full_page=True)
        browser.close()
    assert errors == []
