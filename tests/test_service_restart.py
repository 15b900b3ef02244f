"""Kill the service (SIGKILL) in the middle of a round and start it again: no trade lost, none
settled twice, the same history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service_process import (
    PASSWORD,
    Service,
    register,
    reply_body,
    request_body,
    wait_for,
    wait_until,
)


# Slow (`make test-slow`): test_service_faults' SIGKILL test ("mined") runs by default and kills
# the service later in the same round (during the reveal, then the settlement) with the same checks.
@pytest.mark.slow
def test_kill_mid_round_then_restart(tmp_path: Path) -> None:
    service = Service(tmp_path / "svc", t_limit=20, t_reveal=3)
    service.start()
    try:
        with service.client() as client:
            buyers = [register(client, f"B{k}", f"RB {k}") for k in range(2)]
            sellers = [register(client, f"S{k}", f"RS {k}", lon=11.96) for k in range(2)]
            for car in buyers + sellers:  # sellers too: bids may carry a deposit
                r = client.post(
                    f"/api/vehicles/{car}/topup", json={"password": PASSWORD, "tokens": 40}
                )
                assert r.status_code == 200, r.text
            rid = client.post(f"/api/vehicles/{buyers[0]}/requests", json=request_body()).json()[
                "round_id"
            ]
            r = client.post(
                f"/api/vehicles/{buyers[1]}/requests",
                json=request_body(round_id=rid, v=0.9, b_min=1, b_max=6),
            )
            assert r.status_code == 201, r.text
            for s, cost in zip(sellers, (0.55, 0.58), strict=True):
                assert (
                    client.post(
                        f"/api/rounds/{rid}/replies/{s}", json=reply_body(c=cost)
                    ).status_code
                    == 201
                )
            # The index catches up with the chain on the RSU's next tick.
            wait_until(
                client, rid, lambda v: len(v["requests"]) == 2 and len(v["replies"]) == 2, "4 bids"
            )
            before = client.get("/api/rounds").json()
        service.kill()  # bids sealed on chain, nothing revealed, nothing settled

        service.start()
        with service.client() as client:
            again = client.get("/api/rounds").json()
            assert [r["round_id"] for r in again] == [r["round_id"] for r in before]
            assert again[0]["requests"] == before[0]["requests"] or again[0]["phase"] != "bidding"
            view = wait_for(client, rid, "settled")  # the restarted RSU reveals and settles
            trades = view["trades"]
            optimal = [o for o in view["offers"] if o["kwh"] > 1e-6]
            assert len(trades) == len(optimal) > 0
            blocks = {t["block"] for t in trades}
            assert len(blocks) == 1  # one settlement transaction
        service.kill()  # after settlement, before anyone collects

        service.start()
        with service.client() as client:
            view = wait_for(client, rid, "settled")
            assert view["trades"] == trades  # same history, nothing settled twice
            info = client.post(
                f"/api/vehicles/{sellers[0]}/collect", json={"password": PASSWORD}
            ).json()
            earned = sum(t["payment"] for t in trades if t["seller"] == sellers[0])
            assert info["balance"] == pytest.approx(40 + earned)
    finally:
        service.stop()
