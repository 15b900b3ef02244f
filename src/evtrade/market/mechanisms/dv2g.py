"""DV2G (Hassija et al.): EVs sell their PV surplus to grids over a day; grids select EVs by
evolutionary game, EVs price non-cooperatively, the two in a Stackelberg loop per slot.

spec §3, docs/dv2g.md. The day: each prosumer's storage runs on self-consumption
(:func:`~evtrade.market.dv2g_energy.dispatch_storage`, eq. 4-8), what is left makes EVs sellers
and grids buyers (eq. 12-14); then every slot's game (:mod:`evtrade.market.dv2g_game`, eq. 17-40)
and the first-bid auction baseline (Fig. 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.market.dv2g_energy import Balance, EsuArrays, Storage, balance, dispatch_storage
from evtrade.market.dv2g_game import (
    DEVIATION_POINTS,
    NASH_RTOL,
    OWN_STEPS,
    RIVAL_PRICES,
    RIVAL_STEPS,
    Deviations,
    Equilibrium,
    Followers,
    GameOptions,
    Selection,
    deviations,
    ev_welfare,
    first_bid,
    followers,
    purchases,
    share,
    stackelberg,
)
from evtrade.market.mechanisms.base import Mechanism
from evtrade.model.prosumers import Dv2gScenario

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Dv2gResult:
    """A DV2G day: storage and balance of EVs and grids ((K, T) arrays), the EVs' degradation
    costs omega (price floors), the equilibrium and the first-bid baseline ((T, M) / (T,), with
    its Algorithm 1 run), the grids' xi (T, N) and kappa (N,), the options of the games, and
    each EV's best unilateral price deviation at the equilibrium (None: ``nash_check`` off)."""

    ev_ids: tuple[str, ...]
    grid_ids: tuple[str, ...]
    ev_storage: Storage
    grid_storage: Storage
    ev_balance: Balance
    grid_balance: Balance
    floor: FloatArray
    cost_per_day: FloatArray
    first_price: FloatArray
    equilibrium: Equilibrium
    baseline_price: FloatArray
    baseline_demand: FloatArray
    baseline_selection: Selection
    xi: FloatArray
    kappa: FloatArray
    options: GameOptions
    deviations: Deviations | None = None

    @property
    def supply(self) -> FloatArray:
        """B_s,m dt per slot, (T, M)."""
        return self.ev_balance.sell_kwh.T

    @property
    def need(self) -> FloatArray:
        """G_n per slot, (T, N)."""
        return self.grid_balance.buy_kwh.T

    @property
    def baseline_q(self) -> FloatArray:
        """The grids' selection Q at the first bids, (T, M)."""
        return self.baseline_selection.q

    @property
    def baseline_welfare(self) -> FloatArray:
        """The grids' welfare u_bar at the first bids, (T,)."""
        return self.baseline_selection.u_bar


def initial_prices(scenario: Dv2gScenario, floor: FloatArray) -> FloatArray:
    """varpi(1) (T, M): each EV's ``price``, else midway between its floor and the highest xi."""
    top = scenario.grid_xi.max(axis=0, initial=0.0) if scenario.grids else np.zeros(1)
    out = np.empty((scenario.n_slots, len(scenario.evs)))
    for m, ev in enumerate(scenario.evs):
        out[:, m] = (
            ev.price if ev.price is not None else np.maximum(floor[m], 0.5 * (floor[m] + top))
        )
    return out


def run_dv2g(scenario: Dv2gScenario, params: GameOptions | None = None) -> Dv2gResult:
    """The day's storage, sellers and buyers, each slot's Stackelberg equilibrium and the
    first-bid baseline."""
    options = params or GameOptions()
    hours = scenario.slots.hours
    ev_esu = EsuArrays.of(tuple(ev.esu for ev in scenario.evs))
    grid_esu = EsuArrays.of(tuple(g.esu for g in scenario.grids))
    ev_storage = dispatch_storage(scenario.ev_production, scenario.ev_consumption, ev_esu, hours)
    grid_storage = dispatch_storage(
        scenario.grid_production, scenario.grid_consumption, grid_esu, hours
    )
    ev_bal = balance(scenario.ev_production, scenario.ev_consumption, ev_storage, hours)
    grid_bal = balance(scenario.grid_production, scenario.grid_consumption, grid_storage, hours)
    floor_m = np.array([ev.esu.degradation_cost for ev in scenario.evs], dtype=float)
    t_count = scenario.n_slots
    floor = np.broadcast_to(floor_m, (t_count, len(scenario.evs))).copy()
    price0 = initial_prices(scenario, floor_m)
    supply = ev_bal.sell_kwh.T.copy()
    need = grid_bal.buy_kwh.T.copy()
    xi = scenario.grid_xi.T.copy().reshape(t_count, len(scenario.grids))
    kappa = np.asarray(scenario.grid_kappa, dtype=float)
    eq = stackelberg(price0, supply, need, xi, kappa, floor, options)
    market = (supply, need, xi, kappa, floor)
    nash = deviations(eq, market, options) if options.nash_check else None
    base_price, base_sel, base_demand = first_bid(price0, supply, need, xi, kappa, floor, options)
    return Dv2gResult(
        ev_ids=tuple(ev.id for ev in scenario.evs),
        grid_ids=tuple(g.id for g in scenario.grids),
        ev_storage=ev_storage,
        grid_storage=grid_storage,
        ev_balance=ev_bal,
        grid_balance=grid_bal,
        floor=floor_m,
        cost_per_day=np.array([ev.esu.cost_per_day for ev in scenario.evs], dtype=float),
        first_price=price0,
        equilibrium=eq,
        baseline_price=base_price,
        baseline_demand=base_demand,
        baseline_selection=base_sel,
        xi=xi,
        kappa=kappa,
        options=options,
        deviations=nash,
    )


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values).ravel()]


