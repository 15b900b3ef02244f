"""The drivers' flow in a real browser, found by role and label as a screen reader would (issue 13,
items 1-4): the statuses and reasons at each step, the escrow said before and after posting, the
offers' totals, the payout's amount, the transactions' history, and a seller's page that updates
after its reply and after the buyer's choice without being reloaded.

Playwright drives Debian's chromium with :mod:`tests.test_service_browser`'s service and
settings; screenshots go to test-artifacts/driver/.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.service_process import PASSWORD, Service
from tests.test_service_browser import (  # noqa: F401  (service: the module's fixture)
    ARTIFACTS,
    CHROMIUM,
    FLAGS,
    service,
)
from tests.test_webapp_a11y import accessibility_problems

if TYPE_CHECKING:
    from playwright.sync_api import Page

sync_api = pytest.importorskip("playwright.sync_api")
SHOTS = ARTIFACTS.parent / "driver"


def test_driver_flow_by_role_and_label(service: Service) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    expect = sync_api.expect
    expect.set_options(timeout=90_000)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        home = browser.new_page(viewport={"width": 1100, "height": 1400})
        home.set_default_timeout(90_000)

        def register(name: str, plate: str) -> str:
            home.goto(service.url + "/")
            home.get_by_label("Name", exact=True).fill(name)
            home.get_by_label(re.compile("plate", re.I)).fill(plate)
            home.get_by_label(re.compile("password", re.I)).fill(PASSWORD)
            home.get_by_role("button", name="Register").click()
            expect(home.get_by_role("status").filter(has_text=name)).to_be_visible()
            return str(home.locator(".new-address").inner_text().strip())

        buyer = register("Ann", "AN 1")
        sellers = [register("Ben", "BE 2"), register("Cat", "CA 3")]

        def unlock(page: Page, address: str, role: str, tokens: int) -> None:
            page.goto(f"{service.url}/{role}?address={address}")
            page.get_by_label("Wallet password").fill(PASSWORD)
            page.get_by_label(re.compile("tokens to add", re.I)).fill(str(tokens))
            page.get_by_role("button", name="Top up").click()
            expect(page.locator("#balance")).to_have_text(f"{tokens:.4f}")
            # The top-up is in the vehicle's history, confirmed on chain.
            expect(page.locator("#history")).to_contain_text("top-up of")
            expect(page.locator("#history")).to_contain_text("confirmed")

        # axe-core in every state of the flow: serious or critical violations fail the test.
        problems: list[str] = []

        def scan(where: str, on: Page) -> None:
            found = accessibility_problems(on)
            if found:
                problems.append(f"{where}:\n{found}")

        page = browser.new_page(viewport={"width": 1100, "height": 1600})
        page.set_default_timeout(90_000)
        unlock(page, buyer, "buyer", 100)
        # Before posting, the page says what the request will lock: v_max x b_max.
        page.get_by_label(re.compile("at most", re.I)).first.fill("12")
        expect(page.locator("#request-escrow")).to_contain_text("locks 12.0000 tokens in escrow")
        page.get_by_role("button", name="Post request").click()
        expect(page.locator("#request-result")).to_contain_text("12.0000 tokens locked in escrow")
        expect(page.locator("#balance")).to_have_text("88.0000")
        expect(page.locator("#escrow-locked")).to_have_text("12.0000")
        status = page.locator(".request-status")
        expect(status).to_contain_text("pending")
        expect(status).to_contain_text("waiting for replies")
        page.screenshot(path=str(SHOTS / "buyer-pending.png"), full_page=True)
        scan("buyer, request pending", page)

        # Each seller replies; its page shows "replied" and no Reply form for the round, at once
        # and without a reload.
        seller_pages = []
        for seller, cost in zip(sellers, ("0.55", "0.60"), strict=True):
            sp = browser.new_page(viewport={"width": 1100, "height": 1400})
            sp.set_default_timeout(90_000)
            unlock(sp, seller, "seller", 20)
            form = sp.locator("form.reply").first
            form.get_by_label(re.compile("costs you", re.I)).fill(cost)
            form.get_by_label(re.compile("keep for yourself", re.I)).fill("5")  # 15 kWh spare
            form.get_by_role("button", name="Reply").click()
            expect(sp.locator("#open-rounds")).to_contain_text("replied")
            expect(sp.locator("form.reply")).to_have_count(0)
            expect(sp.locator(".reply-status")).to_contain_text("pending")
            seller_pages.append(sp)
        seller_pages[0].screenshot(path=str(SHOTS / "seller-replied.png"), full_page=True)
        scan("seller, reply sealed", seller_pages[0])

        # After the window the RSU reveals the bids: offers priced, with what accepting gives.
        expect(status).to_contain_text("priced")
        accept = page.get_by_role("button", name=re.compile(r"^Accept: buy")).first
        expect(accept).to_be_visible()
        label = str(accept.get_attribute("aria-label"))
        assert re.search(r"buy 12\.000 kWh for \d+\.\d{4} tokens", label), label
        for sp in seller_pages:
            expect(sp.locator(".reply-status")).to_contain_text("priced")
        page.screenshot(path=str(SHOTS / "buyer-offers.png"), full_page=True)
        scan("buyer, offers to accept", page)
        accept.click()
        expect(status).to_contain_text("completed")
        expect(status).to_contain_text("bought 12.000 kWh")
        expect(page.locator(".request-money")).to_contain_text("refund")
        # The sellers' pages follow by themselves: one sold, the other lost to another offer.
        outcomes = [sp.locator(".reply-status") for sp in seller_pages]
        for o in outcomes:
            expect(o).to_contain_text(re.compile("completed|buyer chose another offer"))
        texts = [o.inner_text() for o in outcomes]
        assert sum("completed" in t for t in texts) == 1, texts
        assert sum("buyer chose another offer" in t for t in texts) == 1, texts
        seller_pages[0].screenshot(path=str(SHOTS / "seller-after-choice.png"), full_page=True)
        scan("seller, after the buyer's choice", seller_pages[0])

        page.get_by_role("button", name="Collect").click()
        expect(page.locator("#collect-result")).to_contain_text(re.compile(r"Received \d"))
        expect(page.locator("#history")).to_contain_text("refund of the escrow")
        expect(page.locator("#bought")).to_have_text("12.000")
        page.screenshot(path=str(SHOTS / "buyer-collected.png"), full_page=True)
        scan("buyer, trade completed and collected", page)

        winner = seller_pages[[("completed" in t) for t in texts].index(True)]
        winner.get_by_role("button", name="Withdraw").click()
        expect(winner.locator("#collect-result")).to_contain_text(re.compile(r"Received \d"))
        expect(winner.locator("#history")).to_contain_text("withdraw")
        winner.screenshot(path=str(SHOTS / "seller-withdrawn.png"), full_page=True)
        scan("seller, withdrawn", winner)
        browser.close()
    assert not problems, "\n".join(problems)
