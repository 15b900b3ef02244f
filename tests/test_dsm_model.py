"""Day scenarios (evtrade.model.day): the file format, defaults, limits and one-line errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

from evtrade.errors import MarketError
from evtrade.model import day as day_mod
from evtrade.model.day import (
    DEFAULT_EFFICIENCY,
    DayScenario,
    Grid,
    Slots,
    check_day_size,
    day_from_dict,
    day_to_dict,
    load_day,
)


def small_day(**grid: Any) -> dict[str, Any]:
    """Two vehicles and one PV over 4 slots of half an hour."""
    return {
        "slots": {"count": 4, "hours": 0.5},
        "grid": {
            "base_price": [0.4, 0.3, 0.2, 0.5],
            "forecast": [1.0, 2.0, 3.0, 4.0],
            "mu": 0.02,
            "feed_in": 0.1,
            **grid,
        },
        "vehicles": [
            {
                "id": "EV1",
                "capacity_kwh": 60,
                "energy_kwh": 30,
                "soh": 90,
                "arrival": 0,
                "departure": 3,
                "power_kw": 11,
                "target_soc": 0.8,
                "lat": 57.7,
                "lon": 11.98,
                "v2g": False,
            },
            {
                "id": "EV2",
                "capacity_kwh": 80,
                "energy_kwh": 70,
                "arrival": 1,
                "departure": 4,
                "power_kw": 7,
                "lat": 57.69,
                "lon": 11.97,
                "v2g": True,
                "efficiency": 0.9,
            },
        ],
        "pv": [{"id": "PV1", "production_kwh": [0, 1.5, 2.5, 0], "lat": 57.698, "lon": 11.986}],
    }


TOML = """
[slots]
count = 4
hours = 0.5

[grid]
base_price = [0.4, 0.3, 0.2, 0.5]
forecast = [1.0, 2.0, 3.0, 4.0]
mu = 0.02
feed_in = 0.1

[[vehicles]]
id = "EV1"
capacity_kwh = 60
energy_kwh = 30
soh = 90
arrival = 0
departure = 3
power_kw = 11
target_soc = 0.8
lat = 57.7
lon = 11.98
v2g = false

[[vehicles]]
id = "EV2"
capacity_kwh = 80
energy_kwh = 70
arrival = 1
departure = 4
power_kw = 7
lat = 57.69
lon = 11.97
v2g = true
efficiency = 0.9

