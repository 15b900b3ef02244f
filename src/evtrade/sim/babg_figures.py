"""Luo et al.'s Fig. 3-8 (BABG vs IDA vs ETA) regenerated from the project's own runs.

Markets follow Table II (d^min in [5, 10], d^max in [12, 18], s^max in [10, 20] kWh, delivery
efficiency 0.9, l1 = 0.0025, l2 = 0.005, w in [0, 1]) with prices inside the grid band
[p^G, r^G] = [0.6, 1.0] yuan/kWh; the paper does not give the price ranges, the choice is in
:data:`BABG_SPEC` and ``docs/babg.md``. Every mechanism's allocation is scored with SWM2's
welfare (eq. 12: utility minus the loss on each seller's total) so that they compare on one
measure. Each point is the mean over seeded repetitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evtrade.market.mechanisms.babg import BabgParams, babg_round
from evtrade.market.mechanisms.eta import clear
from evtrade.market.mechanisms.ida import IdaParams, ida_round
from evtrade.market.objectives import cost_performance, seller_cost, swm2_welfare
from evtrade.market.pricing import bid_covers_ask, buyer_bid, seller_ask
from evtrade.model import Market
from evtrade.sim.figures import Figure, Record, table
from evtrade.sim.scenarios import ScenarioSpec, random_market

#: Table II of the BABG paper; prices inside the grid band (our choice, see the module doc).
BABG_SPEC = ScenarioSpec(
    n_buyers=35,
    n_sellers=40,
    v_min=(0.60, 0.70),
    v_max=(0.85, 1.00),
    c_min=(0.60, 0.75),
    c_max=(0.90, 1.00),
    b_min=(5.0, 10.0),
    b_max=(12.0, 18.0),
    s_t=(10.0, 20.0),
    s_r=(0.0, 0.0),
    rho=(1.0 / 9.0, 1.0 / 9.0),  # delivery efficiency 1 / (1 + rho) = 0.9
    w=(0.0, 1.0),
    auctioneer_v_min=0.6,
    auctioneer_c_max=1.0,
)


def _nan(x: float | None) -> float:
    """A metric that is undefined (None: nothing traded) as NaN in the records."""
    return np.nan if x is None else x


def _eta_metrics(market: Market) -> Record:
    B, S = market.buyer_arrays, market.seller_arrays
    a = market.auctioneer
    res = clear(market, "eta")
    x = res.volume_matrix
    drained = x * (1.0 + S["rho"])
    P = buyer_bid(B["v"], B["v_max"], S["c_min"])
    R = seller_ask(S["c"], S["c_min"], B["v_max"])
    band = B["v_max"][:, None] >= S["c_min"][None, :]
    ok = bid_covers_ask(P, R) & band
    welfare = float(swm2_welfare(drained, x, B["w"], B["b_min"], l1=a.l1, l2=a.l2))
    cost = float(seller_cost(drained, l1=a.l1, l2=a.l2))
    return {
        "welfare": welfare,
        "volume": float(x.sum()),
        "cost": cost,
        "cp": _nan(cost_performance(welfare, cost)),
        "success": float(ok.sum() / max(int(band.sum()), 1)),
    }


def _babg_metrics(market: Market, params: BabgParams) -> Record:
    r = babg_round(market, params)
    rounds = r.rounds[r.candidates]
    return {
        "welfare": r.welfare,
        "volume": float(r.delivered.sum()),
        "cost": r.cost,
        "cp": _nan(r.cp),
        "success": _nan(r.success_rate),
        "pma": _nan(r.pma),
        "auctions": float(rounds.mean()) if rounds.size else np.nan,
        "W": float(np.nanmean(np.where(r.delivered > 0, r.W, np.nan))),
        "Q": float(np.nanmean(np.where(r.delivered > 0, r.Q, np.nan))),
    }


def _ida_metrics(market: Market) -> Record:
    r = ida_round(market, IdaParams(max_iter=100))
    return {
        "welfare": r.welfare,
        "volume": float(r.delivered.sum()),
        "cost": r.cost,
        "cp": _nan(cost_performance(r.welfare, r.cost)),
        "success": 1.0,
        "iterations": r.iterations,
        "converged": r.converged,
    }


def _reps(quick: bool) -> int:
    return 2 if quick else 5


def scale_sweep(seed: int, quick: bool) -> list[Record]:
    """Fig. 3, 7, 8 data: welfare, volume, CP of the three mechanisms over market sizes."""
    sweeps = [
        ("charging", n, 40) for n in ((10, 35, 60) if quick else (10, 20, 30, 35, 40, 50, 60))
    ]
    sweeps += [("discharging", 35, m) for m in ((20, 40, 60) if quick else (20, 30, 40, 50, 60))]
    rows: list[Record] = []
    for sweep, n, m in sweeps:
        for rep in range(_reps(quick)):
            market = random_market(BABG_SPEC.scaled(n, m), np.random.default_rng([seed, n, m, rep]))
            for name, metrics in (
                ("BABG", _babg_metrics(market, BabgParams())),
                ("IDA", _ida_metrics(market)),
                ("ETA", _eta_metrics(market)),
            ):
                keys = ("welfare", "volume", "cost", "cp", "success", "iterations", "converged")
                rows.append({"sweep": sweep, "n": n, "m": m, "rep": rep, "mechanism": name,
                             **{k: metrics.get(k) for k in keys}})  # fmt: skip
    return rows


def alpha_sweep(seed: int, quick: bool) -> list[Record]:
    """Fig. 4 data: average prices and number of auctions vs alpha = beta (35 x 40)."""
    rows: list[Record] = []
    alphas = (0.1, 0.5, 0.9) if quick else tuple(np.round(np.arange(0.1, 1.0, 0.1), 2))
    for rep in range(_reps(quick)):
        market = random_market(BABG_SPEC, np.random.default_rng([seed, 35, 40, rep]))
        for al in alphas:
            m = _babg_metrics(market, BabgParams(alpha=float(al), beta=float(al)))
            rows.append({"alpha": float(al), "rep": rep, **m})
    return rows


def trajectories(seed: int, quick: bool) -> list[Record]:
    """Fig. 5 data: average bid W and ask Q after each auction, alpha = beta = 0.3 and 0.5."""
    market = random_market(BABG_SPEC, np.random.default_rng([seed, 5]))
    rows: list[Record] = []
    for al in (0.3, 0.5):
        r = babg_round(market, BabgParams(alpha=al, beta=al))
        for t, (w, q) in enumerate(zip(r.bid_history, r.ask_history, strict=True), start=1):
            rows.append({"alpha": al, "auction": t, "W": float(w), "Q": float(q)})
    return rows


def pma_sweep(seed: int, quick: bool) -> list[Record]:
    """Fig. 6 data: the auctioneer's margin PMA vs alpha = beta at several market sizes."""
    rows: list[Record] = []
    sizes = ((20, 20), (35, 40)) if quick else ((20, 20), (35, 40), (50, 60))
    for n, m in sizes:
        for rep in range(_reps(quick)):
            market = random_market(
                BABG_SPEC.scaled(n, m), np.random.default_rng([seed, n, m, rep, 6])
            )
            for al in (0.1, 0.3, 0.5, 0.7, 0.9):
                r = babg_round(market, BabgParams(alpha=al, beta=al))
                rows.append({"n": n, "m": m, "alpha": al, "rep": rep, "pma": r.pma})
    return rows


