"""DV2G's games at their equilibria: the selection on the simplex, every selected EV's utility at
the average (Algorithm 1), supply meeting demand or the price at its floor and no profitable
unilateral price change (Algorithm 2), the first-bid baseline, and a whole day."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

from evtrade.errors import MechanismError
from evtrade.market.dv2g_game import (
    GameOptions,
    first_bid,
    followers,
    price_bounds,
    select,
    stackelberg,
    uniform_start,
    utilities,
)
from evtrade.market.mechanisms import get
from evtrade.market.mechanisms.dv2g import dv2g_to_dict, run_dv2g
from evtrade.model.prosumers import dv2g_from_dict

XI = np.array([[0.5, 0.6, 0.55]])
KAPPA = np.array([0.1, 0.2, 0.15])
FLOOR = np.full((1, 4), 0.1)
PRICE0 = np.array([[0.2, 0.3, 0.25, 0.35]])
OPTIONS = GameOptions(tol1=1e-10)
#: Markets whose Stackelberg loop converges (the scarce one cycles: docs/dv2g.md#limits).
CONVERGING = ("abundant", "balanced")

#: (supply (1, M), need (1, N)): scarce supply (prices rise) and abundant supply (floor).
MARKETS = {
    "scarce": (np.array([[0.4, 0.8, 0.0, 0.6]]), np.array([[2.0, 1.5, 1.0]])),
    "abundant": (np.array([[3.0, 2.0, 1.0, 2.5]]), np.array([[1.0, 0.5, 0.8]])),
    "balanced": (np.array([[1.0, 2.0, 0.5, 1.5]]), np.array([[2.0, 3.0, 1.0]])),
}


def _equilibrium(name: str) -> Any:
    supply, need = MARKETS[name]
    return stackelberg(PRICE0, supply, need, XI, KAPPA, FLOOR, OPTIONS)


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_selection_stays_strictly_inside_the_simplex(name: str) -> None:
    supply, need = MARKETS[name]
    active = supply > 0
    f = followers(PRICE0, XI, KAPPA, need)
    sel = select(uniform_start(active), f, supply, active, OPTIONS)
    assert sel.converged.all()
    assert_allclose(sel.q.sum(axis=1), 1.0, rtol=1e-12)
    assert (sel.q[active] > 0).all() and (sel.q[~active] == 0).all()
    assert (np.diff(sel.residuals[:, 0]) <= 1.0).all()  # a history, one entry an iteration
    assert len(sel.residuals) == sel.iterations[0] + 1


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_selected_evs_utility_equals_the_average_at_the_fixed_point(name: str) -> None:
    supply, need = MARKETS[name]
    active = supply > 0
    for price in (PRICE0, np.array([[0.3, 0.3, 0.3, 0.3]]), np.array([[0.45, 0.2, 0.3, 0.21]])):
        f = followers(price, XI, KAPPA, need)
        sel = select(uniform_start(active), f, supply, active, OPTIONS)
        u = utilities(sel.q, f, supply)
        scale = np.abs(f.a - f.b).max()
        selected = active & (sel.q >= 1e-3)
        assert selected.any()
        assert_allclose(u[selected], sel.u_bar[0], atol=1e-6 * scale)
        # an EV the grids dropped does no better than the average (no one would switch to it)
        assert (u[active] <= sel.u_bar[0] + 1e-9 * scale).all()


@pytest.mark.parametrize("name", CONVERGING)
def test_supply_meets_demand_or_the_price_sits_at_its_floor(name: str) -> None:
    supply, _ = MARKETS[name]
    eq = _equilibrium(name)
    assert eq.converged.all() and eq.egt_converged.all()
    assert eq.iterations[0] == len(eq.residuals) - 1
    active = supply[0] > 0
    meets = np.abs(eq.demand[0] - supply[0]) <= OPTIONS.tol2 * supply[0]
    floored = (eq.price[0] <= FLOOR[0]) & (eq.demand[0] <= supply[0])
    assert (meets | floored)[active].all()
    assert (eq.price[0] >= FLOOR[0]).all()


@pytest.mark.parametrize("name", CONVERGING)
def test_no_ev_gains_by_a_unilateral_price_change(name: str) -> None:
    supply, need = MARKETS[name]
    eq = _equilibrium(name)
    active = supply > 0
    low, high = price_bounds(FLOOR, XI)

    def revenue(price: np.ndarray, m: int) -> float:
        f = followers(price, XI, KAPPA, need)
        sel = select(uniform_start(active), f, supply, active, OPTIONS)
        sold = np.minimum(sel.q * f.total, supply)
        return float(price[0, m] * sold[0, m])

    for m in np.flatnonzero(active[0]).tolist():
        base = revenue(eq.price, m)
        for deviation in np.linspace(low[0, m], high[0, m], 25):
            price = eq.price.copy()
            price[0, m] = deviation
            gain = revenue(price, m) - base
            # the equilibrium holds up to the accuracy it was played to (tol2 of the supply)
            assert gain <= 2 * OPTIONS.tol2 * high[0, m] * supply[0, m] + 1e-9, (m, deviation)


def test_first_bid_keeps_the_first_prices() -> None:
    supply, need = MARKETS["balanced"]
    price, sel, demand = first_bid(PRICE0, supply, need, XI, KAPPA, FLOOR, OPTIONS)
    assert_allclose(price, PRICE0)
    assert_allclose(sel.q.sum(), 1.0)
    assert demand.shape == supply.shape


@pytest.mark.parametrize(
    ("field", "value"), [("step1", 0.0), ("tol2", 1.5), ("max_iter1", 0), ("max_iter2", True)]
)
def test_bad_options_are_refused(field: str, value: Any) -> None:
    with pytest.raises(MechanismError, match=field):
        GameOptions(**{field: value})


def _day() -> dict[str, Any]:
    return {
        "slots": {"count": 3},
        "esu": {"capacity_kwh": 0},
        "evs": [
            {"id": "e1", "production_kw": [4, 0, 5], "consumption_kw": [1, 1, 1], "price": 0.3},
            {"id": "e2", "production_kw": [2, 0, 6], "consumption_kw": [1, 1, 1], "price": 0.2},
        ],
        "grids": [
            {
                "id": "g1",
                "production_kw": [0, 0, 0],
                "consumption_kw": [3, 3, 1],
                "xi": 0.5,
                "kappa": 0.1,
            },
            {
                "id": "g2",
                "production_kw": [0, 0, 0],
                "consumption_kw": [2, 2, 1],
                "xi": 0.6,
                "kappa": 0.2,
            },
        ],
    }


def test_a_day_through_the_registry() -> None:
    result = get("dv2g").run(dv2g_from_dict(_day()))
    record = dv2g_to_dict(result)
    assert record["converged"] == all(s["convergence"]["converged"] for s in record["slots"])
    assert record["slots"][2]["convergence"]["converged"]  # supply beyond demand: the floor
    assert [len(s["evs"]) for s in record["slots"]] == [2, 0, 2]
    for s in record["slots"]:
        assert s["sold_kwh"] <= min(s["supply_kwh"], s["demand_kwh"]) + 1e-12
        if s["evs"]:
            assert sum(e["probability"] for e in s["evs"]) == pytest.approx(1.0)
            assert s["first_bid"]["prices"] == [0.3, 0.2]
    assert run_dv2g(dv2g_from_dict(_day())).equilibrium.price.shape == (3, 2)
