"""Algorithm 1's admission (lines 3-8) in isolation: which bids must be resubmitted, and why."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from evtrade.market.admission import admit
from evtrade.model import Auctioneer, Buyer, Market, Seller


def _buyer(ident: str = "b0", **over: object) -> Buyer:
    fields: dict[str, object] = {
        "v": 0.8,
        "v_min": 0.6,
        "v_max": 1.0,
        "b_min": 1.0,
        "b_max": 5.0,
        "w": 2.0,
        "lat": 29.0,
        "lon": 119.6,
    }
    fields.update(over)
    return Buyer(id=ident, **fields)  # type: ignore[arg-type]


def _seller(ident: str = "s0", **over: object) -> Seller:
    fields: dict[str, object] = {
        "c": 0.4,
        "c_min": 0.3,
        "c_max": 0.5,
        "s_t": 30.0,
        "s_r": 10.0,
        "rho": 0.1,
        "lat": 29.0,
        "lon": 119.6,
    }
    fields.update(over)
    return Seller(id=ident, **fields)  # type: ignore[arg-type]


def _market(
    buyers: list[Buyer], sellers: list[Seller], *, max_distance_km: float | None = None
) -> Market:
    auctioneer = Auctioneer(v_min=0.5, c_max=1.0, max_distance_km=max_distance_km)
    return Market(auctioneer, tuple(buyers), tuple(sellers))


def test_bids_inside_every_bound_are_all_admitted() -> None:
    out = admit(_market([_buyer("b0"), _buyer("b1")], [_seller("s0"), _seller("s1")]))
    assert out.buyers_ok.tolist() == [True, True]
    assert out.sellers_ok.tolist() == [True, True]
    assert out.reasons == {}


def test_a_buyer_value_outside_its_own_range_must_be_resubmitted() -> None:
    out = admit(_market([_buyer("b0", v=1.2), _buyer("b1", v=0.5)], [_seller()]))
    assert out.buyers_ok.tolist() == [False, False]
    assert out.reasons["b0"] == ("resubmit: value v=1.2 outside its range [v_min=0.6, v_max=1]")
    assert out.reasons["b1"].startswith("resubmit: value v=0.5 outside its range")


def test_a_seller_cost_outside_its_own_range_must_be_resubmitted() -> None:
    out = admit(_market([_buyer()], [_seller("s0", c=0.2), _seller("s1", c=0.55)]))
    assert out.sellers_ok.tolist() == [False, False]
    assert out.reasons["s0"] == "resubmit: cost c=0.2 outside its range [c_min=0.3, c_max=0.5]"
    assert "c=0.55" in out.reasons["s1"]


def test_range_bounds_against_the_auctioneer_follow_table_ii_non_strictly() -> None:
    # Table II: v^min <= v_i^min and c_j^max <= c^max are admissible (equality included).
    market = _market(
        [_buyer("b_at", v_min=0.5, v=0.6), _buyer("b_below", v_min=0.49, v=0.6)],
        [_seller("s_at", c_max=1.0), _seller("s_above", c_max=1.01)],
    )
    out = admit(market)
    assert out.buyers_ok.tolist() == [True, False]
    assert out.sellers_ok.tolist() == [True, False]
    assert out.reasons["b_below"] == "resubmit: v_min=0.49 below the auctioneer's v^min=0.5"
    assert out.reasons["s_above"] == "resubmit: c_max=1.01 above the auctioneer's c^max=1"


def test_every_broken_rule_is_named_in_one_reason() -> None:
    buyer = _buyer(v=0.45, v_min=0.48, lat=None, lon=None)
    out = admit(_market([buyer], [_seller()], max_distance_km=5.0))
    assert out.reasons == {
        "b0": "resubmit: value v=0.45 outside its range [v_min=0.48, v_max=1]; "
        "v_min=0.48 below the auctioneer's v^min=0.5; "
        "no lat/lon but the auctioneer sets max_distance_km"
    }
    assert out.sellers_ok.tolist() == [True]


def test_a_participant_without_location_is_refused_only_under_a_distance_limit() -> None:
    buyers = [_buyer("b0", lat=None, lon=None)]
    sellers = [_seller("s0", lat=None, lon=None)]
    free = admit(_market(buyers, sellers))
    assert free.reasons == {}
    limited = admit(_market(buyers, sellers, max_distance_km=5.0))
    assert limited.buyers_ok.tolist() == [False]
    assert limited.sellers_ok.tolist() == [False]
    reason = "resubmit: no lat/lon but the auctioneer sets max_distance_km"
    assert limited.reasons == {"b0": reason, "s0": reason}


# Prices on a 0.01 grid, so equal bounds (the non-strict edges of Table II) are drawn often.
_price = st.integers(0, 200).map(lambda k: k / 100)
_located = st.booleans()


@st.composite
def _buyers(draw: st.DrawFn) -> list[Buyer]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        lo, hi = sorted((draw(_price), draw(_price)))
        has = draw(_located)
        out.append(
            _buyer(
                f"b{i}",
                v=draw(_price),
                v_min=lo,
                v_max=hi,
                lat=29.0 if has else None,
                lon=119.6 if has else None,
            )
        )
    return out


@st.composite
def _sellers(draw: st.DrawFn) -> list[Seller]:
    out = []
    for j in range(draw(st.integers(1, 6))):
        lo, hi = sorted((draw(_price), draw(_price)))
        has = draw(_located)
        out.append(
            _seller(
                f"s{j}",
                c=draw(_price),
                c_min=lo,
                c_max=hi,
                lat=29.0 if has else None,
                lon=119.6 if has else None,
            )
        )
    return out


@given(_buyers(), _sellers(), st.one_of(st.none(), st.just(3.0)), st.randoms())
def test_admission_is_exactly_algorithm_1s_rules_and_independent_of_order(
    buyers: list[Buyer], sellers: list[Seller], limit: float | None, rnd: random.Random
) -> None:
    market = _market(buyers, sellers, max_distance_km=limit)
    out = admit(market)
    a = market.auctioneer
    need = limit is not None
    expect_b = [
        b.v_min <= b.v <= b.v_max and b.v_min >= a.v_min and (not need or b.lat is not None)
        for b in buyers
    ]
    expect_s = [
        s.c_min <= s.c <= s.c_max and s.c_max <= a.c_max and (not need or s.lat is not None)
        for s in sellers
    ]
    assert out.buyers_ok.dtype == np.bool_ and out.sellers_ok.dtype == np.bool_
    assert out.buyers_ok.tolist() == expect_b
    assert out.sellers_ok.tolist() == expect_s
    refused = {b.id for b, ok in zip(buyers, expect_b, strict=True) if not ok}
    refused |= {s.id for s, ok in zip(sellers, expect_s, strict=True) if not ok}
    assert set(out.reasons) == refused
    assert all(r.startswith("resubmit: ") for r in out.reasons.values())
    # Listing order does not matter: a shuffled market admits the same ids for the same reasons.
    sb, ss = list(buyers), list(sellers)
    rnd.shuffle(sb)
    rnd.shuffle(ss)
    again = admit(_market(sb, ss, max_distance_km=limit))
    assert again.reasons == out.reasons
