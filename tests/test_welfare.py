"""P1 solver: cross-checked against cvxpy, KKT conditions, feasibility, and edge cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evtrade.bench import binding_problem
from evtrade.errors import SolverError
from evtrade.market import p1_newton
from evtrade.market.objectives import buyer_utility, eta_welfare, seller_cost, swm2_welfare
from evtrade.market.p1_newton import FEAS_RTOL, feasibility_violation
from evtrade.market.welfare import P1Problem, kkt_residual, solve_p1, welfare_value

from .conftest import cvxpy_p1, random_problem
from .p1_lp import min_shortfall


def assert_feasible(p: P1Problem, x: np.ndarray, tol: float = 1e-9) -> None:
    assert np.all(x >= 0)
    assert np.all(x[~p.mask] == 0)
    X = x.sum(axis=1)
    scale = max(1.0, float(p.b_max.max()), float(p.cap.max()))
    assert np.all(p.b_min - tol * scale <= X), "(12) lower"
    assert np.all(p.b_max + tol * scale >= X), "(12) upper"
    assert np.all(p.g * x.sum(axis=0) <= p.cap + tol * scale), "(13)"


def assert_kkt(p: P1Problem, x: np.ndarray, mu: np.ndarray, tol: float = 1e-6) -> None:
    """KKT of P1 from the volumes and seller prices alone (independent of the solver's internals).

    Reduced gain r_ij = U_i'(X_i) - (2 a_j x_ij + e_j + g_j mu_j). Optimality: for each buyer a
    multiplier nu_i with r_ij + nu_i = 0 where x_ij > 0 and <= 0 where x_ij = 0; nu_i > 0 only at
    X_i = b_min, nu_i < 0 only at X_i = b_max. Sellers: mu_j >= 0 and mu_j = 0 unless full.
    """
    X = x.sum(axis=1)
    scale = max(1.0, float(p.b_max.max()))
    assert np.all(mu >= 0)
    load = p.g * x.sum(axis=0)
    slack = p.cap - load
    assert np.all(mu * np.maximum(slack, 0) <= tol * max(1.0, float(p.cap.max()))), "mu on slack"
    for i in range(p.mask.shape[0]):
        if X[i] <= 0 and p.b_min[i] == 0:
            # A buyer taking nothing: its marginal utility w_i must not beat any partner's price.
            r = p.w[i] - (p.e + p.g * mu)
            assert np.all(r[p.mask[i]] <= tol), f"buyer {i} should buy"
            continue
        r = p.w[i] / (X[i] - p.b_min[i] + 1) - (2 * p.a * x[i] + p.e + p.g * mu)
        pos = x[i] > 1e-9 * scale
        if not np.any(pos):
            continue
        nu = -float(np.mean(r[pos]))
        assert np.allclose(r[pos] + nu, 0, atol=tol), f"buyer {i}: unequal marginal on active"
        assert np.all(r[p.mask[i] & ~pos] + nu <= tol), f"buyer {i}: a cheaper seller is idle"
        at_min = X[i] <= p.b_min[i] + 1e-7 * scale
        at_max = X[i] >= p.b_max[i] - 1e-7 * scale
        if nu > tol:
            assert at_min, f"buyer {i}: nu > 0 off the lower bound"
        if nu < -tol:
            assert at_max, f"buyer {i}: nu < 0 off the upper bound"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("supply", [1.0, 0.25])
def test_matches_cvxpy(seed: int, supply: float) -> None:
    rng = np.random.default_rng(seed)
    p = random_problem(rng, 7, 6, supply=supply)
    assert min_shortfall(p) <= 1e-9  # every draw here is feasible: the solver must succeed
    sol = solve_p1(p)
    ref, _ = cvxpy_p1(p)
    assert_feasible(p, sol.x)
    # Never worse than the generic solver, and equal to within its accuracy.
    assert sol.welfare >= ref - 1e-7 * abs(ref)
    assert abs(sol.welfare - ref) <= 1e-6 * max(1.0, abs(ref))
    assert abs(sol.duality_gap) <= 1e-7 * max(1.0, abs(sol.welfare))
    assert_kkt(p, sol.x, sol.mu)


def _property_cases(count: int = 40) -> list[tuple[int, int, int, float]]:
    """The property test's cases, drawn once from a fixed generator: the same on every machine.

    (Hypothesis's "derandomised" examples depend on its version and the machine, so a failure seen
    on one machine could not be replayed on another.)
    """
    rng = np.random.default_rng(20261129)
    supplies = (0.2, 0.5, 1.0, 3.0)
    return [
        (
            int(rng.integers(0, 10_001)),
            int(rng.integers(1, 10)),
            int(rng.integers(1, 10)),
            supplies[int(rng.integers(0, 4))],
        )
        for _ in range(count)
    ]


# Issue 11: seed 674 (9 x 2, supply 0.5) failed on another machine with a duality gap of -3.7e-8;
# seeds 9670 and 9064 give -9.5e-8 and -3.8e-8 here. In each, the Newton point stops with seller
# loads ~1e-8 above capacity; the repair then has to push buyers ~1e-8 kWh below b_min, and the
# welfare of that infeasible point exceeds D(mu). Fixed by certifying feasible points only.
REGRESSION_CASES = [(674, 9, 2, 0.5), (9670, 9, 2, 0.5), (9064, 9, 2, 0.5)]


@pytest.mark.parametrize(("seed", "n", "m", "supply"), REGRESSION_CASES + _property_cases())
def test_kkt_and_feasibility_property(seed: int, n: int, m: int, supply: float) -> None:
    p = random_problem(np.random.default_rng(seed), n, m, supply=supply)
    try:
        sol = solve_p1(p)
    except SolverError:
        # Infeasible draws must really be infeasible: no volumes meet every b_min (HiGHS on
        # (12)-(14)); the infeasible cases miss by >= 0.09 kWh, the feasible ones by 0.
        assert p.b_min.sum() > 0
        assert min_shortfall(p) > 1e-6 * max(1.0, float(p.b_max.max()))
        return
    assert_feasible(p, sol.x, tol=FEAS_RTOL)
    assert_kkt(p, sol.x, sol.mu)
    # Weak duality: for feasible volumes the gap is >= 0 up to rounding, and a breach of at most
    # FEAS_RTOL of the scale can overstate the welfare by ~FEAS_RTOL x scale x max U' (~1e-8
    # here at worst; the infeasible points of issue 11 were 100x further off).
    assert sol.duality_gap >= -1e-9 * max(1.0, abs(sol.welfare))
    assert sol.duality_gap <= 1e-7 * max(1.0, abs(sol.welfare))


def test_negative_gap_regression_is_certified_feasible() -> None:
    """Issue 11's case class: the certificate refuses an infeasible repaired Newton point."""
    p = random_problem(np.random.default_rng(9670), 9, 2, supply=0.5)
    sol = solve_p1(p)
    assert feasibility_violation(sol.x, p.b_min, p.b_max, p.g, p.cap) <= FEAS_RTOL
    assert sol.duality_gap >= -1e-12 * max(1.0, abs(sol.welfare))  # the safeguard's point
    assert kkt_residual(p, sol.x, sol.mu) <= 1e-9


def test_larger_market_against_cvxpy() -> None:
    p = random_problem(np.random.default_rng(99), 40, 35, supply=0.3)
    sol = solve_p1(p)
    ref, _ = cvxpy_p1(p)
    assert_feasible(p, sol.x)
    assert abs(sol.welfare - ref) <= 1e-6 * abs(ref)


def test_binding_capacity_shares_seller() -> None:
    # Two identical buyers, one seller with 10 kWh deliverable at rho = 0.25: each gets half.
    p = P1Problem.from_arrays(
        mask=np.ones((2, 1), bool),
        w=np.array([3.0, 3.0]),
        b_min=np.zeros(2),
        b_max=np.array([20.0, 20.0]),
        rho=np.array([0.25]),
        spare=np.array([12.5]),
        l1=0.0025,
        l2=0.005,
    )
    sol = solve_p1(p)
    np.testing.assert_allclose(sol.x[:, 0], [5.0, 5.0], atol=1e-9)
    assert sol.mu[0] > 0


def test_unconstrained_closed_form() -> None:
    # One buyer, one seller, no binding bounds: w/(x+1) = 2 a x + e (a quadratic).
    w, rho, l1, l2 = 2.0, 0.1, 0.05, 0.1
    a, e = l1 * rho, l2 * rho
    x_star = (-(2 * a + e) + np.sqrt((2 * a + e) ** 2 + 8 * a * (w - e))) / (4 * a)
    p = P1Problem.from_arrays(
        mask=np.ones((1, 1), bool),
        w=np.array([w]),
        b_min=np.zeros(1),
        b_max=np.array([1e3]),
        rho=np.array([rho]),
        spare=np.array([1e4]),
        l1=l1,
        l2=l2,
    )
    sol = solve_p1(p)
    np.testing.assert_allclose(sol.x[0, 0], x_star, rtol=1e-12)
    assert welfare_value(p, sol.x) == pytest.approx(sol.welfare)


def test_equal_bounds_and_zero_willingness() -> None:
    p = P1Problem.from_arrays(
        mask=np.ones((2, 2), bool),
        w=np.array([0.0, 4.0]),
        b_min=np.array([3.0, 5.0]),
        b_max=np.array([3.0, 9.0]),
        rho=np.array([0.1, 0.2]),
        spare=np.array([6.0, 6.0]),
        l1=0.0025,
        l2=0.005,
    )
    sol = solve_p1(p)
    assert sol.x[0].sum() == pytest.approx(3.0, abs=1e-9)
    assert_feasible(p, sol.x)
    ref, _ = cvxpy_p1(p)
    assert sol.welfare == pytest.approx(ref, rel=1e-6)


def test_infeasible_problem_raises() -> None:
    p = P1Problem.from_arrays(
        mask=np.ones((1, 1), bool),
        w=np.ones(1),
        b_min=np.array([10.0]),
        b_max=np.array([12.0]),
        rho=np.array([0.1]),
        spare=np.array([5.0]),
        l1=0.0025,
        l2=0.005,
    )
    with pytest.raises(SolverError):
        solve_p1(p)


def test_bad_problem_shapes() -> None:
    with pytest.raises(ValueError, match="b_min"):
        P1Problem(
            mask=np.ones((2, 1), bool),
            w=np.ones(2),
            b_min=np.ones(3),
            b_max=np.ones(2),
            a=np.ones(1),
            e=np.ones(1),
            g=np.ones(1),
            cap=np.ones(1),
        )


tight_problem = binding_problem  # dense, every capacity binds (the benchmark's case)


@pytest.mark.parametrize(("n", "m"), [(60, 50), (150, 200)])
def test_dual_newton_certifies_binding_markets(n: int, m: int) -> None:
    p = tight_problem(n, m, seed=n + m)
    sol = solve_p1(p)
    assert sol.method == "p1-dual-newton"
    assert np.all(sol.mu > 0)  # every capacity binds: the Newton path, not the free market
    assert_feasible(p, sol.x)
    assert sol.duality_gap <= 1e-9 * abs(sol.welfare)
    assert kkt_residual(p, sol.x, sol.mu) <= 1e-8
    if n <= 60:
        ref, _ = cvxpy_p1(p)
        assert sol.welfare >= ref - 1e-7 * abs(ref)


def test_flat_dual_exclusive_buyers_at_bounds() -> None:
    # Buyers whose only partner is seller 0 sit at b_max while its price rises: D is linear in
    # mu_0 over a long stretch (zero curvature), which once stalled the Newton method.
    mask = np.zeros((5, 3), bool)
    mask[:3, 0] = True
    mask[3, [0, 1]] = True
    mask[4, [1, 2]] = True
    p = P1Problem.from_arrays(
        mask=mask,
        w=np.array([2.5, 2.6, 2.4, 1.0, 1.5]),
        b_min=np.array([8.3, 6.7, 6.2, 8.0, 7.0]),
        b_max=np.array([15.4, 15.6, 17.0, 14.0, 17.0]),
        rho=np.array([0.1, 0.08, 0.12]),
        spare=np.array([26.0, 60.0, 60.0]),
        l1=0.0025,
        l2=0.005,
    )
    sol = solve_p1(p)
    assert sol.method == "p1-dual-newton"
    ref, _ = cvxpy_p1(p)
    assert sol.welfare == pytest.approx(ref, rel=1e-6)
    assert kkt_residual(p, sol.x, sol.mu) <= 1e-8


def test_interior_point_safeguard(monkeypatch: pytest.MonkeyPatch) -> None:
    # If the Newton method returns an uncertified point, the interior point takes over.
    import evtrade.market.welfare as wmod

    p = tight_problem(30, 25, seed=3)
    good = solve_p1(p)
    real = wmod._dual_newton

    def crippled(prob: P1Problem, mu: np.ndarray, **kw: Any) -> object:
        if kw["max_iter"] == 60:  # the main path; the polish after the interior point runs fully
            kw["max_iter"] = 1
        return real(prob, mu, **kw)

    monkeypatch.setattr(wmod, "_dual_newton", crippled)
    sol = solve_p1(p)
    assert sol.method == "p1-interior-point+dual-newton"
    assert sol.welfare == pytest.approx(good.welfare, rel=1e-9)
    assert_feasible(p, sol.x)


def test_kkt_residual_detects_suboptimal_volumes() -> None:
    p = tight_problem(40, 30, seed=8)
    sol = solve_p1(p)
    assert kkt_residual(p, sol.x, sol.mu) <= 1e-9
    shifted = sol.x.copy()
    i = int(np.argmax(sol.x.sum(axis=1)))
    j, k = np.flatnonzero(sol.x[i] > 0)[:2]
    shifted[i, j] += 0.5  # move energy between two of the buyer's sellers: still feasible-ish
    shifted[i, k] -= min(0.5, shifted[i, k])
    assert kkt_residual(p, shifted, sol.mu) > 1e-4
    assert kkt_residual(p, sol.x, sol.mu * 1.5) > 1e-4  # wrong prices


def test_eta_welfare_by_hand_and_over_a_batch() -> None:
    """Eq. (11) on a 2 x 2 market by hand; a stack of markets gives each market's value."""
    x = np.array([[1.0, 2.0], [0.0, 3.0]])
    w, b_min, rho = np.array([2.0, 1.0]), np.array([1.0, 0.0]), np.array([0.1, 0.2])
    util = 2.0 * np.log(3.0 - 1.0 + 1.0) + 1.0 * np.log(3.0 + 1.0)
    loss = 0.1 * (0.0025 * 1.0 + 0.005 * 1.0) + 0.2 * (0.0025 * 13.0 + 0.005 * 5.0)
    assert float(eta_welfare(x, w, b_min, rho, 0.0025, 0.005)) == pytest.approx(util - loss)
    # a buyer out of the round counts no utility (its volumes still cost their loss)
    out = float(eta_welfare(x, w, b_min, rho, 0.0025, 0.005, in_round=np.array([True, False])))
    assert out == pytest.approx(2.0 * np.log(3.0) - loss)
    # folded coefficients a = l1 rho, e = l2 rho with rho = 1: the solvers' form
    folded = eta_welfare(x, w, b_min, 1.0, 0.0025 * rho, 0.005 * rho, squares="einsum")
    assert float(folded) == pytest.approx(util - loss, rel=1e-15)
    rng = np.random.default_rng(3)
    xs = rng.uniform(0, 2, (5, 4, 3))
    ws, bs, rhos = rng.uniform(0, 5, (5, 4)), rng.uniform(0, 1, (5, 4)), rng.uniform(0, 1, (5, 3))
    stacked = eta_welfare(xs, ws, bs, rhos, 0.0025, 0.005)
    each = [float(eta_welfare(xs[b], ws[b], bs[b], rhos[b], 0.0025, 0.005)) for b in range(5)]
    assert np.array_equal(stacked, each)


def test_swm2_welfare_is_utility_minus_seller_cost() -> None:
    """BABG eq. (12): utilities of the served buyers minus sum_j l1 S_j^2 + l2 S_j (eq. 4)."""
    s = np.array([[1.0, 0.0], [2.0, 4.0]])
    d = 0.9 * s
    w, d_min = np.array([1.0, 3.0]), np.array([0.5, 10.0])  # buyer 2 gets 5.4 < 10: unserved
    cost = 0.0025 * (9.0 + 16.0) + 0.005 * (3.0 + 4.0)
    assert float(seller_cost(s, l1=0.0025, l2=0.005)) == pytest.approx(cost)
    expect = 1.0 * np.log(0.9 - 0.5 + 1.0) - cost
    assert float(swm2_welfare(s, d, w, d_min, l1=0.0025, l2=0.005)) == pytest.approx(expect)
    assert float(buyer_utility(d.sum(axis=1), w, d_min, np.array([True, False]))) == (
        pytest.approx(np.log(1.4))
    )


def test_buyer_totals_solve_the_water_filling_equation() -> None:
    """lambda solves A lambda - B = clip(b_min - 1 + w / lambda, b_min, b_max) (shared kernel)."""
    rng = np.random.default_rng(5)
    A, B = rng.uniform(0.5, 50, 200), rng.uniform(0, 5, 200)  # B = sum k_j c_j >= 0
    w, b_min = rng.uniform(0.1, 5, 200), rng.uniform(0, 3, 200)
    b_max = b_min + rng.uniform(0, 10, 200)
    lam = p1_newton.buyer_totals(A, B, w, b_min, b_max)
    demand = np.clip(b_min - 1.0 + w / lam, b_min, b_max)
    np.testing.assert_allclose(A * lam - B, demand, rtol=1e-9, atol=1e-9)


def test_certificate_needs_feasibility_and_a_closed_gap() -> None:
    assert p1_newton.certified(0.0, 100.0 + 5e-8, 100.0)
    assert not p1_newton.certified(0.0, 100.0 + 1e-6, 100.0)  # gap 1e-8 of the welfare
    assert not p1_newton.certified(1e-9, 100.0, 100.0)  # infeasible: weak duality says nothing
    both = p1_newton.certified(np.array([0.0, 1e-9]), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    assert both.tolist() == [True, False]
