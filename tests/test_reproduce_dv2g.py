"""``evtrade reproduce dv2g``: every figure's files and sane values, the summary's claims, and the
DV2G day's trades recorded on the tangle one transaction per positive purchase
(docs/dv2g.md#reproducing-the-paper)."""

from __future__ import annotations

import csv
import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from evtrade.cli import app
from evtrade.market.dv2g_game import GameOptions
from evtrade.market.mechanisms.dv2g import run_dv2g
from evtrade.model.prosumers import dv2g_from_dict
from evtrade.sim import dv2g_figures as fig

COLUMNS = {
    "fig5": {"hour", "ev", "production_kw", "consumption_kw", "esu_level_kwh", "export_kw", "pcr"},
    "fig6": {"hour", "grid", "need_kw", "import_kw", "pcr"},
    "fig7_9_11": {"slot", "iteration", "ev", "price", "floor", "probability",
                  "supply_demand_ratio", "ev_net_utility", "average_utility"},
    "fig8": {"loop", "iteration", "ev", "probability", "price"},
    "fig10_prices": {"ev", "floor", "first_bid_price", "stackelberg_price"},
    "fig10_welfare": {"hour", "first_bid_grid_welfare", "stackelberg_grid_welfare",
                      "first_bid_ev_revenue", "stackelberg_ev_revenue", "nash", "deviating",
                      "pivotal"},
    "convergence": {"hour", "iteration", "residual", "converged", "egt_iterations"},
    "tangle_day": {"hour", "ev", "grid", "kwh", "time_s", "confirmation_latency_s"},
    "tangle_tips": {"tip_selection", "time", "tips"},
    "tangle_lambda": {"tip_selection", "rate", "tips_mean", "confirmation_latency_mean"},
    "tangle_alpha": {"alpha", "confirmation_latency_mean", "left_behind_fraction"},
}  # fmt: skip
PNGS = ("fig5_ev_export", "fig6_grid_import", "fig7_utility", "fig8_probability",
        "fig9_supply_demand", "fig10_prices", "fig10_welfare", "fig11_price_probability",
        "convergence", "tangle_day", "tangle_tips", "tangle_lambda", "tangle_alpha")  # fmt: skip


