"""View models of a round: what the index stores and the API and the pages show.

Pure functions of a :class:`~evtrade.settlement.views.RoundView` read from the chain: the round's
phase, each bid's status and reason, the priced offers and the trades, in tokens and kWh (the
chain's fixed point converted by :mod:`evtrade.settlement.units`). The JSON shape is described by
:class:`evtrade.service.schemas.RoundOut`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evtrade.settlement import units
from evtrade.settlement.offers import round_offers
from evtrade.settlement.planning import seller_capacity
from evtrade.settlement.views import ReplyView, RequestView, RoundView

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
    (:func:`evtrade.settlement.offers.round_offers`), and what accepting each one alone gives.

    ``take_kwh`` is what the buyer gets by accepting the offer alone: the seller's whole spare
    energy after losses (13) up to the buyer's b_max, or null when that is below the buyer's
    b_min (the contract would refuse it, (12)); ``total`` is what it pays for it, T times the
    energy rounded down as ``Market._settle`` does (docs/service.md, "Accepting one offer").
    """
    q_of = {q.index: q for q in view.requests}
    p_of = {p.index: p for p in view.replies}
    out = []
    for offer in round_offers(view):
        q, p = q_of[offer.buyer_index], p_of[offer.seller_index]
        take = acceptance_units(q, p)
        row = offer.to_json()
        row["take_kwh"] = None if take is None else units.to_kwh(take)
        row["total"] = None if take is None else units.to_tokens(accept_payment(q, p, take))
        out.append(row)
    return out


def acceptance_units(q: RequestView, p: ReplyView) -> int | None:
    """Energy units a buyer gets by accepting ``p``'s offer alone: min(b_max, C_j), where C_j
    is the seller's spare energy after losses (13); None when that is below b_min (12)."""
    take = min(q.b_max, seller_capacity(p))
    return take if take >= q.b_min and take > 0 else None


def accept_payment(q: RequestView, p: ReplyView, energy: int) -> int:
    """Tokens (base units) the buyer pays for ``energy`` units of ``p``'s offer: T (Theorem 1,
    ETA eq. 9) times the energy, rounded down (``Market._settle``)."""
    assert q.value is not None and p.value is not None
    _, _, price, _ = units.fixed_prices(q.value, q.v_max, p.value, p.c_min)
    return units.payment(price, energy)


# -- the statuses a driver reads ------------------------------------------------------------------

#: What a bid's ``status`` may be, in the order a bid goes through them. ``accepted`` is shown by
#: the buyer's page while its choice is on its way to the chain; the chain then says completed.
STATUSES = ("pending", "priced", "accepted", "completed", "failed")
#: The driver's reasons, in plain words (issue 13, item 1).
WAITING_FOR_REPLIES = "waiting for replies"
WAITING_FOR_WINDOW = "waiting for the bid window to close"
CLOSING = "bid window closed; bids sent in time are reaching the chain"
NOT_READ = "not read from the chain yet"
NOT_REVEALED = "not revealed in time"
NO_SELLER = "no seller replied"
NO_SELLER_REVEALED = "no seller revealed in time"
ASKS_ABOVE_BID = "every seller's ask is above your bid"
NO_SELLER_IN_REACH = "no seller within reach (distance or spare energy)"
CHOOSE = "offers waiting: choose one before the RSU settles"
RSU_SETTLES = "offers waiting: the RSU settles at the round's best allocation"
NO_BUYER_REVEALED = "the buyer did not reveal in time"
ASK_ABOVE_BID = "your ask is above the buyer's bid"
NO_SPARE = "no spare energy left to sell"
OUT_OF_REACH = "too far from the buyer"
ASK_BELOW_BID = "your ask is below the buyer's bid: waiting for the buyer to choose"
OTHER_OFFER = "buyer chose another offer"
LEFT_OUT = "the RSU's best allocation took nothing from this bid"
EXPIRED = "the round expired without a settlement"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the chain records and the clock knows about a round, as the statuses read it."""

    phase: str
    #: Request and reply indices with a priced offer (:func:`price_offers`).
    offered_requests: frozenset[int]
    offered_replies: frozenset[int]
    #: True when the round was settled by its buyer accepting one offer (``Market.accept``).
    chosen: bool = False


def _tokens(amount: int) -> str:
    return f"{units.to_tokens(amount):.4f} tokens"


def _kwh(energy: int) -> str:
    return f"{units.to_kwh(energy):.3f} kWh"


def _waiting(phase: str, first: str) -> tuple[str, str] | None:
    """The status of every bid while the bid window is open or closing."""
    if phase == "bidding":
        return "pending", first
    if phase == "closing":
        return "pending", CLOSING
    if phase == "unknown":
        return "pending", NOT_READ
    return None


def traded(view: RoundView, address: str, *, buyer: bool) -> tuple[int, int]:
    """Energy units and tokens (base units) a bidder bought or sold in the round's trades."""
    mine = [t for t in view.trades if (t.buyer if buyer else t.seller) == address]
    return sum(t.energy for t in mine), sum(t.payment for t in mine)


