"""DSM: the charging game (evtrade.market.dsm_game) and the day scheduler (mechanisms.dsm).

The equilibrium is checked against an independent best response per vehicle (cvxpy + Clarabel),
the potential minimiser from HiGHS and small cases solved by hand.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from evtrade.errors import MechanismError
from evtrade.market.dsm_game import (
    ChargingGame,
    bills,
    charge_on_arrival,
    cheapest_hours,
    deviation_gains,
    dynamic_price,
    nash_equilibrium,
    potential,
    social_optimum,
    solve_qp_highs,
    total_cost,
    waterfill,
    waterfill_uniform,
)
from evtrade.market.mechanisms.dsm import DsmParams, schedule_day, schedule_to_dict
from evtrade.model.day import day_from_dict

# cvxpy (with Clarabel) is the independent solver; its stubs are partial, so it is used as Any.
cp: Any = pytest.importorskip("cvxpy")

# ---------------------------------------------------------------- independent references


def independent_best_response(game: ChargingGame, x: np.ndarray, i: int) -> float:
    """Vehicle i's least bill against the others in x, from a generic QP solver."""
    others = x.sum(axis=0) - x[i]
    y = cp.Variable(game.n_slots)
    price = game.base_price + game.mu * (others + y - game.forecast)
    bill = (game.base_price + game.mu * (others - game.forecast)) @ y + game.mu * cp.sum_squares(y)
    del price
    problem = cp.Problem(
        cp.Minimize(bill), [y >= 0, y <= game.upper[i], cp.sum(y) == game.demand[i]]
    )
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL
    return float(problem.value)


def own_bill(game: ChargingGame, x: np.ndarray, i: int) -> float:
    return float(bills(game, x)[i])


def random_game(rng: np.random.Generator, n: int, t: int, mu: float = 0.05) -> ChargingGame:
    upper = np.zeros((n, t))
    for i in range(n):
        a = int(rng.integers(0, t - 1))
        b = int(rng.integers(a + 1, t + 1))
        upper[i, a:b] = rng.uniform(1, 11)
    demand = upper.sum(axis=1) * rng.uniform(0, 1, n)
    return ChargingGame(
        base_price=rng.uniform(0.1, 0.6, t),
        forecast=rng.uniform(0, 5 * n, t),
        mu=mu,
        upper=upper,
        demand=demand,
    )


# ---------------------------------------------------------------- small cases by hand


def two_slots(n: int) -> ChargingGame:
    return ChargingGame(
        base_price=np.array([1.0, 2.0]),
        forecast=np.zeros(2),
        mu=0.5,
        upper=np.full((n, 2), 10.0),
        demand=np.full(n, 4.0),
    )


def test_one_vehicle_by_hand() -> None:
    # Marginal bills 1 + 2 (0.5) x1 = 2 + 2 (0.5) x2 and x1 + x2 = 4: x = (2.5, 1.5), bill 9.75.
    eq = nash_equilibrium(two_slots(1))
    assert_allclose(eq.schedule, [[2.5, 1.5]], atol=1e-12)
    assert eq.cost == pytest.approx(9.75, abs=1e-12)
    assert eq.converged and eq.max_gain <= 1e-12


def test_two_vehicles_by_hand() -> None:
    # Symmetric equilibrium: 1 + 0.5 (3 y) = 2 + 0.5 (3 (4 - y)), y = 7/3; loads 14/3 and 10/3,
    # prices 10/3 and 11/3, cost 250/9. Optimum: 1 + q1 = 2 + q2, q = (4.5, 3.5), cost 27.75.
    game = two_slots(2)
    eq = nash_equilibrium(game)
    assert_allclose(eq.schedule, [[7 / 3, 5 / 3]] * 2, atol=1e-12)
    assert_allclose(eq.price, [10 / 3, 11 / 3], atol=1e-12)
    assert eq.cost == pytest.approx(250 / 9, abs=1e-10)
    opt = social_optimum(game)
    assert_allclose(opt.load, [4.5, 3.5], atol=1e-6)
    assert opt.cost == pytest.approx(27.75, abs=1e-6)
    assert opt.lower_bound <= 27.75 <= opt.cost and opt.cost - opt.lower_bound <= 1e-6
    assert eq.cost / opt.cost == pytest.approx((250 / 9) / 27.75, rel=1e-6)


