"""Hassija et al.'s Fig. 5-11 (DV2G) regenerated from the project's own runs, and the day's
trades recorded on the tangle (docs/dv2g.md#reproducing-the-paper).

The setting is the paper's §VI-A: 3 grids and 10 EVs over 24 hourly slots, every ESU with 3 kW
charge and discharge limits and efficiencies 0.6 / 0.4. The paper's profiles (its ref. [47]) are
not available: :func:`paper_scenario` generates them (pvlib clear sky, demandlib H25, seeded
variation; :mod:`evtrade.model.prosumers`), the same community as ``examples/dv2g.json``. The
paper's prices are "based on the actual prices of electricity in the USA" without numbers: the
grids' xi are 0.45-0.55 per kWh and the EVs' first prices 0.18-0.27.

The iteration figures (7, 8, 9, 11) follow one slot (:func:`trace_slot`). Algorithm 2 is a
bisection on the EVs' common price (:func:`evtrade.market.dv2g_game.stackelberg`): its round k is
played at the k-th midpoint of the bracket [lowest floor, max xi], and the state after round k is
a run stopped at ``max_iter2 = k``; iteration 0 is the paper's start varpi(1), the EVs' first
prices and the grids' answer (the first-bid state; the bisection's own round 0, at the lowest
floor, is not shown). Inside Algorithm 2 the grids' selection is Algorithm 1's closed-form fixed
point, so the replicator takes no step there; Fig. 8's replicator path is Algorithm 1 as printed,
eq. 32 from the uniform start at the first prices (the first-bid selection stopped at
``max_iter1 = k``). The traces use only the games' public entry points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.market.dv2g_game import (
    GameOptions,
    ev_welfare,
    first_bid,
    purchases,
    stackelberg,
)
from evtrade.market.mechanisms.dv2g import Dv2gResult, dv2g_to_dict, run_dv2g
from evtrade.model.prosumers import Dv2gScenario, dv2g_from_dict
from evtrade.sim.figures import Figure, Record, table
from evtrade.sim.tangle import TangleResult, TipSelection, record_times

FloatArray = NDArray[np.float64]

#: The paper's community (§VI-A).
N_EVS = 10
N_GRIDS = 3
#: A (slot, EV, grid) purchase below this energy (kWh) is no trade: an EV the grids dropped keeps
#: a selection probability of about ``q_floor`` (1e-12) and so an expected sale of that order.
MIN_TRADE_KWH = 1e-6
#: Most points of an iteration trace (Algorithm 2's price updates, Algorithm 1's steps).
TRACE_POINTS = 30
#: EVs in Fig. 9 (the paper shows three) and Fig. 10 (five).
FIG9_EVS = 3
FIG10_EVS = 5


def paper_scenario(seed: int) -> Dv2gScenario:
    """The paper's setting: EV k (1-10) with PV of 2.5 + 0.5 k kW peak and 5.2 + 0.8 k kWh of
    daily load, first price 0.17 + 0.01 k; three grids with large loads, small PV and no ESU; every
    ESU 10 kWh with the paper's 3 kW limits and 0.6 / 0.4 efficiencies."""
    esu = {
        "capacity_kwh": 10,
        "level_kwh": 5,
        "min_level_kwh": 1,
        "charge_max_kw": 3,
        "discharge_max_kw": 3,
        "charge_efficiency": 0.6,
        "discharge_efficiency": 0.4,
    }
    evs = [
        {
            "id": f"EV{k}",
            "production_kw": {"peak_kw": 2.5 + 0.5 * k},
            "consumption_kw": {"daily_kwh": 5.2 + 0.8 * k},
            "price": round(0.17 + 0.01 * k, 2),
        }
        for k in range(1, N_EVS + 1)
    ]
    grids = [
        {
            "id": f"G{n}",
            "production_kw": {"peak_kw": 1.0 + n},
            "consumption_kw": {"daily_kwh": 40.0 + 20.0 * n},
            "xi": 0.40 + 0.05 * n,
            "kappa": 0.03 + 0.01 * n,
            "esu": {"capacity_kwh": 0},
        }
        for n in range(1, N_GRIDS + 1)
    ]
    return dv2g_from_dict(
        {
            "slots": {"count": 24, "hours": 1.0},
            "seed": seed,
            "esu": esu,
            "evs": evs,
            "grids": grids,
        }
    )


@dataclass(frozen=True, eq=False)
class Day:
    """A DV2G day: the scenario and the games' result."""

    scenario: Dv2gScenario
    result: Dv2gResult

    @property
    def floor(self) -> FloatArray:
        """omega (T, M)."""
        return np.broadcast_to(self.result.floor, self.result.first_price.shape).copy()


@cache
def paper_day(seed: int) -> Day:
    """The paper's day (:func:`paper_scenario`) through the games with their default options
    (cached: every figure reads the same run; ``--quick`` runs the same day, it is cheap)."""
    scenario = paper_scenario(seed)
    return Day(scenario, run_dv2g(scenario, GameOptions()))


