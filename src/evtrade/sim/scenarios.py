"""Random markets for experiments: a scenario spec plus a generator in, a :class:`Market` out.

Defaults follow the papers: BABG's Table II for energies and cost factors (b^min in [5, 10],
b^max in [12, 18] kWh, l1 = 0.0025, l2 = 0.005, 35 buyers x 40 sellers), prices in yuan/kWh
between BABG's grid bounds, and positions around Jinhua (ETA's experimental city, Fig. 3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from evtrade.model import Auctioneer, Buyer, Market, Seller
from evtrade.model.batch import MarketBatch
from evtrade.model.defaults import DEFAULT_L1, DEFAULT_L2, JINHUA


@dataclass(frozen=True)
class ScenarioSpec:
    """Distributions of a random market (uniform on each interval)."""

    n_buyers: int = 35
    n_sellers: int = 40
    v_min: tuple[float, float] = (0.55, 0.70)
    v_max: tuple[float, float] = (0.95, 1.20)
    c_min: tuple[float, float] = (0.30, 0.45)
    c_max: tuple[float, float] = (0.70, 0.95)
    b_min: tuple[float, float] = (5.0, 10.0)
    b_max: tuple[float, float] = (12.0, 18.0)
    s_t: tuple[float, float] = (30.0, 60.0)
    s_r: tuple[float, float] = (10.0, 25.0)
    rho: tuple[float, float] = (0.05, 0.15)
    w: tuple[float, float] = (1.0, 5.0)
    auctioneer_v_min: float = 0.5
    auctioneer_c_max: float = 1.0
    l1: float = DEFAULT_L1
    l2: float = DEFAULT_L2
    radius_km: float = 5.0
    max_distance_km: float | None = None

    def scaled(self, n_buyers: int, n_sellers: int) -> ScenarioSpec:
        return replace(self, n_buyers=n_buyers, n_sellers=n_sellers)


def random_market(spec: ScenarioSpec, rng: np.random.Generator) -> Market:
    """Draw a market from ``spec`` with the generator ``rng`` (never a global one)."""
    n, m = spec.n_buyers, spec.n_sellers

    def u(bounds: tuple[float, float], size: int) -> np.ndarray:
        return rng.uniform(bounds[0], bounds[1], size)

    v_lo, v_hi = u(spec.v_min, n), u(spec.v_max, n)
    v = rng.uniform(v_lo, v_hi)
    c_lo, c_hi = u(spec.c_min, m), u(spec.c_max, m)
    c = rng.uniform(c_lo, c_hi)
    bmin, bmax = u(spec.b_min, n), u(spec.b_max, n)
    st, sr = u(spec.s_t, m), u(spec.s_r, m)
    rho, w = u(spec.rho, m), u(spec.w, n)
    blat, blon = _positions(rng, n, spec.radius_km)
    slat, slon = _positions(rng, m, spec.radius_km)
    buyers = tuple(
        Buyer(
            id=f"B{i + 1}",
            v=_r(v[i]),
            v_min=_r(v_lo[i]),
            v_max=_r(v_hi[i]),
            b_min=_r(bmin[i]),
            b_max=_r(bmax[i]),
            w=_r(w[i]),
            lat=_r(blat[i], 6),
            lon=_r(blon[i], 6),
        )
        for i in range(n)
    )
    sellers = tuple(
        Seller(
            id=f"S{j + 1}",
            c=_r(c[j]),
            c_min=_r(c_lo[j]),
            c_max=_r(c_hi[j]),
            s_t=_r(st[j]),
            s_r=_r(sr[j]),
            rho=_r(rho[j]),
            lat=_r(slat[j], 6),
            lon=_r(slon[j], 6),
        )
        for j in range(m)
    )
    auctioneer = Auctioneer(
        v_min=spec.auctioneer_v_min,
        c_max=spec.auctioneer_c_max,
        l1=spec.l1,
        l2=spec.l2,
        max_distance_km=spec.max_distance_km,
    )
    return Market(auctioneer=auctioneer, buyers=buyers, sellers=sellers)


def _r(x: float, digits: int = 4) -> float:
    """Round for readable files; v stays inside [v_min, v_max] since both ends round alike."""
    return round(float(x), digits)


#: Kilometres per degree of latitude (and of longitude at the equator), the local flat-earth
#: scale for placing vehicles within a few km of the city centre.
KM_PER_DEGREE = 111.32


def _positions(rng: np.random.Generator, k: int, radius_km: float) -> tuple[np.ndarray, np.ndarray]:
    """``k`` points uniform over the disc of ``radius_km`` around Jinhua, as (lat, lon) degrees."""
    r = radius_km * np.sqrt(rng.uniform(0, 1, k))
    theta = rng.uniform(0, 2 * np.pi, k)
    lat = JINHUA[0] + (r * np.sin(theta)) / KM_PER_DEGREE
    lon = JINHUA[1] + (r * np.cos(theta)) / (KM_PER_DEGREE * np.cos(np.radians(JINHUA[0])))
    return lat, lon


def random_batch(spec: ScenarioSpec, rounds: int, rng: np.random.Generator) -> MarketBatch:
    """``rounds`` independent markets drawn from ``spec``, as one :class:`MarketBatch`.

    The same distributions as :func:`random_market` (values rounded alike), drawn in one go.
    """
    n, m = spec.n_buyers, spec.n_sellers

    def u(bounds: tuple[float, float], size: int) -> np.ndarray:
        return rng.uniform(bounds[0], bounds[1], (rounds, size))

    v_lo, v_hi = np.round(u(spec.v_min, n), 4), np.round(u(spec.v_max, n), 4)
    c_lo, c_hi = np.round(u(spec.c_min, m), 4), np.round(u(spec.c_max, m), 4)
    b_min = np.round(u(spec.b_min, n), 4)
    b_max = np.round(u(spec.b_max, n), 4)
    buyers = {
        "v": np.clip(np.round(rng.uniform(v_lo, v_hi), 4), v_lo, v_hi),
        "v_min": v_lo,
        "v_max": v_hi,
        "b_min": np.minimum(b_min, b_max),
        "b_max": b_max,
        "w": np.round(u(spec.w, n), 4),
    }
    sellers = {
        "c": np.clip(np.round(rng.uniform(c_lo, c_hi), 4), c_lo, c_hi),
        "c_min": c_lo,
        "c_max": c_hi,
        "s_t": np.round(u(spec.s_t, m), 4),
        "s_r": np.round(u(spec.s_r, m), 4),
        "rho": np.round(u(spec.rho, m), 4),
    }
    for group, k in ((buyers, n), (sellers, m)):
        lat, lon = _positions(rng, rounds * k, spec.radius_km)
        group["lat"] = np.round(lat, 6).reshape(rounds, k)
        group["lon"] = np.round(lon, 6).reshape(rounds, k)
    ones = np.ones(rounds)
    auctioneer = {
        "v_min": spec.auctioneer_v_min * ones,
        "c_max": spec.auctioneer_c_max * ones,
        "l1": spec.l1 * ones,
        "l2": spec.l2 * ones,
        "max_distance_km": (np.nan if spec.max_distance_km is None else spec.max_distance_km)
        * ones,
    }
    return MarketBatch(
        buyers=buyers,
        sellers=sellers,
        auctioneer=auctioneer,
        buyer_valid=np.ones((rounds, n), dtype=bool),
        seller_valid=np.ones((rounds, m), dtype=bool),
    )