def _decided(
    out: Outcome, waiting_for: str, revealed: bool, deal: tuple[int, int], done: str
) -> tuple[str, str] | None:
    """What every bid shares: pending in the window, failed unrevealed, completed with its
    ``deal`` (energy, tokens; ``done`` says it in words), failed once expired; else None."""
    waiting = _waiting(out.phase, waiting_for)
    if waiting is not None:
        return waiting
    if not revealed:
        return "failed", NOT_REVEALED
    energy, amount = deal
    if energy > 0:
        return "completed", done.format(kwh=_kwh(energy), tokens=_tokens(amount))
    if out.phase == "expired":
        return "failed", EXPIRED
    return None


def request_status(view: RoundView, q: RequestView, out: Outcome) -> tuple[str, str]:
    """A request's status and reason: pending (waiting for replies) -> priced (offers to choose
    from) -> completed (bought, settled) or failed, with why."""
    how = "you accepted an offer: " if out.chosen else ""
    deal = traded(view, q.buyer, buyer=True)
    shared = _decided(
        out, WAITING_FOR_REPLIES, q.value is not None, deal, how + "bought {kwh} for {tokens}"
    )
    if shared is not None:
        return shared
    offered = q.index in out.offered_requests
    if out.phase == "settled":
        return "failed", LEFT_OUT if offered else _request_unpriced(view, q)
    if offered:
        return "priced", CHOOSE if len(view.requests) == 1 else RSU_SETTLES
    return "failed", _request_unpriced(view, q)


def _request_unpriced(view: RoundView, q: RequestView) -> str:
    """Why a revealed request has no offer."""
    if not view.replies:
        return NO_SELLER
    asks = [(p.value, p.c_min) for p in view.replies if p.value is not None]
    if not asks:
        return NO_SELLER_REVEALED
    assert q.value is not None
    if not any(units.fixed_prices(q.value, q.v_max, c, c_min)[3] for c, c_min in asks):
        return ASKS_ABOVE_BID
    return NO_SELLER_IN_REACH


def reply_status(view: RoundView, p: ReplyView, out: Outcome) -> tuple[str, str]:
    """A reply's status and reason: pending -> priced (the buyer may choose it) -> completed
    (sold, settled) or failed: "buyer chose another offer", "your ask is above the buyer's bid",
    "not revealed in time", ..."""
    how = "the buyer accepted your offer: " if out.chosen else ""
    deal = traded(view, p.seller, buyer=False)
    shared = _decided(
        out, WAITING_FOR_WINDOW, p.value is not None, deal, how + "sold {kwh} for {tokens}"
    )
    if shared is not None:
        return shared
    offered = p.index in out.offered_replies
    if out.phase == "settled":
        if out.chosen and offered:
            return "failed", OTHER_OFFER
        return "failed", LEFT_OUT if offered else _reply_unpriced(view, p)
    if offered:
        return "priced", ASK_BELOW_BID
    return "failed", _reply_unpriced(view, p)


