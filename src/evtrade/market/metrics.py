"""Benchmarks and metrics: user satisfaction, and Monte Carlo gains from trade per mechanism.

User satisfaction (ETA Sec. V.B.2 defines it only in words: "the ratio of transaction price to
one's own bid; the closer the price to one's own bid, the higher"). This project's definition,
for a trade at price T between a buyer who bid P and a seller who asked R (R <= T <= P):

    buyer satisfaction   sigma_b = T / P        (in (0, 1]; 1 when the buyer pays its own bid)
    seller satisfaction  sigma_s = R / T        (in (0, 1]; 1 when the seller gets its own ask)

"Own bid" is the quote the mechanism uses: P*, R* under ETA, the true values v, c under complete
information and under a posted price. A market's satisfaction is the volume-weighted mean over
traded pairs, ``mean`` the average of the buyers' and sellers' figures. In the unit-trade Monte
Carlo (:func:`expected_outcome`) it is the mean over trading draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError
from evtrade.market import pricing

#: Monte Carlo draws of :func:`expected_outcome` (and ``evtrade montecarlo``) when not given.
DEFAULT_SAMPLES = 1_000_000

FloatArray = NDArray[np.float64]


def pair_satisfaction(P: FloatArray, R: FloatArray, T: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Buyer (T / P) and seller (R / T) satisfaction, elementwise; 1 where a price is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sb = np.where(P > 0, T / P, 1.0)
        ss = np.where(T > 0, R / T, 1.0)
    return np.asarray(sb), np.asarray(ss)


@dataclass(frozen=True)
class MonteCarloEstimate:
    """Mean and standard error of a Monte Carlo estimate, and the sample size."""

    mean: float
    stderr: float
    samples: int


@dataclass(frozen=True)
class UnitTradeOutcome:
    """Expected outcome of one buyer meeting one seller, each with one unit to trade."""

    gains: MonteCarloEstimate
    trade_probability: float
    satisfaction: float | None


def expected_outcome(
    mechanism: str,
    *,
    v_range: tuple[float, float] = (0.0, 1.0),
    c_range: tuple[float, float] = (0.0, 1.0),
    price: float | None = None,
    samples: int = DEFAULT_SAMPLES,
    rng: np.random.Generator,
) -> UnitTradeOutcome:
    """Monte Carlo of one unit trade with v ~ U[v_range], c ~ U[c_range].

    Gains from trade are ``E[(v - c) 1{trade}]``. Under ``eta`` the buyer's v^max is
    ``v_range[1]`` and the seller's c^min is ``c_range[0]`` (Theorem 1's uniform priors).
    Exact values for U[0, 1]: eta 9/64, complete-info (first best) 1/6, single price 1/2 gives 1/8.

    Raises
    ------
    MechanismError
        On an unknown mechanism, a missing price for ``single-price``, or an empty range.
    """
    if samples < 2:
        raise MechanismError(f"samples: need at least 2, got {samples}")
    for name, (lo, hi) in (("v_range", v_range), ("c_range", c_range)):
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise MechanismError(f"{name}: need finite lo < hi, got ({lo}, {hi})")
    v = rng.uniform(v_range[0], v_range[1], samples)
    c = rng.uniform(c_range[0], c_range[1], samples)
    P, R, T, trade = _unit_rule(mechanism).quotes(v, c, v_range, c_range, price)
    g = np.where(trade, v - c, 0.0)
    sb, ss = pair_satisfaction(P, R, T)
    sat = float(np.mean(0.5 * (sb[trade] + ss[trade]))) if np.any(trade) else None
    return UnitTradeOutcome(
        gains=MonteCarloEstimate(float(g.mean()), float(g.std(ddof=1) / np.sqrt(samples)), samples),
        trade_probability=float(np.mean(trade)),
        satisfaction=sat,
    )


def expected_gains_exact(mechanism: str, *, price: float = 0.5) -> float:
    """Closed-form expected gains for v, c ~ U[0, 1] (ETA Sec. V.B; Chatterjee-Samuelson).

    eta: the integral of (v - c) over v - c >= 1/4, 9/64; complete-info: 1/6;
    single-price p: ``p (1 - p) / 2`` (1/8 at p = 1/2).
    """
    return _unit_rule(mechanism).exact(price)


Quotes = tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]
Range = tuple[float, float]


@dataclass(frozen=True)
class UnitRule:
    """One pricing rule of the unit-trade model: ``quotes(v, c, v_range, c_range, price)`` gives
    (P, R, T, trade) per draw; ``exact(price)`` the closed-form gains for U[0, 1] types."""

    quotes: Callable[[FloatArray, FloatArray, Range, Range, float | None], Quotes]
    exact: Callable[[float], float]


def _eta_quotes(v: FloatArray, c: FloatArray, vr: Range, cr: Range, _: float | None) -> Quotes:
    # Theorem 1 with the priors' bounds: every buyer's v^max and every seller's c^min.
    P = pricing.equilibrium_bid(v, vr[1], cr[0])
    R = pricing.equilibrium_ask(c, cr[0], vr[1])
    return P, R, pricing.transaction_price(P, R), pricing.bid_covers_ask(P, R)


def _complete_quotes(v: FloatArray, c: FloatArray, _v: Range, _c: Range, _: float | None) -> Quotes:
    return v, c, pricing.transaction_price(v, c), np.asarray(v >= c)


def _posted_quotes(
    v: FloatArray, c: FloatArray, _v: Range, _c: Range, price: float | None
) -> Quotes:
    if price is None:
        raise MechanismError("price: the single-price mechanism needs a posted price")
    return v, c, np.full_like(v, float(price)), np.asarray((c <= price) & (price <= v))


def _posted_exact(price: float) -> float:
    p = float(price)
    if not 0.0 <= p <= 1.0:
        raise MechanismError(f"price: must lie in [0, 1] for U[0, 1] types, got {p}")
    # E[(v - c) 1{c <= p <= v}] = (1 - p) p [ (1 + p)/2 - p/2 ] = p (1 - p) / 2
    return p * (1.0 - p) / 2.0


#: The unit-trade model's pricing rules by name: ETA's equilibrium and its two benchmarks.
UNIT_RULES: dict[str, UnitRule] = {
    "eta": UnitRule(_eta_quotes, lambda _: 9.0 / 64.0),
    "complete-info": UnitRule(_complete_quotes, lambda _: 1.0 / 6.0),
    "single-price": UnitRule(_posted_quotes, _posted_exact),
}


def _unit_rule(mechanism: str) -> UnitRule:
    try:
        return UNIT_RULES[mechanism]
    except (KeyError, TypeError):
        raise MechanismError(f"mechanism: unknown {mechanism!r}") from None
