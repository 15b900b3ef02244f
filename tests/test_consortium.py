"""A consortium of RSUs on one anvil (docs/consortium.md), with real parts throughout: the
authority's commands (`evtrade authority ...`), `evtrade serve --deployment --rsu-key` processes
with their own data directories and ports, vehicles certified once that keep their own keys,
join each RSU, ask it for a round and bid on chain at it.

Each round settles (the RSU's clock reveals the sealed bids and settles at the P1 optimum) or,
when its RSU is lost, refunds; tokens are conserved across the consortium. The fast variant runs
two RSUs and one round each; the slow one 20 vehicles roaming over three RSUs, one of them
SIGKILLed mid-round.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks.anvil import running_anvil
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError
from typer.testing import CliRunner

from evtrade.cli import app
from evtrade.ledger.chain import open_chain
from evtrade.ledger.client import Deployment, Ledger, public_key
from evtrade.ledger.keystore import new_keystore
from evtrade.model import Buyer, Seller
from evtrade.service.consortium import open_round_message
from evtrade.service.settings import Settings
from evtrade.service.wallets import registration_message
from evtrade.settlement.audit import audit_round
from evtrade.settlement.views import SealedBid
from tests.service_process import Service, wait_for

AUTHORITY_PW = "authority pw"
RSU_PW = "rsu pw"
#: Tokens the authority mints to each buyer and seller.
BUYER_TOKENS = 100.0
SELLER_TOKENS = 10.0
#: Short windows: bids are sent at once, on chain, by the test's own wallets.
WINDOWS = {"t_limit": 8, "bid_grace": 2, "t_reveal": 4, "t_settle": 8, "poll_seconds": 0.3}
#: The RSUs' places (Jinhua, a few km apart): each its own area.
PLACES = ((29.079, 119.647), (29.100, 119.680), (29.060, 119.620))


def authority(*args: str) -> str:
    result = CliRunner().invoke(
        app, ["authority", *args], env={"EVTRADE_AUTHORITY_PASSWORD": AUTHORITY_PW}
    )
    assert result.exit_code == 0, result.output
    return result.output


@dataclass
class Consortium:
    url: str
    root: Path
    deployment: Path
    ledger: Ledger
    rsus: list[Service] = field(default_factory=list)
    rsu_accounts: list[LocalAccount] = field(default_factory=list)
    minted: float = 0.0

    def chain_args(self) -> list[str]:
        return [
            "--chain-url", self.url, "--keystore", str(self.root / "authority.json"),
            "--deployment", str(self.deployment),
        ]  # fmt: skip

    def vehicle(self, plate: str, tokens: float) -> LocalAccount:
        """A vehicle that keeps its own key, certified once by the authority and topped up."""
        account: LocalAccount = Account.create()
        authority(
            "register-vehicle", *self.chain_args(), "--address", account.address, "--plate", plate
        )
        authority("mint", *self.chain_args(), "--to", account.address, "--tokens", str(tokens))
        self.minted += tokens
        return account


@pytest.fixture
def consortium(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Consortium]:
    """anvil, the authority's deployment, ``request.param`` RSUs registered and serving (or
    ``(RSUs, windows)`` to change some of :data:`WINDOWS`)."""
    n, windows = request.param if isinstance(request.param, tuple) else (request.param, {})
    with ExitStack() as stack:
        url = stack.enter_context(running_anvil("--block-time", "0.1"))
        new_keystore(tmp_path / "authority.json", AUTHORITY_PW)
        deployment = tmp_path / "deployment.json"
        authority(
            "init", "--chain-url", url, "--keystore", str(tmp_path / "authority.json"),
            "--out", str(deployment),
        )  # fmt: skip
        ledger = Ledger(open_chain(chain_url=url), Deployment.load(deployment))
        stack.callback(ledger.chain.close)
        c = Consortium(url, tmp_path, deployment, ledger)
        for i in range(n):
            key = tmp_path / f"rsu{i}.json"
            account = new_keystore(key, RSU_PW)
            authority("register-rsu", *c.chain_args(), "--pubkey", public_key(account).hex())
            lat, lon = PLACES[i]
            service = Service(
                tmp_path / f"rsu{i}",
                chain_url=url,
                deployment=deployment,
                rsu_key=key,
                rsu_key_password=RSU_PW,  # EVTRADE_RSU_KEY_PASSWORD
                faucet_tokens=0,
                rsu_lat=lat,
                rsu_lon=lon,
                **{**WINDOWS, **windows},
            )
            service.start()
            stack.callback(service.stop)
            c.rsus.append(service)
            c.rsu_accounts.append(account)
        yield c


def sign(account: LocalAccount, text: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


def join(client: httpx.Client, vehicle: LocalAccount, name: str, plate: str) -> None:
    """A certified vehicle joins an RSU with its own key (no transaction)."""
    signature = sign(vehicle, registration_message(vehicle.address, plate))
    body = {"name": name, "plate": plate, "address": vehicle.address, "signature": signature}
    r = client.post("/api/vehicles", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["valid"] is True


def open_round(client: httpx.Client, rsu: str, vehicle: LocalAccount) -> int:
    now, nonce = int(time.time()), time.time_ns()
    text = open_round_message(rsu, vehicle.address, now, nonce)
    body = {"address": vehicle.address, "signature": sign(vehicle, text), "timestamp": now}
    r = client.post("/api/rounds", json={**body, "nonce": nonce})
    assert r.status_code == 201, r.text
    return int(r.json()["round_id"])


def request_at(c: Consortium, rsu: int, rid: int, buyer: LocalAccount) -> SealedBid:
    """The buyer's request, sealed to the RSU, sent from its wallet."""
    lat, lon = PLACES[rsu]
    key = c.ledger.rsu_pubkey(c.rsu_accounts[rsu].address)
    b = Buyer(buyer.address, 0.95, 0.6, 1.0, 2.0, 10.0, 1.0, lat, lon)
    return c.ledger.post_request(buyer, rid, b, rsu_pubkey=key)


