"""The RSU service over real HTTP: every endpoint's bad input is a 4xx naming the problem, and the
chain is left as it was; the seed app's flow works end to end."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest
from eth_account import Account

from tests.service_process import (
    PASSWORD,
    Service,
    register,
    reply_body,
    request_body,
    running_service,
    wait_for,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("svc"), t_limit=15, t_reveal=6) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def head(client: httpx.Client) -> int:
    return int(client.get("/api/chain").json()["blocks"][0]["number"])


def problem(r: httpx.Response) -> str:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    return json.dumps(r.json()["detail"])


def test_register_refusals_leave_the_chain_alone(client: httpx.Client) -> None:
    before = head(client)
    good = {"name": "Ada", "plate": "AB 123", "password": PASSWORD}
    for field in ("name", "plate", "password"):
        r = client.post("/api/vehicles", json={k: v for k, v in good.items() if k != field})
        assert r.status_code == 422 and field in problem(r)
    r = client.post("/api/vehicles", json={**good, "lat": "north"})
    assert r.status_code == 422 and "lat" in problem(r)
    r = client.post("/api/vehicles", json={**good, "lat": 123.0})
    assert r.status_code == 422 and "lat" in problem(r)
    r = client.post("/api/vehicles", json={**good, "plate": "<script>"})
    assert r.status_code == 422 and "plate" in problem(r)
    r = client.post("/api/vehicles", json={**good, "admin": True})
    assert r.status_code == 422 and "admin" in problem(r)
    assert head(client) == before
    register(client, "Ada", "AB 123")
    after = head(client)
    r = client.post("/api/vehicles", json={**good, "plate": "ab123"})
    assert r.status_code == 409 and "already registered" in problem(r)
    assert head(client) == after


def test_vehicle_refusals(client: httpx.Client) -> None:
    car = register(client, "Bo", "BO 1")
    before = head(client)
    assert client.get("/api/vehicles/0x" + "12" * 20).status_code == 404
    r = client.post(f"/api/vehicles/{car}/topup", json={"password": "wrong one", "tokens": 5})
    assert r.status_code == 401 and "password" in problem(r)
    r = client.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": -5})
    assert r.status_code == 422 and "tokens" in problem(r)
    r = client.post(f"/api/vehicles/{car}/topup", json={"tokens": 5})
    assert r.status_code == 401 and "unsigned request" in problem(r)
    assert head(client) == before
    assert client.get(f"/api/vehicles/{car}").json()["balance"] == 0


def test_request_refusals(client: httpx.Client) -> None:
    car = register(client, "Cy", "CY 1")
    client.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 50})
    before = head(client)
    rounds = len(client.get("/api/rounds").json())
    cases = [
        (request_body(v=1.5), 422, "v (1.5) must lie in [v_min, v_max]"),
        (request_body(b_min=12), 422, "b_min (12.0) must be <= b_max"),
        (request_body(b_max="ten"), 422, "b_max"),
        ({k: v for k, v in request_body().items() if k != "v_max"}, 422, "v_max"),
        (request_body(v_min=0.4, v=0.5), 422, "below the RSU's floor"),
        (request_body(v_max=-1), 422, "v_max"),
        (request_body(password="nope nope"), 401, "wrong password"),
        (request_body(b_max=100), 402, "balance below the escrow"),  # escrow 100 > 50 tokens
        (request_body(round_id=99), 404, "no round 99"),
    ]
    for body, status, message in cases:
        r = client.post(f"/api/vehicles/{car}/requests", json=body)
        assert r.status_code == status and message in problem(r), (body, r.text)
    assert head(client) == before
    assert len(client.get("/api/rounds").json()) == rounds


def test_relay_refusals_and_a_good_relay(client: httpx.Client, service: Service) -> None:
    car = register(client, "Di", "DI 1")
    chain = client.get("/api/chain").json()
    market, token = chain["deployment"]["market"], chain["deployment"]["token"]
    before = head(client)
    r = client.post("/api/tx", json={"raw": "hello"})
    assert r.status_code == 422 and "raw" in problem(r)
    r = client.post("/api/tx", json={"raw": "0xdeadbeef"})
    assert r.status_code == 400 and "not a signed transaction" in problem(r)

    def signed(account: Account, to: str, data: str = "0x", nonce: int = 0) -> str:
        tx = {
            "to": to,
            "data": data,
            "value": 0,
            "gas": 100_000,
            "nonce": nonce,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 0,
            "chainId": chain["chain_id"],
        }
        return str(account.sign_transaction(tx).raw_transaction.to_0x_hex())

    stranger = Account.create()
    r = client.post("/api/tx", json={"raw": signed(stranger, market)})
    assert r.status_code == 403 and "not a registered vehicle" in problem(r)
    row = (
        sqlite3.connect(service.data_dir / "service.sqlite")
        .execute("SELECT keystore FROM vehicles WHERE address = ?", (car,))
        .fetchone()
    )
    key = Account.from_key(Account.decrypt(json.loads(row[0]), PASSWORD))
    r = client.post("/api/tx", json={"raw": signed(key, "0x" + "34" * 20)})
    assert r.status_code == 403 and "only call the market or the token" in problem(r)
    r = client.post("/api/tx", json={"raw": signed(key, market, "0x3ccfd60b")})  # withdraw()
    assert r.status_code == 409 and "nothing to withdraw" in problem(r)
    assert head(client) == before
    approve = "0x095ea7b3" + "00" * 12 + market[2:].lower() + f"{7:064x}"
    r = client.post("/api/tx", json={"raw": signed(key, token, approve)})
    assert r.status_code == 200 and r.json()["status"] == 1 and r.json()["from"] == car
    r = client.post("/api/tx", json={"raw": signed(key, token, approve)})  # replayed
    assert r.status_code in (400, 409)


def test_seed_app_flow_late_reply_and_double_accept(client: httpx.Client) -> None:
    buyer = register(client, "Eve", "EV 1")
    s1, s2, late = (
        register(client, n, p, lon=11.96)
        for n, p in (("Fay", "FA 1"), ("Gus", "GU 1"), ("Hal", "HA 1"))
    )
    client.post(f"/api/vehicles/{buyer}/topup", json={"password": PASSWORD, "tokens": 50})
    for seller in (s1, s2, late):  # a reply carries a deposit, back at the reveal
        r = client.post(f"/api/vehicles/{seller}/topup", json={"password": PASSWORD, "tokens": 5})
        assert r.status_code == 200, r.text
    r = client.post(f"/api/vehicles/{buyer}/requests", json=request_body())
    assert r.status_code == 201, r.text
    rid = r.json()["round_id"]
    for seller, cost in ((s1, 0.55), (s2, 0.62)):
        r = client.post(f"/api/rounds/{rid}/replies/{seller}", json=reply_body(c=cost))
        assert r.status_code == 201, r.text
    r = client.post(f"/api/rounds/{rid}/replies/{s1}", json=reply_body())
    assert r.status_code == 409 and "already bid" in problem(r)
    r = client.post(f"/api/rounds/{rid}/replies/{late}", json=reply_body(c=0.9))
    assert r.status_code == 422 and "c (0.9) must lie in [c_min, c_max]" in problem(r)
    view = wait_for(client, rid, "reveal")
    r = client.post(f"/api/rounds/{rid}/replies/{late}", json=reply_body())
    assert r.status_code == 409 and "bid window closed" in problem(r)
    offers = view["offers"]
    assert [o["seller_index"] for o in offers] == [0, 1]
    assert [q["status"] for q in view["requests"]] == ["priced"]
    r = client.post(
        f"/api/rounds/{rid}/accept/{buyer}",
        json={"password": PASSWORD, "seller_index": 1, "kwh": 4},
    )
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["phase"] == "settled" and len(view["trades"]) == 1
    assert [p["status"] for p in view["replies"]] == ["failed", "completed"]
    before = head(client)
    r = client.post(
        f"/api/rounds/{rid}/accept/{buyer}",
        json={"password": PASSWORD, "seller_index": 0, "kwh": 4},
    )
    assert r.status_code == 409 and "round already settled" in problem(r)
    assert head(client) == before
    trade = view["trades"][0]
    info = client.post(f"/api/vehicles/{s2}/collect", json={"password": PASSWORD}).json()
    assert info["balance"] == pytest.approx(5 + trade["payment"]) and info["energy_sold"] == 4
    info = client.post(f"/api/vehicles/{buyer}/collect", json={"password": PASSWORD}).json()
    assert info["balance"] == pytest.approx(50 - trade["payment"]) and info["energy_bought"] == 4


def test_pages_and_openapi(client: httpx.Client) -> None:
    for path in ("/", "/buyer", "/seller", "/rsu", "/docs", "/static/app.js", "/static/style.css"):
        assert client.get(path).status_code == 200, path
    spec = client.get("/openapi.json").json()
    assert "/api/vehicles/{address}/requests" in spec["paths"]


def test_vehicle_with_its_own_key(client: httpx.Client) -> None:
    from eth_account.messages import encode_defunct

    from evtrade.service.wallets import registration_message, top_up_message

    key = Account.create()
    plate = "OWN1"

    def sign(text: str, account: Account = key) -> str:
        return str(account.sign_message(encode_defunct(text=text)).signature.to_0x_hex())

    body = {"name": "Own", "plate": plate, "address": key.address}
    before = head(client)
    r = client.post(
        "/api/vehicles",
        json={
            **body,
            "signature": sign(registration_message(key.address, plate), Account.create()),
        },
    )
    assert r.status_code == 401 and "signature" in problem(r)
    r = client.post("/api/vehicles", json=body)
    assert r.status_code == 422 and "address and signature go together" in problem(r)
    r = client.post("/api/vehicles", json={**body, "password": PASSWORD, "signature": sign("x")})
    assert r.status_code == 422 and "either password" in problem(r)
    assert head(client) == before
    r = client.post(
        "/api/vehicles", json={**body, "signature": sign(registration_message(key.address, plate))}
    )
    assert r.status_code == 201 and r.json()["wallet"] is False, r.text
    # A signed top-up: fresh, by this key, once.
    now = int(time.time())
    signed = {
        "tokens": 5.0,
        "timestamp": now,
        "nonce": 1,
        "signature": sign(top_up_message(key.address, 5.0, now, 1)),
    }
    r = client.post(f"/api/vehicles/{key.address}/topup", json={"tokens": 5.0})
    assert r.status_code == 401 and "unsigned request" in problem(r)
    r = client.post(f"/api/vehicles/{key.address}/topup", json={**signed, "tokens": 50.0})
    assert r.status_code == 401 and "not signed by this vehicle" in problem(r)
    old = now - 600
    r = client.post(
        f"/api/vehicles/{key.address}/topup",
        json={
            "tokens": 5.0,
            "timestamp": old,
            "nonce": 2,
            "signature": sign(top_up_message(key.address, 5.0, old, 2)),
        },
    )
    assert r.status_code == 401 and "timestamp" in problem(r)
    r = client.post(f"/api/vehicles/{key.address}/topup", json=signed)
    assert r.status_code == 200 and r.json()["balance"] == 5.0
    r = client.post(f"/api/vehicles/{key.address}/topup", json=signed)  # replay
    assert r.status_code == 409 and "already used" in problem(r)
    # The wallet's actions need the built-in wallet; this vehicle relays its own transactions.
    r = client.post(f"/api/vehicles/{key.address}/requests", json=request_body())
    assert r.status_code == 403 and "/api/tx" in problem(r)
    assert client.get(f"/api/vehicles/{key.address}").json()["balance"] == 5.0


def test_every_vehicle_endpoint_refuses_strangers_and_wrong_passwords(client: httpx.Client) -> None:
    car = register(client, "Ivy", "IV 1")
    stranger = "0x" + "ab" * 20
    client.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 20})
    rid = client.post(f"/api/vehicles/{car}/requests", json=request_body()).json()["round_id"]
    before = head(client)
    endpoints: list[tuple[str, dict[str, object]]] = [
        ("/api/vehicles/{a}/topup", {"tokens": 1}),
        ("/api/vehicles/{a}/collect", {}),
        ("/api/vehicles/{a}/requests", request_body(round_id=rid)),
        (f"/api/rounds/{rid}/replies/{{a}}", reply_body()),
        (f"/api/rounds/{rid}/accept/{{a}}", {"seller_index": 0, "kwh": 3}),
    ]
    for path, body in endpoints:
        r = client.post(path.format(a=stranger), json={**body, "password": PASSWORD})
        assert r.status_code == 404 and "unknown vehicle" in problem(r), path
        r = client.post(path.format(a=car), json={**body, "password": "not the one"})
        assert r.status_code == 401 and "wrong password" in problem(r), path
        r = client.post(
            path.format(a=car), content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422, path
    assert head(client) == before