def day_purchases(result: Dv2gResult) -> FloatArray:
    """Energy grid n buys from EV m in slot t at the equilibrium, (T, N, M)
    (:func:`evtrade.market.dv2g_game.purchases`: Q_m r_m p_nm*, eq. 21-23); summed over the
    grids it is what each EV sells."""
    eq = result.equilibrium
    return purchases(eq.price, eq.selection.q, result.supply, result.need, result.xi, result.kappa)


# --- Fig. 5, 6: what the EVs can export and what the grids import ------------------------------


def _day_rows(who: str, ids: Sequence[str], columns: Mapping[str, FloatArray]) -> list[Record]:
    """One row per participant and hour; each column a (K, T) array."""
    hours = next(iter(columns.values())).shape[1]
    return [
        {"hour": t, who: ident, **{name: float(a[k, t]) for name, a in columns.items()}}
        for k, ident in enumerate(ids)
        for t in range(hours)
    ]


def fig5_rows(seed: int, quick: bool) -> list[Record]:
    """Fig. 5 data: each EV's profiles, ESU and the power it can export (B_s / dt) per hour."""
    day = paper_day(seed)
    sc, r = day.scenario, day.result
    dt = sc.slots.hours
    columns = {
        "production_kw": sc.ev_production,
        "consumption_kw": sc.ev_consumption,
        "charge_kw": r.ev_storage.charge_kw,
        "discharge_kw": r.ev_storage.discharge_kw,
        "esu_level_kwh": r.ev_storage.level_kwh,
        "pcr": r.ev_balance.zeta,
        "export_kw": r.supply.T / dt,
        "sold_kw": r.equilibrium.sold.T / dt,
    }
    return _day_rows("ev", r.ev_ids, columns)


def fig6_rows(seed: int, quick: bool) -> list[Record]:
    """Fig. 6 data: each grid's profiles, its need G_n and the power it imports from the EVs."""
    day = paper_day(seed)
    sc, r = day.scenario, day.result
    dt = sc.slots.hours
    columns = {
        "production_kw": sc.grid_production,
        "consumption_kw": sc.grid_consumption,
        "pcr": r.grid_balance.zeta,
        "need_kw": r.need.T / dt,
        "import_kw": day_purchases(r).sum(axis=2).T / dt,
    }
    return _day_rows("grid", r.grid_ids, columns)


# --- Fig. 7, 9, 11: one slot over Algorithm 2's iterations --------------------------------------


def trace_slot(result: Dv2gResult) -> int:
    """The slot the iteration figures follow: of the slots with sellers and buyers whose price
    moves (Algorithm 2 converged after at least one update: supply short of the grids' demand at
    the floor), the one with the most sellers (ties: the most updates), as the paper's figures
    follow several EVs; else the converged playing slot, else any playing one, by the same key."""
    eq = result.equilibrium
    playing = (result.supply > 0).any(axis=1) & (result.need.sum(axis=1) > 0)
    if not playing.any():
        return 0
    sellers = (result.supply > 0).sum(axis=1)
    pool = playing
    for narrower in (playing & eq.converged, playing & eq.converged & (eq.iterations > 0)):
        pool = narrower if narrower.any() else pool
    keys = [
        (int(sellers[t]), int(eq.iterations[t])) if pool[t] else (-1, -1) for t in range(len(pool))
    ]
    return int(max(range(len(keys)), key=lambda t: keys[t]))


def _points(last: int) -> list[int]:
    """0 .. last, at most :data:`TRACE_POINTS` of them (denser at the start)."""
    if last + 1 <= TRACE_POINTS:
        return list(range(last + 1))
    grid = np.geomspace(1, last, TRACE_POINTS - 1)
    return sorted({0, *(round(float(x)) for x in grid), last})


def _slot_inputs(day: Day, slot: int) -> tuple[FloatArray, ...]:
    """The games' inputs of one slot as (1, .) arrays: first prices, supply, need, xi, floor."""
    r, s = day.result, slice(slot, slot + 1)
    return r.first_price[s], r.supply[s], r.need[s], r.xi[s], day.floor[s]


