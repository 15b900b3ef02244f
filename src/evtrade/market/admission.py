"""Algorithm 1, lines 3-8: which bids the auctioneer admits, and why the others must be resubmitted.

A refused bid is data, not an exception: each gets a reason naming the field and the bound.
The rules are written once, elementwise (:func:`buyer_refusals`, :func:`seller_refusals`), so
one market (:func:`admit`) and a batch of rounds
(:func:`evtrade.market.batch.clear_batch`, leading round axis) apply the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.model import Market

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
#: One side's rules as masks, True where a bid fails: its own range, the auctioneer's bound, no
#: location while one is needed.
Rules = tuple[BoolArray, BoolArray, BoolArray]


@dataclass(frozen=True)
class Admission:
    """Outcome of the admission check: masks over buyers / sellers and reasons for the refused."""

    buyers_ok: BoolArray
    sellers_ok: BoolArray
    reasons: dict[str, str]


def buyer_refusals(
    buyers: Mapping[str, FloatArray], *, floor: FloatArray | float, need_location: BoolArray | bool
) -> Rules:
    """Algorithm 1's rules for buyers, elementwise over their field arrays.

    ``buyers`` holds ``v``, ``v_min``, ``v_max`` and ``lat`` (NaN: no location), as
    ``Market.buyer_arrays`` (N,) or a batch's fields (B, N); ``floor`` is the auctioneer's v^min and
    ``need_location`` whether it sets ``max_distance_km``, each broadcast against the fields (a
    batch passes ``[:, None]``). True where the buyer must resubmit: ``v`` outside [v_min, v_max];
    ``v_min`` below v^min; no location while one is needed.
    """
    v, low, high = buyers["v"], buyers["v_min"], buyers["v_max"]
    outside = np.asarray(~((low <= v) & (v <= high)))
    return outside, np.asarray(low < floor), np.asarray(need_location & np.isnan(buyers["lat"]))


def seller_refusals(
    sellers: Mapping[str, FloatArray],
    *,
    ceiling: FloatArray | float,
    need_location: BoolArray | bool,
) -> Rules:
    """Algorithm 1's rules for sellers, as :func:`buyer_refusals`: ``c`` outside [c_min, c_max];
    ``c_max`` above the auctioneer's c^max (``ceiling``); no location while one is needed."""
    c, low, high = sellers["c"], sellers["c_min"], sellers["c_max"]
    outside = np.asarray(~((low <= c) & (c <= high)))
    return outside, np.asarray(high > ceiling), np.asarray(need_location & np.isnan(sellers["lat"]))


def admitted(refusals: Rules) -> BoolArray:
    """True where none of the rules refuses the bid."""
    outside, bound, no_location = refusals
    return np.asarray(~(outside | bound | no_location))


def admit(market: Market) -> Admission:
    """Apply Algorithm 1's resubmission rules and the location requirement of the distance filter.

    A buyer must resubmit when ``v_i`` is outside [v_i^min, v_i^max] or ``v_i^min < v^min``; a
    seller when ``c_j`` is outside [c_j^min, c_j^max] or ``c_j^max > c^max``. (The listing prints
    the non-strict ``v_i^min <= v^min`` and ``c^max <= c_j^max``; Table II states v^min <= v_i^min
    and c^max >= c_j^max are admissible, which is what is implemented.) When the auctioneer sets
    ``max_distance_km``, a participant without a location is refused too.
    """
    a = market.auctioneer
    need_location = a.max_distance_km is not None
    b_rules = buyer_refusals(market.buyer_arrays, floor=a.v_min, need_location=need_location)
    s_rules = seller_refusals(market.seller_arrays, ceiling=a.c_max, need_location=need_location)
    buyers_ok, sellers_ok = admitted(b_rules), admitted(s_rules)
    reasons: dict[str, str] = {}
    for i in map(int, np.flatnonzero(~buyers_ok)):
        b = market.buyers[i]
        own = f"value v={b.v:g} outside its range [v_min={b.v_min:g}, v_max={b.v_max:g}]"
        bound = f"v_min={b.v_min:g} below the auctioneer's v^min={a.v_min:g}"
        reasons[b.id] = _reason((own, bound), b_rules, i)
    for j in map(int, np.flatnonzero(~sellers_ok)):
        s = market.sellers[j]
        own = f"cost c={s.c:g} outside its range [c_min={s.c_min:g}, c_max={s.c_max:g}]"
        bound = f"c_max={s.c_max:g} above the auctioneer's c^max={a.c_max:g}"
        reasons[s.id] = _reason((own, bound), s_rules, j)
    return Admission(buyers_ok=buyers_ok, sellers_ok=sellers_ok, reasons=reasons)


def _reason(texts: tuple[str, str], rules: Rules, k: int) -> str:
    """Why participant ``k`` must resubmit: the rules it fails, in order."""
    why = (*texts, "no lat/lon but the auctioneer sets max_distance_km")
    return "resubmit: " + "; ".join(t for t, rule in zip(why, rules, strict=True) if rule[k])