def _mean(rows: Sequence[Record], key: str, **where: Any) -> float:
    vals = [r[key] for r in rows if all(r[k] == v for k, v in where.items())]
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _plot_scale(rows: Sequence[Record], axes: Any, key: str, label: str) -> None:
    for ax, sweep, xkey, xlabel in (
        (axes[0], "charging", "n", "charging EVs (40 discharging)"),
        (axes[1], "discharging", "m", "discharging EVs (35 charging)"),
    ):
        xs = sorted({r[xkey] for r in rows if r["sweep"] == sweep})
        for mech, style in (("BABG", "o-"), ("IDA", "s--"), ("ETA", "^:")):
            ys = [_mean(rows, key, sweep=sweep, mechanism=mech, **{xkey: x}) for x in xs]
            ax.plot(xs, ys, style, label=mech)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()


def _plot_fig4(rows: Sequence[Record], axes: Any) -> None:
    alphas = sorted({r["alpha"] for r in rows})
    axes[0].plot(alphas, [_mean(rows, "W", alpha=a) for a in alphas], "o-", label="buyers' W")
    axes[0].plot(alphas, [_mean(rows, "Q", alpha=a) for a in alphas], "s-", label="sellers' Q")
    axes[0].set_xlabel("alpha = beta")
    axes[0].set_ylabel("average price (yuan/kWh)")
    axes[0].legend()
    axes[1].plot(alphas, [_mean(rows, "auctions", alpha=a) for a in alphas], "o-")
    axes[1].set_xlabel("alpha = beta")
    axes[1].set_ylabel("average number of auctions")
    for ax in axes:
        ax.grid(alpha=0.3)