def test_baselines_by_hand() -> None:
    game = ChargingGame(
        base_price=np.array([3.0, 1.0, 2.0]),
        forecast=np.array([1.0, 1.0, 1.0]),
        mu=0.1,
        upper=np.array([[2.0, 2.0, 2.0], [0.0, 2.0, 2.0]]),
        demand=np.array([3.0, 3.0]),
    )
    assert_allclose(charge_on_arrival(game), [[2, 1, 0], [0, 2, 1]])
    assert_allclose(cheapest_hours(game), [[0, 2, 1], [0, 2, 1]])
    # loads (0, 4, 2): prices (3 - 0.1, 1 + 0.3, 2 + 0.1)
    assert total_cost(game, cheapest_hours(game)) == pytest.approx(4 * 1.3 + 2 * 2.1)


def test_zero_mu_is_cheapest_hours() -> None:
    game = ChargingGame(
        base_price=np.array([3.0, 1.0, 2.0]),
        forecast=np.zeros(3),
        mu=0.0,
        upper=np.full((2, 3), 2.0),
        demand=np.array([3.0, 1.0]),
    )
    eq = nash_equilibrium(game)
    assert_allclose(eq.schedule, [[0, 2, 1], [0, 1, 0]])
    assert eq.converged and eq.max_gain == 0.0


def test_iteration_cap_reports_non_convergence() -> None:
    game = random_game(np.random.default_rng(3), 30, 12)
    eq = nash_equilibrium(game, method="jacobi", max_iter=2)
    assert eq.iterations == 2 and not eq.converged and eq.max_gain > 1e-9
    assert len(eq.residuals) == 2


def test_bad_game_inputs() -> None:
    with pytest.raises(MechanismError, match=r"demand\[0\]: 30 kWh is more than its window"):
        ChargingGame(np.ones(2), np.zeros(2), 0.1, np.full((1, 2), 10.0), np.array([30.0]))
    with pytest.raises(MechanismError, match="must be >= 0"):
        ChargingGame(np.ones(2), np.zeros(2), -0.1, np.full((1, 2), 10.0), np.array([3.0]))
    with pytest.raises(MechanismError, match="finite"):
        ChargingGame(np.array([1, np.nan]), np.zeros(2), 0.1, np.ones((1, 2)), np.array([1.0]))
    with pytest.raises(MechanismError, match="method: unknown 'gauss'"):
        nash_equilibrium(two_slots(1), method="gauss")  # type: ignore[arg-type]


# ---------------------------------------------------------------- water-filling


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), curvature=st.sampled_from([0.0, 1e-3, 0.1, 4.0]))
def test_waterfill_is_the_qp_optimum(seed: int, curvature: float) -> None:
    rng = np.random.default_rng(seed)
    n, t = 4, int(rng.integers(1, 9))
    cost = rng.uniform(-1, 1, (n, t))
    cost[:, : t // 2] = np.round(cost[:, : t // 2], 1)  # ties
    upper = rng.uniform(0, 3, (n, t)) * (rng.random((n, t)) < 0.7)
    demand = upper.sum(axis=1) * rng.choice([0.0, 0.3, 1.0, rng.random()], n)
    x = waterfill(cost, upper, demand, curvature)
    assert_allclose(x.sum(axis=1), demand, atol=1e-9)
    assert (x >= 0).all() and (x <= upper + 1e-12).all()
    for i in range(n):
        y = cp.Variable(t)
        obj = cost[i] @ y + curvature / 2 * cp.sum_squares(y)
        prob = cp.Problem(cp.Minimize(obj), [y >= 0, y <= upper[i], cp.sum(y) == demand[i]])
        prob.solve(solver=cp.CLARABEL)
        mine = cost[i] @ x[i] + curvature / 2 * x[i] @ x[i]
        assert mine <= prob.value + 1e-7 * (1 + abs(prob.value))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), curvature=st.sampled_from([1e-3, 0.1, 4.0]))
def test_uniform_waterfill_equals_the_general_one(seed: int, curvature: float) -> None:
    rng = np.random.default_rng(seed)
    n, t = 6, int(rng.integers(1, 12))
    mask = rng.random((n, t)) < 0.6
    mask[0] = False  # a vehicle with no slot (and so no demand)
    cap = rng.uniform(0.5, 11, n)
    upper = mask * cap[:, None]
    demand = upper.sum(axis=1) * rng.choice([0.0, 0.4, 1.0, rng.random()], n)
    price = np.round(rng.uniform(-1, 1, t), 1)  # ties
    fast = waterfill_uniform(price, mask, cap, demand, curvature)
    assert_allclose(fast, waterfill(price, upper, demand, curvature), atol=1e-9)
    assert_allclose(fast.sum(axis=1), demand, atol=1e-9)


