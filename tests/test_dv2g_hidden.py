"""``evtrade dv2g --format json`` on seeded random scenarios, checked from the scenario file and
the JSON alone, the way an outside checker would (issue 15, "How it will be checked").

Nothing here calls the games: the grids' best responses (eq. 21 within the need of eq. 16), the
utilities (eq. 24, 25), the selection's fixed point (Algorithm 1, eq. 33) and the EVs' welfare
under a unilateral price change are recomputed in this file from their definitions
(docs/dv2g.md, "Readings of the ambiguous equations"). The scenarios vary in size, scarce and
abundant supply, with and without storage, explicit and generated (pvlib / demandlib) profiles,
per-slot and constant xi, given and default first prices. The JSON's Nash verdict is checked
both ways: no gain where it says ``nash: true``, the stated gain where it names an EV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

from evtrade.cli import app

FloatArray = NDArray[np.float64]
#: Seeds below 1000 small (2 to 9 EVs), from 1000 larger; 34, 58, 114: scarce slots where the
#: clearing prices are not a Nash equilibrium (an EV with market power gains by raising its price).
SEEDS = (*range(12), 34, 58, 114, 1000, 1001)
#: Relative accuracy of what the JSON restates (sums, products, the grids' responses).
EXACT = 1e-9


def _scenario(seed: int) -> dict[str, Any]:
    """Seeded scenario: even seeds scarce (needs far above supply), odd abundant; seeds 0 mod 3
    with storage (EVs' own unit costs: distinct floors); 4 mod 5 generated profiles over 24 h;
    from seed 1000 on larger (30 to 60 EVs, 5 to 12 grids)."""
    rng = np.random.default_rng(seed)
    scarce, storage, generated = seed % 2 == 0, seed % 3 == 0, seed % 5 == 4
    t = 24 if generated else int(rng.integers(2, 7))
    if seed >= 1000:
        m, n = int(rng.integers(30, 61)), int(rng.integers(5, 13))
    else:
        m, n = int(rng.integers(2, 10)), int(rng.integers(1, 5))
    evs, grids = [], []
    for k in range(m):
        ev: dict[str, Any] = {"id": f"EV{k}"}
        if generated:
            ev["production_kw"] = {"peak_kw": round(float(rng.uniform(2, 6)), 3)}
            ev["consumption_kw"] = {"daily_kwh": round(float(rng.uniform(4, 10)), 3)}
        else:
            on = rng.random(t) < 0.8
            ev["production_kw"] = (rng.uniform(0.5, 6, t) * on).round(3).tolist()
            ev["consumption_kw"] = rng.uniform(0.3, 2, t).round(3).tolist()
        if rng.random() < 0.5:
            ev["price"] = round(float(rng.uniform(0.1, 0.5)), 3)
        if storage:
            ev["esu"] = {"unit_cost": round(float(rng.uniform(1000, 5000)), 1)}
        evs.append(ev)
    scale = (rng.uniform(20, 60) if scarce else rng.uniform(0.2, 0.6)) * m / n
    for k in range(n):
        grid: dict[str, Any] = {"id": f"G{k}", "kappa": round(float(rng.uniform(0.02, 0.2)), 4)}
        if generated:
            grid["production_kw"] = [0.0] * t
            grid["consumption_kw"] = {"daily_kwh": round(float(24 * scale), 3)}
        else:
            grid["production_kw"] = (rng.uniform(0, 0.2, t) * scale).round(3).tolist()
            grid["consumption_kw"] = (rng.uniform(0.5, 1.0, t) * scale).round(3).tolist()
        xi = rng.uniform(0.3, 0.6, t).round(4)
        grid["xi"] = xi.tolist() if rng.random() < 0.5 else float(xi[0])
        grids.append(grid)
    esu = {"capacity_kwh": 10} if storage else {"capacity_kwh": 0}
    return {"slots": {"count": t}, "seed": seed, "esu": esu, "evs": evs, "grids": grids}


def _run(tmp_path: Path, scenario: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    result = CliRunner().invoke(app, ["dv2g", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    record: dict[str, Any] = json.loads(result.stdout)
    return record


class Grids:
    """The slot's buying grids (xi, kappa, need as arrays) and their answer to EV prices."""

    def __init__(self, grids: list[dict[str, Any]]) -> None:
        self.xi = np.array([g["xi"] for g in grids], dtype=float)
        self.kappa = np.array([g["kappa"] for g in grids], dtype=float)
        self.need = np.array([g["need_kwh"] for g in grids], dtype=float)

    def moments(self, price: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For prices (K, M): P_m = sum_n p_nm (the demand of a full selection), A_m = sum_n
        (xi_n - varpi_m) p_nm and B_m = sum_n kappa_n p_nm^2 / 2, with the best response
        p_nm = clip((xi_n - varpi_m) / kappa_n, 0, G_n) (eq. 21, 16)."""
        margin = self.xi[None, :, None] - price[:, None, :]
        p = np.clip(margin / self.kappa[None, :, None], 0.0, self.need[None, :, None])
        total = p.sum(axis=1)
        a = (margin * p).sum(axis=1)
        b = 0.5 * (self.kappa[None, :, None] * p * p).sum(axis=1)
        return total, a, b


def _share_at_level(c: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """The share r in (0, 1] at which the grids' utility from an EV, r A - r^2 B, equals c
    (the root on the rising branch; r = c / A without the quadratic term)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        root = (a - np.sqrt(np.maximum(a * a - 4.0 * b * c, 0.0))) / (2.0 * b)
        r = np.where(b > 1e-300, root, c / np.maximum(a, 1e-300))
    return np.clip(r, 1e-300, 1.0)


def selection(
    total: FloatArray, a: FloatArray, b: FloatArray, supply: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Algorithm 1's evolutionary equilibrium for K price vectors ((K, M) moments), by
    water-filling: each EV's utility u(Q) = r A - r^2 B, r = min(1, B_s / (Q P)), is flat (the
    full welfare W = A - B) up to Q = B_s / P and falls beyond; the level c has
    sum_m Q_m(c) = 1, EVs with W below it are dropped, a tie at W = c takes what is left at one
    rate; uniform where nobody buys. Returns Q (K, M) and c (K,)."""
    buying = total > 0
    full = np.where(buying, a - b, -np.inf)
    cap = np.where(buying, supply / np.where(buying, total, 1.0), 0.0)
    lo = np.zeros(len(total))
    hi = np.maximum(full.max(axis=1), 0.0)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        above = full > mid[:, None]
        rationed = cap / _share_at_level(np.broadcast_to(mid[:, None], a.shape), a, b)
        up = np.where(above, rationed, 0.0).sum(axis=1) >= 1.0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    above = full > hi[:, None]
    level = np.broadcast_to(hi[:, None], a.shape)
    q = np.where(above, cap / _share_at_level(level, a, b), 0.0)
    tie = buying & ~above & (full >= lo[:, None])
    room = np.where(tie, cap, 0.0).sum(axis=1, keepdims=True)
    rate = np.clip((1.0 - q.sum(axis=1, keepdims=True)) / np.maximum(room, 1e-300), 0.0, 1.0)
    q = np.where(tie, cap * rate, q)
    nobody = ~buying.any(axis=1, keepdims=True)
    return np.where(nobody, 1.0 / total.shape[1], q), hi


def _ev_welfare(price: FloatArray, floor: float, sold: FloatArray) -> FloatArray:
    """An EV's welfare: revenue less degradation cost, (varpi - omega) x sold."""
    return (price - floor) * sold


def _check_restated(slot: dict[str, Any], grids: Grids) -> None:
    """What the JSON restates is what the definitions give at its prices and probabilities."""
    evs = slot["evs"]
    price = np.array([[e["price"] for e in evs]])
    total, a, b = (x[0] for x in grids.moments(price))
    for k, e in enumerate(evs):
        assert e["full_demand_kwh"] == pytest.approx(total[k], rel=EXACT, abs=1e-12)
        assert e["full_welfare"] == pytest.approx(a[k] - b[k], rel=EXACT, abs=1e-12)
        demand = e["probability"] * total[k]
        assert e["demand_kwh"] == pytest.approx(demand, rel=EXACT, abs=1e-12)  # eq. 20
        assert e["sold_kwh"] == pytest.approx(min(demand, e["supply_kwh"]), rel=EXACT, abs=1e-12)
        r = min(1.0, e["supply_kwh"] / demand) if demand > 0 else 1.0  # eq. 19, 22, 23
        assert e["share"] == pytest.approx(r, rel=EXACT)
        assert e["utility"] == pytest.approx(r * a[k] - r * r * b[k], rel=1e-8, abs=1e-12)
        assert e["revenue"] == pytest.approx(e["price"] * e["sold_kwh"], rel=EXACT, abs=1e-15)
        assert e["welfare"] == pytest.approx(
            (e["price"] - e["floor"]) * e["sold_kwh"], rel=EXACT, abs=1e-15
        )
    q = np.array([e["probability"] for e in evs])
    u = np.array([e["utility"] for e in evs])
    assert slot["average_utility"] == pytest.approx(float(q @ u), rel=1e-8, abs=1e-12)
    sold = sum(e["sold_kwh"] for e in evs)
    for key, value in (
        ("supply_kwh", sum(e["supply_kwh"] for e in evs)),
        ("demand_kwh", sum(e["demand_kwh"] for e in evs)),
        ("sold_kwh", sold),
        ("need_kwh", float(grids.need.sum())),
        ("ev_revenue", sum(e["revenue"] for e in evs)),
        ("welfare", slot["grid_welfare"] + slot["ev_revenue"]),
    ):
        assert slot[key] == pytest.approx(value, rel=EXACT, abs=1e-12), key
    bought = [g["bought_kwh"] for g in slot["grids"]]
    assert sum(bought) == pytest.approx(sold, rel=1e-8, abs=1e-12)  # what is sold is bought
    assert all(0 <= x <= g + 1e-9 * max(g, 1) for x, g in zip(bought, grids.need, strict=True))


def _check_equilibrium(slot: dict[str, Any], grids: Grids, options: dict[str, float]) -> None:
    """Simplex, eq. 33 at the fixed point, the level c, prices within bounds, and eq. 40:
    every EV's demand meets its supply or its price sits at its floor."""
    evs = slot["evs"]
    q = np.array([e["probability"] for e in evs])
    u = np.array([e["utility"] for e in evs])
    assert (q > 0).all() and (q <= 1).all()
    assert q.sum() == pytest.approx(1.0, abs=1e-12)
    scale = max(max(abs(e["full_welfare"]) for e in evs), 1e-300)
    gap = u - slot["average_utility"]
    # Every selected EV's utility is the average, none above it (eq. 33 at tol1 of the scale).
    assert (np.maximum(q * np.abs(gap), gap) <= options["tol1"] * scale * 1.001 + 1e-15).all()
    selected = q > 1e-3
    assert (np.abs(gap[selected]) <= 1e3 * options["tol1"] * scale + 1e-12).all()
    price = np.array([[e["price"] for e in evs]])
    supply = np.array([e["supply_kwh"] for e in evs])
    _, level = selection(*grids.moments(price), supply)
    assert slot["average_utility"] == pytest.approx(level[0], rel=1e-5, abs=1e-5 * scale)
    top = max(float(grids.xi.max(initial=0.0)), 0.0)
    for e in evs:
        assert e["floor"] <= e["price"] <= max(top, e["floor"]) + 1e-12, e
        clears = abs(e["demand_kwh"] - e["supply_kwh"]) <= options["tol2"] * e["supply_kwh"]
        at_floor = e["price"] <= e["floor"] + 1e-12 and e["demand_kwh"] <= e["supply_kwh"]
        # Cleared to the price's float resolution: demand jumps across the supply between this
        # price and the next float, so the EV sells its whole supply here (docs/dv2g.md).
        resolved = slot["convergence"]["price_resolution"] and (
            e["sold_kwh"] >= (1 - options["tol2"]) * e["supply_kwh"]
        )
        assert clears or at_floor or resolved, e


def _excess_supply_at_a_floor(evs: list[dict[str, Any]], tol2: float) -> bool:
    """Some EV sits at its floor with supply left unsold (the slot clears at the floors)."""
    return any(
        e["price"] <= e["floor"] and e["demand_kwh"] < (1 - tol2) * e["supply_kwh"] for e in evs
    )


def _deviation_gains(
    slot: dict[str, Any], grids: Grids, tol2: float, *, exempt: bool = True
) -> tuple[dict[int, float], int]:
    """Per seller: the most its welfare rises when it alone moves its price to one of 25 points
    across [omega, max xi] or 1, 5, 20 % either way, the grids answering with the evolutionary
    equilibrium at the new prices (:func:`selection`); and how many moves were left out.

    Left out if ``exempt`` (Bertrand-Edgeworth, docs/dv2g.md): where supply exceeds demand at a
    floor, a move to a price at which the EV is pivotal, the rivals priced no higher unable to
    serve the grids' demand without it. It keeps a residual demand there, so it may gain, and the
    price game has no pure equilibrium that also clears (eq. 40).
    """
    evs = slot["evs"]
    price = np.array([e["price"] for e in evs])
    supply = np.array([e["supply_kwh"] for e in evs])
    top = max(float(grids.xi.max(initial=0.0)), 0.0)
    competitive = exempt and _excess_supply_at_a_floor(evs, tol2)
    gains, left_out = {}, 0
    for m, e in enumerate(evs):
        low, high = e["floor"], max(top, e["floor"])
        local = e["price"] * np.array([0.8, 0.95, 0.99, 1.01, 1.05, 1.2])
        moves = np.clip(np.concatenate([np.linspace(low, high, 25), local]), low, high)
        prices = np.repeat(price[None, :], len(moves), axis=0)
        prices[:, m] = moves
        total, a, b = grids.moments(prices)
        q, _ = selection(total, a, b, supply)
        sold = np.minimum(q[:, m] * total[:, m], supply[m])
        cheaper = (prices <= moves[:, None]) & (np.arange(len(evs)) != m)
        pivotal = (np.where(cheaper, supply, 0.0).sum(axis=1) < total[:, m]) & competitive
        left_out += int(pivotal.sum())
        kept = _ev_welfare(moves, e["floor"], sold)[~pivotal]
        gains[m] = float(kept.max(initial=e["welfare"]) - e["welfare"])
    return gains, left_out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[dict[str, Any], Any]]:
    out = {}
    for seed in SEEDS:
        scenario = _scenario(seed)
        out[seed] = (scenario, _run(tmp_path_factory.mktemp(f"s{seed}"), scenario))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_hidden_scenario_converges_and_restates_its_definitions(
    seed: int, runs: dict[int, tuple[dict[str, Any], Any]]
) -> None:
    scenario, record = runs[seed]
    assert record["converged"], [
        s["slot"] for s in record["slots"] if not s["convergence"]["converged"]
    ]
    assert len(record["slots"]) == scenario["slots"]["count"]
    ids = [e["id"] for e in scenario["evs"]]
    assert [e["id"] for e in record["evs"]] == ids
    for slot in record["slots"]:
        c = slot["convergence"]
        assert c["converged"] and c["egt_converged"]
        assert len(c["residuals"]) == c["iterations"] + 1
        assert c["residuals"][-1] == c["final_residual"]
        assert c["final_residual"] <= record["options"]["tol2"] or c["price_resolution"]
        assert c["egt_final_residual"] < record["options"]["tol1"]
        if slot["evs"]:
            _check_restated(slot, Grids(slot["grids"]))
    for m, ev in enumerate(record["evs"]):  # the day's totals per EV
        sales = [
            (e["price"], e["sold_kwh"])
            for s in record["slots"]
            for e in s["evs"]
            if e["id"] == ids[m]
        ]
        assert ev["sold_kwh"] == pytest.approx(sum(x for _, x in sales), rel=EXACT, abs=1e-12)
        assert ev["revenue"] == pytest.approx(sum(p * x for p, x in sales), rel=EXACT, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_hidden_scenario_inputs_reach_the_game(
    seed: int, runs: dict[int, tuple[dict[str, Any], Any]]
) -> None:
    """xi and kappa are the file's; without storage and with explicit profiles, each EV's supply
    and each grid's need are its surplus and deficit (eq. 13, 14 with dt = 1 h)."""
    scenario, record = runs[seed]
    explicit = isinstance(scenario["evs"][0]["production_kw"], list)
    plain = scenario["esu"]["capacity_kwh"] == 0 and explicit
    grids = {g["id"]: g for g in scenario["grids"]}
    evs = {e["id"]: e for e in scenario["evs"]}
    for t, slot in enumerate(record["slots"]):
        for g in slot["grids"]:
            xi = grids[g["id"]]["xi"]
            assert g["xi"] == (xi[t] if isinstance(xi, list) else xi)
            assert g["kappa"] == grids[g["id"]]["kappa"]
        if not plain:
            continue
        sellers = {
            k: p - c
            for k, e in evs.items()
            if (p := e["production_kw"][t]) - (c := e["consumption_kw"][t]) > 1e-12
        }
        assert {e["id"] for e in slot["evs"]} == set(sellers)
        for e in slot["evs"]:
            assert e["supply_kwh"] == pytest.approx(sellers[e["id"]], rel=1e-12)
        for g in slot["grids"]:
            deficit = grids[g["id"]]["consumption_kw"][t] - grids[g["id"]]["production_kw"][t]
            assert g["need_kwh"] == pytest.approx(deficit, rel=1e-12)


def _tolerance(slot: dict[str, Any], e: dict[str, Any], tol2: float) -> float:
    """The accuracy the loop was played to, tol2 of the EV's supply at the highest xi (as
    tests/test_dv2g.py); the JSON's own ``deviation_tolerance`` if it states one, held to about
    that."""
    ours = 2 * tol2 * max(float(g["xi"]) for g in slot["grids"]) * float(e["supply_kwh"]) + 1e-9
    stated = float(e.get("deviation_tolerance", ours))
    assert stated <= 2 * ours
    return max(stated, ours)


def _welfare_at(slot: dict[str, Any], grids: Grids, m: int, price: float) -> float:
    """EV m's welfare when it alone charges ``price`` (the grids answer by :func:`selection`)."""
    evs = slot["evs"]
    prices = np.array([[price if k == m else e["price"] for k, e in enumerate(evs)]])
    supply = np.array([e["supply_kwh"] for e in evs])
    total, a, b = grids.moments(prices)
    q, _ = selection(total, a, b, supply)
    sold = min(q[0, m] * total[0, m], supply[m])
    return float(_ev_welfare(np.array(price), evs[m]["floor"], np.array(sold)))


def _equilibrium_checks(record: dict[str, Any]) -> tuple[int, int]:
    """Every slot with sellers and buyers checked against the equilibrium conditions and its Nash
    verdict: where the JSON says ``nash: true`` no EV gains on this file's deviation grid; an EV
    it names in ``deviating`` gains its stated ``deviation_gain`` at its
    ``best_deviation_price`` (recomputed here); the others gain nothing on this grid. Where the
    JSON has no verdict (``null``: not checked), Bertrand-Edgeworth moves at a floor are left out
    (:func:`_deviation_gains`). Returns (EV-slots held to no gain, deviations verified)."""
    options = record["options"]
    held = verified = 0
    for slot in record["slots"]:
        if not slot["evs"] or not slot["grids"]:
            continue
        grids = Grids(slot["grids"])
        _check_equilibrium(slot, grids, options)
        verdict = slot.get("nash")
        deviating = set(slot.get("deviating") or ())
        assert verdict is None or verdict == (not deviating), slot["slot"]
        gains, _ = _deviation_gains(slot, grids, options["tol2"], exempt=verdict is None)
        for m, gain in gains.items():
            e = slot["evs"][m]
            tolerance = _tolerance(slot, e, options["tol2"])
            if e["id"] in deviating:
                moved = _welfare_at(slot, grids, m, e["best_deviation_price"])
                assert e["floor"] <= e["best_deviation_price"] <= float(grids.xi.max()) + 1e-12
                assert moved - e["welfare"] == pytest.approx(
                    e["deviation_gain"], rel=1e-3, abs=tolerance
                ), (slot["slot"], e["id"])
                assert e["deviation_gain"] > tolerance
                verified += 1
            else:
                assert gain <= tolerance, (slot["slot"], e["id"], gain)
                held += 1
    if any(s.get("nash") is not None for s in record["slots"]):
        verdicts = [s["nash"] for s in record["slots"] if s.get("nash") is not None]
        assert record["nash"] in (all(verdicts), None)
    return held, verified


@pytest.mark.parametrize("seed", SEEDS)
def test_hidden_scenario_is_an_equilibrium(
    seed: int, runs: dict[int, tuple[dict[str, Any], Any]]
) -> None:
    """Per slot with sellers and buyers: the selection is Algorithm 1's fixed point, eq. 40
    holds, and no EV raises its welfare by a unilateral price change beyond the accuracy the loop
    was played to, unless the JSON says so, naming the EV, its best price and gain, which are
    recomputed (:func:`_equilibrium_checks`)."""
    _equilibrium_checks(runs[seed][1])


def test_the_verdicts_are_checked_both_ways(runs: dict[int, tuple[dict[str, Any], Any]]) -> None:
    """Over all seeds most EV-slots are held to no gain and some reported deviations are
    verified (seeds 34, 58, 114); and the grid finds the gain of an EV that is not at the
    equilibrium (its price raised 30 % above the clearing one: moving back gains)."""
    held = verified = 0
    for _, record in runs.values():
        h, v = _equilibrium_checks(record)
        held, verified = held + h, verified + v
    assert held >= 100 and verified >= 3, (held, verified)
    _, record = runs[0]  # scarce: every seller clears above its floor
    slot = next(s for s in record["slots"] if len(s["evs"]) >= 2 and s["grids"])
    e = slot["evs"][0]
    assert e["price"] > e["floor"] and not _excess_supply_at_a_floor(slot["evs"], 1e-3)
    grids = Grids(slot["grids"])
    raised = {**e, "price": 1.3 * e["price"]}
    raised["welfare"] = _welfare_at(slot, grids, 0, raised["price"])
    gains, _ = _deviation_gains({**slot, "evs": [raised, *slot["evs"][1:]]}, grids, 1e-3)
    assert gains[0] > 0.01 * e["welfare"]
