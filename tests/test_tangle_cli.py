"""``evtrade tangle``: the JSON shape, the table, and one-line errors naming the bad option."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from evtrade.cli import app

KEYS = {"tips_mean", "tips", "first_approval_mean", "confirmation_latency_mean"}


def tangle(*args: str) -> tuple[int, str, str]:
    out = CliRunner().invoke(app, ["tangle", *args])
    return out.exit_code, out.stdout, out.stderr


@pytest.mark.parametrize(
    "options",
    [
        ["--tip-selection", "urts"],
        ["--tip-selection", "mcmc"],
        ["--tip-selection", "weighted", "--alpha", "0.2"],
    ],
)
def test_json_shape(options: list[str]) -> None:
    code, out, _ = tangle(
        "--rate", "10", "--delay", "1", "--transactions", "3000", "--seed", "4", *options,
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    d = json.loads(out)
    assert KEYS | {"left_behind_fraction"} <= d.keys()
    assert isinstance(d["tips"], list) and 1 < len(d["tips"]) <= 1000
    assert all(isinstance(x, int) and x >= 1 for x in d["tips"])
    assert d["tips_mean"] > 1
    assert d["first_approval_mean"] >= 1.0  # nothing is approved before it is visible (h = 1)
    assert d["confirmation_latency_mean"] >= d["first_approval_mean"] * 0.5
    assert 0.0 <= d["left_behind_fraction"] <= 1.0
    assert d["theory_tips_urts"] == 20.0
    assert d["tip_selection"] == options[1]


def test_same_seed_same_output_and_table() -> None:
    args = ("--rate", "5", "--delay", "2", "--transactions", "500", "--seed", "9")
    assert tangle(*args, "--format", "json") == tangle(*args, "--format", "json")
    code, out, _ = tangle(*args)
    assert code == 0
    assert "2 lambda h = 20" in out and "left behind" in out


def test_walk_window_option() -> None:
    args = ("--tip-selection", "mcmc", "--transactions", "400", "--format", "json")
    code, out, _ = tangle(*args, "--walk-window", "3")
    assert code == 0 and json.loads(out)["walk_window"] == 3.0
    assert json.loads(tangle(*args)[1])["walk_window"] == 10.0  # 10 max(h, 1/lambda)


def test_tiny_run_reports_nulls_not_nan() -> None:
    code, out, _ = tangle("--transactions", "1", "--format", "json")
    assert code == 0
    d = json.loads(out)
    assert d["confirmation_latency_mean"] is None or math.isfinite(d["confirmation_latency_mean"])
    assert d["left_behind_fraction"] is None


@pytest.mark.parametrize(
    ("args", "code", "names"),
    [
        (["--rate", "-1"], 1, "rate"),
        (["--rate", "nan"], 1, "rate"),
        (["--rate", "0"], 1, "rate"),
        (["--delay", "-2"], 1, "delay"),
        (["--alpha", "0.5"], 1, "alpha"),
        (["--tip-selection", "mcmc", "--alpha", "0.5"], 1, "alpha"),
        (["--tip-selection", "weighted", "--alpha", "-0.5"], 1, "alpha"),
        (["--transactions", "0"], 1, "transactions"),
        (["--tip-selection", "mcmc", "--walk-window", "-1"], 1, "walk_window"),
        (["--transactions", "100000000"], 1, "transactions"),
        (["--rate", "100000", "--delay", "10"], 1, "rate"),
        (["--rate", "inf"], 1, "rate"),
        (["--rate", "1e308"], 1, "rate"),
        (["--rate", "1e-300"], 1, "rate"),
        (["--delay", "nan"], 1, "delay"),
        (["--delay", "1e9"], 1, "rate"),
        (["--tip-selection", "weighted", "--alpha", "inf"], 1, "alpha"),
        (["--tip-selection", "weighted", "--alpha", "nan"], 1, "alpha"),
        (["--tip-selection", "mcmc", "--walk-window", "inf"], 1, "walk_window"),
        (["--tip-selection", "mcmc", "--walk-window", "1e9"], 1, "walk_window"),
        (["--transactions", "99999999999999999999999"], 1, "transactions"),
        (["--transactions", "-5"], 1, "transactions"),
        (["--transactions", "1.5"], 2, "--transactions"),
        (["--format", "xml"], 2, "--format"),
        (["--tip-selection", "greedy"], 2, "--tip-selection"),
        (["--seed", "-1"], 2, "--seed"),
        (["--rate", "fast"], 2, "--rate"),
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], code: int, names: str) -> None:
    got, out, err = tangle(*args)
    assert got == code
    assert out == ""
    assert names in err
    assert "Traceback" not in err
    if code == 1:
        assert err.startswith("error: ") and err.count("\n") == 1
