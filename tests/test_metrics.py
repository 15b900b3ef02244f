"""Exact reference values of the benchmarks (spec section 1) by Monte Carlo, and satisfaction."""

from __future__ import annotations

import numpy as np
import pytest

from evtrade import MechanismError, expected_gains_exact, expected_outcome
from evtrade.market.metrics import pair_satisfaction

N = 1_000_000


@pytest.mark.parametrize(
    ("mechanism", "price", "exact"),
    [("eta", None, 9 / 64), ("complete-info", None, 1 / 6), ("single-price", 0.5, 1 / 8)],
)
def test_gains_from_trade_uniform(mechanism: str, price: float | None, exact: float) -> None:
    out = expected_outcome(mechanism, price=price, samples=N, rng=np.random.default_rng(1))
    assert abs(out.gains.mean - exact) < 4 * out.gains.stderr
    assert out.gains.stderr < 5e-4
    assert expected_gains_exact(mechanism, price=0.5 if price is None else price) == exact


def test_eta_trade_probability_uniform() -> None:
    # P(v - c >= 1/4) = (3/4)^2 / 2 = 9/32 for U[0,1] types.
    out = expected_outcome("eta", samples=N, rng=np.random.default_rng(2))
    assert out.trade_probability == pytest.approx(9 / 32, abs=3e-3)


def test_single_price_half_one_region() -> None:
    # v, c ~ U[0.5, 1], p = 0.75: E[(v - c) 1{c <= .75 <= v}] = 1/4 * 1/4 = 1/16 * (0.875-0.625)*4
    out = expected_outcome(
        "single-price",
        v_range=(0.5, 1),
        c_range=(0.5, 1),
        price=0.75,
        samples=N,
        rng=np.random.default_rng(3),
    )
    assert abs(out.gains.mean - 0.0625) < 4 * out.gains.stderr


def test_satisfaction_definition() -> None:
    sb, ss = pair_satisfaction(np.array([1.0, 0.0]), np.array([0.5, 0.0]), np.array([0.75, 0.0]))
    np.testing.assert_allclose(sb, [0.75, 1.0])
    np.testing.assert_allclose(ss, [0.5 / 0.75, 1.0])


def test_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(MechanismError, match="v_range"):
        expected_outcome("eta", v_range=(1.0, 0.0), rng=rng)
    with pytest.raises(MechanismError, match="price"):
        expected_outcome("single-price", rng=rng)
    with pytest.raises(MechanismError, match="unknown"):
        expected_outcome("nope", samples=10, rng=rng)
