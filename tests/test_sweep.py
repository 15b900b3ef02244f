"""Experiment sweeps (issue 16 item 3): the grid, its seeds, resume, and the records of an
in-process run against a local Dask cluster of two worker processes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from evtrade.cli import app
from evtrade.errors import SweepError
from evtrade.sim import sweep_exec
from evtrade.sim.scenarios import random_market
from evtrade.sim.sweep import (
    TIMING_COLUMNS,
    Run,
    load_sweep,
    run_one,
    scenario_spec,
    sweep_from_dict,
)
from evtrade.sim.sweep_exec import execute
from evtrade.sim.sweep_store import read_records, shards, summarize

SMALL: dict[str, Any] = {
    "sweep": {
        "name": "small",
        "seed": 11,
        "replicates": 2,
        "mechanisms": ["eta", "single-price", "babg"],
        "sizes": [[4, 5], [6, 4]],
    },
    "params": {"single-price": {"price": [0.7, 0.8]}, "babg": {"alpha": [0.5, 1]}},
}


def _plain(records):
    """Records without their timing columns, in key order."""
    return sorted(
        ({k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in records),
        key=lambda r: r["key"],
    )


def test_grid_order_and_size():
    sweep = sweep_from_dict(SMALL)
    runs = list(sweep.runs())
    assert len(runs) == sweep.size() == (1 + 2 + 2) * 2 * 2
    assert [r.mechanism for r in runs[:4]] == ["eta"] * 4
    assert [(r.n_buyers, r.n_sellers, r.replicate) for r in runs[:4]] == [
        (4, 5, 0),
        (4, 5, 1),
        (6, 4, 0),
        (6, 4, 1),
    ]
    assert len({r.key for r in runs}) == len(runs)
    # 1 and 1.0 are one value of a float option: one run, one key
    assert {dict(r.params).get("alpha") for r in runs if r.mechanism == "babg"} == {0.5, 1.0}


def test_seed_is_the_spawned_child_of_the_root():
    run = Run("eta", 4, 5, (), replicate=2, root_seed=11)
    child = np.random.SeedSequence(11).spawn(5)[4].spawn(6)[5].spawn(3)[2]
    assert run.seed().spawn_key == child.spawn_key == (4, 5, 2)
    assert np.array_equal(run.seed().generate_state(8), child.generate_state(8))
    # another replicate, size or root: another market
    other = [Run("eta", 4, 5, (), 1, 11), Run("eta", 5, 4, (), 2, 11), Run("eta", 4, 5, (), 2, 12)]
    states = {tuple(r.seed().generate_state(4)) for r in [run, *other]}
    assert len(states) == 4


def test_mechanisms_of_one_size_and_replicate_clear_one_market():
    sweep = sweep_from_dict(SMALL)
    markets: dict[tuple[int, int, int], set[str]] = {}
    for r in sweep.runs():
        m = random_market(scenario_spec(r), np.random.default_rng(r.seed()))
        markets.setdefault((r.n_buyers, r.n_sellers, r.replicate), set()).add(repr(m))
    assert all(len(v) == 1 for v in markets.values())
    assert len(markets) == 4


def test_records_do_not_depend_on_the_order_runs_are_computed_in():
    runs = list(sweep_from_dict(SMALL).runs())
    forward = [run_one(r) for r in runs]
    shuffled = runs[:]
    random.Random(3).shuffle(shuffled)
    backward = [run_one(r) for r in shuffled]
    assert _plain(forward) == _plain(backward)
    assert all(r["error"] is None for r in forward)


def test_key_hashes_the_inputs_including_the_code_version():
    run = Run("eta", 4, 5, (), 0, 11)
    assert run.key == Run("eta", 4, 5, (), 0, 11).key
    assert run.key != Run("eta", 4, 5, (), 0, 11, version="0.0.0").key
    assert run.key != Run("eta", 4, 5, (("volumes", "p1"),), 0, 11).key
    with pytest.raises(SweepError, match="worker runs evtrade"):
        run_one(Run("eta", 4, 5, (), 0, 11, version="0.0.0"))


def test_a_run_the_mechanism_refuses_is_a_record_with_its_error():
    record = run_one(Run("single-price", 3, 3, (), 0, 1))
    assert record["error"].startswith("MechanismError: price")
    assert record["welfare"] is None


def test_resume_skips_the_runs_on_disk(tmp_path, monkeypatch):
    calls = []

    def counted(run):
        calls.append(run.key)
        return run_one(run)

    monkeypatch.setattr(sweep_exec, "run_one", counted)
    small = sweep_from_dict(SMALL)

    class StopError(Exception):
        pass

    def stop_after_7(record):
        if len(calls) == 7:
            raise StopError

    with pytest.raises(StopError):
        execute(small, tmp_path, workers=0, on_record=stop_after_7, shard_records=3)
    assert len(calls) == 7
    report = execute(small, tmp_path, workers=0)  # the 7 before the interruption are on disk
    assert (report.skipped, report.computed) == (7, small.size() - 7)
    assert len(calls) == small.size()
    assert len(set(calls)) == len(calls)
    again = execute(small, tmp_path, workers=0)
    assert (again.skipped, again.computed, again.shards) == (small.size(), 0, 0)
    assert len(calls) == small.size()
    # a bigger sweep over the same grid computes only its new runs
    bigger = sweep_from_dict({**SMALL, "sweep": {**SMALL["sweep"], "replicates": 3}})
    report = execute(bigger, tmp_path, workers=0)
    assert (report.skipped, report.computed) == (small.size(), bigger.size() - small.size())
    table = read_records(tmp_path)
    assert table.num_rows == bigger.size()
    assert len(set(table.column("key").to_pylist())) == bigger.size()


def test_in_process_and_local_cluster_records_are_equal(tmp_path):
    sweep = sweep_from_dict(SMALL)
    execute(sweep, tmp_path / "loop", workers=0)
    report = execute(sweep, tmp_path / "dask", workers=2)
    assert report.computed == sweep.size()
    loop = read_records(tmp_path / "loop", timing=False)
    dask = read_records(tmp_path / "dask", timing=False)
    assert loop.num_rows == sweep.size()
    assert loop.equals(dask)
    workers = set(read_records(tmp_path / "dask").column("worker").to_pylist())
    assert len(workers) >= 1


def test_summary_has_one_row_per_cell(tmp_path):
    sweep = sweep_from_dict(SMALL)
    execute(sweep, tmp_path, workers=0)
    rows = summarize(read_records(tmp_path))
    assert len(rows) == (1 + 2 + 2) * 2
    assert {r["runs"] for r in rows} == {2}
    assert all(r["failed"] == 0 and r["welfare_mean"] is not None for r in rows)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


HEAD = '[sweep]\nseed = 1\nmechanisms = ["eta"]\nsizes = [[2, 3]]\n'


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", "sweep: missing table"),
        ("[sweep]\nmechanisms = ['eta']\nsizes = [[2, 3]]\n", "sweep.seed: missing"),
        (HEAD + "replicates = 0\n", "sweep.replicates: must be an integer"),
        (HEAD + "colour = 1\n", "sweep.colour: unknown key"),
        (
            '[sweep]\nseed = 1\nmechanisms = ["dsm"]\nsizes = [[2, 3]]\n',
            "sweep.mechanisms: unknown",
        ),
        ('[sweep]\nseed = 1\nmechanisms = ["eta"]\nsizes = [[2]]\n', "sweep.sizes[0]: must be"),
        ('[sweep]\nseed = 1\nmechanisms = ["eta"]\nsizes = [[0, 3]]\n', "sweep.sizes[0] n_buyers"),
        ('[sweep]\nseed = -1\nmechanisms = ["eta"]\nsizes = [[1, 3]]\n', "sweep.seed: must be"),
        (HEAD + "[params.eta]\nalpha = [1]\n", "params.eta.alpha: the eta mechanism does not"),
        (HEAD + "[params.babg]\nalpha = [1]\n", "params.babg: 'babg' is not in sweep.mechanisms"),
        (HEAD + "[params.eta]\nvolumes = [1]\n", "params.eta.volumes: 1 is not a str"),
        (HEAD + "[params.eta]\nprice = []\n", "params.eta.price: must be a list of 1 to"),
        (HEAD + "[scenario]\nrho = [0.2, 0.1]\n", "scenario.rho: must be [low, high]"),
        (HEAD + "[scenario]\nn_buyers = 3\n", "scenario.n_buyers: unknown key"),
        (
            '[sweep]\nseed = 1\nmechanisms = ["babg"]\nsizes = [[2, 3]]\n'
            "[params.babg]\nalpha = [2.0]\n",
            "params.babg: alpha: must be a number in [0, 1]",
        ),
        (
            HEAD.replace("[[2, 3]]", "[[5000, 5000]]") + "replicates = 100000\n"
            "[params.eta]\nprice = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]\n",
            "sweep: 1100000 runs, more than the limit",
        ),
        ("[sweep\n", "not valid TOML"),
    ],
)
def test_a_bad_sweep_file_is_one_line_naming_the_key(tmp_path, text, where):
    path = _write(tmp_path, text)
    with pytest.raises(SweepError, match=None) as info:
        load_sweep(path)
    assert where in str(info.value)
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and where in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_sweep_then_summary(tmp_path):
    path = _write(tmp_path, HEAD + "replicates = 2\n")
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--workers", "0"])
    assert first.exit_code == 0, first.output
    assert "2 runs recorded in 1 shards, 0 already" in first.output
    again = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--workers", "0"])
    assert "0 runs recorded in 0 shards, 2 already" in again.output
    assert len(shards(out)) == 1
    summary = runner.invoke(app, ["sweep-summary", str(out)])
    assert summary.exit_code == 0, summary.output
    assert (out / "_summary" / "summary.csv").exists()
    assert (out / "_summary" / "welfare.png").exists()
    assert pq.read_table(out).num_rows == 2  # the folder reads as one table (pandas too)
    empty = runner.invoke(app, ["sweep-summary", str(tmp_path)])
    assert empty.exit_code == 1 and "no sweep records" in empty.output


def test_the_example_sweeps_load_and_the_babg_one_is_table_ii():
    from evtrade.sim.babg_figures import BABG_SPEC

    root = Path(__file__).resolve().parents[1] / "examples"
    assert load_sweep(root / "sweep.toml").size() == 120
    from evtrade.sim.babg_figures import FIGURES
    from evtrade.sim.sweep_figures import FigureSweep, load_sweep_file

    figures = load_sweep_file(root / "sweep_figures.toml")
    assert isinstance(figures, FigureSweep)
    assert (figures.paper, figures.seed, figures.quick) == ("babg", 2024, False)
    assert figures.figures == tuple(FIGURES)
    babg = load_sweep(root / "sweep_babg_scale.toml")
    assert babg.size() == 3 * 11 * 5
    for run in babg.runs():
        assert scenario_spec(run) == BABG_SPEC.scaled(run.n_buyers, run.n_sellers)


def test_a_figures_sweep_writes_the_reproduce_files_byte_for_byte(tmp_path):
    from evtrade.sim.eta_figures import FIGURES
    from evtrade.sim.figures import run_figure
    from evtrade.sim.sweep_figures import FigureSweep, execute_figures, load_sweep_file

    path = _write(
        tmp_path, '[figures]\npaper = "eta"\nseed = 7\nquick = true\nonly = ["fig5", "fig4"]\n'
    )
    spec = load_sweep_file(path)
    assert isinstance(spec, FigureSweep)
    assert spec.figures == ("fig4", "fig5")  # reproduce's order
    assert execute_figures(spec, tmp_path / "sweep", workers=0)[:2] == (2, 0)
    assert execute_figures(spec, tmp_path / "sweep", workers=0)[:2] == (0, 2)
    (tmp_path / "direct").mkdir()
    for name in ("fig4", "fig5"):
        run_figure(FIGURES[name], tmp_path / "direct", seed=7, quick=True)
    for p in (tmp_path / "direct").iterdir():
        if p.suffix == ".csv":
            assert (tmp_path / "sweep" / p.name).read_bytes() == p.read_bytes()
        assert (tmp_path / "sweep" / p.name).exists()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[figures]\npaper = "x"\nseed = 1\n', "figures.paper: must be one of eta, babg, dsm"),
        ('[figures]\npaper = "eta"\n', "figures.seed: must be an integer"),
        ('[figures]\npaper = "eta"\nseed = 1\nonly = ["fig99"]\n', "figures.only: must be a list"),
        ('[figures]\npaper = "eta"\nseed = 1\nquick = 1\n', "figures.quick: must be true or"),
        ('[figures]\npaper = "eta"\nseed = 1\n[sweep]\nseed = 1\n', "sweep: a [figures] file has"),
    ],
)
def test_a_bad_figures_file_is_one_line_naming_the_key(tmp_path, text, where):
    result = CliRunner().invoke(
        app, ["sweep", str(_write(tmp_path, text)), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and where in lines[0], result.output


def test_every_reproduced_paper_is_a_figures_sweep(tmp_path):
    import importlib

    from evtrade.sim.sweep_figures import PAPERS, FigureSweep, load_sweep_file

    assert set(PAPERS) == {"eta", "babg", "dsm", "dv2g", "tangle"}
    for paper, module in PAPERS.items():
        spec = load_sweep_file(_write(tmp_path, f'[figures]\npaper = "{paper}"\nseed = 1\n'))
        assert isinstance(spec, FigureSweep)
        assert spec.figures == tuple(importlib.import_module(module).FIGURES)
