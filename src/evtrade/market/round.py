"""What every mechanism does before its own pricing and volumes: the shared round set-up.

:func:`market_basics` is Algorithm 1's admission (ETA, lines 3-8), each seller's spare energy,
the distances and the pairs within the auctioneer's range; :func:`exclude` is the project's rule
for buyers whose minimum cannot be served (:mod:`evtrade.market.feasibility`); and
:func:`prepare_round` combines them with a mechanism's quotes into everything up to the volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from evtrade.market.admission import Admission, admit
from evtrade.market.feasibility import exclude_unservable_buyers
from evtrade.market.geo import haversine_km
from evtrade.model import Market

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def spare_energy(s_t: FloatArray, s_r: FloatArray) -> FloatArray:
    """A seller's spare energy ``s^t - s^r`` in kWh, never negative (the right side of ETA (13));
    sellers' arrays (..., M)."""
    return np.maximum(s_t - s_r, 0.0)


def deliverable_energy(spare: FloatArray, rho: FloatArray) -> FloatArray:
    """What a seller can deliver, ``spare / (1 + rho)``: (13) with the loss rate rho of eq. (16)."""
    return np.asarray(spare / (1.0 + rho))


@dataclass(frozen=True)
class Basics:
    """What every mechanism starts from: Algorithm 1's admission, each seller's spare energy
    s^t - s^r (never negative), the distances, and the pairs that are both admitted and within
    the auctioneer's ``max_distance_km``."""

    admission: Admission
    spare: FloatArray
    dist: FloatArray
    reachable: BoolArray


def market_basics(market: Market) -> Basics:
    """Admission, spare energy, distances and reachable pairs of ``market`` (:class:`Basics`)."""
    adm = admit(market)
    B, S = market.buyer_arrays, market.seller_arrays
    dist = haversine_km(B["lat"], B["lon"], S["lat"], S["lon"])
    reachable = adm.buyers_ok[:, None] & adm.sellers_ok[None, :]
    if market.auctioneer.max_distance_km is not None:
        reachable &= dist <= market.auctioneer.max_distance_km
    spare = spare_energy(S["s_t"], S["s_r"])
    return Basics(admission=adm, spare=spare, dist=dist, reachable=reachable)


def exclude(
    market: Market,
    mask: BoolArray,
    b_min: FloatArray,
    deliverable: FloatArray,
    active: BoolArray,
) -> tuple[dict[int, str], BoolArray]:
    """The exclusion rule on the pairs of ``mask``: ``({buyer index: reason}, active buyers
    without the excluded ones)``. ``deliverable`` is what each seller can deliver (kWh)."""
    excluded = exclude_unservable_buyers(
        mask, b_min, deliverable, market.buyer_arrays["w"], [b.id for b in market.buyers]
    )
    in_round = active.copy()
    in_round[list(excluded)] = False
    return excluded, in_round


class Quotes(NamedTuple):
    """A mechanism's prices per pair, (N, M) each: what the buyer bids ``P``, what the seller asks
    ``R``, what the buyer pays per kWh ``T``, and whether the pair may trade at them."""

    P: FloatArray
    R: FloatArray
    T: FloatArray
    tradable: BoolArray


@dataclass(frozen=True)
class RoundSetup:
    """Everything before the volumes: admission, prices, pair masks, the exclusion rule."""

    admission: Admission
    P: FloatArray
    R: FloatArray
    T: FloatArray
    dist: FloatArray
    reachable: BoolArray  # admitted and within distance
    pairs_mask: BoolArray  # may trade: admitted, bid covers ask, within distance
    solve_mask: BoolArray  # ... and the seller has spare energy, the buyer is in round
    in_round: BoolArray
    excluded: dict[int, str]
    spare: FloatArray
    deliverable: FloatArray


def prepare_round(market: Market, quotes: Quotes) -> RoundSetup:
    """Algorithm 1 up to the volumes, at a mechanism's ``quotes``: the pairs that may trade, the
    sellers' deliverable energy (s^t - s^r) / (1 + rho), and the buyers the exclusion rule
    leaves in the round."""
    basics = market_basics(market)
    adm, spare, dist = basics.admission, basics.spare, basics.dist
    B, S = market.buyer_arrays, market.seller_arrays
    P, R, T, tradable = quotes
    pairs_mask = basics.reachable & tradable
    deliverable = deliverable_energy(spare, S["rho"])
    solve_mask = pairs_mask & (spare > 0)[None, :] & adm.buyers_ok[:, None]
    excluded, in_round = exclude(
        market, solve_mask, np.where(adm.buyers_ok, B["b_min"], 0.0), deliverable, adm.buyers_ok
    )
    solve_mask &= in_round[:, None]
    return RoundSetup(
        admission=adm,
        P=P,
        R=R,
        T=T,
        dist=dist,
        reachable=basics.reachable,
        pairs_mask=pairs_mask,
        solve_mask=solve_mask,
        in_round=in_round,
        excluded=excluded,
        spare=spare,
        deliverable=deliverable,
    )
