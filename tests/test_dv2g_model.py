"""DV2G prosumers (eq. 4-16): storage dispatch in bounds, never charging and discharging at once;
sellers and buyers; bad scenario files name the participant and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from evtrade.errors import MarketError
from evtrade.market.dv2g_energy import EsuArrays, balance, dispatch_storage
from evtrade.model.day import Slots
from evtrade.model.prosumers import (
    DEFAULT_LOCATION,
    Esu,
    clear_sky_pv,
    dv2g_from_dict,
    household_load,
    load_dv2g,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dv2g.json"


def _scenario(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slots": {"count": 3},
        "evs": [{"id": "e1", "production_kw": [4, 0, 1], "consumption_kw": [1, 1, 1]}],
        "grids": [
            {
                "id": "g1",
                "production_kw": [0, 0, 0],
                "consumption_kw": [5, 5, 5],
                "xi": 0.5,
                "kappa": 0.1,
            }
        ],
    }
    data.update(over)
    return data


powers = st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    prod=powers,
    cons=powers,
    cap=st.floats(0, 30).map(lambda x: round(x, 6)),
    start=st.floats(0, 1),
    eta_c=st.floats(0.05, 1),
    eta_d=st.floats(0.05, 1),
    depth=st.floats(0, 1).map(lambda x: round(x, 6)),
)
def test_storage_never_charges_and_discharges_at_once_and_stays_in_bounds(
    prod: list[float],
    cons: list[float],
    cap: float,
    start: float,
    eta_c: float,
    eta_d: float,
    depth: float,
) -> None:
    t = min(len(prod), len(cons))
    low = 0.1 * cap
    esu = Esu(
        capacity_kwh=cap,
        level_kwh=low + start * (cap - low),
        min_level_kwh=low,
        charge_efficiency=eta_c,
        discharge_efficiency=eta_d,
        depth_of_discharge=depth,
    )
    p = np.array([prod[:t]])
    c = np.array([cons[:t]])
    s = dispatch_storage(p, c, EsuArrays.of((esu,)), 1.0)
    assert not (s.alpha & s.beta).any()  # eq. 4
    assert (s.charge_kw <= 3.0 + 1e-12).all() and (s.discharge_kw <= 3.0 + 1e-12).all()  # eq. 8
    assert (s.charge_kw >= 0).all() and (s.discharge_kw >= 0).all()
    tol = 1e-9 * max(cap, 1.0)
    assert (s.level_kwh <= cap + tol).all()
    assert (s.level_kwh >= min(low, esu.level_kwh) - tol).all()
    before = np.concatenate([[esu.level_kwh], s.level_kwh[0, :-1]])
    assert_allclose(s.level_kwh[0], before - (s.taken_kwh[0] - s.stored_kwh[0]), atol=tol)  # eq. 7
    assert_allclose(s.stored_kwh, s.charge_kw * eta_c, atol=1e-12)  # eq. 5
    assert_allclose(s.taken_kwh * eta_d, s.discharge_kw, atol=1e-9)  # eq. 6


def test_sellers_and_buyers_by_production_to_consumption_ratio() -> None:
    p = np.array([[4.0, 0.0, 2.0, 0.0]])
    c = np.array([[1.0, 1.0, 2.0, 0.0]])
    s = dispatch_storage(p, c, EsuArrays.of((Esu(capacity_kwh=0.0),)), 0.5)
    b = balance(p, c, s, 0.5)
    assert_allclose(b.zeta[0, :3], [4.0, 0.0, 1.0])  # eq. 12
    assert b.zeta[0, 3] == 1.0
    assert_allclose(b.sell_kwh[0], [1.5, 0.0, 0.0, 0.0])  # eq. 13: C (zeta - 1) dt
    assert_allclose(b.buy_kwh[0], [0.0, 0.5, 0.0, 0.0])  # eq. 14


def test_degradation_and_daily_cost() -> None:
    esu = Esu(
        capacity_kwh=10,
        depth_of_discharge=0.8,
        unit_cost=2920,
        lifetime_years=10,
        cycles_per_year=365,
        interest_rate=0.0,
        maintenance_per_year=0.0,
    )
    assert esu.degradation_cost == pytest.approx(2920 / (0.8 * 10 * 10 * 365))  # eq. 10, 11
    assert esu.cost_per_day == pytest.approx(2920 / 10 / 365)  # eq. 9 at r = 0
    r = Esu(interest_rate=0.05, lifetime_years=10, unit_cost=1000, maintenance_per_year=20)
    crf = 1.05**10 * 0.05 / (1.05**10 - 1)
    assert r.cost_per_day == pytest.approx((20 + crf * 1000) / 365)


@pytest.mark.parametrize(
    ("rate", "life", "crf"),
    [
        (1e-12, 10.0, 0.1 + 0.5e-12),  # CRF = 1/l + r/2 + O(r^2): the textbook form loses 5 digits
        (1e-17, 1e-17, 1e17 + 0.5e-17),  # (1+r)^l rounds to 1: the textbook form divides by 0
        (10.0, 100.0, 10.0),
    ],
)
def test_capital_recovery_is_accurate_at_tiny_rates(rate: float, life: float, crf: float) -> None:
    esu = Esu(interest_rate=rate, lifetime_years=life, unit_cost=365.0, maintenance_per_year=0)
    assert esu.cost_per_day == pytest.approx(crf, rel=1e-9)  # eq. 9 with CU / Y_d = 1


def test_generated_profiles_follow_the_clock_for_any_slot_length() -> None:
    """Slots that are not whole minutes sample their own span: 7.5-minute slots (rounded to 8,
    the day ran past midnight and the load profile crashed) halve the quarter-hour ones, and
    30-second slots repeat the first quarter hour's load (rounded to 1 minute, they ran at
    twice the clock)."""
    loc = DEFAULT_LOCATION
    quarter = household_load(Slots(96, 0.25), loc, 24.0)
    assert_allclose(
        household_load(Slots(192, 0.125), loc, 24.0).reshape(96, 2).mean(axis=1), quarter
    )
    assert_allclose(household_load(Slots(48, 1 / 120), loc, 24.0)[:30], quarter[0])
    hourly = clear_sky_pv(Slots(24, 1.0), loc, 1.0)
    assert_allclose(
        clear_sky_pv(Slots(192, 0.125), loc, 1.0).reshape(24, 8).mean(axis=1), hourly, atol=1e-3
    )


def test_example_loads_with_generated_profiles() -> None:
    s = load_dv2g(EXAMPLE)
    assert len(s.evs) == 10 and len(s.grids) == 3 and s.n_slots == 24
    assert s.ev_production[:, :5].max() == 0.0  # night
    assert s.ev_production[:, 11:14].min() > 0.0  # midday
    assert (s.ev_consumption > 0).all()
    again = load_dv2g(EXAMPLE)
    assert_allclose(again.ev_consumption, s.ev_consumption)  # seeded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"evs": [{"id": "e1", "production_kw": [1, 2], "consumption_kw": [1, 1, 1]}]},
            r"ev 'e1' \(evs\[0\]\): field 'production_kw' has 2 entries",
        ),
        (
            {"evs": [{"id": "e1", "production_kw": [1, -2, 1], "consumption_kw": [1, 1, 1]}]},
            r"ev 'e1' \(evs\[0\]\): field 'production_kw\[1\]'",
        ),
        (
            {"evs": [{"id": "e1", "consumption_kw": [1, 1, 1]}]},
            r"ev 'e1' \(evs\[0\]\): missing field 'production_kw'",
        ),
        (
            {
                "evs": [
                    {
                        "id": "e1",
                        "production_kw": [1, 1, 1],
                        "consumption_kw": [1, 1, 1],
                        "esu": {"charge_efficiency": 0},
                    }
                ]
            },
            r"ev 'e1' \(evs\[0\]\) esu: field 'charge_efficiency' must be > 0",
        ),
        (
            {
                "evs": [
                    {
                        "id": "e1",
                        "production_kw": [1, 1, 1],
                        "consumption_kw": [1, 1, 1],
                        "price": "cheap",
                    }
                ]
            },
            r"ev 'e1' \(evs\[0\]\): field 'price' must be a number",
        ),
        (
            {
                "grids": [
                    {
                        "id": "g1",
                        "production_kw": [0, 0, 0],
                        "consumption_kw": [1, 1, 1],
                        "xi": 0.5,
                        "kappa": 0,
                    }
                ]
            },
            r"grid 'g1' \(grids\[0\]\): field 'kappa' must be > 0",
        ),
        (
            {
                "grids": [
                    {
                        "id": "e1",
                        "production_kw": [0, 0, 0],
                        "consumption_kw": [1, 1, 1],
                        "xi": 0.5,
                        "kappa": 1,
                    }
                ]
            },
            r"grid 'e1' \(grids\[0\]\): field 'id' duplicates an ev id",
        ),
        ({"esu": {"level_kwh": 20, "capacity_kwh": 10}}, r"esu: field 'level_kwh'"),
        ({"evs": {"id": "e1"}}, r"section 'evs' must be a list"),
        (
            {"evs": [{"id": "e1", "production_kw": {"peak": 3}, "consumption_kw": [1, 1, 1]}]},
            r"ev 'e1' \(evs\[0\]\): field 'production_kw': a generated profile needs",
        ),
        ({"location": {"date": "June"}}, r"location: field 'date'"),
        ({"seed": -1}, r"scenario: field 'seed'"),
    ],
)
def test_bad_scenarios_name_participant_and_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(MarketError, match=message):
        dv2g_from_dict(_scenario(**change))


def test_bad_file_is_a_market_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_scenario())[:-3])
    with pytest.raises(MarketError):
        load_dv2g(path)
    assert dv2g_from_dict(_scenario()).evs[0].id == "e1"
