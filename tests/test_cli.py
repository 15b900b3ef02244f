"""The CLI end to end, run as a user runs it (a real subprocess), bad files included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evtrade import clear, load_market

EXE = [sys.executable, "-m", "evtrade"]
GOOD = {
    "auctioneer": {"v_min": 0.5, "c_max": 1.0},
    "buyers": [{"id": "B1", "v": 0.9, "v_min": 0.6, "v_max": 1.0, "b_min": 1, "b_max": 5, "w": 2}],
    "sellers": [
        {"id": "S1", "c": 0.4, "c_min": 0.3, "c_max": 0.8, "s_t": 20, "s_r": 5, "rho": 0.1}
    ],
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=120)


def test_json_output_equals_library(tmp_path: Path) -> None:
    out = run("clear", "examples/small.json", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(
        json.dumps(clear(load_market("examples/small.json")).to_dict())
    )


def test_table_and_mechanisms() -> None:
    out = run("clear", "examples/small.json")
    assert out.returncode == 0 and "welfare" in out.stdout
    out = run(
        "clear",
        "examples/small.json",
        "--mechanism",
        "single-price",
        "--price",
        "0.7",
        "--format",
        "json",
    )
    assert out.returncode == 0
    assert all(p["T"] == 0.7 for p in json.loads(out.stdout)["pairs"])
    out = run("clear", "examples/small.json", "--mechanism", "single-price")
    assert out.returncode == 1 and "price" in out.stderr


def test_toml_market(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text(
        '[auctioneer]\nv_min = 0.5\nc_max = 1.0\n[[buyers]]\nid = "B1"\nv = 0.9\nv_min = 0.6\n'
        'v_max = 1.0\nb_min = 1\nb_max = 5\nw = 2\n[[sellers]]\nid = "S1"\nc = 0.4\nc_min = 0.3\n'
        "c_max = 0.8\ns_t = 20\ns_r = 5\nrho = 0.1\n"
    )
    out = run("clear", str(f), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total_volume"] == pytest.approx(5.0)


def _mutate(path: list[str | int], value: object) -> dict:
    d = json.loads(json.dumps(GOOD))
    node = d
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


BAD = [
    ("not json", "{ this is not", "JSON"),
    (
        "missing field",
        _mutate(["buyers", 0, "v"], KeyError),
        "buyer 'B1' (buyers[0]): missing field 'v'",
    ),
    ("wrong type", _mutate(["sellers", 0, "c"], "cheap"), "seller 'S1' (sellers[0]): field 'c'"),
    ("negative energy", _mutate(["sellers", 0, "s_t"], -3), "field 's_t'"),
    ("bmax < bmin", _mutate(["buyers", 0, "b_max"], 0.5), "field 'b_max'"),
    ("no auctioneer", _mutate(["auctioneer"], KeyError), "auctioneer"),
    ("no buyers", _mutate(["buyers"], []), "buyers"),
    ("no sellers", _mutate(["sellers"], KeyError), "sellers"),
    ("bool number", _mutate(["buyers", 0, "w"], True), "field 'w'"),
    ("nan", '{"auctioneer": {"v_min": NaN, "c_max": 1}, "buyers": [], "sellers": []}', "NaN"),
    ("duplicate id", _mutate(["sellers", 0, "id"], "B1"), "duplicates"),
    ("top-level list", [1, 2], "object"),
    ("rho zero", _mutate(["sellers", 0, "rho"], 0), "field 'rho'"),
    ("w above 5", _mutate(["buyers", 0, "w"], 7), "field 'w'"),
    ("lat without lon", _mutate(["buyers", 0, "lat"], 29.0), "lat"),
    ("buyer not object", _mutate(["buyers", 0], "B1"), "buyers[0]"),
    # Issue 11, item 10: each of these once ended in a traceback.
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
    ("subnormal rho", _mutate(["sellers", 0, "rho"], 1e-320), "field 'rho'"),
    ("price beyond limit", _mutate(["buyers", 0, "v_max"], 1e300), "field 'v_max'"),
    ("integer beyond float", '{"auctioneer": {"v_min": 1' + "0" * 400 + "}}", "too long"),
    ("unprintable id", _mutate(["buyers", 0, "id"], "a\nb"), "printable"),
]


@pytest.mark.parametrize(("name", "content", "needle"), BAD, ids=[b[0] for b in BAD])
def test_broken_files_fail_cleanly(tmp_path: Path, name: str, content: object, needle: str) -> None:
    f = tmp_path / "m.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    out = run("clear", str(f), "--format", "json")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]


def test_missing_and_binary_files(tmp_path: Path) -> None:
    out = run("clear", str(tmp_path / "nope.json"))
    assert out.returncode == 1 and "cannot read" in out.stderr
    f = tmp_path / "bin.json"
    f.write_bytes(b"\xff\xfe\x00garbage")
    out = run("clear", str(f))
    assert out.returncode == 1 and "Traceback" not in out.stderr


def test_montecarlo_command() -> None:
    out = run("montecarlo", "--samples", "400000", "--format", "json")
    assert out.returncode == 0
    rec = json.loads(out.stdout)
    assert abs(rec["gains_from_trade"] - 9 / 64) < 5 * rec["stderr"]
    assert rec["exact"] == 9 / 64


def test_reproduce_quick(tmp_path: Path) -> None:
    out = run("reproduce", "eta", "--out", str(tmp_path), "--quick")
    assert out.returncode == 0, out.stderr
    for name in ("fig4", "fig5", "fig6", "fig7_8", "fig9", "fig10", "fig13", "fig14"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.csv").read_text().count("\n") > 2


def test_bench_quick_smoke() -> None:
    """`evtrade bench --quick` runs and every record has the documented fields (not timed)."""
    out = run("bench", "--quick", "--format", "json", "--repeats", "1")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    keys = {"case", "n_buyers", "n_sellers", "seconds", "reference_seconds", "ratio"}
    keys |= {"welfare_gap", "peak_mb", "certificate", "kkt", "note"}
    assert records and all(set(r) == keys for r in records)
    for r in records:
        assert r["seconds"] > 0 and r["peak_mb"] >= 0
        if r["certificate"] is not None:
            assert r["certificate"] <= 1e-8, r
        if r["kkt"] is not None:
            assert r["kkt"] <= 1e-6, r
        if r["welfare_gap"] is not None:  # the project is never worse than the reference
            assert r["welfare_gap"] <= 1e-6, r


@pytest.mark.parametrize(
    "content",
    [
        "a = " + "[" * 100_000 + "]" * 100_000 + "\n",  # RecursionError in tomllib
        "a = " + "{b = " * 5_000 + "1" + "}" * 5_000 + "\n",
        "[auctioneer]\nv_min = 1" + "0" * 5_000 + "\n",  # int() refuses > 4,300 digits
        "[auctioneer]\nv_min = nan\nc_max = 1\n",
    ],
    ids=["deep arrays", "deep tables", "long integer", "nan"],
)
def test_hostile_toml_fails_in_one_line(tmp_path: Path, content: str) -> None:
    f = tmp_path / "m.toml"
    f.write_text(content)
    out = run("clear", str(f))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_options_out_of_range_fail_in_one_line() -> None:
    # --price 1e300 made the total payment overflow to inf, and the JSON dump raised.
    out = run("clear", "examples/small.json", "--mechanism", "single-price", "--price", "1e300")
    assert out.returncode == 1 and "--price" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = run("montecarlo", "--samples", str(10**12))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    out = run("montecarlo", "--seed", "-1")
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_unwritable_output_and_unreadable_chain_market(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run("reproduce", "eta", "--out", str(blocker / "sub"), "--quick")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    out = run("chain", "run", str(deep), "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 1 and "nested deeper" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
