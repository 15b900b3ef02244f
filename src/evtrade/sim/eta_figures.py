"""ETA's figures (Sec. V.B) regenerated from the project's own runs.

Each figure is two steps (:class:`~evtrade.sim.figures.Figure`): an experiment that returns flat
records (and is saved as CSV), and a plot that reads only those records. Generators are created
from the seed passed in, never globally.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from evtrade.market import clear, expected_outcome
from evtrade.market.pricing import (
    bid_covers_ask,
    buyer_bid,
    equilibrium_ask,
    equilibrium_bid,
    seller_ask,
    transaction_price,
)
from evtrade.model import Market
from evtrade.sim.figures import Figure, Record, table
from evtrade.sim.scenarios import ScenarioSpec, random_market


def fig4_buyer_bid(seed: int, quick: bool) -> list[Record]:
    """Fig. 4: buyer's equilibrium bid P* vs its value v, for several v^max (c^min = 0.3)."""
    out = []
    for v_max in (0.8, 0.9, 1.0, 1.1):
        v = np.linspace(0.5, v_max, 11 if quick else 41)
        P = buyer_bid(v, np.full_like(v, v_max), [0.3])[:, 0]
        out += [
            {"v_max": v_max, "c_min": 0.3, "v": float(a), "P": float(b)}
            for a, b in zip(v, P, strict=True)
        ]
    return out


def fig5_seller_ask(seed: int, quick: bool) -> list[Record]:
    """Fig. 5: seller's equilibrium ask R* vs its cost c, for several c^min (v^max = 1)."""
    out = []
    for c_min in (0.2, 0.3, 0.4, 0.5):
        c = np.linspace(c_min, 1.0, 11 if quick else 41)
        R = seller_ask(c, np.full_like(c, c_min), [1.0])[0, :]
        out += [
            {"c_min": c_min, "v_max": 1.0, "c": float(a), "R": float(b)}
            for a, b in zip(c, R, strict=True)
        ]
    return out


def fig6_trade_region(seed: int, quick: bool) -> list[Record]:
    """Fig. 6: where P* >= R* in the (c, v) plane (v^max = 1, c^min = 0) and the price T there."""
    grid = np.linspace(0.0, 1.0, 26 if quick else 101)
    v = grid[:, None] * np.ones_like(grid)[None, :]
    c = np.ones_like(grid)[:, None] * grid[None, :]
    P = equilibrium_bid(v, 1.0, 0.0)  # eq. (5) with v^max = 1, c^min = 0
    R = equilibrium_ask(c, 0.0, 1.0)  # eq. (6)
    trade = bid_covers_ask(P, R)
    T = np.where(trade, transaction_price(P, R), np.nan)
    return [
        {"v": float(v[i, j]), "c": float(c[i, j]), "trade": bool(trade[i, j]), "T": _f(T[i, j])}
        for i in range(grid.size)
        for j in range(grid.size)
    ]


def fig7_8_satisfaction(seed: int, quick: bool) -> list[Record]:
    """Fig. 7/8: satisfaction under incomplete (ETA) vs complete information, over bid ranges.

    Sellers' costs ~ U[0.5, 1.0]; buyers' values ~ U[0.5 + d, 1.0 + d] for a shift d: d = 0 puts
    the two ranges together, larger d moves them apart.
    """
    rng = np.random.default_rng(seed)
    samples = 20_000 if quick else 400_000
    out = []
    for d in np.round(np.linspace(0.0, 0.5, 6 if quick else 11), 3):
        vr, cr = (0.5 + d, 1.0 + d), (0.5, 1.0)
        inc = expected_outcome("eta", v_range=vr, c_range=cr, samples=samples, rng=rng)
        com = expected_outcome("complete-info", v_range=vr, c_range=cr, samples=samples, rng=rng)
        s_inc, s_com = inc.satisfaction or 0.0, com.satisfaction or 0.0
        out.append(
            {
                "shift": float(d),
                "satisfaction_incomplete": s_inc,
                "satisfaction_complete": s_com,
                "ratio": s_inc / s_com if s_com else float("nan"),
                # ETA's "degree of approximation" of the complete-information benchmark
                "approximation": 1.0 - abs(s_inc - s_com) / s_com if s_com else float("nan"),
                "trade_prob_incomplete": inc.trade_probability,
                "trade_prob_complete": com.trade_probability,
            }
        )
    return out


