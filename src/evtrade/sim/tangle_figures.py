"""The tangle's own figures (docs/dv2g.md#reproducing-the-paper): the tip count over time under
each tip selection, and the confirmation latency against lambda and against alpha (with the
transactions left behind), from :func:`evtrade.sim.tangle.simulate`, against the theory's
L0 = 2 lambda h tips under uniform selection (Popov)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evtrade.sim.figures import Figure, Record, table
from evtrade.sim.tangle import TangleParams, TangleResult, TipSelection, _finite_or_none, simulate

#: The visibility delay h of every run (time unit: h).
DELAY = 1.0
#: lambda of the tip and alpha figures.
RATE = 20.0
#: The weighted walk's alpha in the tips and lambda figures.
ALPHA = 0.5
#: Tolerance of the 2 lambda h claim (the issue: within 10 % for lambda h >= 20).
TIPS_TOLERANCE = 0.10


def _size(quick: bool) -> int:
    return 4_000 if quick else 20_000


def _run(seed: int, key: int, params: TangleParams) -> TangleResult:
    return simulate(params, np.random.default_rng([seed, key]), seed=seed)


def _selections() -> tuple[tuple[TipSelection, float], ...]:
    return (("urts", 0.0), ("mcmc", 0.0), ("weighted", ALPHA))


def tips_rows(seed: int, quick: bool) -> list[Record]:
    """The tip count at evenly spaced arrivals, lambda = 20, h = 1, per tip selection."""
    rows: list[Record] = []
    for key, (sel, alpha) in enumerate(_selections()):
        p = TangleParams(RATE, DELAY, sel, alpha, transactions=_size(quick))
        r = _run(seed, key, p)
        for t, tips in zip(r.tips_times, r.tips, strict=True):
            rows.append(
                {
                    "tip_selection": sel,
                    "alpha": alpha,
                    "time": t,
                    "tips": tips,
                    "tips_mean": r.tips_mean,
                    "theory": 2.0 * RATE * DELAY,
                }
            )
    return rows


def _measures(r: TangleResult) -> Record:
    """A run's means; one with nothing to average is None (an empty CSV cell)."""
    return {
        "tips_mean": r.tips_mean,
        "theory_tips_urts": 2.0 * r.params.rate * r.params.delay,
        "first_approval_mean": _finite_or_none(r.first_approval_mean),
        "confirmation_latency_mean": _finite_or_none(r.confirmation_latency_mean),
        "confirmed_fraction": _finite_or_none(r.confirmed_fraction),
        "left_behind_fraction": _finite_or_none(r.left_behind_fraction),
    }


def lambda_rows(seed: int, quick: bool) -> list[Record]:
    """Tips, first approval and confirmation latency against lambda (h = 1), uniform selection
    and the weighted walk."""
    rates = (5.0, 20.0, 40.0) if quick else (5.0, 10.0, 20.0, 30.0, 40.0, 50.0)
    rows: list[Record] = []
    for i, rate in enumerate(rates):
        for key, (sel, alpha) in enumerate(_selections()[::2]):  # urts and the weighted walk
            p = TangleParams(rate, DELAY, sel, alpha, transactions=_size(quick))
            r = _run(seed, 100 + 10 * i + key, p)
            rows.append(
                {"tip_selection": sel, "alpha": alpha, "rate": rate, "delay": DELAY, **_measures(r)}
            )
    return rows