# ---------------------------------------------------------------- equilibrium


@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["newton", "jacobi"]),
    mu=st.sampled_from([1e-3, 0.01, 0.5]),
)
def test_equilibrium_no_vehicle_gains_by_deviating(seed: int, method: Any, mu: float) -> None:
    rng = np.random.default_rng(seed)
    game = random_game(rng, int(rng.integers(1, 7)), int(rng.integers(2, 10)), mu)
    eq = nash_equilibrium(game, method=method, tol=1e-9)
    x = eq.schedule
    assert eq.converged and eq.max_gain <= 1e-9
    assert_allclose(x.sum(axis=1), game.demand, atol=1e-8)
    assert (x >= 0).all() and (x <= game.upper + 1e-12).all()
    assert_allclose(eq.price, game.base_price + mu * (x.sum(axis=0) - game.forecast))
    assert_allclose(eq.bills, x @ eq.price)
    scale = 1 + np.abs(eq.bills).max()
    for i in range(game.n_vehicles):
        assert own_bill(game, x, i) <= independent_best_response(game, x, i) + 1e-6 * scale
    # The potential's minimiser from HiGHS is the same equilibrium (it is unique).
    ref = solve_qp_highs(game, mu, mu, scale=1.0 / mu)
    assert potential(game, x) <= potential(game, ref) + 1e-6 * scale
    opt = social_optimum(game)
    assert opt.cost <= eq.cost + 1e-6 * scale  # price of anarchy >= 1
    assert opt.lower_bound <= opt.cost  # the dual bound: no schedule costs less


def test_newton_and_jacobi_agree_on_a_larger_game() -> None:
    game = random_game(np.random.default_rng(7), 200, 24, 0.01)
    a = nash_equilibrium(game, method="newton")
    b = nash_equilibrium(game, method="jacobi")
    assert a.converged and b.converged
    assert_allclose(a.load, b.load, atol=1e-4)
    assert np.abs(deviation_gains(game, a.schedule)).max() <= 1e-9


def test_newton_with_coarse_levels_certifies_a_large_game() -> None:
    # 1,500 vehicles: the Newton iteration starts from the prices of 375, 94 sampled vehicles.
    game = random_game(np.random.default_rng(11), 1_500, 12, 0.002)
    eq = nash_equilibrium(game)
    assert eq.converged and eq.max_gain <= 1e-9
    scale = 1 + np.abs(eq.bills).max()
    for i in (0, 499, 1_499):
        own = own_bill(game, eq.schedule, i)
        assert own <= independent_best_response(game, eq.schedule, i) + 1e-6 * scale


def test_newton_stops_on_the_certificate_not_the_cap() -> None:
    # The benchmark's 3,000 x 96 day: Newton reached residual 7e-8 in 12 steps, then its Armijo
    # test on h (below h's rounding there) accepted 1e-12 steps until the 100-step cap (214 s),
    # although the schedule was already certified. It must now finish in a few steps.
    from benchmarks.dsm import day_game

    game = day_game(3_000, 96, seed=3_096)
    eq = nash_equilibrium(game, tol=1e-9)
    assert eq.converged and eq.method == "newton"
    assert eq.iterations < 30 and len(eq.residuals) == eq.iterations
    assert eq.max_gain <= 1e-9
    assert eq.max_gain == pytest.approx(float(deviation_gains(game, eq.schedule).max()), abs=1e-12)


