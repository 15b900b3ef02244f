"""Great-circle distances between buyers and sellers (the optional trading-distance filter)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64]:
    """Distance in km between points 1 (length N) and points 2 (length M), as an (N, M) array.

    NaN coordinates give NaN distances.
    """
    return great_circle_km(
        np.asarray(lat1, dtype=float).reshape(-1, 1),
        np.asarray(lon1, dtype=float).reshape(-1, 1),
        np.asarray(lat2, dtype=float).reshape(1, -1),
        np.asarray(lon2, dtype=float).reshape(1, -1),
    )


def great_circle_km(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64]:
    """Haversine distance in km between points given in degrees, with numpy broadcasting."""
    p1, l1 = np.radians(lat1), np.radians(lon1)
    p2, l2 = np.radians(lat2), np.radians(lon2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))