def alpha_rows(seed: int, quick: bool) -> list[Record]:
    """Tips, confirmation latency and left-behind fraction against alpha (weighted walk,
    lambda = 20, h = 1)."""
    alphas = (0.0, 0.1, 1.0) if quick else (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
    rows: list[Record] = []
    for i, alpha in enumerate(alphas):
        p = TangleParams(RATE, DELAY, "weighted", alpha, transactions=_size(quick))
        rows.append(
            {"alpha": alpha, "rate": RATE, "delay": DELAY, **_measures(_run(seed, 200 + i, p))}
        )
    return rows


def _plot_tips(rows: Sequence[Record], axes: Any) -> None:
    for sel in dict.fromkeys(r["tip_selection"] for r in rows):
        sub = [r for r in rows if r["tip_selection"] == sel]
        label = f"{sel} (alpha {sub[0]['alpha']:g})" if sel == "weighted" else sel
        axes.plot([r["time"] for r in sub], [r["tips"] for r in sub], lw=1, label=label)
    axes.axhline(2.0 * RATE * DELAY, color="k", ls="--", lw=0.8, label="2 lambda h")
    axes.set_xlabel(f"time (lambda = {RATE:g}, h = {DELAY:g})")
    axes.set_ylabel("tips")
    axes.grid(alpha=0.3)
    axes.legend()


def _plot_lambda(rows: Sequence[Record], axes: Any) -> None:
    for sel in dict.fromkeys(r["tip_selection"] for r in rows):
        sub = [r for r in rows if r["tip_selection"] == sel]
        rates = [r["rate"] for r in sub]
        axes[0].plot(rates, [r["confirmation_latency_mean"] for r in sub], "o-", label=sel)
        axes[1].plot(rates, [r["tips_mean"] for r in sub], "o-", label=sel)
    rates = sorted({r["rate"] for r in rows})
    axes[1].plot(rates, [2.0 * x * DELAY for x in rates], "k--", label="2 lambda h")
    axes[0].set_ylabel("confirmation latency (mean)")
    axes[1].set_ylabel("tips (mean)")
    for ax in axes:
        ax.set_xlabel(f"lambda (h = {DELAY:g})")
        ax.grid(alpha=0.3)
        ax.legend()


def _plot_alpha(rows: Sequence[Record], axes: Any) -> None:
    alphas = [r["alpha"] for r in rows]
    axes[0].plot(alphas, [r["confirmation_latency_mean"] for r in rows], "o-")
    axes[0].set_ylabel("confirmation latency (mean)")
    axes[1].plot(alphas, [r["left_behind_fraction"] for r in rows], "o-")
    axes[1].set_ylabel("fraction left behind")
    for ax in axes:
        ax.set_xlabel(f"alpha (weighted walk, lambda = {RATE:g}, h = {DELAY:g})")
        ax.set_xscale("symlog", linthresh=0.05)
        ax.grid(alpha=0.3)


FIGURES: dict[str, Figure] = table(
    Figure("tangle_tips", tips_rows, (("tangle_tips", _plot_tips),)),
    Figure(
        "tangle_lambda", lambda_rows, (("tangle_lambda", _plot_lambda),), panels=2, size=(11.0, 4.2)
    ),
    Figure(
        "tangle_alpha", alpha_rows, (("tangle_alpha", _plot_alpha),), panels=2, size=(11.0, 4.2)
    ),
)


def claims(results: Mapping[str, Sequence[Record]]) -> dict[str, Any]:
    """The tangle's known results checked on the figures' runs: the tip count near 2 lambda h
    under uniform selection (within :data:`TIPS_TOLERANCE` for lambda h >= 20), bounded tips at
    alpha = 0 (the unweighted walk's mean within 1.5 x 2 lambda h), more transactions left behind
    as alpha grows (never fewer from one alpha to the next, more at the largest than at 0)."""
    urts = [r for r in results["tangle_lambda"] if r["tip_selection"] == "urts"]
    errors = {f"{r['rate']:g}": r["tips_mean"] / r["theory_tips_urts"] - 1.0 for r in urts}
    judged = [r for r in urts if r["rate"] * r["delay"] >= 20]
    tips = {r["tip_selection"]: r["tips_mean"] for r in results["tangle_tips"]}
    alpha = sorted(results["tangle_alpha"], key=lambda r: r["alpha"])
    left = [r["left_behind_fraction"] for r in alpha]
    return {
        "tips_urts_relative_error": errors,
        "tips_2_lambda_h_holds": bool(judged)
        and all(
            abs(r["tips_mean"] / r["theory_tips_urts"] - 1.0) <= TIPS_TOLERANCE for r in judged
        ),
        "tips_mean": tips,
        "mcmc_bounded_holds": tips["mcmc"] <= 1.5 * 2.0 * RATE * DELAY,
        "left_behind_by_alpha": {f"{r['alpha']:g}": r["left_behind_fraction"] for r in alpha},
        "left_behind_grows_holds": None not in left
        and left[-1] > left[0]
        and all(b >= a for a, b in itertools.pairwise(left)),
        "latency_by_alpha": {f"{r['alpha']:g}": r["confirmation_latency_mean"] for r in alpha},
        "latency_by_lambda_urts": {f"{r['rate']:g}": r["confirmation_latency_mean"] for r in urts},
    }


__all__ = ["FIGURES", "claims"]
