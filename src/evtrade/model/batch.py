"""Many trading rounds as stacked arrays: the input of batched clearing for research sweeps.

A :class:`MarketBatch` holds B markets padded to the largest number of buyers N and sellers M.
Fields are (B, N) for buyers, (B, M) for sellers and (B,) for the auctioneer; ``buyer_valid`` and
``seller_valid`` mark the slots that exist. It carries no participant objects (10,000 rounds of
75 vehicles would be 750,000 of them); :meth:`MarketBatch.market` rebuilds one round as a
:class:`~evtrade.model.Market` when needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MarketError
from evtrade.model.participants import W_MAX, Auctioneer, Buyer, Market, Seller

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

BUYER_FIELDS = ("v", "v_min", "v_max", "b_min", "b_max", "w", "lat", "lon")
SELLER_FIELDS = ("c", "c_min", "c_max", "s_t", "s_r", "rho", "lat", "lon")
AUCTIONEER_FIELDS = ("v_min", "c_max", "l1", "l2", "max_distance_km")


@dataclass(frozen=True)
class MarketBatch:
    """B rounds as arrays; NaN lat/lon means no location, NaN max_distance_km means no limit."""

    buyers: dict[str, FloatArray]
    sellers: dict[str, FloatArray]
    auctioneer: dict[str, FloatArray]
    buyer_valid: BoolArray
    seller_valid: BoolArray

    def __post_init__(self) -> None:
        nb, n = self.buyer_valid.shape
        m = self.seller_valid.shape[1]
        if self.seller_valid.shape[0] != nb:
            raise MarketError(
                "batch: buyer_valid and seller_valid disagree on the number of rounds"
            )
        for group, names, shape in (
            (self.buyers, BUYER_FIELDS, (nb, n)),
            (self.sellers, SELLER_FIELDS, (nb, m)),
            (self.auctioneer, AUCTIONEER_FIELDS, (nb,)),
        ):
            for name in names:
                if name not in group:
                    raise MarketError(f"batch: field {name!r} is missing")
                if np.shape(group[name]) != shape:
                    raise MarketError(f"batch: field {name!r} must have shape {shape}")
        self._check()

    @property
    def size(self) -> int:
        return int(self.buyer_valid.shape[0])

    def _check(self) -> None:
        """The structural checks of the participant classes, vectorised; names round and field."""
        B, S, A = self.buyers, self.sellers, self.auctioneer
        bv, sv = self.buyer_valid, self.seller_valid

        def fail(where: str, mask: BoolArray, what: str) -> None:
            if np.any(mask):
                idx = np.argwhere(mask)[0]
                raise MarketError(f"batch round {idx[0]}, {where}{list(idx[1:])}: {what}")

        for name in ("v", "v_min", "v_max", "b_min", "b_max", "w"):
            fail("buyers", bv & ~np.isfinite(B[name]), f"field {name!r} must be finite")
            fail("buyers", bv & (B[name] < 0), f"field {name!r} must be >= 0")
        for name in ("c", "c_min", "c_max", "s_t", "s_r", "rho"):
            fail("sellers", sv & ~np.isfinite(S[name]), f"field {name!r} must be finite")
            fail("sellers", sv & (S[name] < 0), f"field {name!r} must be >= 0")
        fail("buyers", bv & (B["v_max"] < B["v_min"]), "field 'v_max' must be >= v_min")
        fail("buyers", bv & (B["b_max"] < B["b_min"]), "field 'b_max' must be >= b_min")
        fail("buyers", bv & (B["w"] > W_MAX), f"field 'w' must lie in [0, {W_MAX:g}]")
        fail("sellers", sv & (S["c_max"] < S["c_min"]), "field 'c_max' must be >= c_min")
        fail("sellers", sv & ~((S["rho"] > 0) & (S["rho"] <= 1)), "field 'rho' must be in (0, 1]")
        for name in ("v_min", "c_max", "l2"):
            fail("auctioneer", ~(A[name] >= 0), f"field {name!r} must be a number >= 0")
        fail("auctioneer", ~(A["l1"] > 0), "field 'l1' must be > 0")
        d = A["max_distance_km"]
        fail("auctioneer", ~np.isnan(d) & ~(d > 0), "field 'max_distance_km' must be > 0 or NaN")

    @classmethod
    def from_markets(cls, markets: Sequence[Market]) -> MarketBatch:
        """Stack markets (already validated) into a batch, padding to the largest of each role."""
        if not markets:
            raise MarketError("batch: at least one market is needed")
        nb = len(markets)
        n = max(mk.n_buyers for mk in markets)
        m = max(mk.n_sellers for mk in markets)
        buyers = {f: np.zeros((nb, n)) for f in BUYER_FIELDS}
        sellers = {f: np.zeros((nb, m)) for f in SELLER_FIELDS}
        for f in ("lat", "lon"):
            buyers[f][:] = np.nan
            sellers[f][:] = np.nan
        sellers["rho"][:] = 1.0
        bv = np.zeros((nb, n), dtype=bool)
        sv = np.zeros((nb, m), dtype=bool)
        auct = {f: np.zeros(nb) for f in AUCTIONEER_FIELDS}
        for r, mk in enumerate(markets):
            for f in BUYER_FIELDS:
                buyers[f][r, : mk.n_buyers] = mk.buyer_arrays[f]
            for f in SELLER_FIELDS:
                sellers[f][r, : mk.n_sellers] = mk.seller_arrays[f]
            bv[r, : mk.n_buyers] = True
            sv[r, : mk.n_sellers] = True
            a = mk.auctioneer
            auct["v_min"][r], auct["c_max"][r] = a.v_min, a.c_max
            auct["l1"][r], auct["l2"][r] = a.l1, a.l2
            auct["max_distance_km"][r] = np.nan if a.max_distance_km is None else a.max_distance_km
        return cls(buyers, sellers, auct, bv, sv)

    def market(self, r: int) -> Market:
        """Round ``r`` as a :class:`Market` (ids B1.., S1.. in slot order)."""
        B, S, A = self.buyers, self.sellers, self.auctioneer

        def loc(group: dict[str, FloatArray], i: int) -> tuple[float | None, float | None]:
            lat, lon = float(group["lat"][r, i]), float(group["lon"][r, i])
            return (None, None) if np.isnan(lat) or np.isnan(lon) else (lat, lon)

        buyers = []
        for i in map(int, np.flatnonzero(self.buyer_valid[r])):
            lat, lon = loc(B, i)
            v = {f: float(B[f][r, i]) for f in BUYER_FIELDS[:6]}
            buyers.append(
                Buyer(
                    id=f"B{i + 1}",
                    v=v["v"],
                    v_min=v["v_min"],
                    v_max=v["v_max"],
                    b_min=v["b_min"],
                    b_max=v["b_max"],
                    w=v["w"],
                    lat=lat,
                    lon=lon,
                    index=i,
                )
            )
        sellers = []
        for j in map(int, np.flatnonzero(self.seller_valid[r])):
            lat, lon = loc(S, j)
            u = {f: float(S[f][r, j]) for f in SELLER_FIELDS[:6]}
            sellers.append(
                Seller(
                    id=f"S{j + 1}",
                    c=u["c"],
                    c_min=u["c_min"],
                    c_max=u["c_max"],
                    s_t=u["s_t"],
                    s_r=u["s_r"],
                    rho=u["rho"],
                    lat=lat,
                    lon=lon,
                    index=j,
                )
            )
        d = float(A["max_distance_km"][r])
        auctioneer = Auctioneer(
            v_min=float(A["v_min"][r]),
            c_max=float(A["c_max"][r]),
            l1=float(A["l1"][r]),
            l2=float(A["l2"][r]),
            max_distance_km=None if np.isnan(d) else d,
        )
        return Market(auctioneer=auctioneer, buyers=tuple(buyers), sellers=tuple(sellers))
