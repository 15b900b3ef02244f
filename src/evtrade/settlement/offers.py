"""Use case: the offers a round's revealed bids make, for a buyer choosing among its replies.

Each offer is a pair the ETA mechanism prices and keeps in range (its pair table), with the P1
amount the RSU would settle and the prices the contract would charge: Theorem 1 (ETA eqs. 7-9)
exactly as ``Market._prices`` computes it (:func:`evtrade.settlement.units.fixed_prices`). A pair
whose floating-point prices tie but whose exact ones do not trade is no offer: the contract would
refuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evtrade.market import clear
from evtrade.settlement import units
from evtrade.settlement.views import RoundView, has_revealed_pair, round_market


@dataclass(frozen=True, slots=True)
class Offer:
    """One priced pair of a round: who, the contract's prices (tokens per kWh), the P1 amount."""

    buyer: str
    seller: str
    buyer_index: int
    seller_index: int
    P: float
    R: float
    T: float
    kwh: float
    #: Great-circle distance, rounded to metres; None when a location is missing.
    distance_km: float | None

    def to_json(self) -> dict[str, Any]:
        """The offer as a JSON object (the service's round view)."""
        return {
            "buyer": self.buyer,
            "seller": self.seller,
            "buyer_index": self.buyer_index,
            "seller_index": self.seller_index,
            "P": self.P,
            "R": self.R,
            "T": self.T,
            "kwh": self.kwh,
            "distance_km": self.distance_km,
        }


def round_offers(view: RoundView) -> list[Offer]:
    """Priced pairs of the revealed bids, with the P1 amounts the RSU would settle."""
    if not has_revealed_pair(view):
        return []
    table = clear(round_market(view), "eta").pair_table  # priced and in range
    q_of = {q.buyer: q for q in view.requests}
    p_of = {p.seller: p for p in view.replies}
    offers = []
    for i, j, kwh, d in zip(table.i, table.j, table.volume, table.distance_km, strict=True):
        q, p = q_of[table.buyer_ids[i]], p_of[table.seller_ids[j]]
        assert q.value is not None and p.value is not None
        # The contract's exact prices; a float tie the contract would refuse is no offer.
        P, R, T, ok = units.fixed_prices(q.value, q.v_max, p.value, p.c_min)
        if not ok:
            continue
        offers.append(
            Offer(
                buyer=q.buyer,
                seller=p.seller,
                buyer_index=q.index,
                seller_index=p.index,
                P=units.to_tokens(P),
                R=units.to_tokens(R),
                T=units.to_tokens(T),
                kwh=float(kwh),
                distance_km=round(float(d), 3) if math.isfinite(d) else None,
            )
        )
    return offers


__all__ = ["Offer", "round_offers"]
