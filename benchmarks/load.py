"""Load on the RSU service: N vehicles register, top up and bid into one round over HTTP.

Usage: .venv/bin/python benchmarks/load.py [--vehicles 100] [--concurrency 16] [--url URL]
                                           [--set NAME=VALUE ...] [--timeout 900] [--format json]

Without ``--url`` it starts a fresh ``evtrade serve`` on the embedded chain in a temporary
directory (settings from ``--set`` as ``EVTRADE_<NAME>`` variables, the development faucet on)
and stops it at the end. Half the vehicles are buyers, half sellers. The first buyer's request
opens the round; the others join it with bounded concurrency. The script then waits until the
round settles and prints:

- requests sent and failures by endpoint and status;
- latency p50/p95/p99 per endpoint (seconds, client side);
- for the bids: how many were sent inside the window the service announced (the round's
  ``deadline``, on this machine's clock, which is the drivers' clock here), how many of those
  were admitted, revealed and are in the settled round. "every bid sent inside the window made
  it" is the check of issue 11, item 9.

Not a test: it measures, and the numbers depend on the machine and on its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "load-bench-password"
#: Settings that put a fresh service in development mode (the faucet the top-ups use).
DEV_SETTINGS = {"FAUCET_TOKENS": "1000"}


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    async def call(
        self, client: httpx.AsyncClient, endpoint: str, method: str, path: str, body: Any = None
    ) -> tuple[httpx.Response | None, float, float]:
        """One request; returns the response (None on a transport error), send and end times."""
        sent = time.time()
        start = time.perf_counter()
        try:
            r = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            self.errors[endpoint][type(exc).__name__] += 1
            self.statuses[endpoint][0] += 1
            return None, sent, time.time()
        self.latency[endpoint].append(time.perf_counter() - start)
        self.statuses[endpoint][r.status_code] += 1
        if r.status_code >= 400:
            detail = r.text[:120]
            self.errors[endpoint][f"{r.status_code} {detail}"] += 1
        return r, sent, time.time()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(run(j) for j in jobs))


def buyer_body(k: int, round_id: int | None) -> dict[str, Any]:
    v_min = 0.6 + 0.002 * (k % 50)
    body: dict[str, Any] = {
        "password": PASSWORD,
        "b_min": 0.5,
        "b_max": 5.0,
        "v_min": v_min,
        "v_max": 1.0,
        "v": round(v_min + 0.3, 4),
        "lat": 57.70 + 0.0004 * (k % 20),
        "lon": 11.97 + 0.0004 * (k // 20),
    }
    if round_id is not None:
        body["round_id"] = round_id
    return body


def seller_body(k: int) -> dict[str, Any]:
    c_min = 0.5 + 0.002 * (k % 40)
    return {
        "password": PASSWORD,
        "c_min": c_min,
        "c_max": 0.95,
        "c": round(c_min + 0.05, 4),
        "s_t": 30.0,
        "s_r": 10.0,
        "rho": 0.05,
        "lat": 57.70 + 0.0004 * (k % 20),
        "lon": 11.96 + 0.0004 * (k // 20),
    }


async def scenario(url: str, n: int, concurrency: int, timeout: float) -> dict[str, Any]:
    stats = Stats()
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        t0 = time.perf_counter()

        async def register(k: int) -> str | None:
            r, _, _ = await stats.call(
                client,
                "register",
                "POST",
                "/api/vehicles",
                {
                    "name": f"car {k}",
                    "plate": f"LOAD {k:05d}",
                    "password": PASSWORD,
                    "lat": 57.70,
                    "lon": 11.97,
                },
            )
            return str(r.json()["address"]) if r is not None and r.status_code == 201 else None

        found = await bounded(concurrency, [lambda k=k: register(k) for k in range(n)])
        cars = [a for a in found if a is not None]
        t_register = time.perf_counter() - t0

        async def top_up(address: str) -> None:
            await stats.call(
                client,
                "topup",
                "POST",
                f"/api/vehicles/{address}/topup",
                {"password": PASSWORD, "tokens": 20},
            )

        t1 = time.perf_counter()
        await bounded(concurrency, [lambda a=a: top_up(a) for a in cars])
        t_topup = time.perf_counter() - t1

        buyers, sellers = cars[: (len(cars) + 1) // 2], cars[(len(cars) + 1) // 2 :]
        if not buyers:
            return {"error": "no vehicle registered", **report(stats)}
        t2 = time.perf_counter()
        r, _, _ = await stats.call(
            client, "request", "POST", f"/api/vehicles/{buyers[0]}/requests", buyer_body(0, None)
        )
        if r is None or r.status_code != 201:
            return {"error": f"the first request failed: {r and r.text}", **report(stats)}
        round_id = int(r.json()["round_id"])
        view = (await client.get(f"/api/rounds/{round_id}")).json()
        deadline = float(view["deadline"])
        bids: list[tuple[str, str, float, float, int]] = [
            ("request", buyers[0], time.time(), time.time(), 201)
        ]

        async def bid(kind: str, k: int, address: str) -> None:
            if kind == "request":
                path, body = f"/api/vehicles/{address}/requests", buyer_body(k, round_id)
            else:
                path, body = f"/api/rounds/{round_id}/replies/{address}", seller_body(k)
            r, sent, done = await stats.call(client, kind, "POST", path, body)
            bids.append((kind, address, sent, done, 0 if r is None else r.status_code))

        requests = [lambda k=k, a=a: bid("request", k, a) for k, a in enumerate(buyers[1:], 1)]
        replies = [lambda k=k, a=a: bid("reply", k, a) for k, a in enumerate(sellers)]
        jobs = [j for pair in zip_longest(requests, replies) for j in pair if j is not None]
        await bounded(concurrency, jobs)
        t_bids = time.perf_counter() - t2

        # Wait for the round to settle (or expire), polling.
        t3 = time.perf_counter()
        end = time.monotonic() + timeout
        view = (await client.get(f"/api/rounds/{round_id}")).json()
        while view.get("phase") not in ("settled", "expired") and time.monotonic() < end:
            await asyncio.sleep(1.0)
            try:
                view = (await client.get(f"/api/rounds/{round_id}")).json()
            except httpx.HTTPError:
                continue
        t_settle = time.perf_counter() - t3
        deadline = float(view.get("deadline", deadline))

    on_chain = {q["address"].lower(): q for q in view.get("requests", [])}
    on_chain.update({p["address"].lower(): p for p in view.get("replies", [])})
    inside = [b for b in bids if b[2] <= deadline]
    admitted = [b for b in inside if b[4] == 201]
    present = [b for b in admitted if b[1].lower() in on_chain]
    revealed = [b for b in present if on_chain[b[1].lower()].get("revealed")]
    refused_inside = Counter(b[4] for b in inside if b[4] != 201)
    out = {
        "vehicles": n,
        "concurrency": concurrency,
        "registered": len(cars),
        "round_id": round_id,
        "phase": view.get("phase"),
        "round_error": view.get("error"),
        "seconds": {
            "register": round(t_register, 1),
            "topup": round(t_topup, 1),
            "bids": round(t_bids, 1),
            "until_settled": round(t_settle, 1),
        },
        "window": {
            "announced_deadline_in_s_after_first_bid": round(deadline - bids[0][2], 1),
            "last_bid_sent_s_before_deadline": round(deadline - max(b[2] for b in bids), 1),
            "bids": len(bids),
            "sent_inside": len(inside),
            "admitted": len(admitted),
            "refused_inside_by_status": dict(refused_inside),
            "on_chain": len(present),
            "revealed": len(revealed),
            "trades": len(view.get("trades", [])),
        },
        "every_bid_inside_the_window_made_it": len(inside) == len(revealed) == len(bids),
        **report(stats),
    }
    return out


def report(stats: Stats) -> dict[str, Any]:
    endpoints = sorted(set(stats.statuses))
    return {
        "requests": sum(sum(c.values()) for c in stats.statuses.values()),
        "statuses": {e: dict(stats.statuses[e]) for e in endpoints},
        "failures": {e: dict(stats.errors[e].most_common(5)) for e in endpoints if stats.errors[e]},
        "latency_s": {
            e: {
                "n": len(stats.latency[e]),
                "p50": round(percentile(stats.latency[e], 50), 3),
                "p95": round(percentile(stats.latency[e], 95), 3),
                "p99": round(percentile(stats.latency[e], 99), 3),
            }
            for e in endpoints
        },
    }


def start_service(data_dir: Path, settings: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    from anvil import free_port

    port = free_port()
    env = {**os.environ, **{f"EVTRADE_{k.upper()}": v for k, v in settings.items()}}
    log = (data_dir / "service.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evtrade",
            "serve",
            "--data-dir",
            str(data_dir / "svc"),
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"evtrade serve exited: {(data_dir / 'service.log').read_text()}")
        try:
            if httpx.get(url + "/api/rounds", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("evtrade serve did not start in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--url", help="an existing service (run in development mode)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the fresh service, e.g. --set t_limit=60",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for settling")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--keep", action="store_true", help="keep the fresh service's data dir")
    args = parser.parse_args()
    proc = None
    tmp = None
    url = args.url
    if url is None:
        settings = dict(DEV_SETTINGS)
        for item in args.set:
            name, _, value = item.partition("=")
            settings[name] = value
        tmp = Path(tempfile.mkdtemp(prefix="evtrade-load-"))
        proc, url = start_service(tmp, settings)
    try:
        out = asyncio.run(scenario(url, args.vehicles, args.concurrency, args.timeout))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            if args.keep:
                print(f"data kept in {tmp}", file=sys.stderr)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    if args.format == "json":
        print(json.dumps(out, indent=1))
        return
    print(
        f"vehicles {out.get('vehicles')}, concurrency {out.get('concurrency')}, "
        f"round {out.get('round_id')} ended {out.get('phase')}"
    )
    if out.get("error"):
        print("error:", out["error"])
    print("seconds:", out.get("seconds"))
    print(f"requests: {out['requests']}")
    for e, counts in out["statuses"].items():
        lat = out["latency_s"][e]
        print(
            f"  {e:9s} statuses {counts}  p50 {lat['p50']:.3f}  p95 {lat['p95']:.3f}"
            f"  p99 {lat['p99']:.3f} s"
        )
    for e, fails in out["failures"].items():
        for what, count in fails.items():
            print(f"  failed {e}: {count} x {what}")
    print("window:", out.get("window"))
    if out.get("round_error"):
        print("round error:", out["round_error"])
    print(
        "every bid sent inside the window made it:", out.get("every_bid_inside_the_window_made_it")
    )


if __name__ == "__main__":
    main()
