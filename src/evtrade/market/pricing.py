"""Prices of the three mechanisms ETA compares, vectorised over every buyer x seller pair.

Theorem 1 is written once, in :func:`equilibrium_bid` and :func:`equilibrium_ask` (elementwise,
numpy broadcasting); every other use calls them. :func:`buyer_bid` and :func:`seller_ask` lay the
same arithmetic out over the pairs: buyers' arrays (..., N) and sellers' (..., M) give (..., N, M),
with any leading axes (rounds of a batch) shared; 1-D arrays or numbers give (N, M). Nothing loops
over pairs in Python.

The canonical expression order (issue 17: outputs stay bit for bit the same, so callers must not
rewrite it) is ``v^max / 12 + c^min / 4 + 2 v / 3`` for the bid and ``c^min / 12 + v^max / 4 +
2 c / 3`` for the ask, summed left to right. BABG's first bids (eqs. 29-30) are the same formula
written in the reverse order (``2/3 p + 1/4 r^min + p^max / 12``), which rounds differently in the
last bit; ``order="babg"`` of the same two kernels computes that order, so that BABG's outputs
keep their bits and the formula still lives here only.

References
----------
.. [ETA] Xia et al., "Bayesian-game-based V2V electricity trading in the blockchain-enabled
   Internet of Vehicles", Theorem 1, eqs. (5)-(6).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
#: An array broadcast against the others, or one number for every slot.
Floats = FloatArray | float
#: The order in which Theorem 1's three terms are summed: ETA's eqs. (5)-(6) as printed, or the
#: reverse order of BABG's first bids, eqs. (29)-(30). The two agree to about 1 ulp.
Order = Literal["eta", "babg"]

#: Relative slack of the trade test ``P >= R``: Theorem 1 trades on equality, and ``P - R`` of an
#: exact tie (v - c = (v^max - c^min)/4) rounds to +-1 ulp.
TIE_RTOL = 1e-12


def _col(x: ArrayLike) -> FloatArray:
    """Buyers' values as the pair grid's rows: (N,) -> (N, 1), (..., N) -> (..., N, 1)."""
    a = np.asarray(x, dtype=float)
    return a.reshape(-1, 1) if a.ndim <= 1 else a[..., :, None]


def _row(x: ArrayLike) -> FloatArray:
    """Sellers' values as the pair grid's columns: (M,) -> (1, M), (..., M) -> (..., 1, M)."""
    a = np.asarray(x, dtype=float)
    return a.reshape(1, -1) if a.ndim <= 1 else a[..., None, :]


def equilibrium_bid(v: Floats, v_max: Floats, c_min: Floats, *, order: Order = "eta") -> FloatArray:
    """Theorem 1, eq. (5), elementwise: ``P* = v^max / 12 + c^min / 4 + 2 v / 3``.

    ``v``, ``v_max`` are the buyer's, ``c_min`` the seller's; the arguments broadcast. Algorithm 2
    of the paper prints ``v_i^min / 12``; Theorem 1 and its proof use v_i^max, which is what is
    implemented. ``order="babg"`` sums BABG's eq. (29), ``W = 2/3 p + 1/4 r^min + p^max / 12``
    (p = v, p^max = v^max, r^min = c^min): the same value up to rounding, in BABG's own bits.
    """
    if order == "babg":
        return np.asarray(2.0 / 3.0 * v + 0.25 * c_min + v_max / 12.0)
    return np.asarray(v_max / 12.0 + c_min / 4.0 + 2.0 * v / 3.0)


def equilibrium_ask(c: Floats, c_min: Floats, v_max: Floats, *, order: Order = "eta") -> FloatArray:
    """Theorem 1, eq. (6), elementwise: ``R* = c^min / 12 + v^max / 4 + 2 c / 3``.

    ``c``, ``c_min`` are the seller's, ``v_max`` the buyer's; the arguments broadcast.
    ``order="babg"`` sums BABG's eq. (30), ``Q = 2/3 r + 1/4 p^max + r^min / 12`` (r = c,
    r^min = c^min, p^max = v^max), in BABG's own bits.
    """
    if order == "babg":
        return np.asarray(2.0 / 3.0 * c + 0.25 * v_max + c_min / 12.0)
    return np.asarray(c_min / 12.0 + v_max / 4.0 + 2.0 * c / 3.0)


def buyer_bid(v: ArrayLike, v_max: ArrayLike, c_min: ArrayLike) -> FloatArray:
    """Equilibrium bid P*_ij of buyer i to seller j (ETA Theorem 1, eq. 5) for every pair.

    ``P*_ij = v_i^max / 12 + c_j^min / 4 + 2 v_i / 3``: buyers' arrays (..., N), sellers'
    (..., M), result (..., N, M) (see the module docstring).
    """
    return equilibrium_bid(_col(v), _col(v_max), _row(c_min))


def seller_ask(c: ArrayLike, c_min: ArrayLike, v_max: ArrayLike) -> FloatArray:
    """Equilibrium ask R*_ji of seller j to buyer i, returned as a (..., N, M) array (eq. 6).

    ``R*_ji = c_j^min / 12 + v_i^max / 4 + 2 c_j / 3``.
    """
    return equilibrium_ask(_row(c), _row(c_min), _col(v_max))


def transaction_price(bid: FloatArray, ask: FloatArray) -> FloatArray:
    """Transaction price T_ij = (P*_ij + R*_ji) / 2 (ETA, after Theorem 1)."""
    return 0.5 * (bid + ask)


def bid_covers_ask(bid: FloatArray, ask: FloatArray) -> BoolArray:
    """Theorem 1's trade condition ``P*_ij >= R*_ji``; ties (to rounding) count as trades."""
    scale = np.maximum(1.0, np.maximum(np.abs(bid), np.abs(ask)))
    return np.asarray(bid - ask >= -TIE_RTOL * scale)


