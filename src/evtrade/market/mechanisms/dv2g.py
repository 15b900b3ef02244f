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
from evtrade.market.dv2g_game import Equilibrium, GameOptions, first_bid, stackelberg
from evtrade.market.mechanisms.base import Mechanism
from evtrade.model.prosumers import Dv2gScenario

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Dv2gResult:
    """A DV2G day: storage and balance of EVs and grids ((K, T) arrays), the EVs' degradation
    costs omega (price floors), the equilibrium and the first-bid baseline ((T, M) / (T,))."""

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
    baseline_q: FloatArray
    baseline_welfare: FloatArray

    @property
    def supply(self) -> FloatArray:
        """B_s,m dt per slot, (T, M)."""
        return self.ev_balance.sell_kwh.T

    @property
    def need(self) -> FloatArray:
        """G_n per slot, (T, N)."""
        return self.grid_balance.buy_kwh.T


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
        baseline_q=base_sel.q,
        baseline_welfare=base_sel.u_bar,
    )


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values).ravel()]


def dv2g_to_dict(result: Dv2gResult) -> dict[str, Any]:
    """The result as plain data (``evtrade dv2g --format json``, docs/dv2g.md#output): per slot
    each EV's price, selection probability, supply, demand and sale, the grids' needs, welfare
    and both loops' convergence; the first-bid baseline; each EV's degradation cost and storage."""
    eq = result.equilibrium
    sel = eq.selection
    supply, need = result.supply, result.need
    slots = []
    for t in range(supply.shape[0]):
        revenue = float(eq.price[t] @ eq.sold[t])
        base_sold = np.minimum(result.baseline_demand[t], supply[t])
        slots.append(
            {
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
                    }
                    for m, ident in enumerate(result.ev_ids)
                    if supply[t, m] > 0
                ],
                "grids": [
                    {"id": ident, "need_kwh": float(need[t, n])}
                    for n, ident in enumerate(result.grid_ids)
                    if need[t, n] > 0
                ],
                "supply_kwh": float(supply[t].sum()),
                "demand_kwh": float(eq.demand[t].sum()),
                "need_kwh": float(need[t].sum()),
                "sold_kwh": float(eq.sold[t].sum()),
                "average_utility": float(sel.u_bar[t]),
                "grid_welfare": float(eq.grid_welfare[t]),
                "ev_revenue": revenue,
                "welfare": float(eq.grid_welfare[t]) + revenue,
                "convergence": {
                    "iterations": int(eq.iterations[t]),
                    "converged": bool(eq.converged[t]),
                    "residuals": _floats(eq.residuals[: int(eq.iterations[t]) + 1, t]),
                    "egt_iterations": int(eq.egt_iterations[t]),
                    "egt_converged": bool(eq.egt_converged[t]),
                    "egt_residuals": _floats(sel.residuals[: int(sel.iterations[t]) + 1, t]),
                },
                "first_bid": {
                    "prices": _floats(result.baseline_price[t][supply[t] > 0]),
                    "probabilities": _floats(result.baseline_q[t][supply[t] > 0]),
                    "sold_kwh": float(base_sold.sum()),
                    "grid_welfare": float(result.baseline_welfare[t]),
                    "ev_revenue": float(result.baseline_price[t] @ base_sold),
                },
            }
        )
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
        "converged": bool(eq.converged.all()),
    }


MECHANISM = Mechanism(
    "dv2g",
    "DV2G (Hassija et al.): grids select EVs by evolutionary game, EVs price in a Stackelberg "
    "loop, per slot of a day",
    "day",
    GameOptions,
    run_dv2g,
)
