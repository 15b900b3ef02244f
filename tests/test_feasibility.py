"""The exclusion rule for unservable minimum demands, in isolation, cross-checked against an LP.

The buyers' minimums b_i^min can all be met at once exactly when a transport LP is feasible:
x_ij >= 0 on tradable pairs, sum_j x_ij >= b_i^min, sum_i x_ij <= deliverable_j (Hall's condition
for the bipartite supply graph). ``scipy.optimize.linprog(method="highs")`` decides that
independently of the maximum flow the rule uses.
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.optimize import linprog

from evtrade.market.feasibility import exclude_unservable_buyers, proportional_fits


def _arr(values: list[float]) -> NDArray[np.float64]:
    return np.asarray(values, dtype=float)


def _lp_feasible(
    mask: NDArray[np.bool_], b_min: NDArray[np.float64], deliverable: NDArray[np.float64]
) -> bool:
    """Whether every buyer's b_min can be met at once (a transport LP, HiGHS)."""
    n, m = mask.shape
    pairs = list(zip(*np.nonzero(mask), strict=True))
    need = [i for i in range(n) if b_min[i] > 0]
    if any(not mask[i].any() for i in need):
        return False
    if not pairs:
        return True
    a_ub = np.zeros((len(need) + m, len(pairs)))
    b_ub = np.zeros(len(need) + m)
    for k, (i, j) in enumerate(pairs):
        if i in need:
            a_ub[need.index(i), k] = -1.0
        a_ub[len(need) + j, k] = 1.0
    b_ub[: len(need)] = -b_min[need]
    b_ub[len(need) :] = np.maximum(deliverable, 0.0)
    res = linprog(np.zeros(len(pairs)), A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    assert res.status in (0, 2), res.message  # 0 feasible, 2 infeasible; nothing else
    return bool(res.status == 0)


def _exclude(
    mask: list[list[bool]], b_min: list[float], deliverable: list[float], w: list[float]
) -> dict[int, str]:
    ids = [f"b{i}" for i in range(len(b_min))]
    return exclude_unservable_buyers(
        np.asarray(mask, dtype=bool), _arr(b_min), _arr(deliverable), _arr(w), ids
    )


def test_a_feasible_market_excludes_nobody() -> None:
    assert _exclude([[True, False], [True, True]], [5.0, 8.0], [6.0, 10.0], [1.0, 1.0]) == {}


def test_a_buyer_without_partner_is_excluded_only_when_it_needs_energy() -> None:
    out = _exclude([[False, False], [False, False], [True, True]], [2.0, 0.0, 1.0], [5, 5], [1] * 3)
    assert list(out) == [0]
    assert out[0] == "excluded: no seller can trade with this buyer (price, distance or energy)"


def test_the_hall_violator_loses_its_largest_minimum_not_the_markets_largest() -> None:
    # Buyers 0 and 1 share seller 0 (10 kWh) and need 6 + 7; buyer 2 needs 50 and can also use
    # seller 1 (100 kWh). Total supply covers total demand, but {0, 1} violates Hall's
    # condition: the rule blames that set and drops its largest minimum, buyer 1 (7 kWh).
    mask = [[True, False], [True, False], [True, True]]
    out = _exclude(mask, [6.0, 7.0, 50.0], [10.0, 100.0], [1.0, 1.0, 1.0])
    assert list(out) == [1]
    assert out[1].startswith("excluded: minimum demand b_min=7 kWh cannot be met")


def test_ties_go_to_the_lower_willingness_then_to_the_smaller_id() -> None:
    mask = [[True], [True], [True]]
    # Equal minimums 6 + 6 + 6 on 12 kWh: one must go; w decides (lowest w is excluded).
    assert list(_exclude(mask, [6.0, 6.0, 6.0], [12.0], [3.0, 1.0, 2.0])) == [1]
    # Equal w too: the smaller id ("b0") goes.
    assert list(_exclude(mask, [6.0, 6.0, 6.0], [12.0], [2.0, 2.0, 2.0])) == [0]


def test_exclusion_repeats_until_the_rest_fits() -> None:
    # One seller of 10 kWh, minimums 8, 7, 5: drop 8 (15 > 10), then 7 (12 > 10), keep 5.
    out = _exclude([[True], [True], [True]], [8.0, 7.0, 5.0], [10.0], [1.0, 1.0, 1.0])
    assert sorted(out) == [0, 1]


def test_proportional_certificate_is_sound() -> None:
    mask = np.array([[True, True], [False, True]])
    active = np.array([True, True])
    # Buyer 0 spreads 4 kWh as 2 + 2, buyer 1 puts 2 on seller 1: loads 2 and 4 of 5 fit.
    assert bool(proportional_fits(mask, _arr([4.0, 2.0]), _arr([5.0, 5.0]), active))
    # Buyer 1 alone needs 7 of seller 1's 5: infeasible, so no certificate.
    assert not bool(proportional_fits(mask, _arr([4.0, 7.0]), _arr([5.0, 5.0]), active))


@st.composite
def _markets(
    draw: st.DrawFn,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 4))
    mask = np.array([[draw(st.booleans()) for _ in range(m)] for _ in range(n)], dtype=bool)
    # Whole kWh: the LP's verdict is then never within the flow's rounding of the boundary.
    b_min = _arr([draw(st.integers(0, 10)) for _ in range(n)])
    deliverable = _arr([draw(st.integers(0, 20)) for _ in range(m)])
    w = _arr([draw(st.integers(0, 5)) for _ in range(n)])
    return mask, b_min, deliverable, w


@given(_markets(), st.randoms())
def test_rule_agrees_with_the_lp_and_ignores_listing_order(
    market: tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    rnd: random.Random,
) -> None:
    mask, b_min, deliverable, w = market
    n, m = mask.shape
    ids = [f"b{i}" for i in range(n)]
    out = exclude_unservable_buyers(mask, b_min, deliverable, w, ids)
    feasible = _lp_feasible(mask, b_min, deliverable)
    # The O(NM) certificate is sound: when it says the minimums fit, the LP agrees.
    if bool(proportional_fits(mask, b_min, deliverable, b_min > 0)):
        assert feasible
    # Nobody is excluded exactly when every minimum can be met (Hall's condition holds).
    assert (out == {}) == feasible
    # Only buyers that need energy are excluded, and what remains is feasible.
    assert all(b_min[i] > 0 for i in out)
    keep = np.array([i not in out for i in range(n)])
    assert _lp_feasible(mask[keep], b_min[keep], deliverable)
    # The verdict names buyers, not positions: shuffling buyers and sellers changes nothing.
    pb = list(range(n))
    ps = list(range(m))
    rnd.shuffle(pb)
    rnd.shuffle(ps)
    shuffled = exclude_unservable_buyers(
        mask[np.ix_(pb, ps)], b_min[pb], deliverable[ps], w[pb], [ids[i] for i in pb]
    )
    assert {ids[pb[k]]: why for k, why in shuffled.items()} == {ids[i]: out[i] for i in out}
