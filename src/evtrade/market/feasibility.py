"""The project's rule for buyers whose minimum demand b_i^min cannot be met (P1 infeasible).

ETA is silent: P1 simply has no solution when some buyer's b_i^min cannot be served. The rule:

1. A buyer with ``b_min > 0`` and no seller it may trade with (all pairs fail P* >= R*, are out
   of distance, or the sellers have no spare energy) is excluded from the round.
2. While the remaining minimum demands cannot all be met at once (a maximum flow from buyers'
   minimums through tradable pairs to sellers' deliverable energy (s^t - s^r) / (1 + rho) falls
   short), find the set of buyers the minimum cut blames (the source side: a Hall violator, buyers
   whose partners together cannot cover their minimums) and exclude, from that set, the buyer with
   the largest b_min (it frees the most energy, so the fewest buyers are excluded); ties go to the
   lower willingness w, then to the smaller id. Repeat.

The rule is deterministic and independent of the order participants are listed in. Excluded
buyers take no energy and are reported with the reason; the round clears for everybody else.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from evtrade.errors import MarketError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Flow is computed in integers (scipy); capacities are scaled to this many units.
_UNITS = 2**30
#: Bound on the exclusion rule's work: the sum over its maximum-flow passes of the edges in the
#: flow graph (about 10-20 s here). Beyond it the market is refused (docs/json-format.md#limits).
MAX_EXCLUSION_WORK = 50_000_000


def exclude_unservable_buyers(
    mask: BoolArray,
    b_min: FloatArray,
    deliverable: FloatArray,
    w: FloatArray,
    ids: list[str],
) -> dict[int, str]:
    """Return ``{buyer index: reason}`` for the buyers the rule above excludes."""
    n = mask.shape[0]
    excluded: dict[int, str] = {}
    for i in np.flatnonzero((b_min > 0) & ~mask.any(axis=1)):
        excluded[int(i)] = (
            "excluded: no seller can trade with this buyer (price, distance or energy)"
        )
    active = np.array([i not in excluded and b_min[i] > 0 for i in range(n)], dtype=bool)
    if np.any(active) and bool(proportional_fits(mask, b_min, deliverable, active)):
        return excluded
    # The rule's order (largest b_min, then lower w, then smaller id), ranked once: each pass
    # then picks its buyer in O(N) (sorting the blamed set every pass cost O(N log N) in Python).
    rank = np.empty(n, dtype=np.int64)
    rank[sorted(range(n), key=lambda i: (-b_min[i], w[i], ids[i]))] = np.arange(n)
    work = 0
    while np.any(active):
        # One maximum flow per excluded buyer: when minimums exceed supply by thousands of
        # buyers the passes add up (1e5 x 10 ran for hours), so their total size is bounded.
        work += int(np.count_nonzero(active)) + int(np.count_nonzero(mask[active])) + mask.shape[1]
        if work > MAX_EXCLUSION_WORK:
            raise MarketError(
                "market: the buyers' minimum demands exceed what their sellers can deliver by so "
                f"many buyers that the exclusion rule needs more than {MAX_EXCLUSION_WORK:.0e} "
                f"edge-passes of maximum flow ({len(excluded)} buyers excluded so far); lower "
                "b_min or split the round"
            )
        blamed = _hall_violators(mask, b_min, deliverable, active)
        if blamed is None:
            break
        cand = np.flatnonzero(blamed)
        worst = int(cand[np.argmin(rank[cand])])
        excluded[worst] = (
            f"excluded: minimum demand b_min={b_min[worst]:g} kWh cannot be met together with "
            "the other buyers' minimums by the sellers it may trade with"
        )
        active[worst] = False
    return excluded


def proportional_fits(
    mask: BoolArray, b_min: FloatArray, deliverable: FloatArray, active: BoolArray
) -> BoolArray:
    """A certificate of feasibility in O(N M): every active buyer's b_min spread over its partners
    in proportion to their deliverable energy fits every seller. When it does, the minimums can
    all be met and the maximum flow is not needed; when it does not, the flow decides.

    Works on one market (N, M) or a stack (B, N, M); returns one verdict per market.
    """
    supply = np.maximum(deliverable, 0.0)
    mf = mask.astype(float)
    reach = (mf @ supply[..., None])[..., 0]
    lonely = np.any(active & (reach <= 0), axis=-1)
    share = np.where(active & (reach > 0), b_min / np.where(reach > 0, reach, 1.0), 0.0)
    load = (share[..., None, :] @ mf)[..., 0, :] * supply
    return np.asarray(~lonely & np.all(load <= supply * (1.0 - 1e-12), axis=-1))


def _hall_violators(
    mask: BoolArray, b_min: FloatArray, deliverable: FloatArray, active: BoolArray
) -> BoolArray | None:
    """Buyers on the source side of a minimum cut when minimums cannot all be served, else None."""
    n, m = mask.shape
    rows = np.flatnonzero(active)
    demand = b_min[rows]
    supply = np.maximum(deliverable, 0.0)
    total = float(demand.sum())
    unit = max(total, float(supply.max(initial=0.0)), 1e-300) / _UNITS
    dem_int = np.ceil(demand / unit).astype(np.int64)
    sup_int = np.floor(supply / unit).astype(np.int64)
    big = int(min(dem_int.sum() + 1, 2**31 - 1))
    k = rows.size
    src, sink = 0, 1 + k + m
    sub = mask[rows]
    bi, sj = np.nonzero(sub)
    heads = np.concatenate([np.zeros(k, int), 1 + bi, 1 + k + np.arange(m)])
    tails = np.concatenate([1 + np.arange(k), 1 + k + sj, np.full(m, sink)])
    caps = np.concatenate([dem_int, np.full(bi.size, big), sup_int]).astype(np.int32)
    graph = csr_matrix((caps, (heads, tails)), shape=(sink + 1, sink + 1))
    result = maximum_flow(graph, src, sink)
    # Rounding (demands up, supplies down) may cost one unit per participant; beyond that the
    # minimums truly cannot be met.
    if result.flow_value >= dem_int.sum() - (k + m):
        return None
    flow = result.flow.tocsr()
    residual = (graph - flow).tocsr()
    residual.data = np.maximum(residual.data, 0)
    back = flow.T.tocsr()
    back.data = np.maximum(back.data, 0)
    reach_graph = (residual + back).tocsr()
    reach_graph.eliminate_zeros()
    reached = breadth_first_order(reach_graph, src, directed=True, return_predecessors=False)
    side = np.zeros(sink + 1, dtype=bool)
    side[reached] = True
    blamed = np.zeros(n, dtype=bool)
    blamed[rows] = side[1 : 1 + k]
    if not np.any(blamed):
        blamed[rows] = True
    return blamed
