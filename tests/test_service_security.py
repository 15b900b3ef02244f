"""The RSU service against an attacker (issue 11, items 1-7; docs/security.md).

Every attack goes over real HTTP to `evtrade serve` in a child process: hostile bodies, replayed
and re-encoded signatures, free money, racing registrations, numbers JSON cannot carry, privacy
of the vehicles' details, and password guessing. The throttle's back-off is tested with an
injected clock (no sleeping).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from evtrade.errors import SignatureError, ThrottledError
from evtrade.service.security import (
    SECP256K1_N,
    BidRate,
    Policy,
    Throttle,
    recover_canonical,
)
from evtrade.service.wallets import (
    details_message,
    mint_message,
    registration_message,
    top_up_message,
)
from tests.service_process import PASSWORD, Service, register, reply_body, request_body

FAUCET = 100.0
DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 kB: segfaulted the C parser (issue 11, item 1)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("sec"), faucet_tokens=FAUCET, t_limit=30, t_reveal=6)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def alive(service: Service, client: httpx.Client) -> bool:
    assert service.proc is not None
    return service.proc.poll() is None and client.get("/api/rounds").status_code == 200


def sign(account: LocalAccount, text: str) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


def own_key_vehicle(client: httpx.Client, plate: str) -> LocalAccount:
    key: LocalAccount = Account.create()
    r = client.post(
        "/api/vehicles",
        json={
            "name": "Own",
            "plate": plate,
            "address": key.address,
            "signature": sign(key, registration_message(key.address, plate.replace(" ", ""))),
        },
    )
    assert r.status_code == 201, r.text
    return key


def post_routes(client: httpx.Client, car: str) -> list[str]:
    spec = client.get("/openapi.json").json()
    return [
        path.replace("{address}", car).replace("{round_id}", "0")
        for path, ops in spec["paths"].items()
        if "post" in ops
    ]


# -- 1. bounded bodies ---------------------------------------------------------------------------


def test_deep_and_huge_bodies_get_4xx_on_every_post_route(
    service: Service, client: httpx.Client
) -> None:
    car = register(client, "Deep", "DEEP 1")
    routes = post_routes(client, car)
    assert len(routes) >= 9, routes
    bodies = [
        DEEP,
        b'{"password": ' + b"[" * 50 + b"]" * 50 + b"}",
        b'{"a": "' + b"x" * (300 * 1024) + b'"}',  # over the 256 KiB limit
        b"\xff\xfe not utf-8",
    ]
    for path in routes:
        for body in bodies:
            r = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (path, body[:20], r.status_code, r.text[:200])
            assert "detail" in r.json()
    assert alive(service, client)
    # A chunked body (no Content-Length) is cut off at the limit too.
    r = client.post(
        "/api/tx",
        content=iter([b'{"raw": "0x', b"ab" * 200_000, b'"}']),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert alive(service, client)


# -- 5. numbers and ids that used to be 500s --------------------------------------------------


def test_non_finite_numbers_and_huge_ids_are_4xx(service: Service, client: httpx.Client) -> None:
    car = register(client, "Num", "NUM 1")
    numbers = {
        f"/api/vehicles/{car}/topup": {"tokens": 1, "password": PASSWORD},
        f"/api/vehicles/{car}/requests": request_body(),
        f"/api/rounds/0/replies/{car}": reply_body(),
        f"/api/rounds/0/accept/{car}": {"password": PASSWORD, "seller_index": 0, "kwh": 1},
        "/api/vehicles": {"name": "N", "plate": "NUM 2", "password": PASSWORD, "lat": 1, "lon": 1},
    }
    for path, good in numbers.items():
        for field, value in good.items():
            if not isinstance(value, int | float):
                continue
            for bad in ("NaN", "Infinity", "-Infinity", "1e309", "1" * 400):
                text = json.dumps(good).replace(
                    f'"{field}": {json.dumps(value)}', f'"{field}": {bad}'
                )
                assert bad in text
                r = client.post(path, content=text, headers={"Content-Type": "application/json"})
                assert r.status_code == 422, (path, field, bad, r.status_code, r.text[:200])
                json.loads(r.text)  # the reply itself is valid JSON
    for rid in (2**53, 2**63, 2**64, 10**30, -1):
        r = client.get(f"/api/rounds/{rid}")
        assert r.status_code == 422, (rid, r.text)
        r = client.post(f"/api/rounds/{rid}/replies/{car}", json=reply_body())
        assert r.status_code == 422, (rid, r.text)
    r = client.post(f"/api/vehicles/{car}/requests", json=request_body(round_id=2**63))
    assert r.status_code == 422
    r = client.post(
        "/api/vehicles", json={"name": "a\x00b", "plate": "NUL 1", "password": PASSWORD}
    )
    assert r.status_code == 422 and "name" in r.text
    for not_an_address in ("bob", "0x1234", "0x" + "zz" * 20, "0x" + "ab" * 21):
        r = client.post(
            f"/api/vehicles/{not_an_address}/topup",
            json={
                "tokens": 1,
                "timestamp": int(time.time()),
                "nonce": 1,
                "signature": "0x" + "1b" * 65,
            },
        )
        assert r.status_code == 422, (not_an_address, r.text)
    r = client.post(
        f"/api/vehicles/{car}/topup",
        content=b'{"tokens": 1, "timestamp": 1' + b"0" * 400 + b', "nonce": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    r = client.post(
        f"/api/vehicles/{car}/topup",
        json={"tokens": 1, "timestamp": 2**62, "nonce": 1, "signature": "0x" + "1b" * 65},
    )
    assert r.status_code == 422
    assert alive(service, client)


# -- 2. replayed and re-encoded signed requests ------------------------------------------------


def reencodings(signature: str) -> list[str]:
    """The other encodings of one signature that recover the same key: v as 0/1, the high-s
    twin (n - s, flipped v) as 27/28 and as 0/1."""
    data = bytes.fromhex(signature[2:])
    r, s, v = data[:32], int.from_bytes(data[32:64], "big"), data[64]
    twin_s = (SECP256K1_N - s).to_bytes(32, "big")
    flipped = 55 - v  # 27 <-> 28
    return [
        "0x" + (r + data[32:64] + bytes([v - 27])).hex(),
        "0x" + (r + twin_s + bytes([flipped])).hex(),
        "0x" + (r + twin_s + bytes([flipped - 27])).hex(),
    ]


def test_the_reencodings_recover_the_same_key_but_only_the_canonical_one_is_accepted() -> None:
    key = Account.create()
    text = "evtrade: a message"
    original = sign(key, text)
    assert recover_canonical(text, original) == key.address
    for other in reencodings(original):
        # eth-account itself accepts them: this is the malleability the service must refuse
        assert Account.recover_message(encode_defunct(text=text), signature=other) == key.address
        with pytest.raises(SignatureError):
            recover_canonical(text, other)


def test_a_signed_top_up_is_accepted_once_in_any_encoding(client: httpx.Client) -> None:
    key = own_key_vehicle(client, "REPLAY 1")
    now = int(time.time())
    signature = sign(key, top_up_message(key.address, 5.0, now, 7))
    body = {"tokens": 5.0, "timestamp": now, "nonce": 7}
    path = f"/api/vehicles/{key.address}/topup"
    r = client.post(path, json={**body, "signature": signature})
    assert r.status_code == 200, r.text
    for other in [signature, *reencodings(signature)]:
        r = client.post(path, json={**body, "signature": other})
        assert r.status_code in (401, 409), (other, r.text)
    # The integer 5 is the same request as 5.0: the service signs what it reads.
    r = client.post(path, json={**body, "tokens": 5, "signature": signature})
    assert r.status_code == 409
    assert client.get(f"/api/vehicles/{key.address}").json()["balance"] == 5.0
    # A new nonce is a new request.
    again = sign(key, top_up_message(key.address, 5.0, now, 8))
    r = client.post(path, json={**body, "nonce": 8, "signature": again})
    assert r.status_code == 200
    assert client.get(f"/api/vehicles/{key.address}").json()["balance"] == 10.0
    r = client.post(path, json={"tokens": 5.0, "timestamp": now, "signature": again})
    assert r.status_code == 401 and "nonce" in r.json()["detail"]


# -- 3. minting is the authority's act -------------------------------------------------------


def test_faucet_is_capped_per_vehicle_and_the_pages_say_so(client: httpx.Client) -> None:
    car = register(client, "Tap", "TAP 1")
    path = f"/api/vehicles/{car}/topup"
    assert client.post(path, json={"password": PASSWORD, "tokens": 60}).status_code == 200
    r = client.post(path, json={"password": PASSWORD, "tokens": 50})
    assert r.status_code == 403 and "40 left" in r.json()["detail"]
    r = client.post(path, json={"password": PASSWORD, "tokens": 1e9})
    assert r.status_code == 403
    r = client.post(path, json={"password": PASSWORD, "tokens": 40})
    assert r.status_code == 200 and r.json()["faucet_left"] == 0
    assert client.get(f"/api/vehicles/{car}").json()["balance"] == FAUCET
    assert "development faucet" in client.get("/buyer").text
    assert f"up to\n{FAUCET:,.10g} tokens" in client.get("/buyer").text


def test_the_authority_mints_with_its_key_only(service: Service, client: httpx.Client) -> None:
    from evtrade.ledger.operators import load_operators

    authority = load_operators(service.data_dir).authority
    car = register(client, "Minted", "MINT 1")
    now = int(time.time())
    path = f"/api/vehicles/{car}/mint"
    body = {"tokens": 500.0, "timestamp": now, "nonce": 1}
    by_car = sign(Account.create(), mint_message(car, 500.0, now, 1))
    r = client.post(path, json={**body, "signature": by_car})
    assert r.status_code == 401 and "authority" in r.json()["detail"]
    good = sign(authority, mint_message(car, 500.0, now, 1))
    r = client.post(path, json={**body, "signature": good})
    assert r.status_code == 200, r.text
    r = client.post(path, json={**body, "signature": good})
    assert r.status_code == 409
    assert client.get(f"/api/vehicles/{car}").json()["balance"] == 500.0


def test_faucet_is_off_by_default(tmp_path: Path) -> None:
    from evtrade.service.settings import Settings

    assert Settings().faucet_tokens == 0
    svc = Service(tmp_path / "prod", faucet_tokens=0)
    svc.start()
    try:
        with svc.client() as c:
            car = register(c, "Prod", "PROD 1")
            r = c.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 1})
            assert r.status_code == 403 and "authority" in r.json()["detail"]
            key = own_key_vehicle(c, "PROD 2")
            now = int(time.time())
            r = c.post(
                f"/api/vehicles/{key.address}/topup",
                json={
                    "tokens": 1.0,
                    "timestamp": now,
                    "nonce": 1,
                    "signature": sign(key, top_up_message(key.address, 1.0, now, 1)),
                },
            )
            assert r.status_code == 403
            assert c.get(f"/api/vehicles/{car}").json()["balance"] == 0
            assert c.get(f"/api/vehicles/{key.address}").json()["balance"] == 0
            page = c.get("/buyer").text
            assert "minted by the authority only" in page and 'id="topup"' not in page
    finally:
        svc.stop()


# -- 4. one plate, one address ---------------------------------------------------------------


def test_concurrent_registrations_of_one_plate_or_address(
    service: Service, client: httpx.Client
) -> None:
    def post(body: dict[str, object]) -> int:
        with service.client() as c:
            return c.post("/api/vehicles", json=body).status_code

    same_plate = [{"name": f"P{k}", "plate": "SAME 1", "password": PASSWORD} for k in range(4)]
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(post, same_plate))
    assert codes == [201, 409, 409, 409]
    key = Account.create()
    same_address = [
        {
            "name": f"A{k}",
            "plate": f"ADDR {k}",
            "address": key.address,
            "signature": sign(key, registration_message(key.address, f"ADDR{k}")),
        }
        for k in range(3)
    ]
    with ThreadPoolExecutor(3) as pool:
        codes = sorted(pool.map(post, same_address))
    assert codes == [201, 409, 409]
    assert alive(service, client)


# -- 6. privacy ---------------------------------------------------------------------------------


def test_public_views_show_only_what_the_chain_shows(client: httpx.Client) -> None:
    car = register(client, "Secret Name", "PRIV 1", lat=57.1234, lon=11.5678)
    public = client.get(f"/api/vehicles/{car}").json()
    assert set(public) == {
        "address",
        "plate_hash",
        "valid",
        "balance",
        "credit",
        "energy_bought",
        "energy_sold",
    }
    from evtrade.ledger.client import plate_hash

    assert public["plate_hash"] == "0x" + plate_hash("PRIV1").hex()
    listing = client.get("/api/vehicles").text
    for secret in ("Secret Name", "PRIV1", "PRIV 1", "57.1234", "11.5678"):
        assert secret not in listing and secret not in json.dumps(public)
    r = client.post(f"/api/vehicles/{car}/details", json={"password": "wrong guess"})
    assert r.status_code == 401
    r = client.post(f"/api/vehicles/{car}/details", json={})
    assert r.status_code == 401
    mine = client.post(f"/api/vehicles/{car}/details", json={"password": PASSWORD}).json()
    assert (mine["name"], mine["plate"], mine["lat"], mine["lon"]) == (
        "Secret Name",
        "PRIV1",
        57.1234,
        11.5678,
    )
    # A vehicle that keeps its key signs for its details; a signature is good once.
    key = own_key_vehicle(client, "PRIV 2")
    now = int(time.time())
    signed = {
        "timestamp": now,
        "nonce": 3,
        "signature": sign(key, details_message(key.address, now, 3)),
    }
    r = client.post(f"/api/vehicles/{key.address}/details", json=signed)
    assert r.status_code == 200 and r.json()["plate"] == "PRIV2"
    assert client.post(f"/api/vehicles/{key.address}/details", json=signed).status_code == 409
    # Round views carry accounts, not names.
    client.post(f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 20})
    r = client.post(f"/api/vehicles/{car}/requests", json=request_body())
    assert r.status_code == 201, r.text
    rounds = client.get("/api/rounds").text
    assert "Secret Name" not in rounds and "PRIV" not in rounds


# -- 7. password guessing ------------------------------------------------------------------------


def test_password_guessing_is_throttled_with_retry_after(client: httpx.Client) -> None:
    car = register(client, "Guessed", "GUESS 1")
    path = f"/api/vehicles/{car}/collect"
    codes = [client.post(path, json={"password": f"guess {k}"}).status_code for k in range(5)]
    assert codes == [401] * 5  # five mistakes are free
    # Then the back-off (1 s, 2 s, 4 s...) refuses guesses before any hashing.
    for k in range(5, 40):
        r = client.post(path, json={"password": f"guess {k}"})
        if r.status_code == 429:
            break
        assert r.status_code == 401
    assert r.status_code == 429 and "too many wrong passwords" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) >= 1
    # Another vehicle is not locked for this client (5 free per vehicle, 20 per client).
    other = register(client, "Other", "GUESS 2")
    assert (
        client.post(f"/api/vehicles/{other}/collect", json={"password": PASSWORD}).status_code
        == 200
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def locked_for(throttle: Throttle, vehicle: str, client: str) -> int:
    try:
        throttle.check(vehicle, client)
    except ThrottledError as exc:
        return exc.retry_after
    return 0


def test_back_off_doubles_caps_and_expires() -> None:
    clock = Clock()
    t = Throttle(clock)
    for _ in range(5):
        assert locked_for(t, "0xcar", "1.2.3.4") == 0
        t.failed("0xcar", "1.2.3.4")
    assert locked_for(t, "0xcar", "1.2.3.4") == 0  # five mistakes are free
    waits = []
    for _ in range(12):
        t.failed("0xcar", "1.2.3.4")
        waits.append(locked_for(t, "0xcar", "1.2.3.4"))
    assert waits[:5] == [1, 2, 4, 8, 16]
    assert max(waits) == 900  # capped at 15 minutes
    # Others are not locked out: another client, and this client for another vehicle.
    assert locked_for(t, "0xcar", "5.6.7.8") == 0
    assert locked_for(t, "0xother", "1.2.3.4") == 0
    clock.now += 901
    assert locked_for(t, "0xcar", "1.2.3.4") == 0  # every lock expires
    clock.now += 3600
    t.failed("0xcar", "1.2.3.4")  # and after an hour the count starts again
    assert locked_for(t, "0xcar", "1.2.3.4") == 0


def test_a_distributed_guesser_cannot_lock_the_driver_out() -> None:
    clock = Clock()
    t = Throttle(clock, vehicle=Policy(free=20, base=1.0, cap=900.0, forget=3600.0))
    t.succeeded("0xcar", "driver")  # the driver's client unlocked the vehicle before
    for k in range(200):  # 200 clients, one wrong guess each
        t.failed("0xcar", f"bot{k}")
    assert locked_for(t, "0xcar", "a new bot") > 0  # the vehicle is locked for strangers
    assert locked_for(t, "0xcar", "driver") == 0  # not for the driver's known client
    clock.now += 901
    assert locked_for(t, "0xcar", "a new device") == 0  # and for nobody once it expires
    assert all(math.isfinite(p.cap) for p in t.policies.values())


def test_client_wide_lock_and_bounded_memory() -> None:
    clock = Clock()
    t = Throttle(clock, max_entries=50)
    for k in range(21):
        t.failed(f"0xcar{k}", "guesser")
    assert locked_for(t, "0xfresh", "guesser") == 1  # 20 free across vehicles, then back-off
    assert locked_for(t, "0xfresh", "someone else") == 0
    for k in range(1000):
        t.failed(f"0xmany{k}", f"client{k}")
    assert len(t._records) <= 50


def test_the_middleware_restores_the_recursion_limit_and_refuses_before_the_app() -> None:
    import asyncio
    import sys

    import evtrade.ledger.chain  # noqa: F401  (py-evm raises the limit on import)
    from evtrade.model.safejson import SAFE_RECURSION_LIMIT
    from evtrade.service.security import BoundedBody

    reached: list[bytes] = []

    async def app(scope: object, receive: object, send: object) -> None:
        message = await receive()  # type: ignore[operator]
        reached.append(message["body"])

    async def call(body: bytes) -> int:
        chunks = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "headers": [], "client": ("10.0.0.1", 1)}
        await BoundedBody(app)(scope, receive, send)  # type: ignore[arg-type]
        return int(sent[0]["status"]) if sent else 0  # type: ignore[call-overload]

    sys.setrecursionlimit(100_000)
    try:
        assert asyncio.run(call(DEEP)) == 422
        assert sys.getrecursionlimit() == SAFE_RECURSION_LIMIT
        assert asyncio.run(call(b'{"tokens": NaN}')) == 422
        assert reached == []
        assert asyncio.run(call(b'{"tokens": 1}')) == 0 and reached == [b'{"tokens": 1}']
    finally:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), SAFE_RECURSION_LIMIT))


def test_the_kdf_gate_bounds_concurrent_password_checks() -> None:
    from evtrade.service.security import KdfGate

    gate = KdfGate(slots=1, wait=0.01)
    with gate, pytest.raises(ThrottledError), gate:
        pass
    with gate:  # the slot is free again
        pass


def test_a_vehicle_bidding_beyond_its_rate_gets_429(client: httpx.Client) -> None:
    # Issue 12, item 6: the service rate-limits bids per identity. A vehicle with no tokens gets
    # 402 for each request (counted: it asked), then 429 once its minute's allowance (12) is spent;
    # another vehicle is unaffected.
    car = register(client, "Flooder", "FLOOD 1")
    codes = [
        client.post(f"/api/vehicles/{car}/requests", json=request_body()).status_code
        for _ in range(13)
    ]
    assert codes == [402] * 12 + [429], codes
    r = client.post(f"/api/vehicles/{car}/requests", json=request_body())
    assert r.status_code == 429 and "bids a minute" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) >= 1
    other = register(client, "Calm", "FLOOD 2")
    assert client.post(f"/api/vehicles/{other}/requests", json=request_body()).status_code == 402


def test_bid_rate_refills_with_time_and_bounds_memory() -> None:
    clock = Clock()
    rate = BidRate(6, clock=clock, max_entries=3)  # 6 a minute: one every 10 s
    for _ in range(6):
        rate.take("0xA")
    with pytest.raises(ThrottledError) as refused:
        rate.take("0xa")  # the same vehicle, whatever the case of its address
    assert refused.value.retry_after == 10
    clock.now += 10
    rate.take("0xA")  # one bid back after 10 s
    with pytest.raises(ThrottledError):
        rate.take("0xA")
    for k in range(5):
        rate.take(f"0xB{k}")
    assert len(rate._buckets) == 3
    with pytest.raises(ValueError, match="per_minute"):
        BidRate(0)