def dv2g_to_dict(result: Dv2gResult) -> dict[str, Any]:
    """The result as plain data (``evtrade dv2g --format json``, docs/dv2g.md#output): per slot
    each EV's price, floor, selection probability, supply, demand, sale and the grids' utility
    from it, each grid's xi, kappa, need and purchases, welfare and both loops' convergence; the
    first-bid baseline; each EV's degradation cost and storage; the games' options. Enough to
    check the equilibrium from the JSON alone."""
    eq = result.equilibrium
    sel = eq.selection
    supply, need = result.supply, result.need
    f = followers(eq.price, result.xi, result.kappa, need)
    r = share(sel.q, f, supply)
    bought = purchases(eq.price, sel.q, supply, need, result.xi, result.kappa).sum(axis=2)
    floor = np.broadcast_to(result.floor, eq.price.shape)
    welfare = ev_welfare(eq.price, floor, eq.sold)
    slots = [_slot_dict(result, t, f, r, bought, welfare) for t in range(supply.shape[0])]
    o = result.options
    return {
        "slots": slots,
        "evs": [
            {
                "id": ident,
                "degradation_cost": float(result.floor[m]),
                "esu_cost_per_day": float(result.cost_per_day[m]),
                "esu_level_kwh": _floats(result.ev_storage.level_kwh[m]),
                "charge_kw": _floats(result.ev_storage.charge_kw[m]),
                "discharge_kw": _floats(result.ev_storage.discharge_kw[m]),
                "sold_kwh": float(eq.sold[:, m].sum()),
                "revenue": float(eq.price[:, m] @ eq.sold[:, m]),
            }
            for m, ident in enumerate(result.ev_ids)
        ],
        "options": {
            "step1": o.step1,
            "tol1": o.tol1,
            "max_iter1": o.max_iter1,
            "tol2": o.tol2,
            "max_iter2": o.max_iter2,
            "q_floor": o.q_floor,
            "nash_check": o.nash_check,
        },
        "converged": bool(eq.converged.all()),
        **_nash_dict(result.deviations, slots),
    }


def _nash_dict(dev: Deviations | None, slots: list[dict[str, Any]]) -> dict[str, Any]:
    """The day's verdict on the price game: ``nash`` (every slot's, None if not checked) and
    ``nash_check`` (whether it ran, why not, the deviation grid)."""
    if dev is None or dev.skipped:
        reason = "nash_check is off" if dev is None else dev.skipped
        return {"nash": None, "nash_check": {"checked": False, "reason": reason}}
    return {
        "nash": all(s["nash"] for s in slots),
        "nash_check": {
            "checked": True,
            "reason": "",
            "even_points": DEVIATION_POINTS,
            "own_steps": list(OWN_STEPS),
            "rival_prices": RIVAL_PRICES,
            "rival_steps": list(RIVAL_STEPS),
            "rtol": NASH_RTOL,
        },
    }


def _resolution_dict(eq: Equilibrium, t: int) -> dict[str, Any]:
    """``price_resolution``: the slot cleared to the price's float resolution (eq. 40 out of
    reach, docs/dv2g.md#algorithm-2-a-safeguarded-root-finder); then ``price_above``, the next
    float above ``price_level``, and ``excess_above_kwh``, the EVs' excess there (<= 0)."""
    if not eq.resolution[t]:
        return {"price_resolution": False}
    return {
        "price_resolution": True,
        "price_above": float(eq.level_above[t]),
        "excess_above_kwh": float(eq.excess_above[t]),
    }