@cache
def stackelberg_trace(seed: int) -> list[Record]:
    """Per round k of Algorithm 2 in :func:`trace_slot`'s slot (k = 0: the EVs' first prices
    and the grids' answer, the first-bid state; k >= 1: the k-th bracket midpoint of the
    bisection, a run stopped at ``max_iter2 = k``), per seller: price,
    selection Q, supply, demand, R = supply / demand (eq. 19), the grids' utility u_m and
    average u_bar, the EV's net utility (varpi - omega) x sold, the loop's residual (eq. 40)."""
    day = paper_day(seed)
    slot = trace_slot(day.result)
    price0, supply, need, xi, floor = _slot_inputs(day, slot)
    last = int(day.result.equilibrium.iterations[slot])
    rows: list[Record] = []
    for k in _points(last):
        if k == 0:  # the state before any price update: the selection at the first prices
            price, sel, demand = first_bid(
                price0, supply, need, xi, day.result.kappa, floor, day.result.options
            )
            residual: float | None = None
        else:
            eq = stackelberg(
                price0,
                supply,
                need,
                xi,
                day.result.kappa,
                floor,
                replace(day.result.options, max_iter2=k),
            )
            price, sel, demand = eq.price, eq.selection, eq.demand
            residual = float(eq.residuals[-1, 0])
        sold = np.minimum(demand, supply)
        for m, ev in enumerate(day.result.ev_ids):
            if supply[0, m] <= 0:
                continue
            d = float(demand[0, m])
            rows.append(
                {
                    "slot": slot,
                    "iteration": k,
                    "ev": ev,
                    "price": float(price[0, m]),
                    "floor": float(floor[0, m]),
                    "probability": float(sel.q[0, m]),
                    "supply_kwh": float(supply[0, m]),
                    "demand_kwh": d,
                    "supply_demand_ratio": float(supply[0, m]) / d if d > 0 else None,
                    "sold_kwh": float(sold[0, m]),
                    "utility": float(sel.u[0, m]),
                    "average_utility": float(sel.u_bar[0]),
                    "ev_net_utility": float(ev_welfare(price, floor, sold)[0, m]),
                    "residual": residual,
                }
            )
    return rows


def fig7_9_11_rows(seed: int, quick: bool) -> list[Record]:
    return stackelberg_trace(seed)


# --- Fig. 8: selection probabilities over Algorithm 1's and Algorithm 2's iterations ------------


def fig8_rows(seed: int, quick: bool) -> list[Record]:
    """Q_m per EV: along Algorithm 1's replicator steps (eq. 32) at the first prices (loop
    ``egt``), and along Algorithm 2's price updates (loop ``stackelberg``)."""
    day = paper_day(seed)
    slot = trace_slot(day.result)
    price0, supply, need, xi, floor = _slot_inputs(day, slot)
    active = supply[0] > 0
    steps = int(
        first_bid(price0, supply, need, xi, day.result.kappa, floor, day.result.options)[
            1
        ].iterations[0]
    )
    rows: list[Record] = []
    for k in _points(steps):
        if k == 0:  # Algorithm 1 starts uniform over the slot's sellers
            q, price = np.where(active, 1.0 / max(int(active.sum()), 1), 0.0), price0[0]
        else:
            opts = replace(day.result.options, max_iter1=k)
            price_k, sel, _ = first_bid(price0, supply, need, xi, day.result.kappa, floor, opts)
            q, price = sel.q[0], price_k[0]
        for m, ev in enumerate(day.result.ev_ids):
            if active[m]:
                rows.append(
                    {
                        "loop": "egt",
                        "slot": slot,
                        "iteration": k,
                        "ev": ev,
                        "probability": float(q[m]),
                        "price": float(price[m]),
                    }
                )
    for r in stackelberg_trace(seed):
        rows.append(
            {
                "loop": "stackelberg",
                "slot": r["slot"],
                "iteration": r["iteration"],
                "ev": r["ev"],
                "probability": r["probability"],
                "price": r["price"],
            }
        )
    return rows


# --- Fig. 10: the first-bid auction against the Stackelberg equilibrium -------------------------


def fig10_price_rows(seed: int, quick: bool) -> list[Record]:
    """Per EV over the slots it sells in: mean price, mean Q, energy sold and revenue, first-bid
    auction against the Stackelberg equilibrium."""
    r = paper_day(seed).result
    eq = r.equilibrium
    base_sold = np.minimum(r.baseline_demand, r.supply)
    rows: list[Record] = []
    for m, ev in enumerate(r.ev_ids):
        sells = r.supply[:, m] > 0
        if not sells.any():
            continue
        rows.append(
            {
                "ev": ev,
                "slots": int(sells.sum()),
                "floor": float(r.floor[m]),
                "first_bid_price": float(r.baseline_price[sells, m].mean()),
                "stackelberg_price": float(eq.price[sells, m].mean()),
                "first_bid_probability": float(r.baseline_q[sells, m].mean()),
                "stackelberg_probability": float(eq.selection.q[sells, m].mean()),
                "first_bid_sold_kwh": float(base_sold[:, m].sum()),
                "stackelberg_sold_kwh": float(eq.sold[:, m].sum()),
                "first_bid_revenue": float(r.baseline_price[:, m] @ base_sold[:, m]),
                "stackelberg_revenue": float(eq.price[:, m] @ eq.sold[:, m]),
            }
        )
    return rows


