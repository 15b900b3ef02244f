"""The driver's DSM page's API, in-process over HTTP (FastAPI's TestClient) on the embedded chain:
plans are the library's and respect the window and power, bad inputs are 422s naming the field,
a committed plan is settled on chain at the library's bill and no token is created or lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from evtrade.market.mechanisms.dsm import schedule_day
from evtrade.model.day import DayScenario, Vehicle
from evtrade.service.api import create_app
from evtrade.service.dsm import PARAMS, aggregator_day
from evtrade.service.rsu import Rsu
from evtrade.service.settings import Settings
from evtrade.settlement import units
from tests.service_process import PASSWORD

NIGHT = {"capacity_kwh": 60, "charge_percent": 30, "target_percent": 80, "departure": 7}
#: The thesis's scenario 1: EV1 from 10 AM for 5 h, 22 kWh to store (a PV covers it).
NOON = {
    "capacity_kwh": 100,
    "charge_percent": 58,
    "target_percent": 80,
    "arrival": 10,
    "departure": 15,
    "power_kw": 10,
    "lat": 57.697437,
    "lon": 11.984428,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("dsm-svc"), faucet_tokens=10_000)
    with TestClient(create_app(settings)) as c:
        yield c


def rsu_of(client: TestClient) -> Rsu:
    rsu: Rsu = client.app.state.rsu  # type: ignore[attr-defined]
    return rsu


def register(client: TestClient, name: str, plate: str, tokens: float = 0) -> str:
    body = {"name": name, "plate": plate, "password": PASSWORD, "lat": 57.70, "lon": 11.97}
    r = client.post("/api/vehicles", json=body)
    assert r.status_code == 201, r.text
    address = str(r.json()["address"])
    if tokens:
        r = client.post(
            f"/api/vehicles/{address}/topup", json={"password": PASSWORD, "tokens": tokens}
        )
        assert r.status_code == 200, r.text
    return address


def balance(client: TestClient, address: str) -> float:
    return float(client.get(f"/api/vehicles/{address}").json()["balance"])


def detail(r: Any) -> str:
    assert r.status_code == 422, (r.status_code, r.text)
    return json.dumps(r.json()["detail"])


def library_plan(body: dict[str, Any], lat: float, lon: float) -> Any:
    """The library's plan for the same vehicle alone on the aggregator's day."""
    day = aggregator_day(None)
    vehicle = Vehicle(
        id="driver",
        capacity_kwh=body["capacity_kwh"],
        energy_kwh=body["capacity_kwh"] * body["charge_percent"] / 100,
        arrival=body.get("arrival", 0),
        departure=body["departure"],
        power_kw=body.get("power_kw", 11.0),
        lat=body.get("lat", lat),
        lon=body.get("lon", lon),
        target_soc=body["target_percent"] / 100,
    )
    (plan,) = schedule_day(DayScenario(day.slots, day.grid, (vehicle,), day.pv), PARAMS).plans
    return plan


def test_plan_refusals_name_the_field(client: TestClient) -> None:
    for missing in ("capacity_kwh", "charge_percent", "departure"):
        r = client.post("/api/dsm/plan", json={k: v for k, v in NIGHT.items() if k != missing})
        assert missing in detail(r)
    cases: dict[str, dict[str, Any]] = {
        "charge_percent": {"charge_percent": 120},
        "capacity_kwh": {"capacity_kwh": -1},
        "power_kw": {"power_kw": 50},
        "lat": {"lat": "north", "lon": 11.9},
        "colour": {"colour": "red"},
    }
    for name, change in cases.items():
        assert name in detail(client.post("/api/dsm/plan", json={**NIGHT, **change})), name
    assert "departure" in detail(client.post("/api/dsm/plan", json={**NIGHT, "arrival": 7}))
    assert "departure (30) must be <= 24" in detail(
        client.post("/api/dsm/plan", json={**NIGHT, "departure": 30})
    )
    assert "lat and lon" in detail(client.post("/api/dsm/plan", json={**NIGHT, "lat": 57.7}))
    # Planning writes nothing: not even the billing contract is deployed yet.
    assert client.get("/api/dsm/day").json()["status"] == "not posted"


def test_plan_is_the_librarys_and_keeps_the_window_and_power(client: TestClient) -> None:
    body = {**NIGHT, "arrival": 2, "departure": 6, "power_kw": 7}
    r = client.post("/api/dsm/plan", json=body)
    assert r.status_code == 200, r.text
    plan = r.json()
    energy = np.array([slot["energy_kwh"] for slot in plan["slots"]])
    assert plan["source"] == "grid"
    assert np.all(energy[:2] == 0) and np.all(energy[6:] == 0)
    assert np.all(energy <= 7 * 1.0 + 1e-9)
    # 30 kWh to store at 95 % is 31.6 kWh drawn; 4 h at 7 kW hold 28 kWh.
    assert plan["energy_kwh"] == pytest.approx(28.0)
    assert plan["unmet_kwh"] == pytest.approx(30 / 0.95 - 28)
    lib = library_plan(body, *rsu_of(client).dsm.place)
    assert energy == pytest.approx(lib.energy_kwh)
    assert plan["expected_bill"] == pytest.approx(lib.cost)
    assert plan["expected_bill"] == pytest.approx(sum(x["cost"] for x in plan["slots"]))
    # In the day, a PV prosumer covers the thesis's EV1 (scenario 1).
    noon = client.post("/api/dsm/plan", json=NOON).json()
    assert noon["source"] == "pv" and noon["supplier"] == library_plan(NOON, 0, 0).supplier
    # Already at the target: nothing to plan.
    full = client.post("/api/dsm/plan", json={**NIGHT, "charge_percent": 90}).json()
    assert full["source"] == "none" and full["energy_kwh"] == 0


def test_commit_settle_bill_and_conservation(client: TestClient) -> None:
    rsu = rsu_of(client)
    night, noon = register(client, "Nia", "DSM 1", 200), register(client, "Noor", "DSM 2", 200)
    poor = register(client, "Pia", "DSM 3")
    r = client.post("/api/dsm/commit", json={**NIGHT, "address": poor, "password": PASSWORD})
    assert r.status_code == 402 and "escrow" in r.text
    r = client.post("/api/dsm/commit", json={**NIGHT, "address": night, "password": "wrong one"})
    assert r.status_code == 401
    assert client.get("/api/vehicles/0x" + "12" * 20 + "/dsm").status_code == 404

    planned = client.post("/api/dsm/plan", json=NIGHT).json()
    before = {a: balance(client, a) for a in (night, noon)}
    r = client.post("/api/dsm/commit", json={**NIGHT, "address": night, "password": PASSWORD})
    assert r.status_code == 201, r.text
    c = r.json()["commitment"]
    assert c["status"] == "open" and not c["settled"] and c["bill"] is None
    assert c["expected_bill"] == pytest.approx(planned["expected_bill"], abs=1e-4)
    assert balance(client, night) == pytest.approx(before[night] - c["escrow"])
    again = client.post("/api/dsm/commit", json={**NIGHT, "address": night, "password": PASSWORD})
    assert again.status_code == 409 and "already committed" in again.text
    r = client.post("/api/dsm/commit", json={**NOON, "address": noon, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["commitment"]["source"] == "pv"

    day = client.get("/api/dsm/day").json()
    assert day["status"] == "open" and day["commitments"] == 2
    load = [slot["load"] for slot in day["slots"]]
    assert load == pytest.approx(c["energy_kwh"], abs=1e-6)  # the PV purchase is not grid load
    r = client.post("/api/dsm/settle")
    assert r.status_code == 409 and "not over" in r.text

    rsu.chain.advance_time(day["end"] - rsu.chain.timestamp() + 1)
    assert client.get("/api/dsm/day").json()["status"] == "over"
    r = client.post("/api/dsm/settle")
    assert r.status_code == 200 and r.json()["status"] == "settled", r.text
    bills = {a: client.get(f"/api/vehicles/{a}/dsm").json() for a in (night, noon)}
    grid_bill = bills[night]["commitment"]
    pv_bill = bills[noon]["commitment"]
    assert grid_bill["settled"] and grid_bill["bill"] == pytest.approx(grid_bill["grid_bill"])
    # The bill on chain is the library's for this vehicle (nobody committed after it in its hours).
    assert grid_bill["bill"] == pytest.approx(planned["expected_bill"], abs=1e-4)
    lib = library_plan(NIGHT, *rsu.dsm.place)
    assert grid_bill["bill"] == pytest.approx(lib.cost, abs=1e-4)
    assert pv_bill["bill"] == pytest.approx(pv_bill["supply_bill"])
    assert pv_bill["bill"] == pytest.approx(library_plan(NOON, 0, 0).cost, abs=1e-4)

    # Money: each vehicle gets back escrow - bill; the aggregator and the PV owner are owed the
    # bills; the contract keeps nothing else.
    for a in (night, noon):
        commitment = bills[a]["commitment"]
        assert bills[a]["credit"] == pytest.approx(commitment["refund"])
        r = client.post(f"/api/vehicles/{a}/dsm/withdraw", json={"password": PASSWORD})
        assert r.status_code == 200, r.text
        assert balance(client, a) == pytest.approx(before[a] - commitment["bill"], abs=1e-6)
    r = client.post(f"/api/vehicles/{night}/dsm/withdraw", json={"password": PASSWORD})
    assert r.status_code == 409
    billing = rsu.dsm.billing()
    aggregator = billing.credit(rsu.operators.rsu.address)
    supplier = billing.credit(str(pv_bill["supplier"]))
    units_bills = [billing.bill(0, i) for i in range(2)]
    assert aggregator == sum(b.grid_bill for b in units_bills)
    assert supplier == sum(b.supply_bill for b in units_bills)
    held = rsu.ledger.balance(billing.address)
    assert held == aggregator + supplier
    assert units.to_tokens(held) == pytest.approx(grid_bill["bill"] + pv_bill["bill"], abs=1e-5)


def test_dsm_deployment_is_kept_apart(client: TestClient) -> None:
    data_dir = Path(rsu_of(client).settings.data_dir)
    kept = json.loads((data_dir / "dsm-deployment.json").read_text())
    assert kept["billing"] == rsu_of(client).dsm.billing().address
    assert "DsmBilling" not in (data_dir / "deployment.json").read_text()
    assert (data_dir / "dsm-deployment.json").stat().st_mode & 0o077 == 0


def test_a_day_file_in_the_settings(tmp_path: Path) -> None:
    """The aggregator's day from ``dsm_day``: its slots and PV are the page's; a file that does
    not load is refused at start-up, naming the setting."""
    from pydantic import ValidationError

    from tests.test_dsm import base_day

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**base_day(), "grid": {"base_price": [0.5]}}))
    with pytest.raises(ValidationError, match="setting 'dsm_day'"):
        Settings(data_dir=tmp_path / "bad", dsm_day=bad)
    data = base_day()
    path = tmp_path / "day.json"
    path.write_text(json.dumps(data))
    with TestClient(create_app(Settings(data_dir=tmp_path / "svc", dsm_day=path))) as client:
        day = client.get("/api/dsm/day").json()
        assert day["status"] == "not posted" and len(day["slots"]) == 6
        assert [s["base_price"] for s in day["slots"]] == data["grid"]["base_price"]
        assert day["end"] - day["start"] == 6 * 3600 and day["start"] % 3600 == 0
        assert (day["lat"], day["lon"]) == pytest.approx(
            (np.mean([p["lat"] for p in data["pv"]]), np.mean([p["lon"] for p in data["pv"]]))
        )
        r = client.post("/api/dsm/plan", json={**NIGHT, "departure": 7})
        assert "departure (7) must be <= 6" in detail(r)
        ev1 = data["vehicles"][0]
        body = {
            "capacity_kwh": ev1["capacity_kwh"],
            "charge_percent": ev1["energy_kwh"],
            "target_percent": 80,
            "arrival": ev1["arrival"],
            "departure": ev1["departure"],
            "power_kw": ev1["power_kw"],
            "lat": ev1["lat"],
            "lon": ev1["lon"],
        }
        plan = client.post("/api/dsm/plan", json=body).json()
        assert (plan["source"], plan["supplier"]) == ("pv", "PV_far")
