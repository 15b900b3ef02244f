"""Trading mechanisms as pure, vectorised functions (no I/O, no chain, no clock).

Kernels, each formula once: :mod:`~evtrade.market.pricing` (Theorem 1),
:mod:`~evtrade.market.objectives` (welfare objectives), :mod:`~evtrade.market.admission`
(Algorithm 1's admission), :mod:`~evtrade.market.feasibility` (the exclusion rule),
:mod:`~evtrade.market.reasons` (why a participant trades nothing), :mod:`~evtrade.market.welfare`
(problem P1). Shared by the mechanisms: :mod:`~evtrade.market.round` (the set-up before prices and
volumes) and :mod:`~evtrade.market.result` (the result every round mechanism returns). The
mechanisms themselves, behind one registry: :mod:`evtrade.market.mechanisms`.
"""

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
