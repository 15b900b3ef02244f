"""View models of a round: what the index stores and the API and the pages show.

Pure functions of a :class:`~evtrade.settlement.views.RoundView` read from the chain: the round's
phase, each bid's status and reason, the priced offers and the trades, in tokens and kWh (the
chain's fixed point converted by :mod:`evtrade.settlement.units`). The JSON shape is described by
:class:`evtrade.service.schemas.RoundOut`.
"""

from __future__ import annotations

from typing import Any

from evtrade.settlement import units
from evtrade.settlement.offers import round_offers
from evtrade.settlement.views import RoundView

#: Phases after which the RSU's clock has nothing left to do in a round.
FINAL_PHASES = ("settled", "expired")
#: Phases in which the revealed bids are priced (offers are shown).
PRICED_PHASES = ("reveal", "settling", "settled")


def round_phase(
    settled: bool, deadlines: tuple[float, float, float, float], wall: float, now: float
) -> str:
    """A round's phase: bids are admitted until the announced deadline (wall clock); the chain
    keeps its window open ``bid_grace`` longer for the bids admitted in time ("closing").

    ``deadlines`` are (announced, chain's bid deadline, reveal deadline, settlement deadline);
    ``now`` is the next block's time.
    """
    announced, deadline, reveal_deadline, settle_deadline = deadlines
    if settled:
        return "settled"
    if now <= deadline:
        return "bidding" if wall <= announced else "closing"
    if now <= reveal_deadline:
        return "reveal"
    if now <= settle_deadline:
        return "settling"
    return "expired"


def stub_view(round_id: int) -> dict[str, Any]:
    """The index entry of a round never read: its id, and nothing known yet."""
    return {
        "round_id": round_id,
        "rsu": None,
        "phase": "unknown",
        "deadline": None,
        "chain_deadline": None,
        "reveal_deadline": None,
        "settle_deadline": None,
        "v_floor": None,
        "c_ceiling": None,
        "requests": [],
        "replies": [],
        "offers": [],
        "trades": [],
    }


def price_offers(view: RoundView) -> list[dict[str, Any]]:
    """Priced pairs of the revealed bids, with the P1 amounts the RSU would settle
    (:func:`evtrade.settlement.offers.round_offers`)."""
    return [offer.to_json() for offer in round_offers(view)]


def _bid_status(
    phase: str, address: str, revealed: bool, traded: set[str], offered: set[str]
) -> tuple[str, str]:
    """A bid's status and the reason shown to its driver."""
    if phase == "bidding":
        return "pending", "bid window open"
    if phase == "closing":
        return "pending", "bid window closed; bids admitted in time still reach the chain"
    if not revealed:
        return "failed", "value not revealed in time"
    if phase == "settled":
        return (
            ("completed", "traded")
            if address in traded
            else ("failed", "no trade in the settlement")
        )
    if address in offered:
        return "accepted", "priced: bid covers ask"
    return "failed", "no counterpart with P* >= R* in range"


def round_json(
    view: RoundView,
    *,
    announced: int,
    phase: str,
    offers: list[dict[str, Any]],
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    """The index entry of a round: its deadlines, bids with their status, offers and trades."""
    P, E = units.PRICE_SCALE, units.ENERGY_SCALE
    token = units.TOKEN_SCALE
    traded_buyers = {t.buyer for t in view.trades}
    traded_sellers = {t.seller for t in view.trades}
    offered_buyers = {o["buyer"] for o in offers}
    offered_sellers = {o["seller"] for o in offers}
    requests = []
    for q in view.requests:
        st, why = _bid_status(phase, q.buyer, q.value is not None, traded_buyers, offered_buyers)
        requests.append(
            {
                "index": q.index,
                "address": q.buyer,
                "b_min": q.b_min / E,
                "b_max": q.b_max / E,
                "v_min": q.v_min / P,
                "v_max": q.v_max / P,
                "lat": q.lat / units.DEGREE_SCALE,
                "lon": q.lon / units.DEGREE_SCALE,
                "escrow": q.escrow / token,
                "revealed": q.value is not None,
                "status": st,
                "reason": why,
            }
        )
    replies = []
    for p in view.replies:
        st, why = _bid_status(phase, p.seller, p.value is not None, traded_sellers, offered_sellers)
        replies.append(
            {
                "index": p.index,
                "address": p.seller,
                "c_min": p.c_min / P,
                "c_max": p.c_max / P,
                "s_t": p.s_t / E,
                "s_r": p.s_r / E,
                "rho": p.rho / units.RHO_SCALE,
                "lat": p.lat / units.DEGREE_SCALE,
                "lon": p.lon / units.DEGREE_SCALE,
                "revealed": p.value is not None,
                "status": st,
                "reason": why,
            }
        )
    trades = [
        {
            "buyer": t.buyer,
            "seller": t.seller,
            "kwh": t.energy / E,
            "price": t.price / P,
            "payment": t.payment / token,
            "block": t.block,
            "tx": t.tx_hash,
        }
        for t in view.trades
    ]
    return {
        "round_id": view.round_id,
        "rsu": view.rsu,
        "phase": phase,
        "deadline": announced,
        "chain_deadline": view.deadline,
        "reveal_deadline": view.reveal_deadline,
        "settle_deadline": view.settle_deadline,
        "v_floor": view.v_floor / P,
        "c_ceiling": view.c_ceiling / P,
        "requests": requests,
        "replies": replies,
        "offers": offers,
        "trades": trades,
        "error": error,
    }
