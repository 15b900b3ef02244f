"""Buyers, sellers and the auctioneer of one trading round (ETA, Table II).

Every constructor checks its fields and raises :class:`~evtrade.errors.MarketError` with a message
that names the participant and the field. These are *structural* checks (types, signs, empty
ranges). Algorithm 1's admission rules (a value outside its declared range, a range outside the
auctioneer's bounds) are not structural: such a bid is well formed but must be resubmitted, and the
mechanism reports it under ``rejected`` instead of failing the whole market.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MarketError
from evtrade.model.defaults import DEFAULT_L1, DEFAULT_L2

FloatArray = NDArray[np.float64]

#: ETA: "the willingness w_i ... falls in [0, 5]".
W_MAX = 5.0

# Bounds on every number a market may hold. They are wide for any real round and keep every
# quantity the mechanisms compute finite and well scaled in float64 (docs/json-format.md#limits):
# a price times an energy times the number of pairs stays below 1e9 * 1e9 * 1e7 = 1e25, far from
# overflow (1.8e308), and the P1 solver's per-kWh curvature 2 l1 rho stays >= 2e-12. Nonzero
# values below MIN_MAGNITUDE are refused, so that the quotient of any two accepted values (a
# satisfaction R / T, a demand w / price) stays below 1e9 / 1e-18 = 1e27: a subnormal price made
# R / T overflow to inf.

#: Largest price (v, c and their ranges, the auctioneer's bounds), per kWh.
MAX_PRICE = 1e9
#: Largest energy (b_min, b_max, s_t, s_r), kWh: a heavy truck's battery holds ~1e3 kWh.
MAX_ENERGY = 1e9
#: Smallest loss rate (the ledger's resolution, 1e-6): k_j = 1 / (2 l1 rho_j) kWh per unit of
#: price is the slope of a seller's supply in P1, and rho -> 0 sends it to infinity (rho = 1e-320
#: gave 0 * inf = NaN volumes).
MIN_RHO = 1e-6
#: Range of l1 (eq. 16's quadratic loss factor; 1e-6 as for rho) and bound on l2 (its linear one).
MIN_L1, MAX_L1 = 1e-6, 1e3
MAX_L2 = 1e3
#: Smallest nonzero magnitude of any number (the ledger's price resolution, one wei = 1e-18).
MIN_MAGNITUDE = 1e-18
#: Longest participant id (characters).
MAX_ID_LENGTH = 256


def _where(kind: str, ident: str | None, index: int | None) -> str:
    if kind == "auctioneer":
        return "auctioneer"
    label = f"{kind} {show_id(ident)}" if ident else kind
    return f"{label} ({kind}s[{index}])" if index is not None else label


def show_id(ident: str) -> str:
    """``repr`` of an id for messages, cut to 40 characters (an error message stays one line)."""
    return repr(ident) if len(ident) <= 40 else repr(ident[:40]) + "..."


def check_number(where: str, name: str, value: Any) -> float:
    """Return ``value`` as a finite float or raise a :class:`MarketError` naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MarketError(f"{where}: field {name!r} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:  # an integer beyond float range (TOML allows any length)
        out = math.inf
    if not math.isfinite(out):
        shown = value if isinstance(value, float) else "an integer beyond float range"
        raise MarketError(f"{where}: field {name!r} must be finite, got {shown!r}")
    return out


def check_bounded(where: str, name: str, value: Any, lo: float, hi: float, what: str) -> float:
    """:func:`check_number`, then ``lo <= value <= hi`` and no nonzero magnitude below
    :data:`MIN_MAGNITUDE`; the message names the field, the bounds and what the field is."""
    out = check_number(where, name, value)
    if not lo <= out <= hi:
        raise MarketError(
            f"{where}: field {name!r} ({out:g}) must lie in [{lo:g}, {hi:g}] ({what})"
        )
    if out != 0.0 and abs(out) < MIN_MAGNITUDE:
        raise MarketError(
            f"{where}: field {name!r} ({out:g}) is below the resolution {MIN_MAGNITUDE:g} "
            "(rounds to 0); use 0"
        )
    return out


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise MarketError(f"{where}: {message}")


def _check_location(where: str, lat: Any, lon: Any) -> None:
    _require((lat is None) == (lon is None), where, "fields 'lat' and 'lon' must be given together")
    if lat is not None:
        lat = check_number(where, "lat", lat)
        _require(-90.0 <= lat <= 90.0, where, f"field 'lat' ({lat}) must lie in [-90, 90]")
    if lon is not None:
        lon = check_number(where, "lon", lon)
        _require(-180.0 <= lon <= 180.0, where, f"field 'lon' ({lon}) must lie in [-180, 180]")


def _check_id(where: str, ident: Any) -> None:
    _require(
        isinstance(ident, str), where, f"field 'id' must be a string, got {type(ident).__name__}"
    )
    _require(bool(ident.strip()), where, "field 'id' must not be empty")
    _require(
        len(ident) <= MAX_ID_LENGTH, where, f"field 'id' is longer than {MAX_ID_LENGTH} characters"
    )
    # Ids are printed (tables, messages) and written as UTF-8: no control characters, no lone
    # surrogates (which cannot be encoded).
    _require(
        ident.isprintable() and not any("\ud800" <= ch <= "\udfff" for ch in ident),
        where,
        "field 'id' must be printable text (no control characters or lone surrogates)",
    )


@dataclass(frozen=True)
class Buyer:
    """Buyer EV *i*: value ``v`` in [``v_min``, ``v_max``], demand in [``b_min``, ``b_max``] kWh.

    ``w`` is the willingness w_i in [0, 5] weighting the buyer's utility (ETA eq. 15).
    ``lat``/``lon`` (degrees) are optional; they are needed only when the auctioneer sets a
    maximum trading distance.
    """

    id: str
    v: float
    v_min: float
    v_max: float
    b_min: float
    b_max: float
    w: float
    lat: float | None = None
    lon: float | None = None
    index: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = _where("buyer", self.id if isinstance(self.id, str) else None, self.index)
        _check_id(where, self.id)
        for name in ("v", "v_min", "v_max"):
            check_bounded(where, name, getattr(self, name), 0.0, MAX_PRICE, "a price")
        for name in ("b_min", "b_max"):
            check_bounded(where, name, getattr(self, name), 0.0, MAX_ENERGY, "energy in kWh")
        check_bounded(where, "w", self.w, 0.0, W_MAX, "willingness")
        _require(
            self.v_max >= self.v_min,
            where,
            f"field 'v_max' ({self.v_max}) must be >= v_min ({self.v_min})",
        )
        _require(
            self.b_max >= self.b_min,
            where,
            f"field 'b_max' ({self.b_max}) must be >= b_min ({self.b_min})",
        )
        _check_location(where, self.lat, self.lon)


@dataclass(frozen=True)
class Seller:
    """Seller EV *j*: cost ``c`` in [``c_min``, ``c_max``], energy ``s_t``, reserve ``s_r``.

    ``rho`` is the loss rate rho_j in [1e-6, 1]: delivering x kWh drains (1 + rho_j) x from the
    battery (ETA eq. 13) and costs rho_j (l1 x^2 + l2 x) (eq. 16). It must be positive so that the
    cost is strictly convex and the allocation unique.
    """

    id: str
    c: float
    c_min: float
    c_max: float
    s_t: float
    s_r: float
    rho: float
    lat: float | None = None
    lon: float | None = None
    index: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = _where("seller", self.id if isinstance(self.id, str) else None, self.index)
        _check_id(where, self.id)
        for name in ("c", "c_min", "c_max"):
            check_bounded(where, name, getattr(self, name), 0.0, MAX_PRICE, "a price")
        for name in ("s_t", "s_r"):
            check_bounded(where, name, getattr(self, name), 0.0, MAX_ENERGY, "energy in kWh")
        check_bounded(where, "rho", self.rho, MIN_RHO, 1.0, "loss rate")
        _require(
            self.c_max >= self.c_min,
            where,
            f"field 'c_max' ({self.c_max}) must be >= c_min ({self.c_min})",
        )
        _check_location(where, self.lat, self.lon)

    @property
    def spare(self) -> float:
        """Energy the seller may drain from its battery, s_j^t - s_j^r (never negative)."""
        return max(0.0, self.s_t - self.s_r)


@dataclass(frozen=True)
class Auctioneer:
    """The RSU's declared bounds and cost factors.

    ``v_min`` (v^min) is the lowest admissible buyer range bound, ``c_max`` (c^max) the highest
    admissible seller range bound (Algorithm 1). ``l1`` > 0 and ``l2`` >= 0 are the cost factors of
    eq. (16); ETA leaves them open, BABG uses 0.0025 and 0.005. ``max_distance_km`` optionally
    limits trades to pairs closer than that (great-circle distance).
    """

    v_min: float
    c_max: float
    l1: float = DEFAULT_L1
    l2: float = DEFAULT_L2
    max_distance_km: float | None = None

    def __post_init__(self) -> None:
        where = "auctioneer"
        for name in ("v_min", "c_max"):
            check_bounded(where, name, getattr(self, name), 0.0, MAX_PRICE, "a price")
        check_bounded(where, "l1", self.l1, MIN_L1, MAX_L1, "strictly convex cost, eq. 16")
        check_bounded(where, "l2", self.l2, 0.0, MAX_L2, "linear cost, eq. 16")
        if self.max_distance_km is not None:
            d = check_number(where, "max_distance_km", self.max_distance_km)
            _require(d > 0, where, f"field 'max_distance_km' ({d}) must be > 0 or null")


@dataclass(frozen=True)
class Market:
    """One trading round: the auctioneer's settings, the buyers and the sellers.

    Ids must be unique across buyers and sellers. The arrays (``buyer_arrays``, ``seller_arrays``)
    are the vectorised view every mechanism works on; the objects themselves are never mutated.
    """

    auctioneer: Auctioneer
    buyers: tuple[Buyer, ...]
    sellers: tuple[Seller, ...]

    def __post_init__(self) -> None:
        if not self.buyers:
            raise MarketError("market: field 'buyers' must list at least one buyer")
        if not self.sellers:
            raise MarketError("market: field 'sellers' must list at least one seller")
        seen: dict[str, str] = {}
        ids = [("buyer", k, b.id) for k, b in enumerate(self.buyers)]
        ids += [("seller", k, s.id) for k, s in enumerate(self.sellers)]
        for kind, k, ident in ids:
            if ident in seen:
                raise MarketError(
                    f"{kind} {ident!r} ({kind}s[{k}]): field 'id' duplicates {seen[ident]} id"
                )
            seen[ident] = f"a {kind}"

    @property
    def n_buyers(self) -> int:
        return len(self.buyers)

    @property
    def n_sellers(self) -> int:
        return len(self.sellers)

    @cached_property
    def buyer_arrays(self) -> dict[str, FloatArray]:
        """Buyer fields as float arrays of length N (missing locations are NaN)."""
        names = ("v", "v_min", "v_max", "b_min", "b_max", "w")
        out = {n: np.array([getattr(b, n) for b in self.buyers], dtype=float) for n in names}
        out["lat"] = np.array([np.nan if b.lat is None else b.lat for b in self.buyers])
        out["lon"] = np.array([np.nan if b.lon is None else b.lon for b in self.buyers])
        return out

    @cached_property
    def seller_arrays(self) -> dict[str, FloatArray]:
        """Seller fields as float arrays of length M (missing locations are NaN)."""
        names = ("c", "c_min", "c_max", "s_t", "s_r", "rho")
        out = {n: np.array([getattr(s, n) for s in self.sellers], dtype=float) for n in names}
        out["lat"] = np.array([np.nan if s.lat is None else s.lat for s in self.sellers])
        out["lon"] = np.array([np.nan if s.lon is None else s.lon for s in self.sellers])
        return out