def test_stalled_newton_hands_over_to_jacobi(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Newton iteration that stops early (stalled) short of the certificate is never reported
    # as converged on its own: damped Jacobi continues from its schedule, and the report says so.
    import evtrade.market.dsm_game as dsm_game

    game = random_game(np.random.default_rng(5), 40, 12, 0.05)

    def stalled(g: ChargingGame, rows: Any, weight: float, cap: int, res: list[float]) -> Any:
        res.append(1.0)
        return g.offset, dsm_game.cheapest_hours(g), 1

    monkeypatch.setattr(dsm_game, "_newton_prices", stalled)
    eq = nash_equilibrium(game, tol=1e-9)
    assert eq.method == "newton+jacobi" and eq.converged and eq.max_gain <= 1e-9
    assert 1 < eq.iterations <= 100 and len(eq.residuals) == eq.iterations


# Fig. 7.6 of the thesis: EUR/MWh, SEK/kWh, scheduled load l_t, forecast Q_t, lambda_t.
FIG_7_6 = np.array(
    [
        [46.69, 0.4725028, 10, 10, 0.4725028],
        [48.04, 0.4861648, 10, 10, 0.4861648],
        [45.95, 0.465014, 10, 10, 0.465014],
        [44.45, 0.449834, 15, 15, 0.449834],
        [44.1, 0.446292, 15, 15, 0.446292],
        [38.1025, 0.3855973, 17, 17, 0.3855973],
        [34.04, 0.3444848, 17, 17, 0.3444848],
        [35.4225, 0.3584757, 20, 20, 0.3584757],
        [38.695, 0.3915934, 23, 23, 0.3915934],
        [38.6525, 0.3911633, 24, 24, 0.3911633],
        [33.145, 0.3354274, 20, 20, 0.3354274],
        [31.9725, 0.3235617, 17, 17, 0.3235617],
        [29.7775, 0.3013483, 18, 18, 0.3013483],
        [27.3, 0.276276, 20, 20, 0.276276],
        [28.77, 0.2911524, 20, 18, 0.3111524],
        [27.35, 0.276782, 20, 22, 0.256782],
        [26.02, 0.2633224, 20, 19, 0.2733224],
        [25.4, 0.257048, 20, 20, 0.257048],
        [25.34, 0.2564408, 20, 17, 0.2864408],
        [27.96, 0.2829552, 20, 23, 0.2529552],
        [32.76, 0.3315312, 10, 10, 0.3315312],
        [38.64, 0.3910368, 12, 12, 0.3910368],
        [41.51, 0.4200812, 15, 15, 0.4200812],
        [41.99, 0.4249388, 12, 12, 0.4249388],
    ]
)


def test_fig_7_6_prices_follow_the_formula() -> None:
    # phi in SEK/kWh = EUR/MWh x 0.01012, and lambda = phi + 0.01 (l - Q), to the printed digits
    eur, phi, load, forecast, price = FIG_7_6.T
    assert_allclose(eur * 0.01012, phi, atol=5e-8)
    game = ChargingGame(phi, forecast, 0.01, np.ones((1, 24)), np.zeros(1))
    assert_allclose(dynamic_price(game, load), price, atol=5e-8)


def test_dynamic_price_formula() -> None:
    game = two_slots(1)
    assert_allclose(dynamic_price(game, np.array([2.0, 4.0])), [1 + 1.0, 2 + 2.0])


# ---------------------------------------------------------------- scheduler


def base_day() -> dict[str, Any]:
    """EV1 needs 19 kWh (stored) over slots 1-3; PV_near cannot cover it, PV_far can."""
    return {
        "slots": {"count": 6, "hours": 1.0},
        "grid": {
            "base_price": [0.5, 0.4, 0.3, 0.2, 0.3, 0.5],
            "forecast": [5.0] * 6,
            "mu": 0.01,
            "feed_in": 0.1,
        },
        "vehicles": [
            {
                "id": "EV1",
                "capacity_kwh": 100,
                "energy_kwh": 61,
                "arrival": 1,
                "departure": 4,
                "power_kw": 10,
                "target_soc": 0.8,
                "lat": 57.7,
                "lon": 11.98,
                "efficiency": 0.95,
            },
            {
                "id": "EV2",
                "capacity_kwh": 100,
                "energy_kwh": 90,
                "soh": 88,
                "arrival": 0,
                "departure": 6,
                "power_kw": 10,
                "target_soc": 0.5,
                "lat": 57.69,
                "lon": 11.97,
                "v2g": True,
            },
        ],
        "pv": [
            {"id": "PV_near", "production_kwh": [0, 5, 5, 5, 5, 0], "lat": 57.7001, "lon": 11.98},
            {"id": "PV_far", "production_kwh": [0, 8, 8, 8, 8, 0], "lat": 57.71, "lon": 11.98},
        ],
    }


def plans(result: Any) -> dict[str, Any]:
    return {p.id: p for p in result.plans}


def test_nearest_covering_pv_is_chosen() -> None:
    r = schedule_day(day_from_dict(base_day()))
    ev1 = plans(r)["EV1"]
    assert (ev1.source, ev1.supplier) == ("pv", "PV_far")  # PV_near has 15 kWh in the window
    demand = 19 / 0.95
    assert ev1.energy_kwh.sum() == pytest.approx(demand)
    # cheapest PV prices first: slot 3 (0.2), then 2 (0.3), then 1 for the rest
    assert_allclose(ev1.energy_kwh, [0, demand - 16, 8, 8, 0, 0])
    pv_price = 0.1 + 0.5 * (np.array([0.5, 0.4, 0.3, 0.2, 0.3, 0.5]) - 0.1)
    assert ev1.cost == pytest.approx(float(pv_price @ ev1.energy_kwh))
    assert_allclose(r.pv_to_grid[1], np.array([0, 8, 8, 8, 8, 0]) - ev1.energy_kwh)
    assert_allclose(r.pv_to_grid[0], [0, 5, 5, 5, 5, 0])
    assert plans(r)["EV2"].source == "none"


def test_v2g_when_no_pv_covers() -> None:
    data = base_day()
    data["pv"][1]["production_kwh"] = [0, 1, 1, 1, 1, 0]
    r = schedule_day(day_from_dict(data))
    ev1 = plans(r)["EV1"]
    assert (ev1.source, ev1.supplier) == ("v2g", "EV2")
    assert_allclose(r.v2g_sold[1], ev1.energy_kwh)
    # EV2 delivers 20 kWh: its battery gives 20 / 0.95 and stays above 50 %
    assert 90 - r.v2g_sold[1].sum() / 0.95 >= 50


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"soh": 79}, "state of health below 80"),
        ({"arrival": 2}, "not parked over EV1's whole window"),
        ({"energy_kwh": 70}, "only 20 kWh above 50 %, x 0.95 < 20 kWh"),
        ({"v2g": False}, "does not offer V2G"),
        ({"target_soc": 0.75}, "its own target leaves 15 kWh"),
    ],
)
def test_grid_when_no_v2g_seller_qualifies(change: dict[str, Any], why: str) -> None:
    data = base_day()
    data["pv"] = []
    data["vehicles"][1].update(change)
    r = schedule_day(day_from_dict(data))
    ev1 = plans(r)["EV1"]
    assert ev1.source == "grid", why
    assert ev1.supplier is None
    assert r.grid_vehicles == (0,)
    assert ev1.cost == pytest.approx(float(r.price @ ev1.energy_kwh))


