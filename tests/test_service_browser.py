"""The web app in a real browser: Playwright drives Debian's chromium (no browser download).

A buyer and two sellers register, the buyer tops up and posts a request, the sellers reply, the
buyer accepts an offer, everyone collects; the balances are then read from the chain itself.
Screenshots of every page are kept in test-artifacts/browser/. At each step axe-core scans the
page as it then is (offers to accept, a reply sealed, a settled round): no serious or critical
violation (tests/test_webapp_a11y.py scans every page in its first state).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from evtrade.ledger.chain import EmbeddedChain
from evtrade.ledger.client import Deployment, Ledger
from tests.service_process import PASSWORD, Service, running_service
from tests.test_webapp_a11y import AXE, accessibility_problems

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SELLER_TOP_UP = 20
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian chromium is not installed: `make test` installs it")
    if not AXE.exists():
        raise RuntimeError(f"axe-core is not installed at {AXE}: run `make axe`")
    with running_service(tmp_path_factory.mktemp("web"), t_limit=30, t_reveal=30) as svc:
        yield svc


# Slow (`make test-slow`): the same walk runs by default by role and label, with axe-core in each
# of its states (test_webapp_driver_browser, issue 13); every page's axe scan and the 390 px width
# in test_webapp_a11y, the demo's settled round in test_webapp_demo; the dashboard in
# test_webapp_dashboard.
@pytest.mark.slow
def test_whole_flow_by_clicking(service: Service) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.set_default_timeout(90_000)
        expect = sync_api.expect
        expect.set_options(timeout=90_000)
        problems: list[str] = []

        def scan(where: str, on: object = None) -> None:
            found = accessibility_problems(on or page)
            if found:
                problems.append(f"{where}:\n{found}")

        def register(name: str, plate: str, lon: str) -> str:
            page.goto(service.url + "/")
            page.fill("#register input[name=name]", name)
            page.fill("#register input[name=plate]", plate)
            page.fill("#register input[name=password]", PASSWORD)
            page.fill("#register input[name=lon]", lon)
            page.click("#register button")
            expect(page.locator("#register-result")).to_contain_text(name)
            return str(page.locator(".new-address").inner_text().strip())

        buyer = register("Alice", "AL 1", "11.9746")
        page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
        # The public list shows accounts and plate hashes, never names or plates.
        expect(page.locator("#vehicles")).to_contain_text(buyer)
        assert "Alice" not in page.locator("#vehicles").inner_text()
        sellers = [register("Bob", "BO 2", "11.9650"), register("Cleo", "CL 3", "11.9600")]

        page.goto(f"{service.url}/buyer?address={buyer}")
        page.fill("#password", PASSWORD)
        page.fill("#topup input[name=tokens]", "100")
        page.click("#topup button")
        expect(page.locator("#balance")).to_have_text("100.0000")
        page.click("#request button")
        expect(page.locator("#request-result")).to_contain_text("Request posted in round 0")
        expect(page.locator("#my-rounds")).to_contain_text("pending")
        page.screenshot(path=str(ARTIFACTS / "buyer-request.png"), full_page=True)
        scan("buyer, request pending")

        seller_page = browser.new_page(viewport={"width": 1100, "height": 1200})
        seller_page.set_default_timeout(90_000)
        for seller, cost in zip(sellers, ("0.55", "0.60"), strict=True):
            seller_page.goto(f"{service.url}/seller?address={seller}")
            seller_page.fill("#password", PASSWORD)
            # A reply carries a deposit (back at the reveal): the seller tops up first.
            seller_page.fill("#topup input[name=tokens]", str(SELLER_TOP_UP))
            seller_page.click("#topup button")
            expect(seller_page.locator("#balance")).to_have_text(f"{SELLER_TOP_UP:.4f}")
            # The page shows the vehicle's name and plate only after its password.
            expect(seller_page.locator("#account")).to_contain_text(
                "Bob" if seller == sellers[0] else "Cleo"
            )
            form = seller_page.locator("form.reply[data-round='0']")
            form.locator("input[name=c]").fill(cost)
            form.locator("button").click()
            expect(seller_page.locator("#my-rounds")).to_contain_text("Round 0")
        seller_page.screenshot(path=str(ARTIFACTS / "seller-reply.png"), full_page=True)
        scan("seller, reply sealed", seller_page)

        # After the bid window the RSU reveals the sealed bids; the buyer sees priced offers.
        accept = page.locator("button.accept").first
        expect(accept).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "buyer-offers.png"), full_page=True)
        scan("buyer, offers to accept")
        accept.click()
        expect(page.locator("#my-rounds")).to_contain_text("completed")
        page.click("#collect button")
        expect(page.locator("#bought")).not_to_have_text("0.000")
        page.screenshot(path=str(ARTIFACTS / "buyer-completed.png"), full_page=True)
        scan("buyer, trade completed")

        seller_page.goto(f"{service.url}/seller?address={sellers[0]}")
        seller_page.fill("#password", PASSWORD)
        expect(seller_page.locator("#my-rounds")).to_contain_text("completed")
        seller_page.click("#collect button")
        expect(seller_page.locator("#sold")).not_to_have_text("0.000")
        expect(seller_page.locator("#balance")).not_to_have_text("0.0000")
        seller_page.screenshot(path=str(ARTIFACTS / "seller-completed.png"), full_page=True)

        page.goto(service.url + "/rsu")
        expect(page.locator("#rounds")).to_contain_text("settled")
        expect(page.locator("#blocks")).to_contain_text("0x")
        page.screenshot(path=str(ARTIFACTS / "rsu-dashboard.png"), full_page=True)
        scan("dashboard, round settled")
        page.goto(service.url + "/rounds/0")
        expect(page.locator("main")).to_contain_text("Audit")
        page.wait_for_function("() => document.body.dataset.rendered !== undefined")
        page.screenshot(path=str(ARTIFACTS / "round-settled.png"), full_page=True)
        scan("round page, settled")
        browser.close()
        assert not problems, "\n".join(problems)

    service.stop()  # read the chain itself, not the service
    chain = EmbeddedChain(service.data_dir / "chain")
    try:
        ledger = Ledger(chain, Deployment.load(service.data_dir / "deployment.json"))
        view = ledger.round_view(0)
        (trade,) = view.trades
        assert trade.buyer == buyer and trade.seller == sellers[0]
        assert ledger.energy(buyer) == (trade.energy, 0)
        assert ledger.energy(sellers[0]) == (0, trade.energy)
        top_up = SELLER_TOP_UP * 10**18
        assert ledger.balance(sellers[0]) == top_up + trade.payment
        assert ledger.balance(buyer) == 100 * 10**18 - trade.payment
        # The seller who did not trade (nor collect) has its deposit back as credit.
        assert ledger.balance(sellers[1]) + ledger.credit(sellers[1]) == top_up
    finally:
        chain.close()