def _rows(path: Path) -> list[dict[str, Any]]:
    def num(v: str) -> Any:
        if v == "":
            return None
        try:
            return float(v)
        except ValueError:
            return v

    with path.open() as fh:
        return [{k: num(v) for k, v in r.items()} for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dv2g")
    res = CliRunner().invoke(app, ["reproduce", "dv2g", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def _check_simplex(rows: list[dict[str, Any]], *keys: str) -> None:
    groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        assert 0.0 <= r["probability"] <= 1.0
        groups[tuple(r[k] for k in keys)].append(r["probability"])
    for qs in groups.values():
        assert sum(qs) == pytest.approx(1.0, abs=1e-9)


def _check_outputs(out: Path) -> dict[str, Any]:
    for stem in PNGS:
        assert (out / f"{stem}.png").stat().st_size > 10_000, stem
    rows = {name: _rows(out / f"{name}.csv") for name in COLUMNS}
    for name, cols in COLUMNS.items():
        assert rows[name], name
        assert cols <= set(rows[name][0]), name
    # Fig. 5: the paper's setting, storage within its bounds, never charge and discharge at once
    ev5 = rows["fig5"]
    assert {r["ev"] for r in ev5} == {f"EV{k}" for k in range(1, 11)}
    assert {r["hour"] for r in ev5} == set(range(24))
    assert all(1.0 - 1e-9 <= r["esu_level_kwh"] <= 10.0 + 1e-9 for r in ev5)
    assert all(r["charge_kw"] <= 3 + 1e-9 and r["discharge_kw"] <= 3 + 1e-9 for r in ev5)
    assert all(r["charge_kw"] == 0 or r["discharge_kw"] == 0 for r in ev5)
    assert all(r["export_kw"] >= 0 and r["sold_kw"] <= r["export_kw"] + 1e-9 for r in ev5)
    # Fig. 6: three grids, each importing at most its need
    assert {r["grid"] for r in rows["fig6"]} == {"G1", "G2", "G3"}
    assert all(0 <= r["import_kw"] <= r["need_kw"] + 1e-9 for r in rows["fig6"])
    # the trace: prices within their floor, Q on the simplex at every iteration
    trace = rows["fig7_9_11"]
    assert all(r["price"] >= r["floor"] - 1e-12 for r in trace)
    _check_simplex(trace, "iteration")
    _check_simplex(rows["fig8"], "loop", "iteration")
    its = sorted({r["iteration"] for r in trace})
    assert its[0] == 0 and all(b > a for a, b in itertools.pairwise(its))
    # Algorithm 2 is a bisection on one common price: from round 1 on, every seller above its
    # floor charges the same price (the round's bracket midpoint)
    for k in its[1:]:
        above = {r["price"] for r in trace if r["iteration"] == k and r["price"] > r["floor"]}
        assert len(above) <= 1, (k, above)
    # the traced slot is one whose price moves, with the most sellers among those
    hour = trace[0]["slot"]
    conv = {r["hour"]: r for r in rows["convergence"]}
    sellers = {h: sum(1 for r in ev5 if r["hour"] == h and r["export_kw"] > 0) for h in conv}
    moving = [h for h in conv if conv[h]["iterations"] > 0 and conv[h]["converged"] == "True"]
    assert hour in moving and sellers[hour] == max(sellers[h] for h in moving)
    assert its[-1] == conv[hour]["iterations"]
    for r in rows["fig10_prices"]:
        assert r["stackelberg_price"] >= r["floor"] - 1e-12
        assert r["first_bid_price"] >= r["floor"] - 1e-12
    # convergence: a residual per iteration and slot, none negative
    assert all(r["residual"] >= 0 for r in rows["convergence"])
    # the tangle: tips near 2 lambda h under uniform selection at lambda h >= 20
    for r in rows["tangle_lambda"]:
        if r["tip_selection"] == "urts" and r["rate"] >= 20:
            assert r["tips_mean"] == pytest.approx(r["theory_tips_urts"], rel=0.1)
    assert all(r["tips"] >= 1 for r in rows["tangle_tips"])
    # the summary
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"dv2g", "tangle"}
    claims = {"fig10_stackelberg_vs_first_bid", "fig8_selection", "fig9_supply_demand_rises",
              "fig7_prices_settle", "convergence", "nash", "day_on_tangle"}  # fmt: skip
    assert claims <= set(summary["dv2g"])
    # the Nash verdict of the day: the per-slot verdicts of the CSV, counted
    nash = summary["dv2g"]["nash"]
    verdicts = [r["nash"] for r in rows["fig10_welfare"]]
    assert nash["checked"] is True and nash["slots_played"] == len(verdicts)
    assert nash["nash_slots"] == verdicts.count("True")
    assert set(nash["deviating"]) == {
        str(int(r["hour"])) for r in rows["fig10_welfare"] if r["nash"] == "False"
    }
    assert nash["pivotal_occurs"] == any(r["pivotal"] for r in rows["fig10_welfare"])
    f7 = summary["dv2g"]["fig7_prices_settle"]
    assert f7["slot"] == hour and f7["price_updates"] == its[-1]
    f10 = summary["dv2g"]["fig10_stackelberg_vs_first_bid"]
    assert f10["stackelberg_welfare"] == pytest.approx(
        sum(
            r["stackelberg_grid_welfare"] + r["stackelberg_ev_revenue"]
            for r in rows["fig10_welfare"]
        )
    )
    day = summary["dv2g"]["day_on_tangle"]
    assert day["trades"] == len(rows["tangle_day"]) > 0
    assert 0 < day["confirmed"] <= day["trades"]
    assert summary["tangle"]["tips_2_lambda_h_holds"] is True
    return summary


def test_reproduce_dv2g_quick_writes_every_figure(quick_run: tuple[Path, str]) -> None:
    out, printed = quick_run
    summary = _check_outputs(out)
    assert json.dumps(summary["tangle"]["tips_mean"], indent=2).splitlines()[1] in printed


def test_day_on_tangle_records_each_positive_purchase() -> None:
    hours = 4
    ev = {"production_kw": [5.0, 4.0, 0.0, 3.0], "consumption_kw": [1.0] * hours,
          "esu": {"capacity_kwh": 0}}  # fmt: skip
    scenario = dv2g_from_dict({
        "slots": {"count": hours, "hours": 1.0},
        "evs": [{"id": f"E{k}", **ev, "price": 0.2 + 0.05 * k} for k in range(3)],
        "grids": [{"id": f"G{n}", "production_kw": [0.0] * hours, "consumption_kw": [6.0] * hours,
                   "xi": 0.5 + 0.1 * n, "kappa": 0.05, "esu": {"capacity_kwh": 0}}
                  for n in range(2)],
    })  # fmt: skip
    result = run_dv2g(scenario, GameOptions())
    x = fig.day_purchases(result)
    # summed over the grids, the purchases are what each EV sells
    np.testing.assert_allclose(x.sum(axis=1), result.equilibrium.sold, rtol=1e-9, atol=1e-12)
    rec = fig.record_day(scenario, result, np.random.default_rng(3))
    positive = int((x >= fig.MIN_TRADE_KWH).sum())
    assert positive > 0 and rec.trades == positive == rec.times.size
    assert rec.tangle is not None
    np.testing.assert_array_equal(rec.tangle.ledger.arrival[1:], rec.times)
    # each trade inside its own slot's hour, with its own energy
    assert ((rec.times >= rec.slot * 3600.0) & (rec.times < (rec.slot + 1) * 3600.0)).all()
    np.testing.assert_array_equal(rec.kwh, x[rec.slot, rec.grid, rec.ev])
    assert rec.confirmed <= rec.trades
    # the means are over the trades, not the genesis (issued at midnight, approved by the first)
    latency = rec.tangle.ledger.confirmed[1:] - rec.times
    assert rec.confirmed == int((~np.isnan(latency)).sum())
    if rec.confirmed:
        assert rec.confirmation_latency_mean == pytest.approx(float(np.nanmean(latency)))
    assert rec.throughput_per_s == pytest.approx(rec.trades / (rec.times[-1] - rec.times[0]))


def test_a_day_without_trades_records_nothing() -> None:
    scenario = dv2g_from_dict({
        "slots": {"count": 2, "hours": 1.0},
        "evs": [{"id": "E", "production_kw": [0.0, 0.0], "consumption_kw": [1.0, 1.0]}],
        "grids": [{"id": "G", "production_kw": [0.0, 0.0], "consumption_kw": [2.0, 2.0],
                   "xi": 0.5, "kappa": 0.05}],
    })  # fmt: skip
    rec = fig.record_day(scenario, run_dv2g(scenario), np.random.default_rng(0))
    assert rec.trades == rec.confirmed == 0 and rec.tangle is None


@pytest.mark.slow
def test_reproduce_dv2g_full(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["reproduce", "dv2g", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    _check_outputs(tmp_path)
