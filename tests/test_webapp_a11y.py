"""Every page of the web app in Debian's chromium: an accessibility scan and a phone's width.

axe-core (from the npm registry, installed into .tools/axe by ``make axe``; never a CDN) is
injected into each page (home, buyer, seller, RSU dashboard, a round's page, /docs) and must find
no serious or critical violation; at 390 px (a phone) no page may scroll sideways. Screenshots of
each page, at a desktop's and a phone's width, go to test-artifacts/a11y/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evtrade.model.defaults import JINHUA
from tests.service_process import PASSWORD, Service, register, request_body, running_service

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "a11y"
AXE = ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
#: The impacts that fail the scan (axe-core's four levels: minor, moderate, serious, critical).
FAILING = {"serious", "critical"}

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict[str, str]]]:
    """A service with a buyer and a seller and one open request: every page has content."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian chromium is not installed: `make test` installs it")
    if not AXE.exists():
        raise RuntimeError(f"axe-core is not installed at {AXE}: run `make axe`")
    with running_service(tmp_path_factory.mktemp("a11y"), t_limit=600, t_reveal=60) as svc:
        with svc.client() as client:
            # Near the RSU (by default where the demo's market is), as the map frames them all.
            lat, lon = JINHUA
            buyer = register(client, "Ada", "AD 1", lat=lat, lon=lon)
            seller = register(client, "Ben", "BE 2", lat=lat + 0.003, lon=lon - 0.004)
            r = client.post(
                f"/api/vehicles/{buyer}/topup", json={"password": PASSWORD, "tokens": 50}
            )
            assert r.status_code == 200, r.text
            r = client.post(f"/api/vehicles/{buyer}/requests", json=request_body(lat=lat, lon=lon))
            assert r.status_code == 201, r.text
            pages = {
                "home": "/",
                "buyer": f"/buyer?address={buyer}",
                "seller": f"/seller?address={seller}",
                "seller-no-vehicle": "/seller",
                "rsu": "/rsu",
                "docs": "/docs",
            }
            for name, path in (("round", "/rounds/0"), ("plan", "/plan")):
                if client.get(path).status_code == 200:  # pages other helpers add
                    pages[name] = path
        yield svc, pages


def _scan(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => JSON.stringify((await axe.run(document)).violations)")
    return list(json.loads(result))


def accessibility_problems(page: Any) -> str:
    """axe-core's serious and critical violations on the page as it is now, described ("" when
    none); any other test that drives a page can check it in its states."""
    bad = [v for v in _scan(page) if v["impact"] in FAILING]
    return _describe(bad)


def _settle(page: Any, url: str) -> None:
    page.goto(url)
    if url.endswith("/docs"):
        # One operation and one schema opened: their parts are scanned too.
        page.locator(".opblock-summary-control").nth(1).click()
        page.locator(".json-schema-2020-12-expand-deep-button").first.click()
        page.wait_for_selector(".body-param__example")
        return
    # The pages render from the API after load: wait until the first render is in.
    page.wait_for_function("() => document.body.dataset.rendered !== undefined")


def _describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['impact']} {v['id']}: {v['help']} -> "
        + "; ".join(
            str(n.get("target")) + " " + str(n.get("failureSummary", ""))[:200]
            for n in v["nodes"][:4]
        )
        for v in violations
    )


def test_every_page_is_accessible_and_fits_a_phone(world: tuple[Service, dict[str, str]]) -> None:
    service, pages = world
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
                page = browser.new_page(viewport=size)
                page.set_default_timeout(60_000)
                for name, path in pages.items():
                    _settle(page, service.url + path)
                    page.screenshot(path=str(ARTIFACTS / f"{name}-{size_name}.png"), full_page=True)
                    width = page.evaluate("() => document.documentElement.scrollWidth")
                    if size is PHONE and width > PHONE["width"]:
                        problems.append(f"{name}: {width} px wide at 390 px")
                    found = accessibility_problems(page)
                    if found:
                        problems.append(f"{name} ({size_name}):\n{found}")
                page.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_forms_say_what_is_wrong_next_to_the_field(world: tuple[Service, dict[str, str]]) -> None:
    """Item 5 of issue 13: words, not symbols; errors in plain language beside their field; an
    empty field is refused before anything is sent (never sent as 0); /seller without a vehicle
    says what to do."""
    service, pages = world
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport=PHONE)
            page.set_default_timeout(60_000)
            expect = sync_api.expect
            expect.set_options(timeout=60_000)
            _settle(page, service.url + pages["buyer"])
            least = page.get_by_label("Energy you need: at least (kWh)")
            most = page.get_by_label("Energy you need: at most (kWh)")
            expect(page.get_by_label("The most you would pay per kWh (tokens/kWh)")).to_be_visible()
            page.fill("#password", PASSWORD)
            least.fill("12")
            most.fill("10")
            page.click("#request button")
            error = page.locator("#request-b_min-error")
            expect(error).to_have_text("At least must not exceed at most (12 > 10)")
            expect(least).to_have_attribute("aria-invalid", "true")
            most.fill("")
            page.click("#request button")
            expect(page.locator("#request-b_max-error")).to_contain_text("Required")
            # The server's own refusal (422) lands beside its field too, in words.
            page.evaluate(
                """async () => {
                  lastForm = $("request");
                  try {
                    await api("POST", `/api/vehicles/${me}/requests`, {password: password(),
                      b_min: 12, b_max: 10, v: 0.9, v_min: 0.6, v_max: 1, lat: 0, lon: 0});
                  } catch (err) { fail(err); }
                }"""
            )
            expect(error).to_have_text("At least (12) must not exceed at most (10)")
            page.fill("#password", "not the password")
            least.fill("2")
            most.fill("10")
            page.click("#request button")
            expect(page.locator("#password-error")).to_contain_text("Wrong password")
            page.screenshot(path=str(ARTIFACTS / "buyer-field-errors-phone.png"), full_page=True)
            with service.client() as client:
                (only,) = client.get("/api/rounds").json()  # nothing else was posted
                assert len(only["requests"]) == 1

            _settle(page, service.url + "/seller")
            expect(page.locator("#account")).to_contain_text("Choose a vehicle")
            expect(page.locator("#error")).to_have_text("")
            expect(page.locator("#account a[href^='/seller?address=']").first).to_be_visible()
            unknown = "0x" + "ab" * 20
            _settle(page, f"{service.url}/buyer?address={unknown}")
            expect(page.locator("#account")).to_contain_text(f"No vehicle {unknown} is registered")
            expect(page.locator("#account a[href^='/buyer?address=']").first).to_be_visible()
        finally:
            browser.close()