def _reply_unpriced(view: RoundView, p: ReplyView) -> str:
    """Why a revealed reply has no offer."""
    bids = [(q.value, q.v_max) for q in view.requests if q.value is not None]
    if not bids:
        return NO_BUYER_REVEALED
    assert p.value is not None
    if not any(units.fixed_prices(v, v_max, p.value, p.c_min)[3] for v, v_max in bids):
        return ASK_ABOVE_BID
    if seller_capacity(p) == 0:
        return NO_SPARE
    return OUT_OF_REACH


def request_money(view: RoundView, q: RequestView, phase: str) -> dict[str, Any]:
    """A request's money: energy bought, tokens paid, and the refund its escrow owes once the
    round is over (escrow - paid, less the deposit burned when the value was not revealed;
    ``Market.claim_refund``); null while the round runs."""
    energy, paid = traded(view, q.buyer, buyer=True)
    refund: float | None = None
    if phase in FINAL_PHASES:
        forfeit = q.deposit if q.value is None else 0
        refund = units.to_tokens(q.escrow - paid - forfeit)
    return {
        "kwh": units.to_kwh(energy),
        "paid": units.to_tokens(paid),
        "refund": refund,
    }


def reply_money(view: RoundView, p: ReplyView) -> dict[str, Any]:
    """A reply's money: energy sold and tokens earned (credited, to withdraw)."""
    energy, earned = traded(view, p.seller, buyer=False)
    return {"kwh": units.to_kwh(energy), "earned": units.to_tokens(earned)}


def round_json(
    view: RoundView,
    *,
    announced: int,
    phase: str,
    offers: list[dict[str, Any]],
    error: dict[str, Any] | None,
    chosen: bool = False,
) -> dict[str, Any]:
    """The index entry of a round: its deadlines, bids with their status, reason and money,
    offers and trades. ``chosen``: the round was settled by its buyer accepting an offer."""
    outcome = Outcome(
        phase=phase,
        offered_requests=frozenset(int(o["buyer_index"]) for o in offers),
        offered_replies=frozenset(int(o["seller_index"]) for o in offers),
        chosen=chosen,
    )
    requests = []
    for q in view.requests:
        st, why = request_status(view, q, outcome)
        requests.append(
            {
                "index": q.index,
                "address": q.buyer,
                "b_min": units.to_kwh(q.b_min),
                "b_max": units.to_kwh(q.b_max),
                "v_min": units.to_tokens(q.v_min),
                "v_max": units.to_tokens(q.v_max),
                "lat": q.lat / units.DEGREE_SCALE,
                "lon": q.lon / units.DEGREE_SCALE,
                "escrow": units.to_tokens(q.escrow),
                "revealed": q.value is not None,
                "status": st,
                "reason": why,
                **request_money(view, q, phase),
            }
        )
    replies = []
    for p in view.replies:
        st, why = reply_status(view, p, outcome)
        replies.append(
            {
                "index": p.index,
                "address": p.seller,
                "c_min": units.to_tokens(p.c_min),
                "c_max": units.to_tokens(p.c_max),
                "s_t": units.to_kwh(p.s_t),
                "s_r": units.to_kwh(p.s_r),
                "rho": p.rho / units.RHO_SCALE,
                "lat": p.lat / units.DEGREE_SCALE,
                "lon": p.lon / units.DEGREE_SCALE,
                "revealed": p.value is not None,
                "status": st,
                "reason": why,
                **reply_money(view, p),
            }
        )
    trades = [
        {
            "buyer": t.buyer,
            "seller": t.seller,
            "kwh": units.to_kwh(t.energy),
            "price": units.to_tokens(t.price),
            "payment": units.to_tokens(t.payment),
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
        "v_floor": units.to_tokens(view.v_floor),
        "c_ceiling": units.to_tokens(view.c_ceiling),
        "requests": requests,
        "replies": replies,
        "offers": offers,
        "trades": trades,
        "error": error,
    }
