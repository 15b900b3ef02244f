"""Algorithm 1, lines 3-8: which bids the auctioneer admits, and why the others must be resubmitted.

A refused bid is data, not an exception: each gets a reason naming the field and the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.model import Market

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Admission:
    """Outcome of the admission check: masks over buyers / sellers and reasons for the refused."""

    buyers_ok: BoolArray
    sellers_ok: BoolArray
    reasons: dict[str, str]


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
    reasons: dict[str, str] = {}
    for b in market.buyers:
        why = []
        if not b.v_min <= b.v <= b.v_max:
            why.append(f"value v={b.v:g} outside its range [v_min={b.v_min:g}, v_max={b.v_max:g}]")
        if b.v_min < a.v_min:
            why.append(f"v_min={b.v_min:g} below the auctioneer's v^min={a.v_min:g}")
        if need_location and b.lat is None:
            why.append("no lat/lon but the auctioneer sets max_distance_km")
        if why:
            reasons[b.id] = "resubmit: " + "; ".join(why)
    for s in market.sellers:
        why = []
        if not s.c_min <= s.c <= s.c_max:
            why.append(f"cost c={s.c:g} outside its range [c_min={s.c_min:g}, c_max={s.c_max:g}]")
        if s.c_max > a.c_max:
            why.append(f"c_max={s.c_max:g} above the auctioneer's c^max={a.c_max:g}")
        if need_location and s.lat is None:
            why.append("no lat/lon but the auctioneer sets max_distance_km")
        if why:
            reasons[s.id] = "resubmit: " + "; ".join(why)
    buyers_ok = np.array([b.id not in reasons for b in market.buyers], dtype=bool)
    sellers_ok = np.array([s.id not in reasons for s in market.sellers], dtype=bool)
    return Admission(buyers_ok=buyers_ok, sellers_ok=sellers_ok, reasons=reasons)