def fig10_welfare_rows(seed: int, quick: bool) -> list[Record]:
    """Per slot: the grids' welfare (u_bar, eq. 18), the EVs' revenue and the energy sold, first
    bid against Stackelberg, whether Algorithm 2 converged, and the Nash check's verdict on the
    clearing prices (``nash``, the ``deviating`` and ``pivotal`` EVs, space separated, as in
    ``evtrade dv2g --format json``; empty where the check did not run)."""
    r = paper_day(seed).result
    eq = r.equilibrium
    base_sold = np.minimum(r.baseline_demand, r.supply)
    verdict = dv2g_to_dict(r)["slots"]
    rows: list[Record] = []
    for t in range(r.supply.shape[0]):
        if not (r.supply[t] > 0).any():
            continue
        rows.append(
            {
                "hour": t,
                "first_bid_grid_welfare": float(r.baseline_welfare[t]),
                "stackelberg_grid_welfare": float(eq.grid_welfare[t]),
                "first_bid_ev_revenue": float(r.baseline_price[t] @ base_sold[t]),
                "stackelberg_ev_revenue": float(eq.price[t] @ eq.sold[t]),
                "first_bid_sold_kwh": float(base_sold[t].sum()),
                "stackelberg_sold_kwh": float(eq.sold[t].sum()),
                "converged": bool(eq.converged[t]),
                "nash": verdict[t]["nash"],
                "deviating": " ".join(verdict[t]["deviating"] or ()),
                "pivotal": " ".join(verdict[t]["pivotal"] or ()),
            }
        )
    return rows


# --- Convergence of both loops over the day -----------------------------------------------------


def convergence_rows(seed: int, quick: bool) -> list[Record]:
    """Per slot with sellers and per iteration of Algorithm 2: its residual (eq. 40, relative
    excess demand), with the slot's iterations, Algorithm 1's steps in all and both flags."""
    r = paper_day(seed).result
    eq = r.equilibrium
    rows: list[Record] = []
    for t in range(r.supply.shape[0]):
        if not (r.supply[t] > 0).any():
            continue
        for y in range(int(eq.iterations[t]) + 1):
            rows.append(
                {
                    "hour": t,
                    "iteration": y,
                    "residual": float(eq.residuals[y, t]),
                    "iterations": int(eq.iterations[t]),
                    "converged": bool(eq.converged[t]),
                    "egt_iterations": int(eq.egt_iterations[t]),
                    "egt_converged": bool(eq.egt_converged[t]),
                }
            )
    return rows


# --- The day on the tangle -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DayOnTangle:
    """A DV2G day's trades recorded on the tangle: one transaction per (slot, EV, grid) purchase
    of at least :data:`MIN_TRADE_KWH` at ``times`` (seconds from midnight, sorted) with its slot,
    EV, grid and energy; the counts, the confirmation latency and first approval (means, s), the
    throughput (trades per second over the trading hours) and the tangle's run."""

    slot: NDArray[np.int64]
    ev: NDArray[np.int64]
    grid: NDArray[np.int64]
    kwh: FloatArray
    times: FloatArray
    trades: int
    confirmed: int
    confirmation_latency_mean: float
    first_approval_mean: float
    throughput_per_s: float
    tangle: TangleResult | None


def record_day(
    scenario: Dv2gScenario,
    result: Dv2gResult,
    rng: np.random.Generator,
    *,
    delay: float = 1.0,
    tip_selection: TipSelection = "weighted",
    alpha: float = 0.1,
    checkpoint: float = 1.0,
) -> DayOnTangle:
    """Record the day's actual trades (:func:`day_purchases` of at least :data:`MIN_TRADE_KWH`) on
    the tangle, each at a uniform time within its slot (``rng``), with
    :func:`evtrade.sim.tangle.record_times` (time unit: the second; ``delay`` h = 1 s of
    propagation and proof of work; a ``checkpoint`` of 1 s makes every arrival a checkpoint in
    a day this sparse)."""
    x = day_purchases(result)
    t_idx, n_idx, m_idx = np.nonzero(x >= MIN_TRADE_KWH)
    seconds = scenario.slots.hours * 3600.0
    times = (t_idx + rng.random(t_idx.size)) * seconds
    order = np.argsort(times, kind="stable")
    t_idx, n_idx, m_idx, times = t_idx[order], n_idx[order], m_idx[order], times[order]
    kwh = x[t_idx, n_idx, m_idx]
    if times.size == 0:
        nan = float("nan")
        return DayOnTangle(t_idx, m_idx, n_idx, kwh, times, 0, 0, nan, nan, 0.0, None)
    run = record_times(
        times, rng, delay=delay, tip_selection=tip_selection, alpha=alpha, checkpoint=checkpoint
    )
    done = ~np.isnan(run.ledger.confirmed[1:])  # row 0 is the genesis
    span = float(times[-1] - times[0])
    return DayOnTangle(
        slot=t_idx,
        ev=m_idx,
        grid=n_idx,
        kwh=kwh,
        times=times,
        trades=int(times.size),
        confirmed=int(done.sum()),
        confirmation_latency_mean=run.confirmation_latency_mean,
        first_approval_mean=run.first_approval_mean,
        throughput_per_s=times.size / span if span > 0 else float("nan"),
        tangle=run,
    )


