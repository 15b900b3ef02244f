"""Great-circle distances (the distance filter) in isolation: exact values and metric laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtrade.market.geo import EARTH_RADIUS_KM, great_circle_km, haversine_km

R = EARTH_RADIUS_KM


@pytest.mark.parametrize(
    ("a", "b", "km"),
    [
        ((0.0, 0.0), (0.0, 0.0), 0.0),
        # One degree along a meridian or the equator is R * pi / 180 (111.195 km).
        ((10.0, 20.0), (11.0, 20.0), R * math.pi / 180),
        ((0.0, 20.0), (0.0, 21.0), R * math.pi / 180),
        # A quarter of a great circle: equator to pole, and 90 degrees along the equator.
        ((0.0, 0.0), (90.0, 0.0), R * math.pi / 2),
        ((0.0, 0.0), (0.0, 90.0), R * math.pi / 2),
        # Antipodes and pole to pole: half a great circle.
        ((0.0, 0.0), (0.0, 180.0), R * math.pi),
        ((90.0, 0.0), (-90.0, 0.0), R * math.pi),
        ((45.0, 10.0), (-45.0, -170.0), R * math.pi),
        # On the 60th parallel the two points are 1/3 of a great circle apart via the pole
        # when 180 degrees of longitude separate them: 2 * 30 degrees.
        ((60.0, 0.0), (60.0, 180.0), R * math.pi / 3),
    ],
)
def test_known_distances(a: tuple[float, float], b: tuple[float, float], km: float) -> None:
    got = float(great_circle_km(a[0], a[1], b[0], b[1]))
    assert got == pytest.approx(km, rel=1e-12, abs=1e-9)


def _vincenty_sphere_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The central angle by the atan2 (Vincenty, sphere) formula: independent of haversine."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.hypot(
        math.cos(p2) * math.sin(dl),
        math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl),
    )
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return R * math.atan2(y, x)


def test_a_real_pair_of_places_agrees_with_an_independent_formula() -> None:
    # Gothenburg (the RSU's default position) to Jinhua (the papers' simulations).
    got = float(great_circle_km(57.7089, 11.9746, 29.0790, 119.6474))
    assert got == pytest.approx(_vincenty_sphere_km(57.7089, 11.9746, 29.0790, 119.6474), rel=1e-12)
    # Two vehicles 0.0004 degrees of latitude apart (the service's load test): 44.5 m.
    near = float(great_circle_km(57.7000, 11.97, 57.7004, 11.97))
    assert near == pytest.approx(R * math.radians(0.0004), rel=1e-9)


def test_haversine_km_is_the_n_by_m_table_of_great_circle_km() -> None:
    lat1, lon1 = [29.0, 29.01, 57.7], [119.6, 119.62, 11.97]
    lat2, lon2 = [29.02, -33.9], [119.61, 151.2]
    table = haversine_km(lat1, lon1, lat2, lon2)
    assert table.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert table[i, j] == float(great_circle_km(lat1[i], lon1[i], lat2[j], lon2[j]))


def test_a_missing_location_gives_nan_not_a_distance() -> None:
    table = haversine_km([np.nan, 29.0], [np.nan, 119.6], [29.0], [119.6])
    assert math.isnan(table[0, 0])
    assert table[1, 0] == 0.0


_lat = st.floats(min_value=-90.0, max_value=90.0)
_lon = st.floats(min_value=-180.0, max_value=180.0)
_point = st.tuples(_lat, _lon)


def _d(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(great_circle_km(a[0], a[1], b[0], b[1]))


@given(_point, _point)
def test_distance_is_symmetric_and_between_zero_and_half_the_circumference(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    d = _d(a, b)
    assert 0.0 <= d <= R * math.pi * (1 + 1e-12)
    assert _d(b, a) == pytest.approx(d, rel=1e-12, abs=1e-9)
    assert _d(a, a) == 0.0


@given(_point, _point)
def test_haversine_agrees_with_the_atan2_formula(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    # Haversine loses digits near antipodes (asin of ~1): there, within a metre.
    assert _d(a, b) == pytest.approx(_vincenty_sphere_km(*a, *b), rel=1e-9, abs=1e-3)


@given(_point, _point, _point)
def test_triangle_inequality(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]
) -> None:
    # Haversine loses digits near antipodes (asin near 1): allow a few metres of rounding.
    assert _d(a, c) <= _d(a, b) + _d(b, c) + 1e-6 * R


@given(_point, _point, st.integers(-2, 2))
def test_longitude_is_periodic(a: tuple[float, float], b: tuple[float, float], turns: int) -> None:
    shifted = (b[0], b[1] + 360.0 * turns)
    assert _d(a, shifted) == pytest.approx(_d(a, b), rel=1e-9, abs=1e-6)
