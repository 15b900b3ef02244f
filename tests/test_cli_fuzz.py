"""Hypothesis over adversarial market files for `evtrade clear`: an answer or one line, never more.

Each case writes a market file (JSON, TOML or raw text) built from a valid market by mutations:
wrong types, missing fields, extreme and subnormal numbers, integers beyond float range,
NaN/Infinity tokens, deep nesting, duplicate and unicode ids, wrong sections, a mechanism and its
options drawn too. `evtrade clear` runs in process (typer's CliRunner); a few cases also run as a
real subprocess. Every run must end either with exit code 0 and finite JSON of the documented
shape, or with exit code 1 and exactly one line `error: ...` that is neither a traceback nor an
`internal error` (the boundary's name for a bug). The subprocess timeout is a hang detector,
not a speed assertion.

Budget: `make test` runs SHORT_CASES in process and SUBPROCESS_SHORT as subprocesses; `make fuzz`
(EVTRADE_FUZZ=long) runs LONG_CASES and SUBPROCESS_LONG. The counts run are printed.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from evtrade.cli import app
from evtrade.model.files import MAX_BUYERS, MAX_PAIRS, MAX_SELLERS

pytestmark = pytest.mark.fuzz

LONG = os.environ.get("EVTRADE_FUZZ") == "long"
SHORT_CASES, LONG_CASES = 60, 1500
SUBPROCESS_SHORT, SUBPROCESS_LONG = 3, 25
CASES = LONG_CASES if LONG else SHORT_CASES
SUBPROCESS_CASES = SUBPROCESS_LONG if LONG else SUBPROCESS_SHORT
#: Hang detector for the subprocess runs (a small market clears in about a second).
HANG_SECONDS = 300
RESULT_KEYS = {
    "mechanism",
    "volumes",
    "price",
    "pairs",
    "rejected",
    "unmatched",
    "welfare",
    "total_volume",
    "gains_from_trade",
    "total_payment",
    "satisfaction",
    "solver",
}
RAN = {"in_process": 0, "subprocess": 0, "answers": 0, "errors": 0}

BUYER = {"v": 0.9, "v_min": 0.6, "v_max": 1.0, "b_min": 1.0, "b_max": 5.0, "w": 2.0}
SELLER = {"c": 0.4, "c_min": 0.3, "c_max": 0.8, "s_t": 20.0, "s_r": 5.0, "rho": 0.1}
AUCTIONEER = {"v_min": 0.5, "c_max": 1.0, "l1": 0.0025, "l2": 0.005, "max_distance_km": None}

EXTREME_NUMBERS = [
    0,
    -0.0,
    1,
    -1,
    5e-324,
    1e-320,
    2.2250738585072014e-308,
    1e-12,
    1e-6,
    0.999999,
    1.0000001,
    5.0000001,
    1e6,
    1e9,
    1e9 * (1 + 1e-15),
    1e15,
    1e300,
    1.7976931348623157e308,
    -1e308,
    2**53 + 1,
    2**63,
    10**30,
    10**400,
    -(10**400),
    math.inf,
    -math.inf,
    math.nan,
]
WRONG_TYPES: list[Any] = [None, True, False, "0.5", "", [], [1, 2], {}, {"v": 1}]
UNICODE_IDS = ["é", "買家", "\u200b", "🚗" * 30, "a\nb", "\x00", "\ud800", " ", "x" * 300, "B1"]

FIELD_NAMES = sorted({*BUYER, *SELLER, *AUCTIONEER, "id", "lat", "lon"})
numbers = st.one_of(
    st.sampled_from(EXTREME_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(min_value=0.0, max_value=2.0),
)
values = st.one_of(numbers, st.sampled_from(WRONG_TYPES), st.text(max_size=8))


@st.composite
def base_market(draw: st.DrawFn) -> dict[str, Any]:
    """A valid market (1-6 buyers, 1-6 sellers) with locations on some participants."""
    n = draw(st.integers(1, 6))
    m = draw(st.integers(1, 6))
    jitter = st.floats(min_value=0.0, max_value=1.0)
    buyers = []
    for i in range(n):
        b: dict[str, Any] = dict(BUYER, id=f"B{i}")
        b["v"] = 0.6 + 0.4 * draw(jitter)
        b["b_min"] = 3 * draw(jitter)
        b["b_max"] = b["b_min"] + 10 * draw(jitter)
        b["w"] = 5 * draw(jitter)
        buyers.append(b)
    sellers = []
    for j in range(m):
        s = dict(SELLER, id=f"S{j}")
        s["c"] = 0.3 + 0.5 * draw(jitter)
        s["s_t"] = 5 + 40 * draw(jitter)
        s["rho"] = 0.02 + 0.4 * draw(jitter)
        sellers.append(s)
    if draw(st.booleans()):
        for p in buyers + sellers:
            p["lat"], p["lon"] = 29.0 + 0.05 * draw(jitter), 119.6 + 0.05 * draw(jitter)
    return {"auctioneer": dict(AUCTIONEER), "buyers": buyers, "sellers": sellers}


@st.composite
def extreme_valid_market(draw: st.DrawFn) -> dict[str, Any]:
    """A market inside every limit, every number at or near a bound (0, subnormal, 1e9, ...):
    accepted, so it must clear to finite numbers (or fail in one line, e.g. a solver error)."""
    edge = st.sampled_from([0.0, 5e-324, 1e-18, 1e-6, 0.5, 1.0, 1e3, 1e9])

    def ordered() -> tuple[float, float, float]:
        lo, mid, hi = sorted(draw(edge) for _ in range(3))
        return lo, mid, hi

    buyers, sellers = [], []
    for i in range(draw(st.integers(1, 5))):
        v_min, v, v_max = ordered()
        b_min, _, b_max = ordered()
        w = draw(st.sampled_from([0.0, 1e-18, 1e-6, 1.0, 5.0]))
        buyers.append(
            {"id": f"B{i}", "v": v, "v_min": v_min, "v_max": v_max, "b_min": b_min}
            | {"b_max": b_max, "w": w}
        )
    for j in range(draw(st.integers(1, 5))):
        c_min, c, c_max = ordered()
        s_r, _, s_t = ordered()
        rho = draw(st.sampled_from([1e-6, 1e-3, 0.5, 1.0]))
        sellers.append(
            {"id": f"S{j}", "c": c, "c_min": c_min, "c_max": c_max, "s_t": s_t, "s_r": s_r}
            | {"rho": rho}
        )
    auctioneer = {
        "v_min": draw(st.sampled_from([0.0, 1e-18, 0.5, 1e9])),
        "c_max": draw(st.sampled_from([0.0, 1.0, 1e9])),
        "l1": draw(st.sampled_from([1e-6, 0.0025, 1e3])),
        "l2": draw(st.sampled_from([0.0, 1e-18, 0.005, 1e3])),
    }
    return {"auctioneer": auctioneer, "buyers": buyers, "sellers": sellers}


@st.composite
def mutated_market(draw: st.DrawFn) -> Any:
    """A base market after 0-4 mutations (fields, sections, ids, nesting, duplicates)."""
    d: Any = draw(base_market())
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(
            st.sampled_from(
                ["field", "field", "field", "delete", "id", "section", "duplicate", "nest", "top"]
            )
        )
        if not isinstance(d, dict):
            break
        group = draw(st.sampled_from(["buyers", "sellers", "auctioneer"]))
        section = d.get(group)
        target: Any = section
        if isinstance(section, list) and section:
            target = section[draw(st.integers(0, len(section) - 1))]
        if kind == "field" and isinstance(target, dict):
            target[draw(st.sampled_from(FIELD_NAMES))] = draw(values)
        elif kind == "delete" and isinstance(target, dict) and target:
            target.pop(draw(st.sampled_from(sorted(target))), None)
        elif kind == "id" and isinstance(target, dict):
            target["id"] = draw(st.one_of(st.sampled_from(UNICODE_IDS), st.text(max_size=20)))
        elif kind == "section":
            d[group] = draw(st.one_of(st.sampled_from(WRONG_TYPES), numbers))
        elif kind == "duplicate" and isinstance(section, list) and section:
            section.extend([section[0]] * draw(st.integers(1, 3)))
        elif kind == "nest":
            depth = draw(st.integers(1, 60))
            inner: Any = draw(values)
            for _ in range(depth):
                inner = [inner] if draw(st.booleans()) else {"k": inner}
            d[group] = inner
        elif kind == "top":
            d = draw(st.sampled_from([[], [d], "market", 1, None]))
    return d


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '""'


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def to_toml(d: dict[str, Any]) -> str:
    """TOML for a market-shaped dict (None values are left out: TOML has no null)."""
    lines: list[str] = []
    for name, section in d.items():
        if isinstance(section, dict):
            lines.append(f"[{_key(name)}]")
            lines += [f"{_key(k)} = {_toml_value(v)}" for k, v in section.items() if v is not None]
        elif isinstance(section, list) and all(isinstance(x, dict) for x in section) and section:
            for item in section:
                lines.append(f"[[{_key(name)}]]")
                lines += [f"{_key(k)} = {_toml_value(v)}" for k, v in item.items() if v is not None]
        elif section is not None:
            lines.insert(0, f"{_key(name)} = {_toml_value(section)}")
    return "\n".join(lines) + "\n"


@st.composite
def market_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, content): a mutated market as JSON or TOML, deep nesting, or raw bytes/text."""
    form = draw(st.sampled_from(["json", "json", "json", "toml", "toml", "deep", "raw", "edge"]))
    if form == "edge":
        return ".json", json.dumps(draw(extreme_valid_market())).encode()
    if form == "deep":
        depth = draw(st.sampled_from([33, 500, 5_000, 200_000]))
        if draw(st.booleans()):
            return ".json", ("[" * depth + "]" * depth).encode()
        return ".toml", ("a = " + "[" * depth + "]" * depth + "\n").encode()
    if form == "raw":
        suffix = draw(st.sampled_from([".json", ".toml", ".txt", ""]))
        if draw(st.booleans()):
            return suffix, draw(st.binary(max_size=200))
        return suffix, draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    d = draw(mutated_market())
    if form == "toml" and isinstance(d, dict):
        return ".toml", to_toml(d).encode("utf-8", "surrogatepass")
    # allow_nan: NaN / Infinity tokens reach the parser, which must refuse them.
    text = json.dumps(d, allow_nan=True, ensure_ascii=draw(st.booleans()))
    return ".json", text.encode("utf-8", "surrogatepass")