def _deviation_dict(result: Dv2gResult, t: int) -> dict[str, Any]:
    """One slot's Nash check: ``nash``, the EVs that gain by a deviation (``deviating``), those of
    them pivotal, Algorithm 1's convergence at every deviation; None where it did not run."""
    dev = result.deviations
    if dev is None or dev.skipped:
        return dict.fromkeys(("nash", "deviating", "pivotal", "nash_egt_converged"))
    gains = (dev.gain[t] > dev.tolerance[t]) & (result.supply[t] > 0)
    return {
        "nash": bool(dev.nash[t]),
        "deviating": [i for i, g in zip(result.ev_ids, gains, strict=True) if g],
        "pivotal": [i for i, p in zip(result.ev_ids, dev.pivotal[t], strict=True) if p],
        "nash_egt_converged": bool(dev.egt_converged[t]),
    }


def _ev_deviation(dev: Deviations | None, t: int, m: int) -> dict[str, Any]:
    """EV m's best deviation in slot t; None where the check did not run."""
    if dev is None or dev.skipped:
        keys = ("best_deviation_price", "deviation_gain", "deviation_tolerance", "pivotal")
        return dict.fromkeys(keys)
    return {
        "best_deviation_price": float(dev.price[t, m]),
        "deviation_gain": float(dev.gain[t, m]),
        "deviation_tolerance": float(dev.tolerance[t, m]),
        "deviation_points": int(dev.points[t, m]),
        "pivotal": bool(dev.pivotal[t, m]),
    }


def _slot_dict(
    result: Dv2gResult,
    t: int,
    f: Followers,
    r: FloatArray,
    bought: FloatArray,
    welfare: FloatArray,
) -> dict[str, Any]:
    """One slot of :func:`dv2g_to_dict`."""
    eq = result.equilibrium
    sel = eq.selection
    supply, need = result.supply, result.need
    revenue = float(eq.price[t] @ eq.sold[t])
    base_sold = np.minimum(result.baseline_demand[t], supply[t])
    base = result.baseline_selection
    return {
        "slot": t,
        "evs": [
            {
                "id": ident,
                "price": float(eq.price[t, m]),
                "probability": float(sel.q[t, m]),
                "supply_kwh": float(supply[t, m]),
                "demand_kwh": float(eq.demand[t, m]),
                "sold_kwh": float(eq.sold[t, m]),
                "utility": float(sel.u[t, m]),
                "floor": float(result.floor[m]),
                "first_price": float(result.first_price[t, m]),
                "share": float(r[t, m]),
                "full_demand_kwh": float(f.total[t, m]),
                "full_welfare": float(f.full[t, m]),
                "revenue": float(eq.price[t, m] * eq.sold[t, m]),
                "welfare": float(welfare[t, m]),
                **_ev_deviation(result.deviations, t, m),
            }
            for m, ident in enumerate(result.ev_ids)
            if supply[t, m] > 0
        ],
        "grids": [
            {
                "id": ident,
                "need_kwh": float(need[t, n]),
                "xi": float(result.xi[t, n]),
                "kappa": float(result.kappa[n]),
                "bought_kwh": float(bought[t, n]),
            }
            for n, ident in enumerate(result.grid_ids)
            if need[t, n] > 0
        ],
        "supply_kwh": float(supply[t].sum()),
        "demand_kwh": float(eq.demand[t].sum()),
        "need_kwh": float(need[t].sum()),
        "sold_kwh": float(eq.sold[t].sum()),
        "price_level": float(eq.level[t]),
        "average_utility": float(sel.u_bar[t]),
        "grid_welfare": float(eq.grid_welfare[t]),
        "ev_revenue": revenue,
        "welfare": float(eq.grid_welfare[t]) + revenue,
        **_deviation_dict(result, t),
        "convergence": {
            "iterations": int(eq.iterations[t]),
            "converged": bool(eq.converged[t]),
            **_resolution_dict(eq, t),
            "residuals": _floats(eq.residuals[: int(eq.iterations[t]) + 1, t]),
            "final_residual": float(eq.residuals[int(eq.iterations[t]), t]),
            "egt_iterations": int(eq.egt_iterations[t]),
            "egt_converged": bool(eq.egt_converged[t]),
            "egt_residuals": _floats(sel.residuals[: int(sel.iterations[t]) + 1, t]),
            "egt_final_residual": float(sel.residuals[int(sel.iterations[t]), t]),
        },
        "first_bid": {
            "prices": _floats(result.baseline_price[t][supply[t] > 0]),
            "probabilities": _floats(result.baseline_q[t][supply[t] > 0]),
            "sold_kwh": float(base_sold.sum()),
            "grid_welfare": float(result.baseline_welfare[t]),
            "ev_revenue": float(result.baseline_price[t] @ base_sold),
            "egt_iterations": int(base.iterations[t]),
            "egt_converged": bool(base.converged[t]),
            "egt_final_residual": float(base.residuals[int(base.iterations[t]), t]),
        },
    }


MECHANISM = Mechanism(
    "dv2g",
    "DV2G (Hassija et al.): grids select EVs by evolutionary game, EVs price in a Stackelberg "
    "loop, per slot of a day",
    "day",
    GameOptions,
    run_dv2g,
)