def _plot_fig5(rows: Sequence[Record], axes: Any) -> None:
    for ax, al in zip(axes, (0.3, 0.5), strict=True):
        rs = [r for r in rows if r["alpha"] == al]
        ax.plot([r["auction"] for r in rs], [r["W"] for r in rs], "o-", label="buyers' W")
        ax.plot([r["auction"] for r in rs], [r["Q"] for r in rs], "s-", label="sellers' Q")
        ax.set_title(f"alpha = beta = {al}")
        ax.set_xlabel("auction")
        ax.set_ylabel("average price (yuan/kWh)")
        ax.grid(alpha=0.3)
        ax.legend()


def _plot_fig6(rows: Sequence[Record], axes: Any) -> None:
    ax = axes[0]
    sizes = sorted({(r["n"], r["m"]) for r in rows})
    alphas = sorted({r["alpha"] for r in rows})
    for n, m in sizes:
        ax.plot(alphas, [_mean(rows, "pma", n=n, m=m, alpha=a) for a in alphas], "o-",
                label=f"{n} x {m}")  # fmt: skip
    ax.set_xlabel("alpha = beta")
    ax.set_ylabel("PMA (eq. 35)")
    ax.grid(alpha=0.3)
    ax.legend()
    axes[1].set_visible(False)


#: fig3, fig7 and fig8 share one experiment; each plot is two panels side by side.
FIGURES: dict[str, Figure] = table(
    Figure(
        "fig3_7_8",
        scale_sweep,
        (
            ("fig3_welfare", lambda r, ax: _plot_scale(r, ax, "welfare", "social welfare")),
            ("fig7_volume", lambda r, ax: _plot_scale(r, ax, "volume", "total volume (kWh)")),
            ("fig8_cp", lambda r, ax: _plot_scale(r, ax, "cp", "CP (eq. 36)")),
        ),
        panels=2,
        size=(11, 4.2),
    ),
    Figure("fig4", alpha_sweep, (("fig4_alpha", _plot_fig4),), panels=2, size=(11, 4.2)),
    Figure("fig5", trajectories, (("fig5_trajectories", _plot_fig5),), panels=2, size=(11, 4.2)),
    Figure("fig6", pma_sweep, (("fig6_pma", _plot_fig6),), panels=2, size=(11, 4.2)),
)


def summary(rows: Sequence[Record]) -> dict[str, float]:
    """Largest relative gains of BABG over IDA and ETA across the scale sweep (welfare, CP)."""
    out: dict[str, float] = {}
    points = sorted({(r["sweep"], r["n"], r["m"]) for r in rows})
    for key in ("welfare", "cp"):
        for other in ("IDA", "ETA"):
            gains = []
            for sweep, n, m in points:
                b = _mean(rows, key, sweep=sweep, n=n, m=m, mechanism="BABG")
                o = _mean(rows, key, sweep=sweep, n=n, m=m, mechanism=other)
                if np.isfinite(b) and np.isfinite(o) and o > 0:
                    gains.append(b / o - 1.0)
            out[f"{key}_vs_{other}_max"] = float(max(gains)) if gains else float("nan")
            out[f"{key}_vs_{other}_min"] = float(min(gains)) if gains else float("nan")
    return out


__all__ = ["BABG_SPEC", "FIGURES", "summary"]
