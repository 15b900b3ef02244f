"""DSM: a day of EV charging from PV first, then V2G, then the grid under a dynamic-price game.

The Chalmers thesis (chapters 6-7; spec §4). Each vehicle that needs energy (below its target state
of charge) is served, first come first served (by arrival slot, then file order), by

1. the nearest PV prosumer whose remaining production inside the vehicle's window covers the whole
   demand, at the PV price gamma + pv_share (phi_t - gamma) (the thesis: the midpoint, §6.4.2);
2. else the nearest V2G vehicle (soh >= 80, never below 50 % state of charge nor its own target,
   parked over the whole window) whose remaining energy covers it, at the V2G price
   gamma + v2g_share (phi_t - gamma);
3. else the grid, where the vehicles play the dynamic-price game of :mod:`evtrade.market.dsm_game`
   (lambda_t = phi_t + mu (q_t - Q_t), eq. 6.3-6.7) to its Nash equilibrium.

A PV or V2G delivery fills the slots of lowest price in the window first (ties to the earliest).
PV production nobody buys goes to the grid at the feed-in tariff gamma. Amounts are kWh drawn at the
vehicle's plug; the battery stores ``efficiency`` times that (eq. 6.1) and a V2G seller's battery
gives 1 / ``efficiency`` times what it delivers.

Why the V2G price is the same split as PV's: the seller's alternative is to sell to the grid at
gamma, the buyer's to buy from it at phi_t, and the midpoint is the symmetric Nash bargaining
solution between these outside options, the reading that makes the thesis's PV midpoint a rule
rather than a number. (ETA's V2V price, Theorem 1, needs private values and willingness that a day
scenario does not carry.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MechanismError, SolverError
from evtrade.market.dsm_game import (
    ChargingGame,
    Equilibrium,
    Method,
    SocialOptimum,
    charge_on_arrival,
    cheapest_hours,
    nash_equilibrium,
    price_of_anarchy,
    social_optimum,
    total_cost,
)
from evtrade.market.geo import great_circle_km
from evtrade.market.mechanisms.base import Mechanism
from evtrade.model.day import DayScenario

FloatArray = NDArray[np.float64]
Source = Literal["pv", "v2g", "grid", "none"]

#: Relative slack when deciding that a supplier covers a demand (rounding of sums of floats).
COVER_RTOL = 1e-9


@dataclass(frozen=True)
class DsmParams:
    """Options of the DSM scheduler (every field has the thesis's value as default).

    ``pv_share``, ``v2g_share`` in [0, 1] place the PV and V2G prices between the feed-in tariff
    (0) and the base price (1); ``soh_min`` (percent) and ``soc_floor`` (a fraction) are the V2G
    seller's limits of §7.4; ``method``, ``tol`` and ``max_iter`` go to
    :func:`~evtrade.market.dsm_game.nash_equilibrium`; ``optimum`` computes the social optimum
    with HiGHS when the grid vehicles' windows hold at most ``optimum_max_cells`` vehicle-slot
    cells (HiGHS's QP takes ~5 s at 3,000 and ~2 min at 10,000; beyond, ``social_optimum`` is
    None).
    """

    pv_share: float = 0.5
    v2g_share: float = 0.5
    soh_min: float = 80.0
    soc_floor: float = 0.5
    method: Method = "newton"
    tol: float = 1e-9
    max_iter: int | None = None
    optimum: bool = True
    optimum_max_cells: int = 5_000

    def __post_init__(self) -> None:
        for name in ("pv_share", "v2g_share", "soc_floor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise MechanismError(f"{name}: must lie in [0, 1], got {value}")
        if not 0.0 <= self.soh_min <= 100.0:
            raise MechanismError(f"soh_min: must lie in [0, 100], got {self.soh_min}")


@dataclass(frozen=True, eq=False)
class VehiclePlan:
    """One vehicle's plan: ``energy_kwh`` drawn per slot from ``supplier`` (a PV or vehicle id;
    None for the grid), what it pays (``cost``), and ``unmet_kwh``, the demand its window cannot
    hold at its power. ``source`` is "none" for a vehicle that needs nothing."""

    id: str
    source: Source
    supplier: str | None
    energy_kwh: FloatArray
    cost: float
    demand_kwh: float
    unmet_kwh: float
    distance_km: float | None


@dataclass(frozen=True, eq=False)
class DsmResult:
    """The day's schedule, prices, payments and the game's report.

    ``load`` q_t and ``price`` lambda_t are the grid's; ``pv_sold`` (M, T) what each PV sells to
    vehicles, ``pv_to_grid`` (M, T) its unsold production (paid ``feed_in``), ``v2g_sold`` (N, T)
    what each vehicle delivers to others. ``no_dsm_cost`` and ``cheapest_hours_cost`` are the total
    grid bills of the same grid-charging vehicles charging on arrival and in the cheapest base-price
    hours without feedback, each priced by lambda of its own load.
    """

    plans: tuple[VehiclePlan, ...]
    base_price: FloatArray
    forecast: FloatArray
    load: FloatArray
    price: FloatArray
    pv_price: FloatArray
    v2g_price: FloatArray
    pv_sold: FloatArray
    pv_to_grid: FloatArray
    v2g_sold: FloatArray
    equilibrium: Equilibrium
    grid_vehicles: tuple[int, ...]
    social_optimum: SocialOptimum | None
    no_dsm_cost: float
    cheapest_hours_cost: float
    price_of_anarchy: float | None
    feed_in: float
    pv_ids: tuple[str, ...]

    @property
    def grid_cost(self) -> float:
        """The equilibrium's total grid bill."""
        return self.equilibrium.cost


