"""The contracts' fixed-point units in isolation: exact round trips, bounds, rounding direction.

Reference values are computed with :class:`fractions.Fraction` / :class:`decimal.Decimal`
(exact), never with the code under test.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtrade.errors import EvtradeError, LedgerError
from evtrade.market.pricing import equilibrium_ask, equilibrium_bid
from evtrade.settlement import units
from evtrade.settlement.units import (
    ENERGY_SCALE,
    PRICE_SCALE,
    UINT256_MAX,
    escrow,
    fixed_prices,
    payment,
    to_fixed,
    to_kwh,
    to_tokens,
)

_MICRO = st.integers(0, 10**15)  # 0 .. 1e9 in millionths: every energy a market may hold


@given(_MICRO)
def test_millionths_round_trip_exactly(k: int) -> None:
    kwh = k / ENERGY_SCALE  # the float nearest k / 1e6, as a market file would hold it
    assert to_fixed("b_max", kwh, ENERGY_SCALE) == k
    assert to_kwh(k) == kwh


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_prices_round_trip_through_wei(price: float) -> None:
    wei = to_fixed("v", price, PRICE_SCALE)
    # Exact: the price's shortest decimal (repr) times 1e18, rounded to the nearest integer.
    exact = Decimal(repr(price)) * PRICE_SCALE
    assert abs(Decimal(wei) - exact) <= Decimal("0.5")
    # Back to a float: within one wei, and exactly the price when its decimal fits in 18 places
    # (every price of 1e-18 or more written with at most 18 decimals).
    assert abs(to_tokens(wei) - price) <= 1e-18 + 4 * math.ulp(price)
    if exact == exact.to_integral_value():
        assert to_tokens(wei) == price


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        (0.5, 1, 0),  # half to even: down to 0
        (1.5, 1, 2),  # up to 2
        (2.5, 1, 2),  # down to 2
        (5e-7, ENERGY_SCALE, 0),  # 0.5 unit -> 0
        (1.5e-6, ENERGY_SCALE, 2),  # 1.5 units -> 2
        (2.5e-6, ENERGY_SCALE, 2),  # 2.5 units -> 2
        (0.1, PRICE_SCALE, 10**17),  # the decimal 0.1, not the binary 0.1000000000000000055...
        (1e-18, PRICE_SCALE, 1),  # one wei
        (4e-19, PRICE_SCALE, 0),  # below half a wei
    ],
)
def test_rounding_is_half_to_even_on_the_decimal(value: float, scale: int, expected: int) -> None:
    assert to_fixed("x", value, scale) == expected


def test_signed_values_round_half_to_even_too() -> None:
    assert to_fixed("lat", -2.5, 1, signed=True) == -2
    assert to_fixed("lat", -57.7089, 10**6, signed=True) == -57_708_900


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (-1.0, "must be >= 0"),
        (math.nan, "must be finite"),
        (math.inf, "must be finite"),
        (True, "must be a number"),
        ("1.0", "must be a number"),
        (1e300, "too large for the ledger"),
    ],
)
def test_refusals_name_the_field(value: object, needle: str) -> None:
    with pytest.raises(LedgerError, match=rf"field 'b_max'.*{needle}") as info:
        to_fixed("b_max", value, PRICE_SCALE)  # type: ignore[arg-type]
    assert isinstance(info.value, EvtradeError)


def test_the_largest_value_is_half_of_uint256() -> None:
    # UINT256_MAX // 2 = 5.789...e76: a signed int256 and a uint256 both hold it.
    assert to_fixed("x", 5.7e76, 1) == 57 * 10**75
    assert to_fixed("x", -5.7e76, 1, signed=True) == -57 * 10**75
    assert to_fixed("v", 5.7e58, PRICE_SCALE) == 57 * 10**75
    for value, scale in ((5.8e76, 1), (5.8e58, PRICE_SCALE)):
        with pytest.raises(LedgerError, match="too large"):
            to_fixed("x", value, scale)
    assert UINT256_MAX // 2 == 2**255 - 1


_WEI = st.integers(0, 10**9 * PRICE_SCALE)


@given(_WEI, _WEI, _WEI, _WEI)
def test_fixed_theorem_1_is_the_floor_of_the_exact_prices(
    v: int, v_max: int, c: int, c_min: int
) -> None:
    p, r, t, trades = fixed_prices(v, v_max, c, c_min)
    exact_p = Fraction(v_max, 12) + Fraction(c_min, 4) + Fraction(2 * v, 3)
    exact_r = Fraction(c_min, 12) + Fraction(v_max, 4) + Fraction(2 * c, 3)
    assert p == math.floor(exact_p)
    assert r == math.floor(exact_r)
    assert t == math.floor((exact_p + exact_r) / 2)
    assert trades == (exact_p >= exact_r)
    if trades:
        assert r <= t <= p


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_fixed_theorem_1_agrees_with_the_float_kernel(
    v: int, v_max: int, c: int, c_min: int
) -> None:
    # Prices in millionths of a token: the contract's P* and R* are the float kernel's to within
    # one wei plus the float's own rounding.
    scale = PRICE_SCALE // 10**6
    p, r, _, _ = fixed_prices(v * scale, v_max * scale, c * scale, c_min * scale)
    fp = float(equilibrium_bid(v / 1e6, v_max / 1e6, c_min / 1e6))
    fr = float(equilibrium_ask(c / 1e6, c_min / 1e6, v_max / 1e6))
    assert abs(to_tokens(p) - fp) <= 1e-18 + 8 * math.ulp(fp)
    assert abs(to_tokens(r) - fr) <= 1e-18 + 8 * math.ulp(fr)


@given(_WEI, st.integers(0, 10**9 * ENERGY_SCALE))
def test_payment_rounds_down_and_escrow_rounds_up(price: int, energy: int) -> None:
    pay = payment(price, energy)
    assert pay * ENERGY_SCALE <= price * energy < (pay + 1) * ENERGY_SCALE
    locked = escrow(price, energy)
    assert (locked - 1) * ENERGY_SCALE < price * energy <= locked * ENERGY_SCALE
    # They differ by one base unit exactly when the amount is not a whole number of them.
    assert locked - pay == (0 if price * energy % ENERGY_SCALE == 0 else 1)


@given(_WEI, st.integers(0, 10**9 * ENERGY_SCALE), _WEI, st.integers(0, 10**9 * ENERGY_SCALE))
def test_the_escrow_covers_every_payment_inside_the_bid(
    v_max: int, b_max: int, price: int, energy: int
) -> None:
    # A buyer pays at most v_max per kWh for at most b_max: the escrow it locked covers it.
    price, energy = min(price, v_max), min(energy, b_max)
    assert payment(price, energy) <= escrow(v_max, b_max)


@given(st.integers(0, 2**80))
def test_back_to_floats_is_correctly_rounded(n: int) -> None:
    assert to_kwh(n) == float(Fraction(n, ENERGY_SCALE))
    assert to_tokens(n) == float(Fraction(n, units.TOKEN_SCALE))