def fig9_single_price_region(seed: int, quick: bool) -> list[Record]:
    """Fig. 9: trade regions for v, c ~ U[0.5, 1]: Bayesian (v >= c + 1/8) vs single price 0.75."""
    grid = np.linspace(0.5, 1.0, 26 if quick else 101)
    out = []
    for v in grid:
        for c in grid:
            P = equilibrium_bid(v, 1.0, 0.5)  # eq. (5) with v^max = 1, c^min = 0.5
            R = equilibrium_ask(c, 0.5, 1.0)  # eq. (6)
            out.append(
                {
                    "v": float(v),
                    "c": float(c),
                    "bayesian": bool(bid_covers_ask(P, R)),
                    "single_price": bool(c <= 0.75 <= v),
                }
            )
    return out


def fig10_benefit(seed: int, quick: bool) -> list[Record]:
    """Fig. 10: expected benefit (gains from trade) of the Bayesian equilibrium vs single prices."""
    rng = np.random.default_rng(seed)
    samples = 20_000 if quick else 400_000
    out = []
    for lo in (0.0, 0.5):
        vr = cr = (lo, 1.0)
        eta = expected_outcome("eta", v_range=vr, c_range=cr, samples=samples, rng=rng).gains
        first = expected_outcome("complete-info", v_range=vr, c_range=cr, samples=samples, rng=rng)
        for p in np.round(np.linspace(lo, 1.0, 6 if quick else 21), 4):
            single = expected_outcome(
                "single-price", v_range=vr, c_range=cr, price=float(p), samples=samples, rng=rng
            ).gains
            out.append(
                {
                    "types": f"U[{lo:g},1]",
                    "price": float(p),
                    "gains_single_price": single.mean,
                    "gains_bayesian": eta.mean,
                    "gains_first_best": first.gains.mean,
                    "stderr": max(single.stderr, eta.stderr),
                }
            )
    return out


def _tight_spec() -> ScenarioSpec:
    # Scarce supply so that seller capacities (13) bind and losses matter.
    return ScenarioSpec(n_buyers=35, n_sellers=20, s_t=(20.0, 35.0), s_r=(8.0, 12.0))


def _with_rho(market: Market, rho: float) -> Market:
    sellers = tuple(replace(s, rho=rho) for s in market.sellers)
    return Market(auctioneer=market.auctioneer, buyers=market.buyers, sellers=sellers)


def fig13_volume_vs_loss(seed: int, quick: bool) -> list[Record]:
    """Fig. 13: total traded volume vs the sellers' loss rate rho (all sellers alike)."""
    out = []
    seeds = range(seed, seed + (2 if quick else 5))
    for s in seeds:
        market = random_market(_tight_spec(), np.random.default_rng(s))
        for rho in np.round(np.linspace(0.02, 0.5, 5 if quick else 13), 4):
            r = clear(_with_rho(market, float(rho)))
            out.append(
                {
                    "seed": s,
                    "rho": float(rho),
                    "total_volume": r.total_volume,
                    "welfare": r.welfare,
                    "traded_pairs": sum(1 for p in r.pairs if p.volume > 0),
                }
            )
    return out