def test_unreachable_target_is_capped_and_reported() -> None:
    data = base_day()
    data["pv"] = []
    data["vehicles"][0]["energy_kwh"] = 10  # needs 70 stored = 73.7 drawn; window holds 30
    r = schedule_day(day_from_dict(data))
    ev1 = plans(r)["EV1"]
    assert ev1.energy_kwh.sum() == pytest.approx(30)
    assert ev1.unmet_kwh == pytest.approx(70 / 0.95 - 30)


def test_schedule_to_dict_has_the_issue_shape() -> None:
    out = schedule_to_dict(schedule_day(day_from_dict(base_day())))
    assert set(out["slots"][0]) >= {"base_price", "forecast", "load", "price"}
    assert set(out["vehicles"][0]) >= {"id", "source", "supplier", "energy_kwh", "cost"}
    assert set(out["equilibrium"]) >= {"iterations", "converged", "max_gain"}
    assert "cost" in out["no_dsm"]
    # EV2 needs nothing: "grid" with nothing drawn (the issue's set of sources), no supplier
    ev1, ev2 = out["vehicles"]
    assert ev1["source"] == "pv" and (ev2["source"], ev2["supplier"], ev2["cost"]) == (
        "grid",
        None,
        0,
    )
    assert sum(ev2["energy_kwh"]) == 0


def test_schedule_to_dict_empty_game_optimum_costs_nothing() -> None:
    data = base_day()
    data["vehicles"] = data["vehicles"][:1]  # EV1 alone, served by a PV: no grid vehicle
    r = schedule_day(day_from_dict(data))
    assert not r.grid_vehicles and r.social_optimum is None
    assert schedule_to_dict(r)["social_optimum"] == {"cost": 0.0, "price_of_anarchy": None}


def test_optimum_skipped_above_its_cell_limit() -> None:
    data = base_day()
    data["pv"] = []
    data["vehicles"][1]["v2g"] = False  # EV1 charges from the grid
    r = schedule_day(day_from_dict(data), DsmParams(optimum_max_cells=2))
    assert r.social_optimum is None and r.price_of_anarchy is None
    assert schedule_to_dict(r)["social_optimum"] is None
    r = schedule_day(day_from_dict(data))
    assert r.social_optimum is not None


def test_bad_params() -> None:
    with pytest.raises(MechanismError, match="pv_share: must lie in"):
        DsmParams(pv_share=1.5)


# ---------------------------------------------------------------- properties of whole days


