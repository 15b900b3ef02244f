"""Trading mechanisms as pure, vectorised functions (no I/O, no chain, no clock)."""

from evtrade.market.mechanisms.eta import MECHANISMS, VOLUME_RULES, clear
from evtrade.market.metrics import expected_gains_exact, expected_outcome
from evtrade.market.pricing import buyer_bid, seller_ask, transaction_price
from evtrade.market.result import ClearingResult, Pair
from evtrade.market.welfare import P1Problem, P1Solution, solve_p1

__all__ = [
    "MECHANISMS",
    "VOLUME_RULES",
    "ClearingResult",
    "P1Problem",
    "P1Solution",
    "Pair",
    "buyer_bid",
    "clear",
    "expected_gains_exact",
    "expected_outcome",
    "seller_ask",
    "solve_p1",
    "transaction_price",
]
