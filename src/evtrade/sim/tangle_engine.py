"""The tangle's event loop (private to :mod:`evtrade.sim.tangle`, whose docstring states the
model, the tip selections and the cost).

One arrival at a time: reveal every transaction whose visibility delay has passed (it becomes a
visible tip, its approvees stop being visible tips, the cumulative weight of its past cone rises
by one, eq. 1), take a confirmation checkpoint if one is due, then choose the arrival's two tips
and record its past cone. State over the last M arrivals lives in rings indexed ``i % M``.
"""

from __future__ import annotations

import math
import random
from array import array
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from evtrade.sim.tangle import TangleParams


class Engine:
    """The state of one run; :meth:`run` fills the arrays."""

    def __init__(
        self,
        params: TangleParams,
        rng: np.random.Generator,
        times: npt.NDArray[np.float64] | None = None,
    ) -> None:
        n = params.transactions
        self.p = params
        self.rng = rng
        self.m = params.window_bits
        self.mask = (1 << self.m) - 1
        if times is None:  # Poisson arrivals at rate lambda
            times = np.cumsum(rng.exponential(1.0 / params.rate, size=n))
        self.arrival: npt.NDArray[np.float64] = np.concatenate(([0.0], times))
        self.approves: npt.NDArray[np.int64] = np.full((n + 1, 2), -1, dtype=np.int64)
        # Eq. 1's weights: an array.array read one at a time by the walks (fast indexing), the
        # same memory seen as a NumPy array for the vectorised updates.
        self.weights = array("q", bytes(8 * (n + 1)))
        self.cw: npt.NDArray[np.int64] = np.frombuffer(self.weights, dtype=np.int64)
        self.first_approval: npt.NDArray[np.float64] = np.full(n + 1, np.nan)
        self.confirmed: npt.NDArray[np.float64] = np.full(n + 1, np.nan)
        self.tips_series: npt.NDArray[np.int64] = np.zeros(n, dtype=np.int64)
        self.cones: list[int] = [0] * self.m
        self.approvers: list[list[int]] = [[] for _ in range(self.m)]
        # The visible tips: a list with each tip's position, for O(1) uniform choice and removal.
        self.tip_list: list[int] = []
        self.tip_pos: dict[int, int] = {}
        self.visible = 0
        self.current = 0
        self.last_checkpoint = 0.0
        self.visible_at_last_checkpoint = 0
        # The walks' many single draws come from a Mersenne Twister seeded from the run's
        # generator (one C call each, no NumPy scalar): the run stays a function of the seed.
        self.uniform = random.Random(int(rng.integers(2**63))).random

    # --- the visible tangle ------------------------------------------------------------------

    def _cone_indices(self, j: int) -> npt.NDArray[np.int64]:
        """Indices of j's past cone within the window (j included)."""
        raw = np.frombuffer(self.cones[j % self.m].to_bytes(self.m // 8, "little"), np.uint8)
        bits = np.unpackbits(raw, bitorder="little")
        idx: npt.NDArray[np.int64] = j - np.flatnonzero(bits[: j + 1])
        return idx

    def reveal(self, j: int) -> None:
        """Transaction j becomes visible: a visible tip, its approvees no longer are, and eq. 1."""
        self.tip_pos[j] = len(self.tip_list)
        self.tip_list.append(j)
        oldest = self.current - self.m  # ring slots hold indices > current - 1 - M
        for a in _distinct(self.approves[j]):
            if a in self.tip_pos:
                self._drop_tip(a)
            if a >= oldest:
                self.approvers[a % self.m].append(j)
        if j > oldest:
            self.cw[self._cone_indices(j)] += 1
        self.visible = j + 1

    def _drop_tip(self, a: int) -> None:
        k = self.tip_pos.pop(a)
        last = self.tip_list.pop()
        if last != a:
            self.tip_list[k] = last
            self.tip_pos[last] = k

    # --- tip selection -----------------------------------------------------------------------

    def start_range(self, t: float) -> tuple[int, int]:
        """Walk starts: visible transactions of age in [W, 2W] at time t, clamped to the window."""
        w = self.p.window
        lo = int(np.searchsorted(self.arrival, t - 2.0 * w, "left"))
        hi = int(np.searchsorted(self.arrival, t - w, "right")) - 1
        floor = max(0, self.current - self.m + 1)
        lo = max(lo, floor)
        hi = min(hi, self.visible - 1)
        if hi < lo:  # early in the run (or no arrival in the window): the oldest walkable one
            lo = hi = max(floor, min(hi, self.visible - 1))
        return lo, hi

    def walk(self, lo: int, hi: int) -> int:
        """One random walk (eq. 1's weights) from a start in [lo, hi] to a visible tip."""
        x = lo + int(self.uniform() * (hi - lo + 1))
        alpha = self.p.alpha
        approvers, m, weight, uniform, exp = (
            self.approvers,
            self.m,
            self.weights,
            self.uniform,
            math.exp,
        )
        while True:
            ys = approvers[x % m]
            if not ys:
                return x
            if len(ys) == 1:
                x = ys[0]
            elif alpha == 0.0:
                x = ys[int(uniform() * len(ys))]
            elif len(ys) == 2:
                # The same rule for two approvers, closed form: y1 with probability
                # 1 / (1 + exp(-d)), d = alpha (H_y1 - H_y0), the exponent kept <= 0.
                d = alpha * (weight[ys[1]] - weight[ys[0]])
                if d >= 0.0:
                    x = ys[1] if uniform() * (1.0 + exp(-d)) < 1.0 else ys[0]
                else:
                    e = exp(d)
                    x = ys[1] if uniform() * (1.0 + e) < e else ys[0]
            else:
                # exp(alpha (H_y - H_x)) normalised, computed as exp(alpha (H_y - max H)): the
                # factor exp(alpha (max H - H_x)) cancels and no exponent is positive.
                hs = [weight[y] for y in ys]
                top = max(hs)
                ps = [exp(alpha * (h - top)) for h in hs]
                target = uniform() * sum(ps)
                for y, q in zip(ys, ps, strict=True):
                    target -= q
                    if target < 0.0:
                        x = y
                        break
                else:
                    x = ys[-1]

    def select(self, t: float) -> tuple[int, int]:
        """Two tips, chosen independently (both may be the same tip)."""
        if self.p.tip_selection == "urts":
            tips = self.tip_list
            return (
                tips[int(self.uniform() * len(tips))],
                tips[int(self.uniform() * len(tips))],
            )
        lo, hi = self.start_range(t)
        return self.walk(lo, hi), self.walk(lo, hi)

    # --- confirmation ------------------------------------------------------------------------

    def checkpoint(self, t: float) -> None:
        """K tip selections; a transaction in the past cones of >= threshold of them (approved by
        them, directly or indirectly) is confirmed now (first time only)."""
        k = self.p.confidence_samples
        base = self.current - 1
        if self.p.tip_selection == "urts":
            picks = [self.tip_list[int(self.uniform() * len(self.tip_list))] for _ in range(k)]
        else:
            lo, hi = self.start_range(t)
            picks = [self.walk(lo, hi) for _ in range(k)]
        # rel = how far behind the newest arrival; each pick's cone counts once per transaction.
        # A tip confirms what it approves, directly or indirectly, not itself ([1:] drops the
        # tip): a lone tip that nobody has approved yet is not confirmed by being picked.
        rel = base - np.concatenate([self._cone_indices(tip)[1:] for tip in picks])
        counts = np.bincount(rel[rel < self.m], minlength=self.m)
        need = math.ceil(self.p.threshold * k - 1e-9)
        idx = base - np.flatnonzero(counts >= need)
        idx = idx[idx >= 0]
        self.confirmed[idx[np.isnan(self.confirmed[idx])]] = t
        self.last_checkpoint = t
        self.visible_at_last_checkpoint = self.visible

    # --- the event loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Every arrival in time order."""
        h, arrival = self.p.delay, self.arrival
        self.cones[0] = 1
        self.reveal(0)
        v = 1
        true_tips = 1
        interval = self.p.interval
        next_check = interval
        for i in range(1, len(arrival)):
            t = float(arrival[i])
            self.current = i
            while v < i and arrival[v] + h <= t:
                self.reveal(v)
                v += 1
            if t >= next_check:
                self.checkpoint(t)
                next_check = t + interval
            a, b = self.select(t)
            slot = i % self.m
            self.approvers[slot] = []
            self.approves[i] = (a, b)
            cone = 1
            for x in _distinct(self.approves[i]):
                if i - x < self.m:
                    cone |= self.cones[x % self.m] << (i - x)
                if math.isnan(self.first_approval[x]):
                    self.first_approval[x] = t
                    true_tips -= 1
            self.cones[slot] = cone & self.mask
            true_tips += 1
            self.tips_series[i - 1] = true_tips


def _distinct(pair: npt.NDArray[np.int64]) -> tuple[int, ...]:
    a, b = int(pair[0]), int(pair[1])
    if a < 0:
        return ()
    return (a,) if a == b else (a, b)
