"""The Chalmers thesis's Fig. 7.2-7.7 (DSM: PV, then V2G, then the grid's price game) regenerated
from the project's own runs (spec §4, docs/dsm.md#reproducing-the-thesis).

The thesis's facts ship as data, read by :mod:`evtrade.model.dsm_thesis`: Table 7.1's vehicles,
Table 7.2's PV prosumers and Fig. 7.6's 24 hours (phi_t in EUR/MWh, l_t, Q_t, lambda_t as printed).
Fig. 7.6's table is recomputed from phi, l, Q and mu alone (eq. 6.3, 6.4); the other figures run
the project's scheduler (:func:`evtrade.market.mechanisms.dsm.schedule_day`) on a day of 24 hourly
slots with phi_t = Fig. 7.6's price in SEK/kWh and Q_t its forecast. What the thesis does not state
is chosen once, in the constants of :mod:`evtrade.model.dsm_thesis`:

* PV production: pvlib's clear sky (Ineichen) global horizontal irradiance at each PV's
  coordinates on :data:`DAY` (a spring day of 2018, as the prices), averaged over each hour
  and scaled to Table 7.2's daily totals; PV1 produces only from 9 AM to 6 PM (§7.3);
* every plug delivers :data:`POWER_KW` both ways (Fig. 7.3: EV2 discharges 10 kWh/h);
* EV1 charges to :data:`EV1_TARGET` (80 %: the only reading under which scenario 1 can be served
  by one PV, spec §4); EV2 keeps :data:`EV2_TARGET` (50 %, the V2G floor of §6.1.1);
* the feed-in tariff gamma is :data:`FEED_IN` (below every phi_t);
* scenario 1: EV1 plugs in at 10 AM for Table 7.1's 5 h; scenario 2: at 2 PM (when no PV is left
  to cover it), EV2 parked beside it for its 10 h; scenario 3: EV1 plugs in at 9 AM (Fig. 7.5) and
  stays "for a longer period" (§7.5), until midnight, among a fleet of :data:`FLEET` seeded
  vehicles whose total demand is about Fig. 7.6's forecast, all on the grid's price game.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from evtrade.market.dsm_game import ChargingGame, charge_on_arrival, cheapest_hours, total_cost
from evtrade.market.geo import great_circle_km
from evtrade.market.mechanisms.dsm import DsmResult, schedule_day
from evtrade.model.day import DayScenario, day_from_dict
from evtrade.model.dsm_thesis import (
    HOURS,
    POWER_KW,
    SCENARIO1_PLUG_IN,
    SCENARIO2_PLUG_IN,
    SCENARIO3_PLUG_IN,
    FloatArray,
    base_price_sek,
    fleet_day,
    thesis,
    thesis_day,
)
from evtrade.sim.figures import Figure, Record, table


def fig7_6_rows() -> list[Record]:
    """Fig. 7.6's table recomputed: lambda_t = phi_t + mu (l_t - Q_t) (eq. 6.3, 6.4) from the
    printed phi (EUR/MWh), l_t, Q_t and mu, beside the printed SEK/kWh and lambda columns."""
    f = thesis()["fig7_6"]
    phi = base_price_sek()
    load = np.asarray(f["load_kwh"], dtype=float)
    forecast = np.asarray(f["forecast_kwh"], dtype=float)
    lam = phi + f["mu"] * (load - forecast)
    return [
        {
            "hour": t + 1,
            "eur_mwh": f["eur_mwh"][t],
            "sek_kwh": float(phi[t]),
            "sek_kwh_thesis": f["sek_kwh"][t],
            "load_kwh": f["load_kwh"][t],
            "forecast_kwh": f["forecast_kwh"][t],
            "lambda": float(lam[t]),
            "lambda_thesis": f["lambda_sek_kwh"][t],
        }
        for t in range(HOURS)
    ]


@cache
def run(scenario: str, seed: int) -> tuple[DayScenario, DsmResult]:
    """One scenario ("1", "2", "3") scheduled by the project's DSM mechanism."""
    if scenario == "3":
        day = day_from_dict(fleet_day(seed))
    else:
        day = day_from_dict(thesis_day(SCENARIO1_PLUG_IN if scenario == "1" else SCENARIO2_PLUG_IN))
    return day, schedule_day(day)


def _plan(result: DsmResult, ident: str) -> Any:
    return next(p for p in result.plans if p.id == ident)


def _hours() -> range:
    return range(HOURS)


