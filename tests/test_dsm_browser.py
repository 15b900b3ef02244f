"""The driver's DSM page in a real browser (Playwright, Debian's chromium): a driver fills the form
in words, gets the plan hour by hour, commits it, and after the day (the embedded chain's clock
moved on) settles it and sees the bill the contract computed, then takes back the refund.

The service runs in this process (uvicorn in a thread), so the test can move the chain's clock.
Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from benchmarks.anvil import free_port

from evtrade.service.api import create_app
from evtrade.service.rsu import Rsu
from evtrade.service.settings import Settings
from tests.service_process import PASSWORD
from tests.test_service_browser import ARTIFACTS, CHROMIUM, FLAGS
from tests.test_webapp_a11y import AXE, DESKTOP, FAILING, PHONE, _describe, _scan

sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Served:
    url: str
    rsu: Rsu


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian chromium is not installed: `make test` installs it")
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("plan"), faucet_tokens=1000))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="plan-page-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    try:
        yield Served(f"http://127.0.0.1:{port}", app.state.rsu)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def test_plan_commit_and_bill_by_clicking(served: Served) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=served.url, timeout=120) as client:
        body = {"name": "Dana", "plate": "DS 7", "password": PASSWORD}
        car = str(client.post("/api/vehicles", json=body).json()["address"])
        r = client.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 100})
        assert r.status_code == 200, r.text
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.set_default_timeout(90_000)
        expect = sync_api.expect
        expect.set_options(timeout=90_000)
        page.goto(f"{served.url}/plan?address={car}")
        expect(page.get_by_role("heading", name="Plan a charge", level=1)).to_be_visible()
        expect(page.locator("#day-summary")).to_contain_text("not posted yet")

        page.get_by_label("Battery capacity (kWh)").fill("60")
        page.get_by_label("Charge now (%)").fill("30")
        page.get_by_label("Charge wanted at departure (%)").fill("80")
        page.get_by_label("Battery state of health (%)").fill("92")
        page.get_by_label("Plug-in hour (0 to 23)").fill("0")
        page.get_by_label("Departure hour (1 to 24)").fill("0")
        page.get_by_role("button", name="Plan my charge").click()
        # Checked in the page, named in words, before anything is sent.
        expect(page.locator("#plan-departure-error")).to_contain_text("at least 1")
        page.get_by_label("Departure hour (1 to 24)").fill("7")
        page.get_by_role("button", name="Plan my charge").click()
        table = page.get_by_role("table", name="your plan, hour by hour")
        expect(table).to_contain_text("grid")
        expect(table).to_contain_text("Expected bill")
        expected = page.locator("#expected-bill").inner_text()
        chart = page.locator("#day-chart canvas, #day-chart svg")
        expect(chart.first).to_be_visible()

        page.get_by_label("Wallet password").fill(PASSWORD)
        page.get_by_role("button", name="Commit this plan").click()
        expect(page.locator("#commit-result")).to_contain_text("Committed to day 0")
        bill = page.get_by_role("table", name="your commitment and bill")
        expect(bill).to_contain_text("Escrowed")
        expect(page.locator("#day-summary")).to_contain_text("1 commitment(s)")
        page.screenshot(path=str(ARTIFACTS / "plan.png"), full_page=True)

        chain = served.rsu.chain
        end = served.rsu.dsm.billing().day(0).end
        chain.advance_time(end - chain.timestamp() + 1)
        page.get_by_role("button", name="Settle the day").click()
        expect(page.locator("#settled-bill")).to_have_text(expected)
        expect(bill).to_contain_text("settled on chain")
        page.screenshot(path=str(ARTIFACTS / "plan-settled.png"), full_page=True)
        page.get_by_role("button", name="Take back my refund").click()
        expect(page.locator("#commit-result")).to_contain_text("tokens back in your wallet")
        browser.close()


def test_plan_page_is_accessible_and_fits_a_phone(served: Served) -> None:
    """axe-core finds no serious or critical violation on /plan, planned and unplanned; at 390 px
    nothing scrolls sideways (as tests/test_webapp_a11y.py for the other pages)."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE}: run `make axe`")
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page = browser.new_page(viewport=size)
            page.set_default_timeout(60_000)
            page.goto(f"{served.url}/plan")
            page.wait_for_function("() => document.body.dataset.rendered !== undefined")
            page.get_by_role("button", name="Plan my charge").click()
            sync_api.expect(page.locator("#plan-summary")).to_contain_text("Expected bill")
            page.screenshot(path=str(ARTIFACTS / f"plan-{name}.png"), full_page=True)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if size is PHONE and width > PHONE["width"]:
                problems.append(f"{width} px wide at 390 px")
            bad = [v for v in _scan(page) if v["impact"] in FAILING]
            if bad:
                problems.append(f"{name}:\n{_describe(bad)}")
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
