"""``evtrade dv2g``: the JSON's equilibrium properties per slot, the table, and a bad file as one
line with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evtrade.cli import app

runner = CliRunner()

DAY: dict[str, Any] = {
    "slots": {"count": 2},
    "esu": {"capacity_kwh": 0},
    "evs": [
        {"id": "e1", "production_kw": [5, 0], "consumption_kw": [1, 1], "price": 0.3},
        {"id": "e2", "production_kw": [6, 0], "consumption_kw": [1, 1], "price": 0.2},
    ],
    "grids": [
        {"id": "g1", "production_kw": [0, 0], "consumption_kw": [1, 3], "xi": 0.5, "kappa": 0.1},
        {"id": "g2", "production_kw": [0, 0], "consumption_kw": [1, 2], "xi": 0.6, "kappa": 0.2},
    ],
}


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "day.json"
    path.write_text(json.dumps(data))
    return path


def test_json_per_slot(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, DAY)), "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["converged"]
    first = record["slots"][0]
    assert {e["id"] for e in first["evs"]} == {"e1", "e2"}
    assert sum(e["probability"] for e in first["evs"]) == pytest.approx(1.0)
    for e in first["evs"]:
        assert e["price"] >= e["floor"]
        meets = abs(e["demand_kwh"] - e["supply_kwh"]) <= 1e-3 * e["supply_kwh"]
        assert meets or (e["price"] == e["floor"] and e["demand_kwh"] <= e["supply_kwh"])
    c = first["convergence"]
    assert c["converged"] and len(c["residuals"]) == c["iterations"] + 1
    assert first["welfare"] == pytest.approx(first["grid_welfare"] + first["ev_revenue"])
    assert record["slots"][1]["evs"] == []  # no sellers at night


@pytest.mark.parametrize(
    ("ev_kw", "grid_kw"),
    [([0, 0], [1, 3]), ([6, 5], [0, 0])],
    ids=["no-seller-all-day", "no-buyer-all-day"],
)
def test_a_day_without_trade_runs(tmp_path: Path, ev_kw: list[float], grid_kw: list[float]) -> None:
    """No EV with a surplus in any slot (a winter night; an internal error once), or no grid
    short: the day runs, converged, nothing sold."""
    data = _set(("evs", 0, "production_kw"), ev_kw)
    data["evs"][1]["production_kw"] = ev_kw
    for g in data["grids"]:
        g["consumption_kw"] = grid_kw
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, data)), "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["converged"] and all(s["sold_kwh"] == 0 for s in record["slots"])
    assert runner.invoke(app, ["dv2g", str(_write(tmp_path, data))]).exit_code == 0


def test_table(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, DAY))])
    assert result.exit_code == 0, result.output
    assert "EVs per slot" in result.stdout and "EV e1: sold" in result.stdout


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**DAY, "grids": [{**DAY["grids"][0], "kappa": -1}]},
            "grid 'g1' (grids[0]): field 'kappa'",
        ),
        ({**DAY, "evs": "none"}, "section 'evs' must be a list"),
        ([1, 2], "top level must be an object"),
    ],
)
def test_bad_file_is_one_line_and_exit_1(tmp_path: Path, data: Any, message: str) -> None:
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, data))])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dv2g", str(tmp_path / "nope.json")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1


def _set(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """DAY with the entry at ``path`` set to ``value``."""
    data: dict[str, Any] = json.loads(json.dumps(DAY))
    node: Any = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return data


EV0 = ("evs", 0)
G0 = ("grids", 0)
BAD_VALUES: list[tuple[tuple[str | int, ...], Any, str]] = [
    # (where, value, what the one line must contain)
    (("slots", "count"), 0, "slots: field 'count' (0) must lie in [1, 1440]"),
    (("slots", "count"), 10**6, "slots: field 'count'"),
    (("slots", "count"), 2.5, "whole slot number"),
    (("slots", "count"), True, "slots: field 'count' must be a number"),
    (("slots", "hours"), "1", "slots: field 'hours' must be a number"),
    (("slots", "hours"), 0, "slots: field 'hours' (0) must be > 0"),
    (("seed",), -1, "field 'seed'"),
    (("seed",), None, "field 'seed'"),
    (("esu",), [], "esu: section must be an object"),
    (("esu", "capacity_kwh"), -1, "esu: field 'capacity_kwh' (-1)"),
    (("esu", "capacity_kwh"), 1e308, "esu: field 'capacity_kwh' (1e+308)"),
    (("esu", "charge_efficiency"), 1.5, "esu: field 'charge_efficiency' (1.5) must lie in [0, 1]"),
    (("esu", "discharge_efficiency"), 0, "field 'discharge_efficiency' must be > 0"),
    (("esu", "cycles_per_year"), 0, "field 'cycles_per_year' must be > 0"),
    (("esu", "lifetime_years"), 1e-300, "field 'lifetime_years' (1e-300) is below the resolution"),
    (("location", "date"), "2019-13-45", "location: field 'date'"),
    (("location", "lat"), 91, "location: field 'lat' (91)"),
    (("evs",), [], "section 'evs' must list at least one EV"),
    (("grids",), [], "section 'grids' must list at least one grid"),
    (("evs",), None, "section 'evs' must be a list"),
    ((*EV0,), "e1", "ev (evs[0]): must be an object, got a string"),
    ((*EV0, "id"), 7, "ev (evs[0]): field 'id' must be a string"),
    ((*EV0, "id"), "", "field 'id' must not be empty"),
    ((*EV0, "id"), "a\nb", "field 'id' must be printable"),
    ((*EV0, "id"), "e2", "ev 'e2' (evs[1]): field 'id' duplicates an ev id"),
    ((*EV0, "price"), "cheap", "ev 'e1' (evs[0]): field 'price' must be a number"),
    ((*EV0, "price"), True, "field 'price' must be a number, got bool"),
    ((*EV0, "price"), -0.1, "field 'price' (-0.1) must lie in"),
    ((*EV0, "production_kw"), [5], "field 'production_kw' has 1 entries, the day has 2 slots"),
    ((*EV0, "production_kw"), [], "field 'production_kw' has 0 entries"),
    ((*EV0, "production_kw"), "5,0", "field 'production_kw' must be a list of 2 numbers"),
    ((*EV0, "production_kw"), [5, None], "field 'production_kw[1]' must be a number"),
    ((*EV0, "production_kw"), [5, 1e308], "field 'production_kw[1]' (1e+308)"),
    ((*EV0, "production_kw"), {"peak": 3}, "a generated profile needs 'peak_kw' or 'daily_kwh'"),
    ((*EV0, "production_kw"), {"peak_kw": 3, "daily_kwh": 3}, "not both"),
    ((*EV0, "production_kw"), {"peak_kw": -3}, "field 'production_kw.peak_kw' (-3)"),
    ((*EV0, "consumption_kw"), {"daily_kwh": 3, "variation": 2}, "'consumption_kw.variation'"),
    ((*EV0, "esu"), 3, "ev 'e1' (evs[0]): field 'esu' must be an object"),
    ((*EV0, "esu"), {"capacity_kwh": 5, "level_kwh": 6}, "ev 'e1' (evs[0]) esu: field 'level"),
    (
        ("esu",),
        {"capacity_kwh": 2},
        "'level_kwh' (5) must lie in [min_level_kwh, capacity_kwh] = [1, 2]",
    ),
    ((*G0, "id"), "e1", "grid 'e1' (grids[0]): field 'id' duplicates an ev id"),
    ((*G0, "xi"), [0.5], "grid 'g1' (grids[0]): field 'xi' has 1 entries"),
    ((*G0, "xi"), None, "field 'xi' must be a number"),
    ((*G0, "kappa"), 0, "field 'kappa' must be > 0"),
    ((*G0, "kappa"), {}, "field 'kappa' must be a number"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_VALUES)
def test_bad_values_are_one_line_naming_the_field(
    tmp_path: Path, path: tuple[str | int, ...], value: Any, message: str
) -> None:
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, _set(path, value)))])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "internal error" not in lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not valid JSON"),
        (b"  \n", "not valid JSON"),
        (json.dumps(DAY).encode()[:-5], "not valid JSON"),
        (json.dumps(DAY).replace('"price": 0.3', '"price": NaN').encode(), "NaN is not a number"),
        (json.dumps(DAY).replace('"kappa": 0.1', '"kappa": -Infinity').encode(), "Infinity"),
        (json.dumps(DAY).replace('"price": 0.3', '"price": ' + "9" * 5000).encode(), "too long"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (bytes(range(256)) * 20, "not a UTF-8 text file"),
        (json.dumps(DAY).encode("utf-16"), "not a UTF-8 text file"),
        (b'{"evs": [], "pad": "' + b"x" * (17 * 2**20) + b'"}', "larger than the limit"),
    ],
    ids=["empty", "blank", "cut", "nan", "inf", "huge-int", "deep", "binary", "utf16", "17MiB"],
)
def test_unreadable_files_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "day.json"
    path.write_bytes(content)
    result = runner.invoke(app, ["dv2g", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_directory_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dv2g", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot read scenario file" in lines[0]


@pytest.mark.parametrize(
    ("evs", "grids", "message"),
    [
        # EV x grid x slot cells bound the games' arrays.
        (3000, 700, "3000 EVs x 700 grids x 24 slots = 50400000 cells is more than the limit of "
         "50000000"),
        # (EVs + grids) x slots bounds the JSON, one entry each: 10,500 EVs over 24 slots would
        # print ~75 MB and hold ~1 GB while building it.
        (10_500, 2, "(10500 EVs + 2 grids) x 24 slots = 252048 prosumer-slots is more than the "
         "limit of 250000 (one result entry each)"),
    ],
)  # fmt: skip
def test_too_large_a_day_is_refused_before_it_is_built(
    tmp_path: Path, evs: int, grids: int, message: str
) -> None:
    ev = {"id": "e", "production_kw": {"peak_kw": 3}, "consumption_kw": {"daily_kwh": 3}}
    grid = {**DAY["grids"][0], "production_kw": {"peak_kw": 0}}
    data = {
        "esu": {"capacity_kwh": 0},
        "evs": [{**ev, "id": f"e{k}"} for k in range(evs)],
        "grids": [{**grid, "id": f"g{k}"} for k in range(grids)],
    }
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, data))])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: scenario: {message}"


def test_unknown_keys_warn_and_the_day_runs(tmp_path: Path) -> None:
    data = _set(("esu", "capacity"), 3)
    data["capacity_kwh"] = 0
    data["evs"][1]["xi"] = 0.3
    data["evs"][0]["prise"] = 0.3
    data["evs"][1]["prise"] = 0.3
    data["grids"][1]["production_kw"] = {"peak_kw": 0, "varation": 0.2}
    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, data)), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["slots"][0]["evs"]
    assert result.stderr.splitlines() == [
        "warning: scenario: unknown key 'capacity_kwh' ignored (it belongs to esu)",
        "warning: esu: unknown key 'capacity' ignored (did you mean 'capacity_kwh'?)",
        "warning: evs 'e1', 'e2': unknown key 'prise' ignored (did you mean 'price'?)",
        "warning: ev 'e2': unknown key 'xi' ignored (it belongs to grid)",
        "warning: grid 'g2' production_kw: unknown key 'varation' ignored "
        "(did you mean 'variation'?)",
    ]


def test_table_says_a_slot_cleared_only_to_the_float_resolution(tmp_path: Path) -> None:
    """The table's Stackelberg iterations name the two slots of the steep day that clear to one
    ulp of the price, and only those; nothing is said to have failed."""
    from tests.test_dv2g import STEEP_DAY

    result = runner.invoke(app, ["dv2g", str(_write(tmp_path, STEEP_DAY))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stdout.count("(to float resolution)") == 2
    assert "NOT converged" not in result.output