options = st.sampled_from(
    [
        [],
        ["--mechanism", "complete-info"],
        ["--mechanism", "single-price", "--price", "0.6"],
        ["--mechanism", "single-price", "--price", "1e300"],
        ["--volumes", "theorem2"],
        ["--mechanism", "babg"],
        ["--mechanism", "babg", "--grid-buy", "0.1", "--grid-sell", "1e9"],
        ["--mechanism", "ida"],
        ["--format", "table"],
    ]
)


def _finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def check_outcome(code: int, stdout: str, stderr: str, args: list[str]) -> None:
    """Exit 0 with finite JSON of the documented shape (or a table), or exit 1 with one line."""
    assert "Traceback" not in stderr + stdout, stderr[-2000:]
    if code == 0:
        RAN["answers"] += 1
        if "table" in args:
            assert "welfare" in stdout
            return
        out = json.loads(stdout, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
        assert set(out) == RESULT_KEYS
        assert _finite(out)
        return
    RAN["errors"] += 1
    assert code == 1, (code, stderr[-2000:])
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith("error: "), lines[0]
    assert "internal error" not in lines[0], lines[0]


@settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
)
@given(case=market_file(), args=options)
def test_clear_in_process(tmp_path_factory: pytest.TempPathFactory, case: Any, args: Any) -> None:
    suffix, content = case
    path = tmp_path_factory.mktemp("fuzz") / f"market{suffix}"
    path.write_bytes(content)
    argv = ["clear", str(path), *(args if "--format" in args else [*args, "--format", "json"])]
    result = CliRunner().invoke(app, argv)
    RAN["in_process"] += 1
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # escaped the error boundary
    check_outcome(result.exit_code, result.stdout, result.stderr, argv)


