"""The tangle (DV2G's ledger, Hassija et al. §III-B, spec §3) as a discrete-event simulation.

It compares ledgers; it does not replace the project's EVM chain (docs/dv2g.md#the-tangle).

Model (Popov, "The Tangle"; the IOTA foundation's simulations):

* transactions arrive as a Poisson process of rate ``rate`` (lambda); transaction 0 is the
  genesis, visible from the start;
* a transaction arrived at ``t`` becomes visible to tip selection at ``t + delay`` (h): a new
  transaction sees only the visible tangle;
* each new transaction approves two tips of the visible tangle (visible transactions with no
  visible approver), chosen independently, so both may be the same tip; that counts as one
  approval (the literature's convention: "two tips, with replacement");
* tip selection is uniform (``urts``), an unweighted random walk (``mcmc``, alpha = 0) or the
  weighted walk (``weighted``): from x the walker moves to an approver y with probability
  proportional to ``exp(alpha (H_y - H_x))``, H the cumulative weight (eq. 1), computed as
  ``exp(alpha (H_y - max_z H_z))`` (the common factor cancels; no overflow for any alpha). A walk
  starts at a visible transaction of age in [W, 2W] (``walk_window`` W, default
  ``10 max(h, 1/lambda)``) and stops at a tip;
* cumulative weight (eq. 1, every weight 1): CW(x) = 1 + the number of visible transactions
  approving x directly or indirectly, updated when a transaction becomes visible.

Incremental cumulative weight (the paper's "subgraph" trick, [39]): each transaction keeps its
past cone over the last M arrivals as a bitset (a Python int, bit k = transaction i - k);
``cone(i) = 1 | cone(a) << (i - a) | cone(b) << (i - b)``. When i becomes visible, CW of each
transaction in its cone rises by one. Cost per arrival: O(M / 64) word operations for the cone,
O(M) for the update; the whole run O(N M) time instead of O(N^2) for a recomputation, and
O(M^2 / 8) bytes for the cones plus about 90 bytes per transaction. CW(x) is exact while x is
within M arrivals of the newest visible transaction; every walk touches only such transactions
(M covers 2W + 4h with a margin, and the walk's start is clamped into it), older ones keep a lower
bound. :func:`cumulative_weights` recomputes eq. 1 from scratch (tests compare the two).

Measures: the tip count (transactions with no approver yet) after each arrival, the time to a
transaction's first approval, transactions left behind (no approver at the end though they
arrived at least ``2W + 20h`` before it: a uniform tip survives that long with probability about
``exp(-19)``), and confirmation: every ``2 max(h, 1/lambda)`` (``checkpoint``) ``K`` tip
selections are made; a transaction is confirmed when a fraction >= ``threshold`` of the selected
tips have it in their past cone; the latency is the checkpoint's time minus its arrival
(resolution: one checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from evtrade.errors import MechanismError
from evtrade.sim.tangle_engine import Engine

TipSelection = Literal["urts", "mcmc", "weighted"]
TIP_SELECTIONS: tuple[TipSelection, ...] = ("urts", "mcmc", "weighted")

#: At most this many transactions per run: 56 bytes each in the arrays (arrival, approvals, CW,
#: first approval, confirmation, tip count), about 90 at the peak with the summary's temporaries
#: (measured, benchmarks/tangle.py): about 180 MB for the largest run.
MAX_TRANSACTIONS = 2_000_000
#: The past-cone window M at most (bits); its bitsets take M^2 / 8 bytes (128 MB at the bound).
MAX_WINDOW_BITS = 1 << 15
#: Rates, delays and windows lie in [MIN_RATE, MAX_SCALE] (delays may be 0): every time and
#: window the run derives from them then stays finite.
MIN_RATE = 1e-9
MAX_SCALE = 1e9
#: Points of the tip-count series kept in a result (evenly spaced arrivals).
SERIES_POINTS = 1000
#: The first fraction of arrivals left out of ``tips_mean`` (warm-up from the genesis) ...
WARM_UP = 0.2
#: ... and at least those of the first WARM_UP_DELAYS h, at most half of all: the tip count relaxes
#: from the genesis over several h (URTS at lambda h = 1000: 0.66 of 2 lambda h after 2h, 0.92
#: after 6h, 0.98 after 8h), so 20 % of a 10,000-transaction run (2h there) read 10 % low.
WARM_UP_DELAYS = 10.0


@dataclass(frozen=True, slots=True)
class TangleParams:
    """One run's parameters (lambda, h, tip selection, alpha, N and the measurement's knobs)."""

    rate: float
    delay: float
    tip_selection: TipSelection = "urts"
    alpha: float = 0.0
    transactions: int = 10_000
    walk_window: float | None = None
    confidence_samples: int = 20
    threshold: float = 0.95
    checkpoint: float | None = None

    @property
    def window(self) -> float:
        """W: walks start at a visible transaction of age in [W, 2W]."""
        if self.walk_window is not None:
            return self.walk_window
        return 10.0 * max(self.delay, 1.0 / self.rate)

    @property
    def interval(self) -> float:
        """Time between confirmation checkpoints."""
        if self.checkpoint is not None:
            return self.checkpoint
        return 2.0 * max(self.delay, 1.0 / self.rate)

    @property
    def window_bits(self) -> int:
        """M: the past-cone window, the arrivals in 2W + 4h plus 8 sigma, a multiple of 64."""
        mean = self.rate * (2.0 * self.window + 4.0 * self.delay)
        bits = mean + 8.0 * math.sqrt(mean) + 64.0
        return math.ceil(bits / 64.0) * 64

    @property
    def settle(self) -> float:
        """A tip older than this at the end is left behind."""
        return 2.0 * self.window + 20.0 * self.delay


@dataclass(frozen=True, slots=True, eq=False)
class TangleLedger:
    """The simulated tangle: per transaction (index 0 = genesis) its arrival time, the two tips
    it approved (-1 for the genesis; equal when one tip was chosen twice), its cumulative weight
    at the end (exact within the last M visible arrivals), the arrival of its first approver and
    its confirmation time (NaN: none), and how many were visible at the end."""

    arrival: npt.NDArray[np.float64]
    approves: npt.NDArray[np.int64]
    cumulative_weight: npt.NDArray[np.int64]
    first_approval: npt.NDArray[np.float64]
    confirmed: npt.NDArray[np.float64]
    visible: int
    window_bits: int


@dataclass(frozen=True, slots=True)
class TangleResult:
    """A run's measures and its parameters.

    ``tips`` is the tip count at up to :data:`SERIES_POINTS` evenly spaced arrivals
    (``tips_times`` their times); ``tips_mean`` the mean over all arrivals from
    ``tips_mean_from`` on (the warm-up: :data:`WARM_UP` of the arrivals, or those of the first
    :data:`WARM_UP_DELAYS` h if more, at most half); ``first_approval_mean`` and
    ``confirmation_latency_mean`` the means over the transactions that got one (NaN if none);
    ``left_behind_fraction`` over the transactions old enough to judge
    (:attr:`TangleParams.settle`).
    """

    params: TangleParams
    seed: int | None
    tips: tuple[int, ...]
    tips_times: tuple[float, ...]
    tips_mean: float
    first_approval_mean: float
    confirmation_latency_mean: float
    confirmed_fraction: float
    left_behind_fraction: float
    duration: float
    ledger: TangleLedger = field(repr=False, compare=False)
    tips_mean_from: float = 0.0


def check_params(p: TangleParams) -> None:
    """Refuse parameters the simulation cannot use, naming the parameter (``MechanismError``)."""

    def finite(name: str, value: float, *, positive: bool) -> None:
        lo = MIN_RATE if positive else 0.0
        if not (math.isfinite(value) and lo <= value <= MAX_SCALE):
            raise MechanismError(f"{name}: must lie in [{lo:g}, {MAX_SCALE:g}], got {value!r}")

    finite("rate", p.rate, positive=True)
    finite("delay", p.delay, positive=False)
    if p.tip_selection not in TIP_SELECTIONS:
        raise MechanismError(
            f"tip_selection: must be one of {', '.join(TIP_SELECTIONS)}, got {p.tip_selection!r}"
        )
    finite("alpha", p.alpha, positive=False)
    if p.alpha != 0.0 and p.tip_selection != "weighted":
        raise MechanismError(
            f"alpha: only the weighted walk uses alpha; got {p.alpha!r} with {p.tip_selection}"
        )
    if not 1 <= p.transactions <= MAX_TRANSACTIONS:
        raise MechanismError(
            f"transactions: must lie in [1, {MAX_TRANSACTIONS:,}] (about 90 bytes each), "
            f"got {p.transactions!r}"
        )
    if p.walk_window is not None:
        finite("walk_window", p.walk_window, positive=False)
    if p.checkpoint is not None:
        finite("checkpoint", p.checkpoint, positive=True)
    if not 1 <= p.confidence_samples <= 1000:
        raise MechanismError(
            f"confidence_samples: must lie in [1, 1000], got {p.confidence_samples!r}"
        )
    if not (math.isfinite(p.threshold) and 0.0 < p.threshold <= 1.0):
        raise MechanismError(f"threshold: must lie in (0, 1], got {p.threshold!r}")
    if p.window_bits > MAX_WINDOW_BITS:
        raise MechanismError(
            f"rate: lambda (2W + 4h) = {p.rate * (2 * p.window + 4 * p.delay):.4g} arrivals "
            f"exceed the past-cone window's bound (about {MAX_WINDOW_BITS * 0.9:,.0f}); lower "
            "rate, delay or walk_window"
        )


def simulate(
    params: TangleParams, rng: np.random.Generator, *, seed: int | None = None
) -> TangleResult:
    """Run the tangle for ``params.transactions`` arrivals with the generator ``rng``.

    ``seed`` is only recorded in the result. Raises ``MechanismError`` for bad parameters.

    Notes
    -----
    With uniform tip selection the tip count settles near L0 = 2 lambda h (Popov); with the
    weighted walk alpha = 0 keeps it bounded and a larger alpha leaves transactions behind.
    """
    check_params(params)
    engine = Engine(params, rng)
    engine.run()
    return _summarise(params, seed, engine)


def record_times(
    times: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    delay: float,
    tip_selection: TipSelection = "urts",
    alpha: float = 0.0,
    walk_window: float | None = None,
    checkpoint: float | None = None,
    seed: int | None = None,
) -> TangleResult:
    """Record transactions issued at given ``times`` (e.g. a DV2G day's trades) on a tangle.

    ``times`` are non-decreasing, finite and >= 0 (the genesis is at 0). The run's ``rate`` is
    their mean rate, ``len(times) / times[-1]``, which sizes W and the window M; a burst much
    denser than the mean is still exact for the walks (their starts are clamped into the window),
    but its confirmations are measured only within M arrivals. Checkpoints come at arrivals: with
    sparse traffic a ``checkpoint`` shorter than the gaps confirms at the first arrival that can.
    Raises ``MechanismError``.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or not 1 <= t.size <= MAX_TRANSACTIONS:
        raise MechanismError(f"times: must be 1 to {MAX_TRANSACTIONS:,} values, got {t.shape}")
    if not np.isfinite(t).all() or t[0] < 0.0 or np.any(np.diff(t) < 0.0):
        raise MechanismError("times: must be finite, >= 0 and non-decreasing")
    span = float(t[-1])
    rate = t.size / span if span > 0.0 else float(t.size)  # all at once: per unit of time
    params = TangleParams(
        rate=min(max(rate, MIN_RATE), MAX_SCALE),
        delay=delay,
        tip_selection=tip_selection,
        alpha=alpha,
        transactions=int(t.size),
        walk_window=walk_window,
        checkpoint=checkpoint,
    )
    check_params(params)
    engine = Engine(params, rng, t)
    engine.run()
    return _summarise(params, seed, engine)


def _summarise(params: TangleParams, seed: int | None, engine: Engine) -> TangleResult:
    n = params.transactions
    arrival = engine.arrival
    series = engine.tips_series
    take = np.unique(np.linspace(0, n - 1, min(n, SERIES_POINTS)).astype(np.int64))
    settling = int(np.searchsorted(arrival[1:], WARM_UP_DELAYS * params.delay, "left"))
    warm = min(max(int(WARM_UP * n), settling), n // 2)
    approved = ~np.isnan(engine.first_approval)
    confirmed = ~np.isnan(engine.confirmed)
    # Means over the issued transactions: row 0, the genesis, is not one (on a sparse day its
    # first approval waits for the day's first trade).
    first = (engine.first_approval - arrival)[1:][approved[1:]]
    latency = (engine.confirmed - arrival)[1:][confirmed[1:]]
    end = float(arrival[-1])
    judged = arrival <= end - params.settle
    judged_n = int(judged.sum())
    left = int((judged & ~approved).sum())
    cut = engine.visible_at_last_checkpoint
    eligible = arrival[:cut] <= engine.last_checkpoint - params.settle
    ledger = TangleLedger(
        arrival=arrival,
        approves=engine.approves,
        cumulative_weight=engine.cw,
        first_approval=engine.first_approval,
        confirmed=engine.confirmed,
        visible=engine.visible,
        window_bits=engine.m,
    )
    return TangleResult(
        params=params,
        seed=seed,
        tips=tuple(int(series[k]) for k in take),
        tips_times=tuple(float(arrival[k + 1]) for k in take),
        tips_mean=float(series[warm:].mean()),
        first_approval_mean=float(first.mean()) if first.size else math.nan,
        confirmation_latency_mean=float(latency.mean()) if latency.size else math.nan,
        confirmed_fraction=(
            float(confirmed[:cut][eligible].mean()) if eligible.any() else math.nan
        ),
        left_behind_fraction=left / judged_n if judged_n else math.nan,
        duration=end,
        ledger=ledger,
        tips_mean_from=float(arrival[warm + 1]),
    )


def cumulative_weights(approves: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
    """Eq. (1) from scratch over transactions ``0 .. count - 1``: CW(x) = 1 + the number of
    transactions among them that approve x directly or indirectly (O(count^2 / 64)); negative
    entries of ``approves`` (the genesis's, or approvals outside the range) are skipped."""
    future = [1 << x for x in range(count)]
    # Indices are a topological order (a transaction approves older ones): walk newest first.
    for y in range(count - 1, 0, -1):
        for a in {int(a) for a in approves[y] if a >= 0}:
            future[a] |= future[y]
    return np.array([f.bit_count() for f in future], dtype=np.int64)


def result_to_dict(result: TangleResult) -> dict[str, object]:
    """The JSON record of a run (``evtrade tangle --format json``)."""
    p = result.params
    return {
        "rate": p.rate,
        "delay": p.delay,
        "tip_selection": p.tip_selection,
        "alpha": p.alpha,
        "transactions": p.transactions,
        "seed": result.seed,
        "walk_window": p.window,
        "window_bits": result.ledger.window_bits,
        "confidence_samples": p.confidence_samples,
        "threshold": p.threshold,
        "checkpoint": p.interval,
        "theory_tips_urts": 2.0 * p.rate * p.delay,
        "tips_mean": result.tips_mean,
        "tips_mean_from": result.tips_mean_from,
        "tips": list(result.tips),
        "tips_times": list(result.tips_times),
        "first_approval_mean": _finite_or_none(result.first_approval_mean),
        "confirmation_latency_mean": _finite_or_none(result.confirmation_latency_mean),
        "confirmed_fraction": _finite_or_none(result.confirmed_fraction),
        "left_behind_fraction": _finite_or_none(result.left_behind_fraction),
        "duration": result.duration,
    }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


__all__ = [
    "MAX_TRANSACTIONS",
    "TIP_SELECTIONS",
    "TangleLedger",
    "TangleParams",
    "TangleResult",
    "TipSelection",
    "check_params",
    "cumulative_weights",
    "record_times",
    "result_to_dict",
    "simulate",
]
