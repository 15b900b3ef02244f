"""The market model: validation in memory, round trip, TOML, and the Theorem 2 projection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evtrade import Auctioneer, Buyer, Market, MarketError, Seller, load_market
from evtrade.market import clear
from evtrade.market import feasibility as feas
from evtrade.market.theorem2 import project_feasible
from evtrade.model import market_from_dict, market_to_dict
from evtrade.model.files import toml_depth

from .conftest import random_market_dict


def test_round_trip() -> None:
    d = random_market_dict(np.random.default_rng(0), 3, 4)
    m = market_from_dict(d)
    assert market_from_dict(market_to_dict(m)) == m


def test_in_memory_validation_names_participant_and_field() -> None:
    with pytest.raises(MarketError, match=r"buyer 'x'.*'b_max'"):
        Buyer(id="x", v=1, v_min=0.5, v_max=1, b_min=5, b_max=1, w=1)
    with pytest.raises(MarketError, match=r"seller 's'.*'rho'"):
        Seller(id="s", c=1, c_min=0.5, c_max=1, s_t=5, s_r=1, rho=-0.1)
    with pytest.raises(MarketError, match="'l1'"):
        Auctioneer(v_min=0.5, c_max=1, l1=0)
    b = Buyer(id="x", v=1, v_min=0.5, v_max=1, b_min=1, b_max=2, w=1)
    with pytest.raises(MarketError, match="sellers"):
        Market(auctioneer=Auctioneer(v_min=0.5, c_max=1), buyers=(b,), sellers=())


def test_example_is_loadable() -> None:
    m = load_market("examples/paper_scale.json")
    assert (m.n_buyers, m.n_sellers) == (35, 40)


def test_projection_is_euclidean_projection() -> None:
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(4)
    n, m = 5, 4
    mask = rng.random((n, m)) < 0.7
    mask[:, 0] = True
    y = rng.uniform(-2, 20, (n, m))
    b_min, b_max = rng.uniform(0, 2, n), rng.uniform(3, 8, n)
    cap = rng.uniform(3, 10, m)
    x = project_feasible(y, mask, b_min, b_max, cap)
    z = cp.Variable((n, m), nonneg=True)
    cons = [
        cp.sum(z, axis=1) >= b_min,
        cp.sum(z, axis=1) <= b_max,
        cp.sum(z, axis=0) <= cap,
        cp.multiply(z, (~mask).astype(float)) == 0,
    ]
    cp.Problem(cp.Minimize(cp.sum_squares(z - np.where(mask, y, 0))), cons).solve()
    np.testing.assert_allclose(x, z.value, atol=1e-5)


SELLER = {"id": "s", "c": 0.4, "c_min": 0.3, "c_max": 0.8, "s_t": 20, "s_r": 5, "rho": 0.1}
BUYER = {"id": "b", "v": 0.9, "v_min": 0.6, "v_max": 1.0, "b_min": 1, "b_max": 5, "w": 2}


@pytest.mark.parametrize(
    ("cls", "field", "value", "needle"),
    [
        (Seller, "rho", 1e-320, "'rho'"),  # subnormal: passed, then NaN volumes (issue 11)
        (Seller, "rho", 5e-7, "'rho'"),
        (Seller, "s_t", 1e300, "'s_t'"),
        (Seller, "c", 10**400, "beyond float range"),  # float() raised OverflowError
        (Buyer, "v_max", 2e9, "'v_max'"),
        (Buyer, "b_max", float("inf"), "finite"),
        (Buyer, "id", "x" * 300, "longer than 256"),
        (Buyer, "id", "\ud800", "printable"),
        (Buyer, "lat", "north", "'lat'"),  # compared a str with a float
    ],
)
def test_numbers_and_ids_are_bounded(cls: type, field: str, value: object, needle: str) -> None:
    fields = dict(SELLER if cls is Seller else BUYER)
    fields[field] = value
    if field == "lat":
        fields["lon"] = 1.0
    with pytest.raises(MarketError, match=needle):
        cls(**fields)


@pytest.mark.parametrize("field", ["v", "v_min", "b_min", "w", "c", "c_min", "s_r"])
@pytest.mark.parametrize("tiny", [5e-324, 1e-18])
def test_tiny_values_refused_or_finite(field: str, tiny: float) -> None:
    """Subnormals are refused; the smallest accepted magnitude gives finite results."""
    d: dict[str, Any] = {
        "auctioneer": {"v_min": 0.0, "c_max": 1.0},
        "buyers": [dict(BUYER)],
        "sellers": [dict(SELLER)],
    }
    target = d["buyers"][0] if field in BUYER else d["sellers"][0]
    target[field] = tiny
    if tiny < 1e-18:
        with pytest.raises(MarketError, match="below the resolution"):
            market_from_dict(d)
        return
    market = market_from_dict(d)
    out = clear(market).to_dict()
    assert all(np.isfinite(v) for v in (out["welfare"], out["total_volume"], out["total_payment"]))


def test_toml_depth_ignores_strings_and_comments() -> None:
    assert toml_depth("a = \"[[[[\"\nb = '{{{{'  # [[[[[\nc = [[1], [2]]\n") == 2
    assert toml_depth('s = """\n[[[\n"""\n[[buyers]]\n') == 2
    assert toml_depth("a = " + "[" * 100) == 33  # stops just past the limit


def test_exclusion_rule_work_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Minimums far above supply: one max flow per excluded buyer, so the total work is bounded."""
    n = 200
    mask = np.ones((n, 2), bool)
    b_min = np.linspace(1.0, 2.0, n)
    args = (mask, b_min, np.array([10.0, 10.0]), np.ones(n), [f"b{i}" for i in range(n)])
    full = feas.exclude_unservable_buyers(*args)
    assert len(full) > 150 and max(full) == n - 1  # the largest minimums go first
    monkeypatch.setattr(feas, "MAX_EXCLUSION_WORK", 10 * (n + 2 * n + 2))
    with pytest.raises(MarketError, match="exclusion rule needs more than"):
        feas.exclude_unservable_buyers(*args)