def reply_at(
    c: Consortium, rsu: int, rid: int, seller: LocalAccount, s_r: float = 10.0
) -> SealedBid:
    """The seller's reply, sealed to the RSU, sent from its wallet.

    The seller's spare energy s_t - s_r is reserved for the round on the one market contract, so
    a seller bidding at two RSUs at once declares it once: the second reply may sell only what
    the first did not reserve."""
    lat, lon = PLACES[rsu]
    key = c.ledger.rsu_pubkey(c.rsu_accounts[rsu].address)
    s = Seller(seller.address, 0.55, 0.5, 0.8, 20.0, s_r, 0.05, lat, lon + 0.01)
    return c.ledger.post_reply(seller, rid, s, rsu_pubkey=key)


def bids(
    c: Consortium, rsu: int, rid: int, buyer: LocalAccount, seller: LocalAccount, s_r: float = 10.0
) -> tuple[SealedBid, SealedBid]:
    """The buyer's request and the seller's reply (:func:`request_at`, :func:`reply_at`)."""
    return request_at(c, rsu, rid, buyer), reply_at(c, rsu, rid, seller, s_r)


def settled(c: Consortium, rsu: int, rid: int) -> dict[str, Any]:
    with c.rsus[rsu].client() as client:
        view = wait_for(client, rid, "settled")
        detail = client.get(f"/api/rounds/{rid}").json()
    assert detail["audit"]["ok"], detail["audit"]
    assert view["trades"], view
    return view


def collect(c: Consortium, vehicles: list[LocalAccount], requests: list[SealedBid]) -> None:
    """Buyers take back what they did not pay, sellers pull their credit."""
    for bid in requests:
        owner = next(v for v in vehicles if v.address == bid.bidder)
        c.ledger.claim_refund(owner, bid.round_id, bid.index)
    for v in vehicles:
        if c.ledger.credit(v.address):
            c.ledger.withdraw(v)


def conserved(c: Consortium, vehicles: list[LocalAccount]) -> None:
    """Every minted token is held by a vehicle, credited, still in the market, or burned."""
    held = sum(c.ledger.balance(v.address) + c.ledger.credit(v.address) for v in vehicles)
    in_market = c.ledger.balance(c.ledger.market.address)
    credited = sum(c.ledger.credit(v.address) for v in vehicles)
    assert held + (in_market - credited) + c.ledger.burned() == round(c.minted * 10**18)


def roundrows(rows: list[dict[str, Any]], rid: int) -> set[tuple[str, str]]:
    """(kind, RSU) of a vehicle's history rows of round ``rid``."""
    return {(r["kind"], r["rsu"]) for r in rows if r["round_id"] == rid}