@cache
def day_on_tangle(seed: int) -> DayOnTangle:
    day = paper_day(seed)
    return record_day(day.scenario, day.result, np.random.default_rng([seed, 11]))


def tangle_day_rows(seed: int, quick: bool) -> list[Record]:
    """One row per recorded trade: slot, EV, grid, energy, issue time, first approval and
    confirmation latency on the tangle (s; empty: none before the day's last trade)."""
    rec = day_on_tangle(seed)
    r = paper_day(seed).result
    if rec.tangle is None:
        return [
            {
                "hour": None,
                "ev": None,
                "grid": None,
                "kwh": 0.0,
                "time_s": None,
                "first_approval_s": None,
                "confirmation_latency_s": None,
            }
        ]
    led = rec.tangle.ledger
    rows: list[Record] = []
    for i in range(rec.trades):
        first = led.first_approval[i + 1] - led.arrival[i + 1]
        latency = led.confirmed[i + 1] - led.arrival[i + 1]
        rows.append(
            {
                "hour": int(rec.slot[i]),
                "ev": r.ev_ids[rec.ev[i]],
                "grid": r.grid_ids[rec.grid[i]],
                "kwh": float(rec.kwh[i]),
                "time_s": float(rec.times[i]),
                "first_approval_s": None if np.isnan(first) else float(first),
                "confirmation_latency_s": None if np.isnan(latency) else float(latency),
            }
        )
    return rows


# --- Plots (they read only the records) ----------------------------------------------------------


def _series(rows: Sequence[Record], who: str, key: str, x: str = "hour") -> dict[str, Any]:
    out: dict[str, tuple[list[Any], list[Any]]] = {}
    for r in rows:
        xs, ys = out.setdefault(r[who], ([], []))
        xs.append(r[x])
        ys.append(np.nan if r[key] is None else r[key])
    return out


def _plot_fig5(rows: Sequence[Record], axes: Any) -> None:
    hours = sorted({r["hour"] for r in rows})
    bottom = np.zeros(len(hours))
    for ev, (_, ys) in _series(rows, "ev", "export_kw").items():
        axes[0].bar(hours, ys, bottom=bottom, label=ev)
        bottom += np.asarray(ys)
    axes[0].set_ylabel("power EVs can export (kW)")
    axes[0].legend(fontsize=6, ncol=2)
    for ev, (xs, ys) in _series(rows, "ev", "production_kw").items():
        axes[1].plot(xs, ys, "-", lw=1, label=f"{ev} PV")
    for xs, ys in _series(rows, "ev", "consumption_kw").values():
        axes[1].plot(xs, ys, ":", lw=1)
    axes[1].set_ylabel("PV production (solid), load (dotted), kW")
    for ev, (xs, ys) in _series(rows, "ev", "esu_level_kwh").items():
        axes[2].plot(xs, ys, "-", lw=1, label=ev)
    axes[2].set_ylabel("ESU level (kWh)")
    for ax in axes:
        ax.set_xlabel("hour")
        ax.grid(alpha=0.3)


def _plot_fig6(rows: Sequence[Record], axes: Any) -> None:
    for grid, (xs, ys) in _series(rows, "grid", "import_kw").items():
        axes[0].plot(xs, ys, "o-", label=grid)
    axes[0].set_ylabel("power imported from EVs (kW)")
    for grid, (xs, ys) in _series(rows, "grid", "need_kw").items():
        axes[1].plot(xs, ys, "s--", label=f"{grid} need")
    axes[1].set_ylabel("need G_n (kW)")
    for ax in axes:
        ax.set_xlabel("hour")
        ax.grid(alpha=0.3)
        ax.legend()


def _by_iteration(rows: Sequence[Record], key: str) -> tuple[list[int], list[float]]:
    its = sorted({r["iteration"] for r in rows})
    vals = [float(np.mean([r[key] for r in rows if r["iteration"] == k])) for k in its]
    return its, vals


def _plot_fig7(rows: Sequence[Record], axes: Any) -> None:
    its, net = _by_iteration(rows, "ev_net_utility")
    axes[0].plot(its, net, "o-")
    axes[0].set_ylabel("average net utility of the EVs")
    its, price = _by_iteration(rows, "price")
    axes[1].plot(its, price, "o-", label="average EV price")
    axes[1].set_ylabel("price per kWh")
    its, ubar = _by_iteration(rows, "average_utility")
    ax2 = axes[1].twinx()
    ax2.plot(its, ubar, "s--", color="tab:red", label="grids' welfare u_bar")
    ax2.set_ylabel("grids' welfare u_bar")
    for ax in axes:
        ax.set_xlabel(f"Algorithm 2 round: bisection midpoint (hour {rows[0]['slot']})")
        ax.grid(alpha=0.3)


