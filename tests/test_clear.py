"""clear(): the trade set, feasibility, invariance, the exclusion rule and the variants."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtrade import MechanismError, clear, load_market, market_from_dict
from evtrade.market.welfare import P1Problem

from .conftest import cvxpy_p1, random_market_dict


def _check_constraints(d: dict[str, Any], res: dict[str, Any], tol: float = 1e-9) -> None:
    vol: dict[tuple[str, str], float] = {
        (p["buyer"], p["seller"]): p["volume"] for p in res["pairs"]
    }
    excluded = {u["id"] for u in res["unmatched"] if u["reason"].startswith("excluded")}
    rejected = {r["id"] for r in res["rejected"]}
    for b in d["buyers"]:
        total = sum(v for (i, _), v in vol.items() if i == b["id"])
        if b["id"] in excluded or b["id"] in rejected:
            assert total == 0
            continue
        assert b["b_min"] - tol <= total <= b["b_max"] + tol  # (12)
    for s in d["sellers"]:
        total = sum(v for (_, j), v in vol.items() if j == s["id"])
        assert (1 + s["rho"]) * total <= max(s["s_t"] - s["s_r"], 0) + tol  # (13)
    assert all(v >= 0 for v in vol.values())  # (14)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), n=st.integers(1, 8), m=st.integers(1, 8))
def test_trade_set_prices_and_constraints(seed: int, n: int, m: int) -> None:
    d = random_market_dict(np.random.default_rng(seed), n, m)
    res = clear(market_from_dict(d)).to_dict()
    expected = set()
    for b in d["buyers"]:
        for s in d["sellers"]:
            P = b["v_max"] / 12 + s["c_min"] / 4 + 2 * b["v"] / 3
            R = s["c_min"] / 12 + b["v_max"] / 4 + 2 * s["c"] / 3
            if b["v"] - s["c"] >= (b["v_max"] - s["c_min"]) / 4 + 1e-12:
                expected.add((b["id"], s["id"]))
            for p in res["pairs"]:
                if (p["buyer"], p["seller"]) == (b["id"], s["id"]):
                    assert abs(p["P"] - P) <= 1e-9 and abs(p["R"] - R) <= 1e-9
                    assert abs(p["T"] - (P + R) / 2) <= 1e-9
    got = {(p["buyer"], p["seller"]) for p in res["pairs"]}
    assert expected <= got
    for p in res["pairs"]:
        assert p["P"] >= p["R"] - 1e-12
    _check_constraints(d, res)


@pytest.mark.parametrize("seed", range(6))
def test_welfare_matches_generic_solver(seed: int) -> None:
    d = random_market_dict(np.random.default_rng(seed), 8, 7)
    market = market_from_dict(d)
    res = clear(market)
    B, S = market.buyer_arrays, market.seller_arrays
    in_pairs = np.zeros(res.volume_matrix.shape, dtype=bool)
    ids_b = [b.id for b in market.buyers]
    ids_s = [s.id for s in market.sellers]
    for p in res.pairs:
        in_pairs[ids_b.index(p.buyer), ids_s.index(p.seller)] = True
    out = {u["id"] for u in res.unmatched if u["reason"].startswith("excluded")}
    keep = np.array([b not in out for b in ids_b])
    problem = P1Problem.from_arrays(
        mask=in_pairs & keep[:, None],
        w=B["w"],
        b_min=np.where(keep, B["b_min"], 0),
        b_max=np.where(keep, B["b_max"], 0),
        rho=S["rho"],
        spare=S["s_t"] - S["s_r"],
        l1=market.auctioneer.l1,
        l2=market.auctioneer.l2,
    )
    ref, _ = cvxpy_p1(problem)
    assert res.welfare == pytest.approx(ref, rel=1e-6, abs=1e-8)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_invariant_under_reordering(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = random_market_dict(rng, 6, 5)
    d2 = copy.deepcopy(d)
    rng.shuffle(d2["buyers"])
    rng.shuffle(d2["sellers"])
    r1, r2 = clear(market_from_dict(d)).to_dict(), clear(market_from_dict(d2)).to_dict()
    v1 = {(p["buyer"], p["seller"]): p["volume"] for p in r1["pairs"]}
    v2 = {(p["buyer"], p["seller"]): p["volume"] for p in r2["pairs"]}
    assert v1.keys() == v2.keys()
    for k in v1:
        assert v1[k] == pytest.approx(v2[k], abs=1e-6)
    assert r1["welfare"] == pytest.approx(r2["welfare"], rel=1e-9, abs=1e-9)
    assert {u["id"] for u in r1["unmatched"]} == {u["id"] for u in r2["unmatched"]}


def _market(
    buyers: list[dict[str, Any]], sellers: list[dict[str, Any]], **auct: object
) -> dict[str, Any]:
    a: dict[str, object] = {"v_min": 0.5, "c_max": 1.0}
    a.update(auct)
    return {"auctioneer": a, "buyers": buyers, "sellers": sellers}


def _b(
    i: str, bmin: float, bmax: float, v: float = 0.9, w: float = 2.0, **kw: float
) -> dict[str, Any]:
    return {"id": i, "v": v, "v_min": 0.6, "v_max": 1.0, "b_min": bmin, "b_max": bmax, "w": w, **kw}


def _s(
    j: str, st_: float, sr: float, c: float = 0.4, rho: float = 0.1, **kw: float
) -> dict[str, Any]:
    return {"id": j, "c": c, "c_min": 0.3, "c_max": 0.8, "s_t": st_, "s_r": sr, "rho": rho, **kw}


def test_exclusion_rule_drops_largest_minimum() -> None:
    # 11 kWh deliverable; minimums 6 + 8 cannot both be met: the 8 kWh buyer is excluded.
    d = _market([_b("A", 6, 10), _b("B", 8, 12), _b("C", 0, 3)], [_s("S", 12.1, 0.0)])
    res = clear(market_from_dict(d)).to_dict()
    reasons = {u["id"]: u["reason"] for u in res["unmatched"]}
    assert reasons["B"].startswith("excluded")
    got = {p["buyer"]: p["volume"] for p in res["pairs"]}
    assert got["A"] >= 6 - 1e-9
    _check_constraints(d, res)


def test_buyer_without_partner_and_positive_minimum_is_excluded() -> None:
    d = _market([_b("A", 2, 5, v=0.61)], [_s("S", 20, 0, c=0.79)])
    res = clear(market_from_dict(d)).to_dict()
    assert res["pairs"] == []
    assert res["unmatched"][0]["reason"].startswith("excluded")


def test_rejected_bids_are_reported_and_the_rest_clears() -> None:
    d = _market(
        [_b("A", 1, 5), _b("bad-v", 1, 5, v=1.5), {**_b("low", 1, 5), "v_min": 0.4, "v": 0.7}],
        [_s("S", 20, 0), {**_s("greedy", 20, 0), "c_max": 1.2}, _s("cheap", 20, 0, c=0.2)],
    )
    res = clear(market_from_dict(d)).to_dict()
    rej = {r["id"]: r["reason"] for r in res["rejected"]}
    assert set(rej) == {"bad-v", "low", "greedy"} | {"cheap"}
    assert "v_max" in rej["bad-v"] and "v^min" in rej["low"] and "c^max" in rej["greedy"]
    assert res["total_volume"] > 0


def test_distance_filter() -> None:
    near = {"lat": 29.0, "lon": 119.6}
    far = {"lat": 29.5, "lon": 119.6}
    d = _market(
        [_b("A", 0, 5, **near)],
        [_s("N", 20, 0, **near), _s("F", 20, 0, **far)],
        max_distance_km=10.0,
    )
    res = clear(market_from_dict(d)).to_dict()
    assert [p["seller"] for p in res["pairs"]] == ["N"]
    d["buyers"][0].pop("lat")
    d["buyers"][0].pop("lon")
    res = clear(market_from_dict(d)).to_dict()
    assert res["rejected"][0]["id"] == "A" and "lat/lon" in res["rejected"][0]["reason"]


def test_benchmark_mechanisms_and_theorem2_variant() -> None:
    d = random_market_dict(np.random.default_rng(3), 6, 6)
    m = market_from_dict(d)
    ci = clear(m, "complete-info")
    assert all(p.P >= p.R and pytest.approx((p.P + p.R) / 2) == p.T for p in ci.pairs)
    sp = clear(m, "single-price", price=0.6)
    assert all(p.R <= 0.6 <= p.P and p.T == 0.6 for p in sp.pairs)
    eta = clear(m)
    t2 = clear(m, volumes="theorem2")
    assert t2.welfare <= eta.welfare + 1e-9  # the variant is never better than the optimum
    _check_constraints(d, t2.to_dict(), tol=1e-7)
    with pytest.raises(MechanismError, match="price"):
        clear(m, "single-price")
    with pytest.raises(MechanismError, match="mechanism"):
        clear(m, "vickrey")


def test_example_files_clear_and_serialise() -> None:
    for name in ("examples/small.json", "examples/paper_scale.json"):
        res = clear(load_market(name))
        text = json.dumps(res.to_dict(), allow_nan=False)
        assert json.loads(text)["total_volume"] == pytest.approx(res.total_volume)
        assert res.solver["duality_gap"] <= 1e-6 * max(1.0, abs(res.welfare))