def test_subprocess_runs(tmp_path: Path) -> None:
    """A few drawn files through the real executable (the console entry point's boundary)."""
    cases: list[tuple[str, bytes]] = []

    @settings(max_examples=SUBPROCESS_CASES, deadline=None, database=None, derandomize=True)
    @given(case=market_file())
    def collect(case: tuple[str, bytes]) -> None:
        cases.append(case)

    collect()
    cases.append((".json", b"[" * 100_000 + b"]" * 100_000))  # issue 11, item 10
    for k, (suffix, content) in enumerate(cases):
        path = tmp_path / f"m{k}{suffix}"
        path.write_bytes(content)
        argv = [sys.executable, "-m", "evtrade", "clear", str(path), "--format", "json"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=HANG_SECONDS)
        RAN["subprocess"] += 1
        check_outcome(out.returncode, out.stdout, out.stderr, argv)


def _write(path: Path, n: int, m: int) -> Path:
    buyers = [dict(BUYER, id=f"B{i}") for i in range(n)]
    sellers = [dict(SELLER, id=f"S{j}") for j in range(m)]
    path.write_text(json.dumps({"auctioneer": AUCTIONEER, "buyers": buyers, "sellers": sellers}))
    return path


@pytest.mark.parametrize(
    ("n", "m", "needle"),
    [
        (MAX_BUYERS + 1, 1, "buyers is more than the limit"),
        (1, MAX_SELLERS + 1, "sellers is more than the limit"),
        (MAX_PAIRS // MAX_SELLERS + 1, MAX_SELLERS, "pairs is more than the limit"),
    ],
)
def test_size_limits_refused_before_allocating(tmp_path: Path, n: int, m: int, needle: str) -> None:
    """Over-limit markets get the limit's one line (a 1e5 x 1e5 market tried to allocate 75 GiB)."""
    result = CliRunner().invoke(app, ["clear", str(_write(tmp_path / "big.json", n, m))])
    assert result.exit_code == 1
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_large_market_within_limits_clears(tmp_path: Path) -> None:
    """2,000 buyers x 5 sellers with ample supply: an answer, not a limit."""
    path = _write(tmp_path / "wide.json", 2_000, 5)
    d = json.loads(path.read_text())
    for s in d["sellers"]:
        s["s_t"] = 5_000.0
    path.write_text(json.dumps(d))
    result = CliRunner().invoke(app, ["clear", str(path), "--format", "json"])
    check_outcome(result.exit_code, result.stdout, result.stderr, [])
    assert result.exit_code == 0


@settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
)
@given(market=extreme_valid_market(), args=options)
def test_clear_accepted_extremes(
    tmp_path_factory: pytest.TempPathFactory, market: dict[str, Any], args: list[str]
) -> None:
    """Every accepted market gives finite numbers (rho = 1e-320 once gave NaN, then a traceback)."""
    path = tmp_path_factory.mktemp("edge") / "market.json"
    path.write_text(json.dumps(market))
    argv = ["clear", str(path), *(args if "--format" in args else [*args, "--format", "json"])]
    result = CliRunner().invoke(app, argv)
    RAN["in_process"] += 1
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    check_outcome(result.exit_code, result.stdout, result.stderr, argv)


def test_report_counts() -> None:
    """Prints how many cases this session ran (runs last in the file)."""
    print(f"\ncli fuzz cases: {RAN} (budget {'long' if LONG else 'short'})")