def _plot_fig8(rows: Sequence[Record], axes: Any) -> None:
    for ax, loop, label in (
        (axes[0], "egt", "replicator step, eq. 32 from uniform (Algorithm 1, first prices)"),
        (axes[1], "stackelberg", "Algorithm 2 round: bisection midpoint (0: first prices)"),
    ):
        sub = [r for r in rows if r["loop"] == loop]
        for ev, (xs, ys) in _series(sub, "ev", "probability", "iteration").items():
            ax.plot(xs, ys, ".-", label=ev)
        ax.set_xlabel(label)
        ax.set_ylabel("selection probability Q")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    if any(r["iteration"] > 0 for r in rows if r["loop"] == "egt"):
        axes[0].set_xscale("symlog")


def fig9_evs(rows: Sequence[Record]) -> list[str]:
    """The EVs Fig. 9 follows: the :data:`FIG9_EVS` largest suppliers of the traced slot."""
    supply = {r["ev"]: r["supply_kwh"] for r in rows}
    return sorted(supply, key=lambda ev: -supply[ev])[:FIG9_EVS]


def _plot_fig9(rows: Sequence[Record], panels: Any) -> None:
    axes = panels[0]
    panels[1].set_visible(False)
    keep = set(fig9_evs(rows))
    for ev, (xs, ys) in _series(
        [r for r in rows if r["ev"] in keep], "ev", "supply_demand_ratio", "iteration"
    ).items():
        axes.plot(xs, ys, "o-", label=ev)
    axes.axhline(1.0, color="grey", lw=0.8)
    axes.set_yscale("log")  # an EV the grids dropped starts at R of 1e7 and more
    axes.set_xlabel(f"Algorithm 2 round: bisection midpoint (hour {rows[0]['slot']})")
    axes.set_ylabel("supply / demand R_m (eq. 19, log scale)")
    axes.grid(alpha=0.3)
    axes.legend()


def _plot_fig11(rows: Sequence[Record], axes: Any) -> None:
    sc = axes[0].scatter(
        [r["iteration"] for r in rows],
        [r["probability"] for r in rows],
        c=[r["price"] for r in rows],
        cmap="viridis",
    )
    axes[0].set_xlabel("Algorithm 2 round (0: first prices)")
    axes[0].set_ylabel("selection probability Q")
    axes[0].figure.colorbar(sc, ax=axes[0], label="price")
    sc = axes[1].scatter(
        [r["price"] for r in rows],
        [r["probability"] for r in rows],
        c=[r["iteration"] for r in rows],
        cmap="plasma",
    )
    axes[1].set_xlabel("price per kWh")
    axes[1].set_ylabel("selection probability Q")
    axes[1].figure.colorbar(sc, ax=axes[1], label="iteration")
    for ax in axes:
        ax.grid(alpha=0.3)


def _plot_fig10_prices(rows: Sequence[Record], axes: Any) -> None:
    shown = list(rows)[:FIG10_EVS]
    x = np.arange(len(shown))
    for ax, key, label in (
        (axes[0], "price", "mean price per kWh"),
        (axes[1], "probability", "mean selection probability"),
    ):
        ax.bar(x - 0.2, [r[f"first_bid_{key}"] for r in shown], 0.4, label="first-bid auction")
        ax.bar(x + 0.2, [r[f"stackelberg_{key}"] for r in shown], 0.4, label="Stackelberg")
        ax.set_xticks(x, [r["ev"] for r in shown])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
        ax.legend()


def _plot_fig10_welfare(rows: Sequence[Record], axes: Any) -> None:
    hours = [r["hour"] for r in rows]
    for ax, key, label in (
        (axes[0], "grid_welfare", "grids' welfare"),
        (axes[1], "ev_revenue", "EVs' revenue"),
    ):
        ax.plot(hours, [r[f"first_bid_{key}"] for r in rows], "s--", label="first-bid auction")
        ax.plot(hours, [r[f"stackelberg_{key}"] for r in rows], "o-", label="Stackelberg")
        ax.set_xlabel("hour")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()


def _plot_convergence(rows: Sequence[Record], axes: Any) -> None:
    for hour, (xs, ys) in _series(rows, "hour", "residual", "iteration").items():
        axes[0].plot(xs, np.maximum(ys, 1e-12), "o-", ms=3, lw=1, label=f"hour {hour}")
    axes[0].set_yscale("log")  # a slot settled at once shows one point (its residual, or 1e-12)
    axes[0].set_xlabel("Algorithm 2 round (bisection)")
    axes[0].set_ylabel("residual (eq. 40, relative)")
    axes[0].legend(fontsize=6, ncol=2)
    last = {r["hour"]: r for r in rows}
    hours = np.array(sorted(last), dtype=float)
    colours = ["tab:blue" if last[h]["converged"] else "tab:red" for h in hours]
    axes[1].bar(
        hours - 0.2,
        [last[h]["iterations"] for h in hours],
        0.4,
        color=colours,
        label="Algorithm 2 (red: not converged)",
    )
    axes[1].bar(
        hours + 0.2,
        [last[h]["egt_iterations"] for h in hours],
        0.4,
        color="tab:grey",
        label="Algorithm 1, all runs",
    )
    axes[1].set_xlabel("hour")
    axes[1].set_ylabel("iterations")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)


