"""`evtrade chain run` and `evtrade audit` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from evtrade import clear, load_market

EXE = [sys.executable, "-m", "evtrade"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=300)


def test_chain_run_then_audit_then_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = run("chain", "run", "examples/small.json", "--data-dir", str(data), "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["audit"]["ok"]
    # The chain settles what the library clears: the same pairs, volumes to the energy unit.
    library = clear(load_market("examples/small.json"))
    want = {(p.buyer, p.seller): p.volume for p in library.pairs if p.volume > 1e-6}
    got = {(t["buyer"], t["seller"]): t["kwh"] for t in result["trades"]}
    assert got.keys() == want.keys()
    assert all(abs(got[k] - want[k]) < 1e-4 for k in want)
    assert set(result["rejected"]) == {r["id"] for r in library.rejected}
    # A second run reuses the deployment in the data directory: round 1.
    out = run("chain", "run", "examples/small.json", "--data-dir", str(data), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["round_id"] == 1
    for round_id in ("0", "1"):
        audit = run("audit", "--round", round_id, "--data-dir", str(data))
        assert audit.returncode == 0, audit.stderr
        assert "audit: ok" in audit.stdout


def test_audit_bad_input(tmp_path: Path) -> None:
    out = run("audit", "--round", "0", "--data-dir", str(tmp_path / "nothing"))
    assert out.returncode == 1 and "no deployment record" in out.stderr
    data = tmp_path / "data"
    assert run("chain", "run", "examples/small.json", "--data-dir", str(data)).returncode == 0
    out = run("audit", "--round", "9", "--data-dir", str(data))
    assert out.returncode == 1 and "no round 9" in out.stderr
    # Issue 13 item 10: the message names the flag the user typed, not the ledger's field.
    assert "--round 9" in out.stderr and "round_id" not in out.stderr
    out = run("audit", "--round", "-1", "--data-dir", str(data))
    assert out.returncode == 2 and "--round" in out.stderr
    bad = tmp_path / "deployment.json"
    bad.write_text("[1, 2]")
    out = run("audit", "--round", "0", "--data-dir", str(data), "--deployment", str(bad))
    assert out.returncode == 1 and "expected a JSON object" in out.stderr
    out = run(
        "audit",
        "--round",
        "0",
        "--chain-url",
        "http://127.0.0.1:9",
        "--deployment",
        str(data / "deployment.json"),
    )
    assert out.returncode == 1 and "no Ethereum JSON-RPC node answers" in out.stderr


def test_chain_run_bad_market_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"auctioneer": {"v_min": 0.5, "c_max": 1.0}, "buyers": [{}]}))
    out = run("chain", "run", str(bad), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 1 and "error:" in out.stderr and "Traceback" not in out.stderr
