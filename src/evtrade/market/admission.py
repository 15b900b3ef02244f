"""Algorithm 1, lines 3-8: which bids the auctioneer admits, and why the others must be resubmitted.

A refused bid is data, not an exception: each gets a reason naming the field and the bound.
The rules are written once, elementwise (:func:`buyer_refusals`, :func:`seller_refusals`, both
sides at once by :func:`admission_rules`), so one market (:func:`admit`) and a batch of rounds
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
    v: FloatArray,
    v_min: FloatArray,
    v_max: FloatArray,
    *,
    floor: FloatArray | float,
    located: BoolArray,
    need_location: BoolArray | bool,
) -> Rules:
    """Algorithm 1's rules for buyers, elementwise (any leading batch axes broadcast).

    Returns three masks, True where the buyer must resubmit: ``v`` outside [v_min, v_max];
    ``v_min`` below the auctioneer's v^min (``floor``); no location while the auctioneer sets
    ``max_distance_km`` (``need_location``).
    """
    outside = ~((v_min <= v) & (v <= v_max))
    return np.asarray(outside), np.asarray(v_min < floor), np.asarray(need_location & ~located)


def seller_refusals(
    c: FloatArray,
    c_min: FloatArray,
    c_max: FloatArray,
    *,
    ceiling: FloatArray | float,
    located: BoolArray,
    need_location: BoolArray | bool,
) -> Rules:
    """Algorithm 1's rules for sellers, elementwise: ``c`` outside [c_min, c_max]; ``c_max``
    above the auctioneer's c^max (``ceiling``); no location while one is needed."""
    outside = ~((c_min <= c) & (c <= c_max))
    return np.asarray(outside), np.asarray(c_max > ceiling), np.asarray(need_location & ~located)


def admitted(refusals: Rules) -> BoolArray:
    """True where none of the rules refuses the bid."""
    outside, bound, no_location = refusals
    return np.asarray(~(outside | bound | no_location))


def admission_rules(
    buyers: Mapping[str, FloatArray],
    sellers: Mapping[str, FloatArray],
    *,
    floor: FloatArray | float,
    ceiling: FloatArray | float,
    need_location: BoolArray | bool,
) -> tuple[Rules, Rules]:
    """Both sides' rules from the participants' field arrays (``Market.buyer_arrays`` and
    ``seller_arrays``, or a batch's (B, N) / (B, M) fields; NaN lat means no location).

    ``floor`` is the auctioneer's v^min, ``ceiling`` its c^max, ``need_location`` whether it sets
    ``max_distance_km``; each broadcasts against the fields (a batch passes ``[:, None]``).
    """
    b_rules = buyer_refusals(
        buyers["v"],
        buyers["v_min"],
        buyers["v_max"],
        floor=floor,
        located=~np.isnan(buyers["lat"]),
        need_location=need_location,
    )
    s_rules = seller_refusals(
        sellers["c"],
        sellers["c_min"],
        sellers["c_max"],
        ceiling=ceiling,
        located=~np.isnan(sellers["lat"]),
        need_location=need_location,
    )
    return b_rules, s_rules


def admit(market: Market) -> Admission:
    """Apply Algorithm 1's resubmission rules and the location requirement of the distance filter.

    A buyer must resubmit when ``v_i`` is outside [v_i^min, v_i^max] or ``v_i^min < v^min``; a
    seller when ``c_j`` is outside [c_j^min, c_j^max] or ``c_j^max > c^max``. (The listing prints
    the non-strict ``v_i^min <= v^min`` and ``c^max <= c_j^max``; Table II states v^min <= v_i^min
    and c^max >= c_j^max are admissible, which is what is implemented.) When the auctioneer sets
    ``max_distance_km``, a participant without a location is refused too.
    """
    a = market.auctioneer
    b_rules, s_rules = admission_rules(
        market.buyer_arrays,
        market.seller_arrays,
        floor=a.v_min,
        ceiling=a.c_max,
        need_location=a.max_distance_km is not None,
    )
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