def _readonly(values: FloatArray) -> FloatArray:
    values.setflags(write=False)
    return values


def _fill_cheapest(price: FloatArray, room: FloatArray, demand: float) -> FloatArray:
    """Take ``demand`` from the slots of lowest ``price`` first, each at most ``room``."""
    order = np.argsort(price, kind="stable")
    take = np.zeros_like(room)
    before = np.cumsum(room[order]) - room[order]
    take[order] = np.clip(demand - before, 0.0, room[order])
    return take


def _covers(room: FloatArray, demand: float) -> bool:
    return float(room.sum()) >= demand * (1.0 - COVER_RTOL)


def schedule_day(day: DayScenario, params: DsmParams | None = None) -> DsmResult:
    """Serve every vehicle of ``day`` from PV, V2G or the grid (module docstring).

    Raises
    ------
    MechanismError
        For options out of range. The scenario itself was validated when it was built.
    """
    p = DsmParams() if params is None else params
    g = day.grid
    t_count, hours = day.n_slots, day.slots.hours
    va = day.vehicle_arrays
    n = len(day.vehicles)
    window = np.zeros((n, t_count), dtype=bool)
    for i, v in enumerate(day.vehicles):
        window[i, v.arrival : v.departure] = True
    step = va["power_kw"] * hours
    upper = window * step[:, None]
    need = np.array([v.need_kwh for v in day.vehicles])
    drawn = need / va["efficiency"]
    demand = np.minimum(drawn, upper.sum(axis=1))
    unmet = drawn - demand
    pv_price = g.feed_in + p.pv_share * (g.base_price - g.feed_in)
    v2g_price = g.feed_in + p.v2g_share * (g.base_price - g.feed_in)

    pv_left = day.pv_production.copy()
    pv_sold = np.zeros_like(pv_left)
    # A V2G seller: offers V2G, healthy enough, needs nothing itself; it delivers at most its
    # power per slot and efficiency x (energy above max(floor, target)) in all.
    floor = np.maximum(p.soc_floor, va["target_soc"]) * va["capacity_kwh"]
    seller = va["v2g"] & (va["soh"] >= p.soh_min) & (need <= 0.0)
    v2g_left = np.where(seller, np.maximum(0.0, va["energy_kwh"] - floor), 0.0) * va["efficiency"]
    v2g_room = np.where(seller[:, None], step[:, None] * np.ones(t_count), 0.0)
    v2g_sold = np.zeros((n, t_count))

    schedule = np.zeros((n, t_count))
    source: list[Source] = ["none"] * n
    supplier: list[str | None] = [None] * n
    distance: list[float | None] = [None] * n
    charging = [i for i in range(n) if demand[i] > 0.0]
    charging.sort(key=lambda i: (day.vehicles[i].arrival, i))
    for i in charging:
        v = day.vehicles[i]
        w = window[i]
        if day.pv:
            km = great_circle_km(
                v.lat, v.lon, np.array([q.lat for q in day.pv]), np.array([q.lon for q in day.pv])
            )
            for m in np.argsort(km, kind="stable"):
                room = np.where(w, np.minimum(step[i], pv_left[m]), 0.0)
                if _covers(room, demand[i]):
                    take = _fill_cheapest(pv_price, room, demand[i])
                    pv_left[m] -= take
                    pv_sold[m] += take
                    schedule[i] = take
                    source[i], supplier[i], distance[i] = "pv", day.pv[m].id, float(km[m])
                    break
        if source[i] != "none":
            continue
        parked = seller & (va["arrival"] <= v.arrival) & (va["departure"] >= v.departure)
        parked[i] = False
        candidates = np.nonzero(parked & (v2g_left > 0.0))[0]
        if candidates.size:
            km = great_circle_km(v.lat, v.lon, va["lat"][candidates], va["lon"][candidates])
            for k in np.argsort(km, kind="stable"):
                s = int(candidates[k])
                room = np.where(w, np.minimum(step[i], v2g_room[s]), 0.0)
                if _covers(room, demand[i]) and v2g_left[s] >= demand[i] * (1.0 - COVER_RTOL):
                    take = _fill_cheapest(v2g_price, room, demand[i])
                    v2g_room[s] -= take
                    v2g_left[s] -= take.sum()
                    v2g_sold[s] += take
                    schedule[i] = take
                    source[i], supplier[i], distance[i] = "v2g", day.vehicles[s].id, float(km[k])
                    break
        if source[i] == "none":
            source[i] = "grid"

    grid_rows = np.array([i for i in range(n) if source[i] == "grid"], dtype=np.int64)
    game = ChargingGame(
        base_price=g.base_price,
        forecast=g.forecast,
        mu=g.mu,
        upper=upper[grid_rows],
        demand=demand[grid_rows],
    )
    eq = nash_equilibrium(game, method=p.method, tol=p.tol, max_iter=p.max_iter)
    schedule[grid_rows] = eq.schedule
    cells = int(np.count_nonzero(game.upper))
    small = 0 < cells <= p.optimum_max_cells
    optimum = None
    if p.optimum and small:
        try:
            optimum = social_optimum(game)
        except SolverError:  # HiGHS gave up: the day is still scheduled, without the optimum
            optimum = None
    no_dsm = total_cost(game, charge_on_arrival(game))
    cheap = total_cost(game, cheapest_hours(game))

    cost = np.zeros(n)
    cost[grid_rows] = eq.bills
    plans = []
    for i, v in enumerate(day.vehicles):
        if source[i] == "pv":
            cost[i] = float(pv_price @ schedule[i])
        elif source[i] == "v2g":
            cost[i] = float(v2g_price @ schedule[i])
        plans.append(
            VehiclePlan(
                id=v.id,
                source=source[i],
                supplier=supplier[i],
                energy_kwh=_readonly(schedule[i].copy()),
                cost=float(cost[i]),
                demand_kwh=float(drawn[i]),
                unmet_kwh=float(unmet[i]),
                distance_km=distance[i],
            )
        )
    return DsmResult(
        plans=tuple(plans),
        base_price=g.base_price,
        forecast=g.forecast,
        load=eq.load,
        price=eq.price,
        pv_price=_readonly(pv_price),
        v2g_price=_readonly(v2g_price),
        pv_sold=_readonly(pv_sold),
        pv_to_grid=_readonly(pv_left),
        v2g_sold=_readonly(v2g_sold),
        equilibrium=eq,
        grid_vehicles=tuple(int(i) for i in grid_rows),
        social_optimum=optimum,
        no_dsm_cost=no_dsm,
        cheapest_hours_cost=cheap,
        price_of_anarchy=None if optimum is None else price_of_anarchy(eq.cost, optimum.cost),
        feed_in=g.feed_in,
        pv_ids=tuple(q.id for q in day.pv),
    )


