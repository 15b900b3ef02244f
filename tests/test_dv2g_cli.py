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
