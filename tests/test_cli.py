"""The CLI end to end, run as a user runs it (a real subprocess), bad files included."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from evtrade import clear, load_market, market_from_dict

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


def test_unmatched_table_gives_the_posted_price_reason() -> None:
    # The command: S3 (c = 0.8628) is unmatched because its ask is above 0.7.
    out = run_env(
        {"COLUMNS": "200"},
        "clear", "examples/small.json", "--mechanism", "single-price", "--price", "0.7",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    unmatched = out.stdout.split("Unmatched", 1)[1]
    rows = {r[0]: r[2] for r in _rows(unmatched)}
    assert rows["S3"] == "its ask is above the posted price (0.7 tokens/kWh)"
    assert "covers" not in unmatched


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


def _mutate(path: list[str | int], value: object) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(json.dumps(GOOD))
    node: Any = d
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


# --- issue 13, item 11: what a market file says that the market ignores, and the trades table ---


def _write(tmp_path: Path, d: dict[str, Any]) -> Path:
    f = tmp_path / "m.json"
    f.write_text(json.dumps(d))
    return f


def test_typo_in_a_key_warns_with_did_you_mean(tmp_path: Path) -> None:
    d = json.loads(json.dumps(GOOD))
    d["auctioneer"]["max_distance"] = 5  # for max_distance_km
    d["buyers"][0]["vmax"] = 1.0  # beside v_max
    d["sellers"][0]["colour"] = "red"  # close to nothing
    typo = run("clear", str(_write(tmp_path, d)), "--format", "json")
    assert typo.returncode == 0, typo.stderr
    lines = typo.stderr.strip().splitlines()
    assert lines == [
        "warning: auctioneer: unknown key 'max_distance' ignored (did you mean 'max_distance_km'?)",
        "warning: buyer 'B1': unknown key 'vmax' ignored (did you mean 'v_max'?)",
        "warning: seller 'S1': unknown key 'colour' ignored (not a key of this section)",
    ]
    # Warnings go to stderr only: the JSON is that of the file without the unknown keys.
    clean = run("clear", str(_write(tmp_path, GOOD)), "--format", "json")
    assert clean.stderr == "" and typo.stdout == clean.stdout


def test_key_warnings_are_one_line_per_key_and_bounded() -> None:
    from evtrade.model.files import MAX_KEY_WARNINGS, market_from_dict_with_warnings

    d = json.loads(json.dumps(GOOD))
    d["buyers"] = [{**d["buyers"][0], "id": f"B{k}", "bmax": 1} for k in range(5)]
    d["sellerz"] = []
    loaded = market_from_dict_with_warnings(d)
    assert loaded.warnings == (
        "market: unknown key 'sellerz' ignored (did you mean 'sellers'?)",
        "buyers 'B0', 'B1', 'B2' and 2 more: unknown key 'bmax' ignored (did you mean 'b_max'?)",
    )
    assert loaded.market == market_from_dict(GOOD | {"buyers": d["buyers"]})
    d["sellers"][0] |= {f"junk{k}": k for k in range(100)}
    lines = market_from_dict_with_warnings(d).warnings
    assert len(lines) == MAX_KEY_WARNINGS + 1
    assert lines[-1] == f"... and {102 - MAX_KEY_WARNINGS} more unknown keys ignored"


def test_max_distance_without_coordinates_is_said_once(tmp_path: Path) -> None:
    d = json.loads(json.dumps(GOOD))
    d["auctioneer"]["max_distance_km"] = 5
    out = run("clear", str(_write(tmp_path, d)), "--format", "json")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("warning: auctioneer: max_distance_km is set but every")
    assert "no lat/lon (buyer 'B1'; seller 'S1')" in lines[0] and "rejected" in lines[0]
    assert json.loads(out.stdout)["total_volume"] == 0  # what the warning explains
    d["buyers"][0] |= {"lat": 29.1, "lon": 119.6}
    out = run("clear", str(_write(tmp_path, d)), "--format", "json")
    assert "1 of 2 participants have no lat/lon (seller 'S1')" in out.stderr
    d["sellers"][0] |= {"lat": 29.1, "lon": 119.6}
    out = run("clear", str(_write(tmp_path, d)), "--format", "json")
    assert out.returncode == 0 and out.stderr == ""


def test_load_market_api_unchanged() -> None:
    from evtrade.model.files import load_market_with_warnings

    loaded = load_market_with_warnings("examples/paper_scale.json")
    assert loaded.warnings == ()
    assert loaded.market == load_market("examples/paper_scale.json")


def _rows(table: str) -> list[list[str]]:
    """The body rows of the first rich table in ``table`` (cells stripped)."""
    body = table.split("┡", 1)[1].split("└", 1)[0]
    return [[c.strip() for c in line.split("│")[1:-1]] for line in body.splitlines() if "│" in line]


def test_table_hides_zero_volume_pairs_unless_all_pairs() -> None:
    env = {"COLUMNS": "200"}
    record = json.loads(run("clear", "examples/paper_scale.json", "--format", "json").stdout)
    zero = sum(1 for p in record["pairs"] if p["volume"] == 0)
    total = len(record["pairs"])
    assert (zero, total) == (212, 650)  # the count
    out = run_env(env, "clear", "examples/paper_scale.json")
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    assert len(rows) == total - zero and all(float(r[5]) > 0 for r in rows)
    assert f"{zero} of {total} pairs may trade but get 0 kWh: not listed" in out.stdout
    assert "--all-pairs" in out.stdout
    out = run_env(env, "clear", "examples/paper_scale.json", "--all-pairs")
    assert len(_rows(out.stdout)) == total and "not listed" not in out.stdout


# Each mechanism's headers of the P, R, T columns and a phrase of its legend.
HEADERS = {
    ("eta",): (("bid P*", "ask R*", "price T"), "T = (P* + R*)/2"),
    ("complete-info",): (("value v", "cost c", "price T"), "T = (v + c)/2"),
    ("single-price", "--price", "0.7"): (("value v", "cost c", "posted T"), "the posted price"),
    ("babg",): (("bid W", "ask Q", "pays W"), "the auctioneer keeps W - Q"),
    ("ida",): (("pays P", "price s", "pays T"), "b_ij / (eta c_ij)"),
}


@pytest.mark.parametrize("mechanism", list(HEADERS), ids=[m[0] for m in HEADERS])
def test_price_columns_carry_units_and_each_mechanisms_meaning(mechanism: tuple[str, ...]) -> None:
    headers, phrase = HEADERS[mechanism]
    out = run_env({"COLUMNS": "200"}, "clear", "examples/small.json", "--mechanism", *mechanism)
    assert out.returncode == 0, out.stderr
    header_rows = out.stdout.split("┡", 1)[0].splitlines()
    cells = [[c.strip() for c in line.split("┃")[1:-1]] for line in header_rows if "┃" in line]
    assert cells[0][2:5] == list(headers)
    assert cells[1][2:5] == ["tokens/kWh"] * 3 and cells[1][5:] == ["kWh", "km"]
    legend = " ".join(out.stdout.split("└", 1)[1].split())
    assert phrase in legend and "prices in tokens/kWh" in legend
    others = {p for m, (_, p) in HEADERS.items() if m != mechanism and p != phrase}
    assert not any(p in legend for p in others)


def test_every_round_mechanism_has_its_columns() -> None:
    from evtrade.cli.render import PRICE_COLUMNS
    from evtrade.market.mechanisms import names

    assert set(names("round")) <= set(PRICE_COLUMNS)


def test_totals_do_not_wrap_at_80_columns(tmp_path: Path) -> None:
    big = json.loads(json.dumps(GOOD))  # prices and energies near the limits: long totals
    big["auctioneer"] |= {"v_min": 5e8, "c_max": 1e9}
    big["buyers"][0] |= {"v": 9e8, "v_min": 6e8, "v_max": 1e9, "b_max": 1e9}
    big["sellers"][0] |= {"c": 4e8, "c_min": 3e8, "c_max": 8e8, "s_t": 1e9}
    for market in ("examples/paper_scale.json", str(_write(tmp_path, big))):
        out = run_env({"COLUMNS": "80"}, "clear", market)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80
        record = json.loads(run("clear", market, "--format", "json").stdout)
        totals = lines[-5:]
        assert totals[0].split() == ["total", "volume", f"{record['total_volume']:.3f}", "kWh"]
        assert totals[1].split()[:3] == ["total", "payments", f"{record['total_payment']:.4f}"]
        assert totals[2].split() == ["welfare", f"{record['welfare']:.6f}"]
        assert totals[3].split()[:4] == [
            "gains",
            "from",
            "trade",
            f"{record['gains_from_trade']:.4f}",
        ]
        assert totals[4].split()[0] == "satisfaction"


def test_ids_are_shown_as_text_not_markup(tmp_path: Path) -> None:
    d = json.loads(json.dumps(GOOD))
    d["buyers"][0]["id"] = "[bold]B1[/x]"  # was: error: internal error: MarkupError
    out = run_env({"COLUMNS": "200"}, "clear", str(_write(tmp_path, d)))
    assert out.returncode == 0, out.stderr
    assert _rows(out.stdout)[0][0] == "[bold]B1[/x]"


def run_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


# --- issue 13, item 10: serve, help texts ---


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_a_busy_port_fails_without_printing_a_url(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 1
    assert out.stdout == "" and "http://" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in lines[0]


def test_serve_prints_its_url_once_it_listens(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*EXE, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, proc.kill)  # a hung start fails the test, never hangs it
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"evtrade RSU service on http://127.0.0.1:{port}/ "), line
        # Printed only once listening: the address answers at once.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=60) as page:
            assert page.status == 200
    finally:
        watchdog.cancel()
        proc.kill()
        proc.communicate(timeout=60)


def test_serve_help_shows_the_defaults() -> None:
    from evtrade.cli.options import DEFAULT_DATA_DIR
    from evtrade.cli.serve import DEFAULT_HOST, DEFAULT_PORT
    from evtrade.service.settings import Settings

    defaults = {name: f.default for name, f in Settings.model_fields.items()}
    assert (defaults["host"], defaults["port"]) == (DEFAULT_HOST, DEFAULT_PORT)
    assert defaults["data_dir"] == DEFAULT_DATA_DIR
    out = run_env({"COLUMNS": "200"}, "serve", "--help")
    assert out.returncode == 0
    for shown in ("[default: 127.0.0.1]", "[default: 8000]", "[default: evtrade-data]"):
        assert shown in out.stdout


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, cmd in getattr(group, "commands", {}).items():
        found += _commands(cmd, (*path, name))
    return found


def test_no_bool_metavar_in_any_help() -> None:
    from typer.main import get_command
    from typer.testing import CliRunner

    from evtrade.cli import app

    paths = _commands(get_command(app))
    assert ("serve",) in paths and ("chain", "run") in paths
    for path in paths:
        out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert out.exit_code == 0, (path, out.output)
        assert "--help" in out.output and "<bool>" not in out.output, (path, out.output)