def _plot_tangle_day(rows: Sequence[Record], axes: Any) -> None:
    trades = [r for r in rows if r["time_s"] is not None]
    hours = sorted({r["hour"] for r in trades})
    axes[0].bar(hours, [sum(1 for r in trades if r["hour"] == h) for h in hours])
    axes[0].set_xlabel("hour")
    axes[0].set_ylabel("trades recorded")
    done = [r for r in trades if r["confirmation_latency_s"] is not None]
    axes[1].plot(
        [r["time_s"] / 3600 for r in done], [r["confirmation_latency_s"] for r in done], "."
    )
    axes[1].set_xlabel("issued at (hour)")
    axes[1].set_ylabel("confirmation latency (s)")
    for ax in axes:
        ax.grid(alpha=0.3)


WIDE = (11.0, 4.2)

FIGURES: dict[str, Figure] = table(
    Figure("fig5", fig5_rows, (("fig5_ev_export", _plot_fig5),), panels=3, size=(15, 4.2)),
    Figure("fig6", fig6_rows, (("fig6_grid_import", _plot_fig6),), panels=2, size=WIDE),
    Figure(
        "fig7_9_11",
        fig7_9_11_rows,
        (
            ("fig7_utility", _plot_fig7),
            ("fig9_supply_demand", _plot_fig9),
            ("fig11_price_probability", _plot_fig11),
        ),
        panels=2,
        size=WIDE,
    ),
    Figure("fig8", fig8_rows, (("fig8_probability", _plot_fig8),), panels=2, size=WIDE),
    Figure(
        "fig10_prices",
        fig10_price_rows,
        (("fig10_prices", _plot_fig10_prices),),
        panels=2,
        size=WIDE,
    ),
    Figure(
        "fig10_welfare",
        fig10_welfare_rows,
        (("fig10_welfare", _plot_fig10_welfare),),
        panels=2,
        size=WIDE,
    ),
    Figure(
        "convergence", convergence_rows, (("convergence", _plot_convergence),), panels=2, size=WIDE
    ),
    Figure("tangle_day", tangle_day_rows, (("tangle_day", _plot_tangle_day),), panels=2, size=WIDE),
)


# --- The paper's claims, checked on the records ---------------------------------------------------


def _total(rows: Sequence[Record], key: str) -> float:
    return float(sum(r[key] for r in rows))


def _fig8_claims(rows: Sequence[Record]) -> dict[str, Any]:
    """Algorithm 1 at the first prices: the cheapest EV's Q rises, the dearest one's falls, and Q
    ends negatively correlated with the price (Fig. 8, 11)."""
    egt = [r for r in rows if r["loop"] == "egt"]
    first, last = min(r["iteration"] for r in egt), max(r["iteration"] for r in egt)
    start = {r["ev"]: r for r in egt if r["iteration"] == first}
    end = {r["ev"]: r for r in egt if r["iteration"] == last}
    cheap = min(end, key=lambda ev: end[ev]["price"])
    dear = max(end, key=lambda ev: end[ev]["price"])
    prices = [end[ev]["price"] for ev in end]
    qs = [end[ev]["probability"] for ev in end]
    corr = float(np.corrcoef(prices, qs)[0, 1]) if len(set(prices)) > 1 else None
    return {
        "slot": egt[0]["slot"],
        "steps": last,
        "cheapest_ev": cheap,
        "cheapest_q": [start[cheap]["probability"], end[cheap]["probability"]],
        "dearest_ev": dear,
        "dearest_q": [start[dear]["probability"], end[dear]["probability"]],
        "price_probability_correlation": corr,
        "holds": end[cheap]["probability"] > start[cheap]["probability"]
        and end[dear]["probability"] < start[dear]["probability"]
        and corr is not None
        and corr < 0,
    }


def _fig9_claims(rows: Sequence[Record]) -> dict[str, Any]:
    """R_m = supply / demand of Fig. 9's EVs from the first to the last price update."""
    last = max(r["iteration"] for r in rows)
    ratio = {
        ev: [
            r["supply_demand_ratio"] for r in rows if r["ev"] == ev and r["iteration"] in (0, last)
        ]
        for ev in fig9_evs(rows)
    }
    rises = all(a is not None and b is not None and b > a for a, b in ratio.values())
    return {"ratio_first_last": ratio, "holds": rises}