def _paired_bars(ax: Any, rows: Sequence[Record], *bars: tuple[str, str, str]) -> None:
    """Two bars per hour side by side: ``(key, label, color)`` each."""
    for k, (key, label, color) in enumerate(bars):
        x = [r["hour"] + 0.3 + 0.4 * k for r in rows]
        ax.bar(x, [r[key] for r in rows], width=0.4, color=color, label=label)


def _labels(ax: Any, ylabel: str, title: str, **legend: Any) -> None:
    ax.set_xlabel("time of day (h)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, **legend)


# --- Fig. 7.2: scenario 1, EV1 charged by the nearest PV that covers its demand -------------


def fig7_2(seed: int, quick: bool) -> list[Record]:
    day, r = run("1", seed)
    ev1 = _plan(r, "EV1")
    return [
        {
            "hour": t,
            **{f"{p.id.lower()}_kwh": float(p.production_kwh[t]) for p in day.pv},
            "ev1_kwh": float(ev1.energy_kwh[t]),
            "supplier": ev1.supplier,
        }
        for t in _hours()
    ]


def _plot_7_2(rows: Sequence[Record], ax: Any) -> None:
    hours = [r["hour"] + 0.5 for r in rows]
    for key in ("pv1_kwh", "pv2_kwh", "pv3_kwh"):
        ax.plot(hours, [r[key] for r in rows], marker=".", label=key[:3].upper() + " production")
    ax.bar(
        hours,
        [r["ev1_kwh"] for r in rows],
        width=0.8,
        alpha=0.5,
        color="tab:orange",
        label=f"EV1 charging (from {rows[0]['supplier']})",
    )
    _labels(ax, "kWh/h", "Fig. 7.2: EV1 charging from the nearest covering PV")


# --- Fig. 7.3: scenario 2, EV1 charged by EV2 (V2G) ----------------------------------------


def fig7_3(seed: int, quick: bool) -> list[Record]:
    day, r = run("2", seed)
    ev1, ev2 = day.vehicles[0], day.vehicles[1]
    drawn = _plan(r, "EV1").energy_kwh
    delivered = r.v2g_sold[1]
    e1 = ev1.energy_kwh + np.cumsum(drawn) * ev1.efficiency
    e2 = ev2.energy_kwh - np.cumsum(delivered) / ev2.efficiency
    return [
        {
            "hour": t,
            "ev2_delivered_kwh": float(delivered[t]),
            "ev1_drawn_kwh": float(drawn[t]),
            "ev1_soc": float(e1[t] / ev1.capacity_kwh),
            "ev2_soc": float(e2[t] / ev2.capacity_kwh),
            "supplier": _plan(r, "EV1").supplier,
        }
        for t in _hours()
    ]


def _plot_7_3(rows: Sequence[Record], axes: Any) -> None:
    hours = [r["hour"] + 0.5 for r in rows]
    a, b = axes
    _paired_bars(
        a,
        rows,
        ("ev2_delivered_kwh", "EV2 discharging (delivered)", "tab:blue"),
        ("ev1_drawn_kwh", "EV1 charging (drawn)", "tab:orange"),
    )
    _labels(a, "kWh/h", f"Fig. 7.3: EV1 charging from {rows[0]['supplier']} (V2G)")
    b.plot(hours, [r["ev1_soc"] for r in rows], label="EV1")
    b.plot(hours, [r["ev2_soc"] for r in rows], label="EV2")
    b.axhline(0.5, color="grey", linestyle="--", label="V2G floor 50 %")
    _labels(b, "state of charge (end of hour)", "states of charge")


# --- Fig. 7.4, 7.5: scenario 3, EV1 on the grid, cheapest hours under the price game --------


def _ev1_baselines(day: DayScenario) -> tuple[FloatArray, FloatArray]:
    """EV1 alone, on base prices: charge on arrival, and its cheapest hours (no feedback)."""
    ev1 = day.vehicles[0]
    upper = np.zeros((1, HOURS))
    upper[0, ev1.arrival : ev1.departure] = ev1.power_kw
    game = ChargingGame(
        base_price=day.grid.base_price,
        forecast=np.zeros(HOURS),
        mu=0.0,
        upper=upper,
        demand=np.array([ev1.need_kwh / ev1.efficiency]),
    )
    return charge_on_arrival(game)[0], cheapest_hours(game)[0]


def fig7_4(seed: int, quick: bool) -> list[Record]:
    day, r = run("3", seed)
    ev1 = _plan(r, "EV1").energy_kwh
    _, cheap = _ev1_baselines(day)
    return [
        {
            "hour": t,
            "base_price": float(r.base_price[t]),
            "price": float(r.price[t]),
            "ev1_equilibrium_kwh": float(ev1[t]),
            "ev1_cheapest_hours_kwh": float(cheap[t]),
        }
        for t in _hours()
    ]


def _plot_7_4(rows: Sequence[Record], ax: Any) -> None:
    hours = [r["hour"] + 0.5 for r in rows]
    _paired_bars(
        ax,
        rows,
        ("ev1_cheapest_hours_kwh", "EV1, cheapest base-price hours", "tab:gray"),
        ("ev1_equilibrium_kwh", "EV1, Nash equilibrium of the fleet", "tab:orange"),
    )
    _labels(
        ax, "kWh/h", "Fig. 7.4: EV1 charging from the grid at the cheapest hours", loc="upper left"
    )
    prices = ax.twinx()
    prices.plot(hours, [r["base_price"] for r in rows], color="tab:blue", label="phi_t")
    prices.plot(hours, [r["price"] for r in rows], color="tab:red", label="lambda_t")
    prices.set_ylabel("SEK/kWh")
    prices.legend(loc="upper right", fontsize=8)


def fig7_5(seed: int, quick: bool) -> list[Record]:
    day, r = run("3", seed)
    on_arrival, cheap = _ev1_baselines(day)
    dsm = _plan(r, "EV1").energy_kwh
    return [
        {
            "hour": t,
            "no_dsm_kwh": float(on_arrival[t]),
            "cheapest_hours_kwh": float(cheap[t]),
            "dsm_kwh": float(dsm[t]),
            "base_price": float(r.base_price[t]),
        }
        for t in _hours()
    ]


def _plot_7_5(rows: Sequence[Record], ax: Any) -> None:
    hours = [r["hour"] + 0.5 for r in rows]
    ax.plot(hours, [r["no_dsm_kwh"] for r in rows], marker="o", label="without DSM (on arrival)")
    ax.plot(hours, [r["dsm_kwh"] for r in rows], marker="o", label="with DSM (equilibrium)")
    _labels(
        ax, "EV1 load (kWh/h)", "Fig. 7.5: EV1's charging shifted from the peak to low-price hours"
    )


# --- Fig. 7.6: the dynamic-pricing table; Fig. 7.7: the fleet's loads and prices -----------


def fig7_6(seed: int, quick: bool) -> list[Record]:
    return fig7_6_rows()


def _fleet_game(day: DayScenario, r: DsmResult) -> ChargingGame:
    rows = list(r.grid_vehicles)
    upper = np.zeros((len(rows), HOURS))
    demand = np.zeros(len(rows))
    for k, i in enumerate(rows):
        v = day.vehicles[i]
        upper[k, v.arrival : v.departure] = v.power_kw * day.slots.hours
        demand[k] = r.plans[i].energy_kwh.sum()
    return ChargingGame(day.grid.base_price, day.grid.forecast, day.grid.mu, upper, demand)


def fig7_7(seed: int, quick: bool) -> list[Record]:
    day, r = run("3", seed)
    game = _fleet_game(day, r)
    no_dsm = charge_on_arrival(game).sum(axis=0)
    cheap = cheapest_hours(game).sum(axis=0)
    g = day.grid
    return [
        {
            "hour": t,
            "forecast": float(g.forecast[t]),
            "load_no_dsm": float(no_dsm[t]),
            "load_cheapest_hours": float(cheap[t]),
            "load_equilibrium": float(r.load[t]),
            "base_price": float(g.base_price[t]),
            "price_cheapest_hours": float(g.base_price[t] + g.mu * (cheap[t] - g.forecast[t])),
            "price_equilibrium": float(r.price[t]),
        }
        for t in _hours()
    ]


def _plot_7_7(rows: Sequence[Record], axes: Any) -> None:
    hours = [r["hour"] + 0.5 for r in rows]
    a, b = axes
    for key, label in (
        ("forecast", "forecast Q_t"),
        ("load_no_dsm", "no DSM (on arrival)"),
        ("load_cheapest_hours", "cheapest hours, no price feedback"),
        ("load_equilibrium", "Nash equilibrium (dynamic price)"),
    ):
        a.plot(hours, [r[key] for r in rows], label=label)
    _labels(a, "fleet load q_t (kWh/h)", "Fig. 7.7: the fleet's load")
    for key, label in (
        ("base_price", "phi_t"),
        ("price_cheapest_hours", "lambda_t, cheapest hours"),
        ("price_equilibrium", "lambda_t, equilibrium"),
    ):
        b.plot(hours, [r[key] for r in rows], label=label)
    _labels(b, "SEK/kWh", "dynamic price")


FIGURES: dict[str, Figure] = table(
    Figure("fig7_2", fig7_2, (("fig7_2", _plot_7_2),)),
    Figure("fig7_3", fig7_3, (("fig7_3", _plot_7_3),), panels=2, size=(11.0, 4.2)),
    Figure("fig7_4", fig7_4, (("fig7_4", _plot_7_4),)),
    Figure("fig7_5", fig7_5, (("fig7_5", _plot_7_5),)),
    Figure("fig7_6", fig7_6, ()),
    Figure("fig7_7", fig7_7, (("fig7_7", _plot_7_7),), panels=2, size=(11.0, 4.2)),
)


# --- the thesis's claims, checked ---------------------------------------------------------------


def _saving(base: FloatArray, before: FloatArray, after: FloatArray) -> float:
    return float(1.0 - (base @ after) / (base @ before))


def claims(seed: int) -> dict[str, Any]:
    """What the runs say about the thesis's claims (docs/dsm.md#reproducing-the-thesis)."""
    day1, r1 = run("1", seed)
    ev1 = day1.vehicles[0]
    plan1 = _plan(r1, "EV1")
    window = slice(ev1.arrival, ev1.departure)
    distance = great_circle_km(
        ev1.lat, ev1.lon, np.array([p.lat for p in day1.pv]), np.array([p.lon for p in day1.pv])
    )
    _, r2 = run("2", seed)
    plan2 = _plan(r2, "EV1")
    day3, r3 = run("3", seed)
    phi = day3.grid.base_price
    on_arrival, cheap = _ev1_baselines(day3)
    windows: dict[str, float] = {}
    for hours in (4, 5, HOURS - SCENARIO3_PLUG_IN):
        upper = np.zeros((1, HOURS))
        upper[0, SCENARIO3_PLUG_IN : SCENARIO3_PLUG_IN + hours] = POWER_KW
        g = ChargingGame(phi, np.zeros(HOURS), 0.0, upper, np.array([plan1.demand_kwh]))
        windows[f"{hours}h"] = _saving(phi, charge_on_arrival(g)[0], cheapest_hours(g)[0])
    game = _fleet_game(day3, r3)
    ev1_dsm = _plan(r3, "EV1")
    fleet_no_dsm = total_cost(game, charge_on_arrival(game))
    loads = fig7_7(seed, False)
    thesis_claims = thesis()["claims"]
    rows = fig7_6_rows()
    return {
        "fig7_6_max_abs_error": max(
            max(abs(r["lambda"] - r["lambda_thesis"]), abs(r["sek_kwh"] - r["sek_kwh_thesis"]))
            for r in rows
        ),
        "scenario1": {
            "thesis_supplier": thesis_claims["scenario1_pv"],
            "supplier": plan1.supplier,
            "holds": plan1.supplier == thesis_claims["scenario1_pv"],
            "ev1_demand_kwh": plan1.demand_kwh,
            "distance_km": {p.id: float(d) for p, d in zip(day1.pv, distance, strict=True)},
            "in_window_kwh": {
                p.id: float(np.minimum(p.production_kwh[window], ev1.power_kw).sum())
                for p in day1.pv
            },
        },
        "scenario2": {
            "thesis_supplier": thesis_claims["scenario2_v2g"],
            "supplier": plan2.supplier,
            "source": plan2.source,
            "holds": plan2.supplier == thesis_claims["scenario2_v2g"],
        },
        "saving": {
            "thesis": thesis_claims["saving"],
            "ev1_cheapest_hours_by_window": windows,
            "ev1_base_prices": _saving(phi, on_arrival, cheap),
            "ev1_bill_equilibrium": ev1_dsm.cost,
            "fleet_no_dsm_cost": fleet_no_dsm,
            "fleet_equilibrium_cost": r3.grid_cost,
            "fleet": 1.0 - r3.grid_cost / fleet_no_dsm,
        },
        "flattening": {
            "peak_cheapest_hours": max(r["load_cheapest_hours"] for r in loads),
            "peak_equilibrium": max(r["load_equilibrium"] for r in loads),
            "peak_no_dsm": max(r["load_no_dsm"] for r in loads),
        },
        "equilibrium": {
            "converged": r3.equilibrium.converged,
            "max_gain": r3.equilibrium.max_gain,
            "iterations": r3.equilibrium.iterations,
        },
    }


__all__ = ["FIGURES", "claims", "fig7_6_rows", "fleet_day", "thesis", "thesis_day"]