def fig14_price_vs_volume(seed: int, quick: bool) -> list[Record]:
    """Fig. 14: transaction price T vs traded volume per pair, P1 optimum and Theorem 2 variant."""
    market = random_market(_tight_spec(), np.random.default_rng(seed))
    p1 = clear(market)
    t2 = clear(market, volumes="theorem2")
    rho = {s.id: s.rho for s in market.sellers}
    t2v = {(p.buyer, p.seller): p.volume for p in t2.pairs}
    return [
        {
            "buyer": p.buyer,
            "seller": p.seller,
            "T": p.T,
            "rho": rho[p.seller],
            "volume_p1": p.volume,
            "volume_theorem2": t2v[(p.buyer, p.seller)],
        }
        for p in p1.pairs
    ]


def _f(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


# ----------------------------------------------------------------------------- plots (records in)


def _plot_curves(rows: Sequence[Record], ax: Any, by: str, x: str, y: str, symbol: str) -> None:
    """One curve of ``y`` against ``x`` for each value of ``by`` (labelled ``symbol=value``)."""
    for key in sorted({r[by] for r in rows}):
        sel = [r for r in rows if r[by] == key]
        ax.plot([r[x] for r in sel], [r[y] for r in sel], label=f"{symbol}={key}")
    ax.legend()


def _plot_fig4(rows: Sequence[Record], ax: Any) -> None:
    _plot_curves(rows, ax, "v_max", "v", "P", "$v_i^{max}$")
    ax.set(xlabel="$v_i$", ylabel="$P^*_{ij}$", title="Fig. 4: buyer's bid ($c_j^{min}$=0.3)")


def _plot_fig5(rows: Sequence[Record], ax: Any) -> None:
    _plot_curves(rows, ax, "c_min", "c", "R", "$c_j^{min}$")
    ax.set(xlabel="$c_j$", ylabel="$R^*_{ji}$", title="Fig. 5: seller's ask ($v_i^{max}$=1)")


def _grid(rows: Sequence[Record], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vs = np.array(sorted({r["v"] for r in rows}))
    cs = np.array(sorted({r["c"] for r in rows}))
    z = np.full((vs.size, cs.size), np.nan)
    vi = {v: k for k, v in enumerate(vs)}
    ci = {c: k for k, c in enumerate(cs)}
    for r in rows:
        val = r[key]
        z[vi[r["v"]], ci[r["c"]]] = np.nan if val is None else float(val)
    return cs, vs, z


def _plot_fig6(rows: Sequence[Record], ax: Any) -> None:
    cs, vs, z = _grid(rows, "T")
    im = ax.pcolormesh(cs, vs, z, shading="auto", cmap="viridis")
    ax.plot(cs, cs + 0.25, "r--", label="$v = c + 1/4$")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="$c_j$", ylabel="$v_i$")
    ax.set_title("Fig. 6: trade region and price T (U[0,1] types)")
    ax.figure.colorbar(im, ax=ax, label="$T_{ij}$")
    ax.legend(loc="lower right")


def _plot_fig7_8(rows: Sequence[Record], ax: Any) -> None:
    d = [r["shift"] for r in rows]
    ax.plot(d, [r["satisfaction_incomplete"] for r in rows], "o-", label="incomplete (ETA)")
    ax.plot(d, [r["satisfaction_complete"] for r in rows], "s-", label="complete information")
    ax.plot(d, [r["approximation"] for r in rows], "k^--", label="approximation 1 - |gap|/complete")
    ax.set(
        xlabel="shift d of buyers' range [0.5+d, 1+d] vs sellers' [0.5, 1]",
        ylabel="user satisfaction",
        ylim=(0.5, 1.02),
    )
    ax.set_title("Fig. 7/8: satisfaction, incomplete vs complete information")
    ax.legend()


def _plot_fig9(rows: Sequence[Record], ax: Any) -> None:
    cs, vs, zb = _grid([{**r, "b": float(r["bayesian"])} for r in rows], "b")
    _, _, zs = _grid([{**r, "s": float(r["single_price"])} for r in rows], "s")
    ax.contourf(cs, vs, zb, levels=[0.5, 1.5], colors=["tab:blue"], alpha=0.35)
    ax.contourf(cs, vs, zs, levels=[0.5, 1.5], colors=["tab:orange"], alpha=0.35)
    ax.plot(cs, cs + 0.125, "b-", label="Bayesian: $v \\geq c + 1/8$")
    ax.axhline(0.75, color="tab:orange", label="single price 0.75")
    ax.axvline(0.75, color="tab:orange")
    ax.set(xlabel="$c$", ylabel="$v$", xlim=(0.5, 1), ylim=(0.5, 1))
    ax.set_title("Fig. 9: Bayesian vs single-price trade regions")
    ax.legend(loc="lower right")


def _plot_fig10(rows: Sequence[Record], ax: Any) -> None:
    for types, style in (("U[0,1]", "-"), ("U[0.5,1]", "--")):
        sel = [r for r in rows if r["types"] == types]
        p = [r["price"] for r in sel]
        ax.plot(
            p, [r["gains_single_price"] for r in sel], "o" + style, label=f"single price {types}"
        )
        ax.plot(p, [r["gains_bayesian"] for r in sel], style, label=f"Bayesian {types}")
        ax.plot(p, [r["gains_first_best"] for r in sel], ":", label=f"first best {types}")
    ax.set(xlabel="posted price p", ylabel="expected gains from trade")
    ax.set_title("Fig. 10: benefit, Bayesian equilibrium vs single price")
    ax.legend(fontsize=7)


def _plot_fig13(rows: Sequence[Record], ax: Any) -> None:
    rhos = sorted({r["rho"] for r in rows})
    mean = [np.mean([r["total_volume"] for r in rows if r["rho"] == x]) for x in rhos]
    for s in sorted({r["seed"] for r in rows}):
        sel = [r for r in rows if r["seed"] == s]
        ax.plot([r["rho"] for r in sel], [r["total_volume"] for r in sel], color="0.8")
    ax.plot(rhos, mean, "o-", color="tab:blue", label="mean over markets")
    ax.set(xlabel="loss rate $\\rho$", ylabel="total traded volume (kWh)")
    ax.set_title("Fig. 13: volume vs loss rate (35 buyers x 20 sellers, scarce supply)")
    ax.legend()


def _plot_fig14(rows: Sequence[Record], ax: Any) -> None:
    T = [r["T"] for r in rows]
    sc = ax.scatter(
        T,
        [r["volume_p1"] for r in rows],
        c=[r["rho"] for r in rows],
        marker="o",
        label="P1 optimum",
    )
    ax.scatter(
        T,
        [r["volume_theorem2"] for r in rows],
        c=[r["rho"] for r in rows],
        marker="x",
        label="Theorem 2, projected",
    )
    ax.figure.colorbar(sc, ax=ax, label="seller's $\\rho_j$")
    ax.set(xlabel="transaction price $T_{ij}$", ylabel="volume $b_{ij}$ (kWh)")
    ax.set_title("Fig. 14: price vs volume per pair")
    ax.legend()


FIGURES: dict[str, Figure] = table(
    Figure("fig4", fig4_buyer_bid, (("fig4", _plot_fig4),)),
    Figure("fig5", fig5_seller_ask, (("fig5", _plot_fig5),)),
    Figure("fig6", fig6_trade_region, (("fig6", _plot_fig6),)),
    Figure("fig7_8", fig7_8_satisfaction, (("fig7_8", _plot_fig7_8),)),
    Figure("fig9", fig9_single_price_region, (("fig9", _plot_fig9),)),
    Figure("fig10", fig10_benefit, (("fig10", _plot_fig10),)),
    Figure("fig13", fig13_volume_vs_loss, (("fig13", _plot_fig13),)),
    Figure("fig14", fig14_price_vs_volume, (("fig14", _plot_fig14),)),
)


__all__ = ["FIGURES"]