def _fig7_claims(rows: Sequence[Record]) -> dict[str, Any]:
    """Algorithm 2's rounds in the traced slot: the mean price and the EVs' mean net utility at
    the first prices (iteration 0) and at the last round, the last round's residual (eq. 40)."""
    last = max(r["iteration"] for r in rows)

    def mean(key: str, k: int) -> float:
        return float(np.mean([r[key] for r in rows if r["iteration"] == k]))

    end = [r["price"] for r in rows if r["iteration"] == last]
    return {
        "slot": rows[0]["slot"],
        "sellers": len(end),
        "price_updates": last,
        "mean_price_first_last": [mean("price", 0), mean("price", last)],
        "common_price": end[0] if max(end) - min(end) <= 1e-12 * max(end) else None,
        "ev_net_utility_first_last": [mean("ev_net_utility", 0), mean("ev_net_utility", last)],
        "final_residual": next(r["residual"] for r in rows if r["iteration"] == last),
    }


def _nash_claims(rows: Sequence[Record]) -> dict[str, Any]:
    """The Nash check over the slots with sellers (``fig10_welfare`` rows): how many are a Nash
    equilibrium of the price game, the slots that are not with their deviating EVs, and whether
    the pivotal (Bertrand-Edgeworth) case occurs; ``checked`` false where the check did not run."""
    checked = [r for r in rows if r["nash"] is not None]
    return {
        "checked": len(checked) == len(rows),
        "slots_played": len(rows),
        "nash_slots": sum(bool(r["nash"]) for r in checked),
        "deviating": {str(r["hour"]): r["deviating"] for r in checked if not r["nash"]},
        "pivotal": {str(r["hour"]): r["pivotal"] for r in checked if r["pivotal"]},
        "pivotal_occurs": any(r["pivotal"] for r in checked),
    }


def claims(results: Mapping[str, Sequence[Record]]) -> dict[str, Any]:
    """What the runs say about the paper's claims (docs/dv2g.md#reproducing-the-paper), from the
    figures' records only."""
    welfare = results["fig10_welfare"]
    prices = results["fig10_prices"]
    conv = {r["hour"]: r for r in results["convergence"]}
    trace = results["fig7_9_11"]
    day = [r for r in results["tangle_day"] if r["time_s"] is not None]
    totals = {
        f"{kind}_{key}": _total(welfare, f"{kind}_{key}")
        for kind in ("first_bid", "stackelberg")
        for key in ("grid_welfare", "ev_revenue", "sold_kwh")
    }
    welfare_of = {
        k: totals[f"{k}_grid_welfare"] + totals[f"{k}_ev_revenue"]
        for k in ("first_bid", "stackelberg")
    }
    shown = list(prices)[:FIG10_EVS]
    latencies = [
        r["confirmation_latency_s"] for r in day if r["confirmation_latency_s"] is not None
    ]
    firsts = [r["first_approval_s"] for r in day if r["first_approval_s"] is not None]
    span = day[-1]["time_s"] - day[0]["time_s"] if len(day) > 1 else 0.0
    return {
        "fig10_stackelberg_vs_first_bid": {
            **totals,
            "first_bid_welfare": welfare_of["first_bid"],
            "stackelberg_welfare": welfare_of["stackelberg"],
            "grid_welfare_higher_holds": totals["stackelberg_grid_welfare"]
            > totals["first_bid_grid_welfare"],
            "ev_revenue_higher_holds": totals["stackelberg_ev_revenue"]
            > totals["first_bid_ev_revenue"],
            "welfare_higher_holds": welfare_of["stackelberg"] > welfare_of["first_bid"],
            "prices_lower_holds": all(
                r["stackelberg_price"] <= r["first_bid_price"] for r in shown
            ),
            "probability_higher_holds": all(
                r["stackelberg_probability"] >= r["first_bid_probability"] for r in shown
            ),
        },
        "fig8_selection": _fig8_claims(results["fig8"]),
        "fig9_supply_demand_rises": _fig9_claims(trace),
        "fig7_prices_settle": _fig7_claims(trace),
        "nash": _nash_claims(welfare),
        "convergence": {
            "slots_played": len(conv),
            "stackelberg_converged": sum(r["converged"] for r in conv.values()),
            "egt_converged": sum(r["egt_converged"] for r in conv.values()),
            "iterations": {str(h): r["iterations"] for h, r in conv.items()},
            "egt_iterations": {str(h): r["egt_iterations"] for h, r in conv.items()},
            "holds": all(r["converged"] and r["egt_converged"] for r in conv.values()),
        },
        "day_on_tangle": {
            "trades": len(day),
            "confirmed": len(latencies),
            "confirmation_latency_mean_s": float(np.mean(latencies)) if latencies else None,
            "first_approval_mean_s": float(np.mean(firsts)) if firsts else None,
            "throughput_per_s": len(day) / span if span > 0 else None,
        },
    }


__all__ = [
    "FIGURES",
    "DayOnTangle",
    "claims",
    "day_purchases",
    "paper_day",
    "paper_scenario",
    "record_day",
]