def schedule_to_dict(result: DsmResult) -> dict[str, Any]:
    """The result as plain data in the shape of ``evtrade schedule --format json`` (issue 14
    item 5): slots, vehicles (source, supplier, energy per slot, cost), equilibrium, social
    optimum, no-DSM cost, and the PV sellers' payments.

    A vehicle that needs nothing (plan source "none") is written as "grid" with zero energy,
    supplier null and cost 0, so every source lies in the issue's set "pv" | "v2g" | "grid";
    with no grid vehicle at all the (empty) game's social optimum costs 0."""
    eq = result.equilibrium
    optimum: dict[str, Any] | None = None
    if result.social_optimum is not None:
        optimum = {"cost": result.social_optimum.cost, "price_of_anarchy": result.price_of_anarchy}
    elif not result.grid_vehicles:
        optimum = {"cost": 0.0, "price_of_anarchy": None}
    return {
        "slots": [
            {
                "base_price": float(result.base_price[t]),
                "forecast": float(result.forecast[t]),
                "load": float(result.load[t]),
                "price": float(result.price[t]),
                "pv_price": float(result.pv_price[t]),
                "v2g_price": float(result.v2g_price[t]),
            }
            for t in range(len(result.load))
        ],
        "vehicles": [
            {
                "id": plan.id,
                "source": "grid" if plan.source == "none" else plan.source,
                "supplier": plan.supplier,
                "energy_kwh": plan.energy_kwh.tolist(),
                "cost": plan.cost,
                "demand_kwh": plan.demand_kwh,
                "unmet_kwh": plan.unmet_kwh,
                "distance_km": plan.distance_km,
            }
            for plan in result.plans
        ],
        "pv": [
            {
                "id": ident,
                "sold_kwh": float(result.pv_sold[m].sum()),
                "revenue": float(result.pv_sold[m] @ result.pv_price),
                "to_grid_kwh": float(result.pv_to_grid[m].sum()),
                "feed_in_revenue": float(result.pv_to_grid[m].sum() * result.feed_in),
            }
            for m, ident in enumerate(result.pv_ids)
        ],
        "equilibrium": {
            "method": eq.method,
            "iterations": eq.iterations,
            "converged": eq.converged,
            "max_gain": eq.max_gain,
            "residuals": list(eq.residuals),
            "cost": eq.cost,
        },
        "social_optimum": optimum,
        "no_dsm": {"cost": result.no_dsm_cost},
        "cheapest_hours": {"cost": result.cheapest_hours_cost},
    }


MECHANISM = Mechanism(
    "dsm",
    "DSM (Chalmers thesis): a day of charging from PV, then V2G, then the grid's price game",
    "day",
    DsmParams,
    schedule_day,
)