[[pv]]
id = "PV1"
production_kwh = [0, 1.5, 2.5, 0]
lat = 57.698
lon = 11.986
"""


def test_json_and_toml_give_the_same_day(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps(small_day()))
    (tmp_path / "d.toml").write_text(TOML)
    a, b = load_day(tmp_path / "d.json"), load_day(tmp_path / "d.toml")
    assert day_to_dict(a) == day_to_dict(b)
    assert a.n_slots == 4 and a.slots.hours == 0.5
    assert_allclose(a.grid.base_price, [0.4, 0.3, 0.2, 0.5])
    assert_allclose(a.pv_production, [[0, 1.5, 2.5, 0]])
    ev1, ev2 = a.vehicles
    assert (ev1.arrival, ev1.departure, ev1.v2g) == (0, 3, False)
    assert ev1.need_kwh == pytest.approx(0.8 * 60 - 30)
    assert ev2.target_soc == 1.0 and ev2.soh == 100.0 and ev2.efficiency == 0.9
    assert ev1.efficiency == DEFAULT_EFFICIENCY == 0.95


def test_defaults_and_round_trip() -> None:
    data = small_day()
    del data["slots"]
    data["grid"] = {"base_price": [0.3] * 24, "feed_in": 0.1}
    data["vehicles"][1]["departure"] = 24
    del data["pv"]
    day = day_from_dict(data)
    assert (day.slots.count, day.slots.hours) == (24, 1.0)
    assert day.grid.mu == 0.01
    assert_allclose(day.grid.forecast, np.zeros(24))
    assert day.pv == () and day.pv_production.shape == (0, 24)
    again = day_from_dict(day_to_dict(day))
    assert day_to_dict(again) == day_to_dict(day)


def test_arrays_are_read_only() -> None:
    day = day_from_dict(small_day())
    for values in (day.grid.base_price, day.pv_production, day.vehicle_arrays["power_kw"]):
        with pytest.raises(ValueError, match="read-only"):
            values[0] = 1.0
    assert day.vehicle_arrays["v2g"].tolist() == [False, True]
    assert day.vehicle_arrays["arrival"].tolist() == [0, 1]


def _set(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(small_day())
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("vehicles", 0, "energy_kwh"), 70, r"vehicle 'EV1' \(vehicles\[0\]\): field 'energy_kwh'"),
        (("vehicles", 0, "capacity_kwh"), 0, r"'EV1' .*field 'capacity_kwh' \(0\) must be > 0"),
        (("vehicles", 1, "departure"), 1, r"'EV2' .*field 'departure' \(1\) must be > arrival"),
        (("vehicles", 1, "departure"), 5, r"'EV2' .*field 'departure' \(5\) must lie in \[1, 4\]"),
        (("vehicles", 0, "arrival"), 1.5, r"'EV1' .*field 'arrival' \(1.5\) must be a whole slot"),
        (("vehicles", 0, "arrival"), "0", r"'EV1' .*field 'arrival' must be a number, got str"),
        (("vehicles", 0, "power_kw"), -1, r"'EV1' .*field 'power_kw'"),
        (("vehicles", 0, "soh"), 120, r"'EV1' .*field 'soh' \(120\) must lie in \[0, 100\]"),
        (("vehicles", 0, "target_soc"), 80, r"'EV1' .*field 'target_soc' \(80\) must lie in"),
        (("vehicles", 0, "efficiency"), 0, r"'EV1' .*field 'efficiency' must be > 0"),
        (("vehicles", 0, "v2g"), "yes", r"'EV1' .*field 'v2g' must be true or false, got str"),
        (("vehicles", 0, "lat"), _DELETE, r"vehicle 'EV1' \(vehicles\[0\]\): missing field 'lat'"),
        (("vehicles", 0, "lat"), 91, r"'EV1' .*field 'lat' \(91.0\) must lie in \[-90, 90\]"),
        (("vehicles", 1, "id"), "EV1", r"vehicle 'EV1' \(vehicles\[1\]\): field 'id' duplicates"),
        (("vehicles", 1, "id"), 7, r"vehicle \(vehicles\[1\]\): field 'id' must be a string"),
        (("vehicles", 0), [], r"vehicle \(vehicles\[0\]\): must be an object, got a list"),
        (("vehicles",), {}, r"scenario: section 'vehicles' must be a list, got an object"),
        (("vehicles",), _DELETE, r"scenario: missing section 'vehicles'"),
        (
            ("pv", 0, "production_kwh"),
            [1, 2],
            r"pv 'PV1' \(pv\[0\]\): field 'production_kwh' has 2",
        ),
        (("pv", 0, "production_kwh"), [0, -1, 0, 0], r"pv 'PV1' .*'production_kwh\[1\]' \(-1\)"),
        (("pv", 0, "id"), "EV2", r"pv 'EV2' \(pv\[0\]\): field 'id' duplicates a vehicle id"),
        (("grid", "base_price"), [0.1] * 3, r"grid: field 'base_price' has 3 entries, .* 4 slots"),
        (("grid", "base_price"), "cheap", r"grid: field 'base_price' must be a non-empty list"),
        (("grid", "forecast"), [1, 2, 3], r"grid: field 'forecast' has 3 entries"),
        (("grid", "forecast"), [1, 2, None, 3], r"grid: field 'forecast\[2\]' must be a number"),
        (("grid", "mu"), -0.1, r"grid: field 'mu' \(-0.1\) must lie in"),
        (("grid", "feed_in"), _DELETE, r"grid: missing field 'feed_in'"),
        (("grid",), _DELETE, r"scenario: missing section 'grid'"),
        (("slots", "count"), 0, r"slots: field 'count' \(0\) must lie in \[1, 1440\]"),
        (("slots", "hours"), 0, r"slots: field 'hours' \(0\) must be > 0"),
    ],
)
def test_errors_name_participant_and_field(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(MarketError, match=message) as info:
        day_from_dict(_set(path, value))
    assert "\n" not in str(info.value)


def test_top_level_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MarketError, match="scenario: top level must be an object, got a list"):
        day_from_dict([])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MarketError, match=r"bad\.json: not valid JSON"):
        load_day(bad)
    with pytest.raises(MarketError, match="cannot read scenario file"):
        load_day(tmp_path / "missing.json")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(MarketError, match="nested deeper"):
        load_day(deep)


def test_sizes_are_refused_before_arrays_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MarketError, match="100001 vehicles is more than the limit"):
        check_day_size(24, 100_001, 0)
    with pytest.raises(MarketError, match="cells is more than the limit"):
        check_day_size(1440, 10_000, 0)
    monkeypatch.setattr(day_mod, "MAX_VEHICLES", 1)
    with pytest.raises(MarketError, match="2 vehicles is more than the limit of 1"):
        day_from_dict(small_day())


def test_in_memory_construction_is_validated() -> None:
    grid = Grid(base_price=np.array([0.3, 0.2]), forecast=np.zeros(2), feed_in=0.1)
    assert grid.mu == 0.01
    with pytest.raises(MarketError, match="grid: field 'feed_in'"):
        Grid(base_price=np.array([0.3]), forecast=np.zeros(1), feed_in=float("nan"))
    with pytest.raises(MarketError, match="'departure' \\(3\\) must be <= 2 slots"):
        DayScenario(
            slots=Slots(count=2),
            grid=grid,
            vehicles=(
                day_mod.Vehicle(
                    id="x",
                    capacity_kwh=10,
                    energy_kwh=1,
                    arrival=0,
                    departure=3,
                    power_kw=1,
                    lat=0,
                    lon=0,
                ),
            ),
        )