def paid(c: Consortium, rids: list[int]) -> int:
    return sum(t.payment for rid in rids for t in c.ledger.round_view(rid).trades)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"deployment": "d.json", "rsu_key": "k.json"}, "'deployment': needs 'chain_url'"),
        ({"deployment": "d.json", "chain_url": "http://x"}, "'deployment': needs 'rsu_key'"),
        ({"rsu_key": "k.json"}, "'rsu_key': only with 'deployment'"),
        (
            {"deployment": "d.json", "chain_url": "http://x", "rsu_key": "k", "faucet_tokens": 5},
            "'faucet_tokens': must be 0 in consortium mode",
        ),
    ],
)
def test_consortium_settings_are_refused_naming_the_setting(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate(values)


@pytest.mark.parametrize("consortium", [2], indirect=True)
def test_two_rsus_one_vehicle_pair_roams_and_each_round_settles(consortium: Consortium) -> None:
    c = consortium
    buyer = c.vehicle("EV 1", BUYER_TOKENS)
    seller = c.vehicle("EV 2", SELLER_TOKENS)
    rids: list[int] = []
    requests: list[SealedBid] = []
    for i, service in enumerate(c.rsus):
        with service.client() as client:
            # The plate it joins with is the one the authority certified to its address.
            wrong = sign(buyer, registration_message(buyer.address, "EV9"))
            body = {"name": "b", "plate": "EV9", "address": buyer.address, "signature": wrong}
            r = client.post("/api/vehicles", json=body)
            assert r.status_code == 403 and "'plate'" in r.text, r.text
            join(client, buyer, "buyer", "EV1")
            join(client, seller, "seller", "EV2")
            # Certified once, by the authority: an RSU of a consortium certifies nobody itself.
            r = client.post(
                "/api/vehicles", json={"name": "x", "plate": "X1", "password": "correct horse"}
            )
            assert r.status_code == 403, r.text
            rid = open_round(client, c.rsu_accounts[i].address, buyer)
        # 5 kWh spare reserved at the first RSU, 10 - 5 left for the second.
        request, _ = bids(c, i, rid, buyer, seller, s_r=15.0 if i == 0 else 10.0)
        rids.append(rid)
        requests.append(request)
    for i, rid in enumerate(rids):
        view = settled(c, i, rid)
        assert view["rsu"] == c.rsu_accounts[i].address
    # The history follows the vehicle: read at either RSU, it lists its bids and trades at both.
    for service in c.rsus:
        with service.client() as client:
            buyer_rows = client.get(f"/api/vehicles/{buyer.address}/history").json()
            seller_rows = client.get(f"/api/vehicles/{seller.address}/history").json()
        for i, rid in enumerate(rids):
            at = c.rsu_accounts[i].address
            assert roundrows(buyer_rows, rid) == {("request", at), ("trade", at)}, buyer_rows
            assert roundrows(seller_rows, rid) == {("reply", at), ("trade", at)}, seller_rows
        assert all(r["status"] == "confirmed" and r["block"] and r["tx"] for r in buyer_rows)
        assert len({r["tx"] for r in buyer_rows}) == len(buyer_rows)
    # Each RSU indexes its own rounds only, and shows the consortium.
    for i, service in enumerate(c.rsus):
        with service.client() as client:
            assert [v["round_id"] for v in client.get("/api/rounds").json()] == [rids[i]]
            info = client.get("/api/consortium").json()
            assert 'id="consortium"' in client.get("/rsu").text  # the dashboard draws it
        assert info["mode"] == "consortium" and info["votes"] == []
        assert {m["address"] for m in info["members"]} == {a.address for a in c.rsu_accounts}
        assert [m["this_rsu"] for m in info["members"]] == [j == i for j in range(len(c.rsus))]
    before = c.ledger.balance(seller.address)
    collect(c, [buyer, seller], requests)
    payments = paid(c, rids)
    assert payments > 0
    assert c.ledger.balance(buyer.address) == round(BUYER_TOKENS * 10**18) - payments
    assert c.ledger.balance(seller.address) >= before + payments
    assert c.ledger.burned() == 0
    conserved(c, [buyer, seller])
    # Membership by vote: RSU 0 votes RSU 1 out (1 of 2 is no majority), then RSU 1 itself.
    first, second = c.rsu_accounts
    for voter, shown in ((0, [first.address]), (1, None)):
        result = CliRunner().invoke(
            app,
            [
                "rsu", "vote", "--chain-url", c.url, "--deployment", str(c.deployment),
                "--rsu-key", str(c.root / f"rsu{voter}.json"), "--candidate", second.address,
                "--remove",
            ],
            env={"EVTRADE_RSU_KEY_PASSWORD": RSU_PW},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        with c.rsus[0].client() as client:
            info = client.get("/api/consortium").json()
        if shown is not None:
            assert info["votes"] == [
                {
                    "candidate": second.address,
                    "add": False,
                    "voters": shown,
                    "votes": 1,
                    "needed": 2,
                }
            ]
        else:
            assert info["votes"] == []
            assert [m["address"] for m in info["members"]] == [first.address]
    # A key that is not an RSU's (the authority's) is refused before the service listens.
    out = subprocess.run(
        [
            sys.executable, "-m", "evtrade", "serve", "--chain-url", c.url,
            "--deployment", str(c.deployment), "--rsu-key", str(c.root / "authority.json"),
            "--data-dir", str(c.root / "intruder"), "--port", "9",
        ],
        env={**os.environ, "EVTRADE_RSU_KEY_PASSWORD": AUTHORITY_PW},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith("error: setting 'rsu_key'") and "is not an RSU" in out.stderr


#: The slow test's vehicles: this many buyers and as many sellers.
ROAMING_PAIRS = 10


@pytest.mark.slow
@pytest.mark.parametrize("consortium", [(3, {"t_limit": 30})], indirect=True)
def test_twenty_vehicles_roam_three_rsus_one_lost_mid_round_refunds_the_others_trade_on(
    consortium: Consortium,
) -> None:
    """20 vehicles certified once roam over three RSUs: each bids at two of them. RSU 2 is
    SIGKILLed mid-round, never to come back; its buyers take their escrow back after the window,
    the others trade on. Every settled round passes the audit; tokens and energy are conserved."""
    c = consortium
    buyers = [c.vehicle(f"B {k}", BUYER_TOKENS) for k in range(ROAMING_PAIRS)]
    sellers = [c.vehicle(f"S {k}", SELLER_TOKENS) for k in range(ROAMING_PAIRS)]
    vehicles = buyers + sellers
    plates = {
        v.address: f"{'BS'[k // ROAMING_PAIRS]}{k % ROAMING_PAIRS}" for k, v in enumerate(vehicles)
    }
    for service in c.rsus:  # each joins every RSU once, with the plate it was certified
        with service.client() as client:
            for v in vehicles:
                join(client, v, plates[v.address], plates[v.address])
    # First stop: vehicle k at RSU k mod 3; second: 0 <-> 1, and those from RSU 2 to 0 or 1.
    first = {v.address: k % 3 for k, v in enumerate(vehicles)}
    second = {v.address: (1, 0, k % 2)[first[v.address]] for k, v in enumerate(vehicles)}
    requests: list[SealedBid] = []
    replies: list[SealedBid] = []
    settled_rids: list[int] = []
    lost_rid = -1
    for stop in (first, second):
        rids: dict[int, int] = {}
        for i in sorted(set(stop.values())):
            here = [v for v in vehicles if stop[v.address] == i]
            with c.rsus[i].client() as client:
                rid = open_round(client, c.rsu_accounts[i].address, here[0])
            rids[i] = rid
            for v in here:
                if v in buyers:
                    requests.append(request_at(c, i, rid, v))
                else:
                    replies.append(reply_at(c, i, rid, v))
        if stop is first:
            # RSU 2 is lost mid-round, bids in, nothing revealed, never to come back.
            c.rsus[2].kill()
            lost_rid = rids.pop(2)
        for i, rid in rids.items():
            settled(c, i, rid)
            settled_rids.append(rid)
        if stop is first:
            # The lost round's bidders reveal their own values (their wallets kept them), and
            # once its settlement window passed unsettled its buyers take their escrow back.
            lost = c.ledger.round_view(lost_rid)
            c.ledger.chain.wait_until(lost.deadline + 1)
            for bid in requests + replies:
                if bid.round_id == lost_rid:
                    owner = next(v for v in vehicles if v.address == bid.bidder)
                    c.ledger.reveal(owner, bid)
            c.ledger.chain.wait_until(lost.settle_deadline + 1)
            for q in lost.requests:
                owner = next(v for v in buyers if v.address == q.buyer)
                bid = next(b for b in requests if b.round_id == lost_rid and b.bidder == q.buyer)
                before = c.ledger.balance(owner.address)
                c.ledger.claim_refund(owner, lost_rid, bid.index)
                assert c.ledger.balance(owner.address) == before + q.escrow
                requests.remove(bid)
            assert lost.requests and not c.ledger.round_view(lost_rid).settled
    # Every vehicle bid at two RSUs; every RSU ran a round.
    assert all(first[v.address] != second[v.address] for v in vehicles)
    assert {c.ledger.round_view(r).rsu for r in [*settled_rids, lost_rid]} == {
        a.address for a in c.rsu_accounts
    }
    for rid in settled_rids:
        view = c.ledger.round_view(rid)
        assert view.settled and view.trades
        report = audit_round(view)
        assert report.ok, report.to_dict()
    collect(c, vehicles, requests)
    assert c.ledger.burned() == 0
    assert paid(c, settled_rids) > 0
    conserved(c, vehicles)
    # Energy: every kWh bought was sold, and each is a settled trade's.
    bought = sum(c.ledger.energy(v.address)[0] for v in vehicles)
    sold = sum(c.ledger.energy(v.address)[1] for v in vehicles)
    traded = sum(t.energy for r in settled_rids for t in c.ledger.round_view(r).trades)
    assert bought == sold == traded > 0
