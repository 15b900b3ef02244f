"""Theorem 1 prices, the trade condition and the two benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from evtrade.market import pricing

finite = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


def test_theorem1_reference_values() -> None:
    # v = 0.9, v^max = 1.2, c^min = 0.3: P* = 0.1 + 0.075 + 0.6; c = 0.6: R* = 0.025 + 0.3 + 0.4
    P = pricing.buyer_bid([0.9], [1.2], [0.3])
    R = pricing.seller_ask([0.6], [0.3], [1.2])
    assert_allclose(P, [[0.775]], rtol=0, atol=1e-15)
    assert_allclose(R, [[0.725]], rtol=0, atol=1e-15)
    assert_allclose(pricing.transaction_price(P, R), [[0.75]], atol=1e-15)


def test_uses_vmax_not_vmin_of_algorithm2() -> None:
    # Algorithm 2 prints v^min / 12; Theorem 1 uses v^max: the bid must move with v^max only.
    a = pricing.buyer_bid([0.7], [1.0], [0.2])
    b = pricing.buyer_bid([0.7], [1.6], [0.2])
    assert_allclose(b - a, [[0.05]], atol=1e-15)


def test_shapes_are_buyers_by_sellers() -> None:
    P = pricing.buyer_bid(np.ones(3), np.ones(3), np.zeros(5))
    R = pricing.seller_ask(np.ones(5), np.zeros(5), np.ones(3))
    assert P.shape == R.shape == (3, 5)


@given(v=finite, c=finite, vmax=finite, cmin=finite)
def test_trade_iff_gap_exceeds_quarter_range(v: float, c: float, vmax: float, cmin: float) -> None:
    P = pricing.buyer_bid([v], [vmax], [cmin])
    R = pricing.seller_ask([c], [cmin], [vmax])
    trade = bool(pricing.bid_covers_ask(P, R)[0, 0])
    gap = v - c - (vmax - cmin) / 4
    if abs(gap) > 1e-9:
        assert trade == (gap > 0)


def test_exact_tie_trades() -> None:
    # v - c = (v^max - c^min)/4 exactly: Theorem 1 trades on equality.
    P = pricing.buyer_bid([1.0], [2.0], [0.0])
    R = pricing.seller_ask([0.5], [0.0], [2.0])
    assert pricing.bid_covers_ask(P, R)[0, 0]


def test_uniform_half_one_trade_region_is_one_eighth() -> None:
    # ETA Sec. V.B.3: with v, c ~ U[0.5, 1] trade iff v >= c + 1/8.
    c = np.array([0.5, 0.6, 0.8])
    v = c + 1 / 8
    P = pricing.buyer_bid(v, np.ones(3), [0.5, 0.5, 0.5])
    R = pricing.seller_ask(c, [0.5, 0.5, 0.5], np.ones(3))
    assert_allclose(np.diag(P), np.diag(R), atol=1e-12)


def test_benchmarks() -> None:
    _, _, ok = pricing.complete_information([0.8, 0.3], [0.5])
    assert ok[:, 0].tolist() == [True, False]
    _P, _R, T, ok = pricing.single_price([0.8, 0.6], [0.5, 0.7], 0.65)
    assert ok.tolist() == [[True, False], [False, False]]
    assert np.all(T == 0.65)


@pytest.mark.parametrize(
    ("n", "m", "rows", "workers"), [(37, 23, 5, 2), (10, 4, 64, 1), (1, 1, 1, 2)]
)
def test_chunked_pair_prices_are_bit_identical(n: int, m: int, rows: int, workers: int) -> None:
    rng = np.random.default_rng(n * m)
    v_max = rng.uniform(0.9, 1.2, n)
    v = v_max - rng.uniform(0, 0.4, n)
    c_min = rng.uniform(0.3, 0.45, m)
    c = c_min + rng.uniform(0, 0.4, m)
    # an exact tie on the first pair: v - c = (v^max - c^min) / 4
    v[0], c[0] = 1.0, 0.5
    v_max[0], c_min[0] = 1.2, 0.2
    T, trade = pricing.eta_pair_prices(v, v_max, c, c_min, rows_per_chunk=rows, workers=workers)
    P = pricing.buyer_bid(v, v_max, c_min)
    R = pricing.seller_ask(c, c_min, v_max)
    assert np.array_equal(T, pricing.transaction_price(P, R))
    assert np.array_equal(trade, pricing.bid_covers_ask(P, R))
    assert trade[0, 0]


def test_pair_prices_broadcast_over_rounds_bit_for_bit() -> None:
    """(B, N) buyers and (B, M) sellers give (B, N, M): each round equals its own 1-D call."""
    rng = np.random.default_rng(11)
    v_max = rng.uniform(0.9, 1.2, (4, 6))
    v = v_max - rng.uniform(0, 0.4, (4, 6))
    c_min = rng.uniform(0.3, 0.45, (4, 3))
    c = c_min + rng.uniform(0, 0.4, (4, 3))
    P = pricing.buyer_bid(v, v_max, c_min)
    R = pricing.seller_ask(c, c_min, v_max)
    assert P.shape == R.shape == (4, 6, 3)
    for r in range(4):
        assert np.array_equal(P[r], pricing.buyer_bid(v[r], v_max[r], c_min[r]))
        assert np.array_equal(R[r], pricing.seller_ask(c[r], c_min[r], v_max[r]))


def test_elementwise_kernel_is_the_pair_grid_diagonal() -> None:
    """equilibrium_bid/ask price one pair per element: the diagonal of the pair grid."""
    rng = np.random.default_rng(12)
    v, v_max, c, c_min = (rng.uniform(0.2, 1.0, 5) for _ in range(4))
    assert np.array_equal(
        pricing.equilibrium_bid(v, v_max, c_min), np.diag(pricing.buyer_bid(v, v_max, c_min))
    )
    assert np.array_equal(
        pricing.equilibrium_ask(c, c_min, v_max), np.diag(pricing.seller_ask(c, c_min, v_max))
    )
    # scalars (the unit-trade Monte Carlo's priors) broadcast; eq. (5) at v = 0.9, 1.2, 0.3
    assert pricing.equilibrium_bid(np.array([0.9]), 1.2, 0.3)[0] == pytest.approx(0.775)
    assert pricing.buyer_bid(0.9, 1.2, 0.3).shape == (1, 1)


def test_babg_order_is_theorem1_to_rounding() -> None:
    """BABG's first bids (eqs. 29-30) are Theorem 1 summed in the reverse order: the two orders
    agree to rounding (a few ulp) and the babg order is the one BABG's outputs were computed in."""
    rng = np.random.default_rng(29)
    v, v_max, c, c_min = (rng.uniform(0.0, 3.0, 10_000) for _ in range(4))
    bid = pricing.equilibrium_bid(v, v_max, c_min, order="babg")
    ask = pricing.equilibrium_ask(c, c_min, v_max, order="babg")
    assert_allclose(bid, pricing.equilibrium_bid(v, v_max, c_min), rtol=1e-15, atol=0)
    assert_allclose(ask, pricing.equilibrium_ask(c, c_min, v_max), rtol=1e-15, atol=0)
    # eq. (29) at p = 0.9, p^max = 1.2, r^min = 0.3: 0.6 + 0.075 + 0.1
    assert pricing.equilibrium_bid(0.9, 1.2, 0.3, order="babg") == pytest.approx(0.775, rel=1e-15)
    # the orders do differ in the last bit somewhere (else one of them would be redundant)
    assert not np.array_equal(bid, pricing.equilibrium_bid(v, v_max, c_min))