def num(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats rounded to 1e-6 (the model refuses nonzero magnitudes below 1e-18)."""
    return st.floats(lo, hi).map(lambda v: round(v, 6))


@st.composite
def days(draw: st.DrawFn) -> dict[str, Any]:
    t = draw(st.integers(2, 8))
    n = draw(st.integers(1, 6))
    m = draw(st.integers(0, 3))
    price = num(0.05, 1.0)
    vehicles = []
    for i in range(n):
        a = draw(st.integers(0, t - 1))
        cap = draw(num(10, 100))
        vehicles.append(
            {
                "id": f"EV{i}",
                "capacity_kwh": cap,
                "energy_kwh": draw(num(0, 1)) * cap,
                "soh": draw(st.sampled_from([70.0, 80.0, 95.0])),
                "arrival": a,
                "departure": draw(st.integers(a + 1, t)),
                "power_kw": draw(num(1, 20)),
                "target_soc": draw(st.sampled_from([0.5, 0.8, 1.0])),
                "lat": draw(num(57.6, 57.8)),
                "lon": draw(num(11.9, 12.0)),
                "v2g": draw(st.booleans()),
            }
        )
    pv = [
        {
            "id": f"PV{k}",
            "production_kwh": draw(st.lists(num(0, 30), min_size=t, max_size=t)),
            "lat": draw(num(57.6, 57.8)),
            "lon": draw(num(11.9, 12.0)),
        }
        for k in range(m)
    ]
    return {
        "slots": {"count": t, "hours": draw(st.sampled_from([0.25, 1.0]))},
        "grid": {
            "base_price": draw(st.lists(price, min_size=t, max_size=t)),
            "forecast": draw(st.lists(num(0, 50), min_size=t, max_size=t)),
            "mu": draw(st.sampled_from([0.0, 0.01, 0.1])),
            "feed_in": 0.05,
        },
        "vehicles": vehicles,
        "pv": pv,
    }


@settings(max_examples=40)
@given(data=days())
def test_every_day_respects_windows_order_and_bills(data: dict[str, Any]) -> None:
    day = day_from_dict(copy.deepcopy(data))
    r = schedule_day(day, DsmParams(optimum=False))
    t, hours, g = day.n_slots, day.slots.hours, day.grid
    grid_load = np.zeros(t)
    for i, (v, p) in enumerate(zip(day.vehicles, r.plans, strict=True)):
        x = p.energy_kwh
        inside = np.zeros(t, dtype=bool)
        inside[v.arrival : v.departure] = True
        assert (x >= 0).all() and (x[~inside] == 0).all()
        assert (x <= v.power_kw * hours * (1 + 1e-12)).all()
        drawn = v.need_kwh / v.efficiency
        assert x.sum() + p.unmet_kwh == pytest.approx(drawn, abs=1e-8)
        if p.source == "grid":
            grid_load += x
            # supply order: no PV's unsold production in the window covers it, no seller does
            for m in range(len(day.pv)):
                room = np.minimum(v.power_kw * hours, r.pv_to_grid[m])[inside].sum()
                assert room < x.sum() * (1 - 1e-9)
        # only what the window cannot hold at full power is left unmet, whatever the source
        room = v.power_kw * hours * (v.departure - v.arrival)
        assert p.unmet_kwh == pytest.approx(max(0.0, drawn - room), abs=1e-9)
        price = {"pv": r.pv_price, "v2g": r.v2g_price, "grid": r.price}.get(p.source)
        assert p.cost == pytest.approx(0.0 if price is None else float(price @ x), abs=1e-9)
        # a V2G seller never goes below max(50 %, its target) and sells within its power
        if r.v2g_sold[i].any():
            assert v.v2g and v.soh >= 80 and v.need_kwh == 0
            left = v.energy_kwh - r.v2g_sold[i].sum() / v.efficiency
            assert left >= max(0.5, v.target_soc) * v.capacity_kwh - 1e-9
            assert (r.v2g_sold[i] <= v.power_kw * hours * (1 + 1e-12)).all()
    assert_allclose(r.load, grid_load, atol=1e-9)
    assert_allclose(r.price, g.base_price + g.mu * (grid_load - g.forecast))
    # PV energy is conserved: sold to vehicles plus sold to the grid is the production
    assert_allclose(r.pv_sold + r.pv_to_grid, day.pv_production, atol=1e-9)
    assert (r.pv_to_grid >= -1e-9).all()
    assert r.equilibrium.converged