def complete_information(v: ArrayLike, c: ArrayLike) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Complete-information benchmark: bids are the true values, ``T = (v + c) / 2`` iff v >= c.

    Returns ``(P, R, trade)`` with P_ij = v_i and R_ji = c_j broadcast to (N, M).
    """
    P, R = np.broadcast_arrays(_col(v), _row(c))
    P, R = P.copy(), R.copy()
    return P, R, bid_covers_ask(P, R)


def single_price(
    v: ArrayLike, c: ArrayLike, price: float
) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
    """Single posted price p: trade iff ``c_j <= p <= v_i``, at price p.

    Returns ``(P, R, T, trade)`` with P_ij = v_i, R_ji = c_j (what each side would accept) and
    T_ij = p.
    """
    P, R = complete_information(v, c)[:2]
    T = np.full_like(P, float(price))
    trade = bid_covers_ask(P, T) & bid_covers_ask(T, R)
    return P, R, T, trade


def eta_pair_prices(
    v: ArrayLike,
    v_max: ArrayLike,
    c: ArrayLike,
    c_min: ArrayLike,
    *,
    rows_per_chunk: int = 64,
    workers: int = 2,
) -> tuple[FloatArray, BoolArray]:
    """Theorem 1 for every pair of a city-scale round: ``(T, trade)`` as (N, M) arrays.

    The same arithmetic as :func:`buyer_bid`, :func:`seller_ask`, :func:`bid_covers_ask` and
    :func:`transaction_price` (bit for bit), computed ``rows_per_chunk`` buyers at a time so that
    the temporaries stay in cache and the peak memory is the two outputs (9 bytes per pair) plus
    a few chunks; chunks run on ``workers`` threads (numpy releases the GIL in its loops).
    """
    vb = np.asarray(v, dtype=float).ravel()
    vmax = np.asarray(v_max, dtype=float).ravel()
    cs = np.asarray(c, dtype=float).ravel()
    cmin = np.asarray(c_min, dtype=float).ravel()
    n, m = vb.size, cs.size
    T = np.empty((n, m))
    trade = np.empty((n, m), dtype=bool)

    def run(lo: int) -> None:
        hi = min(n, lo + rows_per_chunk)
        P = buyer_bid(vb[lo:hi], vmax[lo:hi], cmin)
        R = seller_ask(cs, cmin, vmax[lo:hi])
        trade[lo:hi] = bid_covers_ask(P, R)
        np.add(P, R, out=P)
        np.multiply(P, 0.5, out=T[lo:hi])

    starts = range(0, n, max(1, rows_per_chunk))
    if workers > 1 and n > rows_per_chunk:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    else:
        for lo in starts:
            run(lo)
    return T, trade
