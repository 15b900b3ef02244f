"""`make demo` leaves a web app a newcomer can click through at once (issue 13, item 9).

``evtrade demo`` runs into a fresh data directory as `make demo` does; the service then started on
that directory (as `make serve` does) shows the demo's round, centres on the demo's market
(Jinhua), and knows the printed demo vehicles: their printed password unlocks them, they hold
tokens, and the buyer can post a request at once.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evtrade.model.defaults import JINHUA
from evtrade.service.demo import DEMO_TOKENS, DEMO_VEHICLES
from tests.service_process import Service, request_body, running_service
from tests.test_webapp_a11y import CHROMIUM, FLAGS, PHONE, accessibility_problems

ROOT = Path(__file__).resolve().parents[1]
#: Screenshots of the web app on the demo's data (docs/screenshots/ holds copies of three).
ARTIFACTS = ROOT / "test-artifacts" / "demo"


def _km(lat: float, lon: float) -> float:
    """Distance from the centre of Jinhua (equirectangular; a few km at most here)."""
    dy = (lat - JINHUA[0]) * 111.32
    dx = (lon - JINHUA[1]) * 111.32 * math.cos(math.radians(JINHUA[0]))
    return math.hypot(dx, dy)


def test_demo_leaves_a_usable_web_app(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "evtrade", "demo", "--data-dir", str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    # The closing lines say what to do next: the password, each vehicle's page, the command.
    password = re.search(r"wallet password: (\S+)\)", out)
    assert password, out
    pages = re.findall(
        r"^  (\w+)\s+(buyer|seller)\s+http://127\.0\.0\.1:8000/\2\?address=(0x\w{40})$", out, re.M
    )
    assert [(name, role) for name, role, _ in pages] == [(v.name, v.role) for v in DEMO_VEHICLES]
    assert "make serve" in out.splitlines()[-2] and "http://127.0.0.1:8000/" in out.splitlines()[-1]

    with running_service(data, faucet_tokens=0) as service, service.client() as client:
        listed = {v["address"] for v in client.get("/api/vehicles").json()}
        for name, _, address in pages:
            assert address in listed
            r = client.post(f"/api/vehicles/{address}/details", json={"password": password[1]})
            assert r.status_code == 200, r.text
            mine = r.json()
            assert mine["name"] == name and mine["wallet"] is True
            assert mine["balance"] == DEMO_TOKENS
            assert _km(mine["lat"], mine["lon"]) < 2
            wrong = client.post(f"/api/vehicles/{address}/details", json={"password": "guess"})
            assert wrong.status_code == 401
        chain = client.get("/api/chain").json()
        assert (chain["rsu"]["lat"], chain["rsu"]["lon"]) == JINHUA  # the map is where they are
        (demo_round,) = client.get("/api/rounds").json()
        assert demo_round["trades"]
        assert all(_km(q["lat"], q["lon"]) < 10 for q in demo_round["requests"])
        # The buyer acts at once: a request locks v_max x b_max of its minted tokens in escrow.
        buyer = pages[0][2]
        body = request_body(password=password[1], lat=JINHUA[0], lon=JINHUA[1])
        r = client.post(f"/api/vehicles/{buyer}/requests", json=body)
        assert r.status_code == 201, r.text
        assert client.get(f"/api/vehicles/{buyer}").json()["balance"] < DEMO_TOKENS
        _screenshots(service, buyer, password[1])


def _screenshots(service: Service, buyer: str, password: str) -> None:
    """The pages a newcomer sees first, on the demo's data: the dashboard shows the demo's round
    and its trades, the buyer's page the request just posted."""
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect = sync_api.expect
    expect.set_options(timeout=60_000)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(service.url + "/rsu")
            expect(page.locator("#rounds")).to_contain_text("settled")
            page.wait_for_timeout(1500)  # the map's tiles fail offline; its grid is drawn
            page.screenshot(path=str(ARTIFACTS / "rsu-dashboard.png"))
            page.goto(service.url + "/")
            expect(page.locator("#vehicles")).to_contain_text(buyer)
            page.screenshot(path=str(ARTIFACTS / "home.png"))
            phone = browser.new_page(viewport=PHONE)
            phone.goto(f"{service.url}/buyer?address={buyer}")
            phone.get_by_label("Wallet password").fill(password)
            phone.get_by_role("button", name="Show my details").click()
            expect(phone.locator("#account")).to_contain_text("Ada")
            expect(phone.locator("#my-rounds")).to_contain_text("pending")
            phone.screenshot(path=str(ARTIFACTS / "buyer-phone.png"), full_page=True)
            # With the demo's data (trades, blocks, the map's markers) too: accessible, and no
            # page wider than the phone.
            for path in ("/rsu", "/rounds/0", "/"):
                phone.goto(service.url + path)
                phone.wait_for_function("() => document.body.dataset.rendered !== undefined")
                width = phone.evaluate("() => document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{path}: {width} px wide at 390 px"
                found = accessibility_problems(phone)
                assert not found, f"{path}: {found}"
        finally:
            browser.close()
