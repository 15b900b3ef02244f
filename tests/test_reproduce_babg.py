"""`evtrade reproduce babg`: the files, and the qualitative shapes of Luo et al.'s Fig. 3-8."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _mean(rows: list[dict[str, Any]], key: str, **where: Any) -> float:
    vals = [float(r[key]) for r in rows if all(r[k] == str(v) for k, v in where.items())]
    return float(np.nanmean(vals))


def _check_shapes(out: Path) -> None:
    for name in ("fig3_welfare", "fig4_alpha", "fig5_trajectories", "fig6_pma", "fig7_volume",
                 "fig8_cp"):  # fmt: skip
        assert (out / f"{name}.png").stat().st_size > 10_000
    scale = _rows(out / "fig3_7_8.csv")
    # Fig. 3: at the paper's scale (35 x 40) BABG's welfare is the highest of the three.
    b = _mean(scale, "welfare", sweep="charging", n=35, mechanism="BABG")
    assert b > _mean(scale, "welfare", sweep="charging", n=35, mechanism="IDA")
    assert b > _mean(scale, "welfare", sweep="charging", n=35, mechanism="ETA")
    # Fig. 7: volume grows with the number of discharging EVs, then demand caps it.
    vols = [_mean(scale, "volume", sweep="discharging", m=m, mechanism="BABG") for m in (20, 60)]
    assert vols[0] < vols[1]
    # Fig. 4: more price adjustment, fewer auctions and a wider bid-ask spread.
    alpha = _rows(out / "fig4.csv")
    alphas = sorted({float(r["alpha"]) for r in alpha})
    auctions = [_mean(alpha, "auctions", alpha=a) for a in alphas]
    spread = [_mean(alpha, "W", alpha=a) - _mean(alpha, "Q", alpha=a) for a in alphas]
    assert all(x >= y for x, y in itertools.pairwise(auctions))
    assert spread[-1] > spread[0]
    # Fig. 5: the average bid starts below the average ask and ends above it.
    traj = [r for r in _rows(out / "fig5.csv") if r["alpha"] == "0.5"]
    assert float(traj[0]["W"]) < float(traj[0]["Q"]) and float(traj[-1]["W"]) >= float(
        traj[-1]["Q"]
    )
    # Fig. 6: PMA grows with alpha = beta.
    pma = _rows(out / "fig6.csv")
    assert _mean(pma, "pma", alpha=0.9) > _mean(pma, "pma", alpha=0.1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["welfare_vs_ETA_max"] > 0 and summary["welfare_vs_IDA_max"] > 0


def test_reproduce_babg_quick(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "evtrade", "reproduce", "babg", "--quick", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    _check_shapes(tmp_path)


@pytest.mark.slow
def test_reproduce_babg_full_under_five_minutes(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "evtrade", "reproduce", "babg", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert time.perf_counter() - t0 < 300
    _check_shapes(tmp_path)
