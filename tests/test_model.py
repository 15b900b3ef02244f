"""The market model: validation in memory, round trip, TOML, and the Theorem 2 projection."""

from __future__ import annotations

import numpy as np
import pytest

from evtrade import Auctioneer, Buyer, Market, MarketError, Seller, load_market
from evtrade.market.theorem2 import project_feasible
from evtrade.model import market_from_dict, market_to_dict

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
