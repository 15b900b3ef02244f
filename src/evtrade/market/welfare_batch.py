"""Problem P1 for a stack of small markets at once (research sweeps of thousands of rounds).

The same method as :mod:`evtrade.market.welfare` (projected semismooth Newton on the dual of the
seller capacities (13), from a one-price or price-floor start, certified by the duality gap),
written over a leading batch axis: every step is one numpy operation on (B, N, M) arrays, the
Newton systems are one stacked factorisation, and the line search runs for all markets together
with a step length per market. Markets the batched method does not certify (none in the
benchmarks) are solved one by one by :func:`~evtrade.market.welfare.solve_p1`. Every formula and
tolerance the two solvers share is in :mod:`evtrade.market.p1_newton`; the batch path's results
agree with the single path's to the certificate's tolerances, not bit for bit.

Padding convention: a buyer slot that does not exist has an all-False mask row and
``b_min = b_max = w = 0``; a seller slot that does not exist has an all-False mask column and
``cap = 0``. Such slots take and give nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.market import p1_newton as nt
from evtrade.market._blas import single_blas_thread
from evtrade.market.objectives import eta_welfare
from evtrade.market.welfare import P1Problem, solve_p1

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class P1Batch:
    """P1 data for B markets padded to N buyers and M sellers (see the module docstring)."""

    mask: BoolArray  # (B, N, M)
    w: FloatArray  # (B, N)
    b_min: FloatArray
    b_max: FloatArray
    a: FloatArray  # (B, M): l1 rho
    e: FloatArray  # l2 rho
    g: FloatArray  # 1 + rho
    cap: FloatArray  # s^t - s^r

    def take(self, idx: NDArray[np.intp]) -> P1Batch:
        return P1Batch(*(getattr(self, f)[idx] for f in _FIELDS))

    def problem(self, b: int) -> P1Problem:
        """Market ``b`` as a single :class:`P1Problem` (padding included; it is inert)."""
        return P1Problem(
            mask=self.mask[b],
            w=self.w[b],
            b_min=self.b_min[b],
            b_max=self.b_max[b],
            a=self.a[b],
            e=self.e[b],
            g=self.g[b],
            cap=self.cap[b],
        )


_FIELDS = ("mask", "w", "b_min", "b_max", "a", "e", "g", "cap")


@dataclass(frozen=True)
class P1BatchSolution:
    """Volumes (B, N, M), seller prices (B, M), welfare, D(mu) and method per market."""

    x: FloatArray
    mu: FloatArray
    welfare: FloatArray
    dual_value: FloatArray
    iterations: NDArray[np.int64]
    method: NDArray[np.str_]

    @property
    def duality_gap(self) -> FloatArray:
        return np.asarray(self.dual_value - self.welfare)


@dataclass(frozen=True)
class _State:
    x: FloatArray
    lam: FloatArray
    t: FloatArray
    dual: FloatArray
    grad: FloatArray


def _inner(p: P1Batch, mu: FloatArray) -> _State:
    """Every buyer's water-filling in every market at seller prices mu (B, M)."""
    mf = p.mask.astype(float)
    c = p.e + p.g * mu
    k = 0.5 / p.a
    order = np.argsort(c, axis=1, kind="stable")
    cs = np.take_along_axis(c, order, 1)[:, None, :]
    ks = np.take_along_axis(k, order, 1)[:, None, :]
    km = np.take_along_axis(mf, order[:, None, :], 2) * ks
    cumA = np.cumsum(km, axis=2)
    cumB = np.cumsum(km * cs, axis=2)
    # h < 0, i.e. took(c_r) < Xt(c_r) with Xt = clip(b_min - 1 + w / c, b_min, b_max), without the
    # division: took < b_min, or took < b_max and c (took - b_min + 1) < w.
    took = cumA * cs - cumB
    lo, hi = p.b_min[..., None], p.b_max[..., None]
    below = (took < lo) | ((took < hi) & (cs * (took - lo + 1.0) < p.w[..., None]))
    seg = np.count_nonzero(below, axis=2)
    idx = np.maximum(seg - 1, 0)[..., None]
    A = np.where(seg > 0, np.take_along_axis(cumA, idx, 2)[..., 0], 0.0)
    B = np.where(seg > 0, np.take_along_axis(cumB, idx, 2)[..., 0], 0.0)
    buys = A > 0
    lam = np.zeros(A.shape)
    lam[buys] = nt.buyer_totals(A[buys], B[buys], p.w[buys], p.b_min[buys], p.b_max[buys])
    x = nt.pair_volumes(lam, c, k, mf, buys)
    X = x.sum(axis=2)
    colsum = x.sum(axis=1)
    grad = p.cap - p.g * colsum
    dual = nt.dual_value(x, X, colsum, grad, mu, w=p.w, b_min=p.b_min, a=p.a, e=p.e)
    t = nt.curvature_weights(X, A, p.w, p.b_min, p.b_max)
    return _State(x=x, lam=lam, t=t, dual=dual, grad=grad)


def _residual(s: _State, mu: FloatArray) -> FloatArray:
    return nt.projected_residual(s.grad, mu)


def _scale(p: P1Batch) -> FloatArray:
    return nt.energy_scale(p.cap, p.b_max)


def _start(p: P1Batch) -> FloatArray:
    """One-price start where total supply binds, price-floor start otherwise (cf. welfare.py)."""
    mf = p.mask.astype(float)
    k = 0.5 / p.a
    K = np.einsum("bij,bj->bi", mf, k)
    G = np.einsum("bij,bj->bi", mf, p.g * k)
    has = K > 0
    Ks = np.where(has, K, 1.0)
    reached = p.mask.any(axis=1)
    total = np.where(reached, p.cap, 0.0).sum(axis=1)
    lo = np.where(reached, p.e, -np.inf).max(axis=1)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = lo + p.w.max(axis=1) + 1.0

    def excess(pi: FloatArray) -> FloatArray:
        lam = nt.buyer_totals(Ks, Ks * pi[:, None], p.w, p.b_min, p.b_max)
        return np.asarray(np.where(has, (lam - pi[:, None]) * G, 0.0).sum(axis=1) - total)

    one_price = excess(lo) > 0
    a_, b_ = lo.copy(), hi.copy()
    for _ in range(60):  # bisection, all markets at once
        mid = 0.5 * (a_ + b_)
        up = excess(mid) > 0
        a_ = np.where(up, mid, a_)
        b_ = np.where(up, b_, mid)
    mu = np.where(one_price[:, None], nt.floor_prices(0.5 * (a_ + b_)[:, None], p.e, p.g), 0.0)
    rest = np.flatnonzero(~one_price)
    if rest.size:
        mu[rest] = _floor_start(p.take(rest), hi[rest])
    return np.asarray(mu)


def _floor_start(p: P1Batch, hi: FloatArray, evaluations: int = 5) -> FloatArray:
    """Regula falsi on the slope of D along the price floor, all markets at once."""

    def slope(pi: FloatArray) -> FloatArray:
        st = _inner(p, nt.floor_prices(pi[:, None], p.e, p.g))
        return np.asarray(np.where(p.e <= pi[:, None], st.grad / p.g, 0.0).sum(axis=1))

    live = np.where(p.mask.any(axis=1), p.e, np.inf).min(axis=1)
    a = np.where(np.isfinite(live), live, 0.0)
    b = hi.copy()
    fa, fb = slope(a), slope(b)
    done = (fa >= 0) | (fb <= 0)
    pick = np.where(fa >= 0, a, b)
    for _ in range(evaluations):
        den = np.where(fb - fa != 0, fb - fa, 1.0)
        c = np.clip((a * fb - b * fa) / den, a, b)
        fc = slope(c)
        left = fc < 0
        a, fa = np.where(left, c, a), np.where(left, fc, fa)
        b, fb = np.where(left, b, c), np.where(left, fb, fc)
        fb = np.where(left, 0.5 * fb, fb)  # Illinois: halve the stale end
        fa = np.where(left, fa, 0.5 * fa)
    den = np.where(fb - fa != 0, fb - fa, 1.0)
    pi = np.where(done, pick, np.clip((a * fb - b * fa) / den, a, b))
    return nt.floor_prices(pi[:, None], p.e, p.g)


def _direction(
    p: P1Batch, s: _State, mu: FloatArray, res: FloatArray, damping: FloatArray
) -> FloatArray:
    """Projected Newton direction per market (held sellers fixed, idle sellers to entry price)."""
    m = mu.shape[1]
    free = (mu > 0) | (s.grad < 0)
    k = 0.5 / p.a
    Km = (s.x > 0) * k[:, None, :]
    diag = Km.sum(axis=1)
    Ks = Km * np.sqrt(s.t)[..., None]
    H = -np.matmul(Ks.transpose(0, 2, 1), Ks)
    H[:, np.arange(m), np.arange(m)] += diag
    H *= p.g[:, :, None] * p.g[:, None, :]
    hd = H[:, np.arange(m), np.arange(m)]
    hmax = np.maximum(hd.max(axis=1, keepdims=True), 1.0)
    idle = free & (diag == 0)  # nobody buys from these sellers: jump to the entry price
    solve = free & ~idle
    # Rows outside the Newton system become identity rows with a zero right-hand side.
    out = ~solve
    H = np.where(out[:, :, None] | out[:, None, :], 0.0, H)
    # Levenberg-Marquardt term on flat sellers, proportional to the residual (welfare.py).
    raw = diag * p.g * p.g
    relres = (res / _scale(p))[:, None]
    reg = nt.regularisation(hd, raw, damping=damping[:, None], relres=relres, hmax=hmax)
    H[:, np.arange(m), np.arange(m)] += np.where(out, 1.0, reg)
    rhs = np.where(solve, -s.grad, 0.0)
    d = np.linalg.solve(H, rhs[..., None])[..., 0]
    if np.any(idle):
        d = np.where(idle, nt.entry_step(p.mask, s.lam, p.e, p.g, mu), d)
    return np.asarray(d)


def _newton(
    p: P1Batch, mu: FloatArray, *, tol: float, max_iter: int
) -> tuple[FloatArray, _State, NDArray[np.int64]]:
    nb = mu.shape[0]
    scale = _scale(p)
    s = _inner(p, mu)
    res = _residual(s, mu)
    its = np.zeros(nb, dtype=np.int64)
    stall = np.zeros(nb, dtype=np.int64)
    floor = np.zeros(nb)
    failures = np.zeros(nb, dtype=np.int64)
    damping = np.zeros(nb)  # Levenberg's adaptive term, per market (see welfare._dual_newton)
    run = np.ones(nb, dtype=bool)
    for _ in range(max_iter):
        run &= ~nt.newton_stops(res, scale, tol=tol, floor=floor, stall=stall)
        run &= ~nt.crawling(its, res, scale)  # a crawl: leave it to the safeguard
        idx = np.flatnonzero(run)
        if idx.size == 0:
            break
        sub = p.take(idx)
        cur = _State(*(getattr(s, f)[idx] for f in ("x", "lam", "t", "dual", "grad")))
        mu_i = mu[idx]
        d = _direction(sub, cur, mu_i, res[idx], damping[idx])
        Hdiag_proxy = (sub.g**2 * ((cur.x > 0) * (0.5 / sub.a)[:, None, :]).sum(axis=1)).max(axis=1)
        floor[idx] = nt.rounding_floor(Hdiag_proxy, mu_i.max(axis=1))
        new_mu, new_s, ok, alpha = _line_search(sub, cur, mu_i, d, res[idx])
        full = ok & (alpha == 1.0)
        damping[idx] = np.where(full, nt.damping_after_full_step(damping[idx]), damping[idx])
        its[idx] += 1
        # A failed search retries with a heavier damping (towards a scaled gradient step).
        stuck = idx[~ok]
        failures[stuck] += 1
        give_up = nt.gives_up(damping[stuck], res[stuck], scale[stuck], failures[stuck])
        run[stuck[give_up]] = False
        damping[stuck] = nt.damping_after_failure(damping[stuck])
        acc = idx[ok]
        if acc.size:
            mu[acc] = new_mu[ok]
            for f in ("x", "lam", "t", "dual", "grad"):
                getattr(s, f)[acc] = getattr(new_s, f)[ok]
            new_res = _residual(new_s, new_mu)[ok]
            stall[acc] = np.where(new_res < 0.9 * res[acc], 0, stall[acc] + 1)
            res[acc] = new_res
    return mu, s, its


def _line_search(
    p: P1Batch, s: _State, mu: FloatArray, d: FloatArray, res: FloatArray
) -> tuple[FloatArray, _State, BoolArray, FloatArray]:
    """Armijo on D or a halved residual, per market: accepted points, mask, step lengths."""
    nb = mu.shape[0]
    alpha = np.ones(nb)
    ok = np.zeros(nb, dtype=bool)
    out_mu = mu.copy()
    out = _State(s.x.copy(), s.lam.copy(), s.t.copy(), s.dual.copy(), s.grad.copy())
    pending = np.arange(nb)
    for _ in range(nt.LINE_SEARCH_STEPS):
        if pending.size == 0:
            break
        trial = np.maximum(mu[pending] + alpha[pending, None] * d[pending], 0.0)
        part = p.take(pending)
        st = _inner(part, trial)
        decrease = nt.dot(s.grad[pending], mu[pending] - trial)
        good = nt.step_accepted(
            st.dual,
            s.dual[pending],
            decrease,
            near=nt.near_optimum(res[pending], _scale(part)),
            new_res=_residual(st, trial),
            res=res[pending],
        )
        acc = pending[good]
        ok[acc] = True
        out_mu[acc] = trial[good]
        for f in ("x", "lam", "t", "dual", "grad"):
            getattr(out, f)[acc] = getattr(st, f)[good]
        pending = pending[~good]
        alpha[pending] *= 0.5
    return out_mu, out, ok, alpha


def welfare_values(p: P1Batch, x: FloatArray) -> FloatArray:
    """P1 objective (eq. 11) of every market."""
    return eta_welfare(x, p.w, p.b_min, 1.0, p.a, p.e, squares="einsum")


def solve_p1_batch(
    p: P1Batch, *, tol: float = 1e-12, max_iter: int = 60, chunk: int = 512
) -> P1BatchSolution:
    """Solve P1 for every market of the batch; certified per market, like ``solve_p1``.

    Every buyer with ``b_min > 0`` must be able to meet it (apply the exclusion rule first).
    Markets are processed ``chunk`` at a time to bound memory.
    """
    nb = p.mask.shape[0]
    xs, mus, duals, its, methods = [], [], [], [], []
    for lo in range(0, nb, chunk):
        part = p.take(np.arange(lo, min(nb, lo + chunk)))
        with single_blas_thread():
            x, mu, dual, it, method = _solve_chunk(part, tol=tol, max_iter=max_iter)
        xs.append(x)
        mus.append(mu)
        duals.append(dual)
        its.append(it)
        methods.append(method)
    x = np.concatenate(xs) if xs else np.zeros(p.mask.shape)
    return P1BatchSolution(
        x=x,
        mu=np.concatenate(mus) if mus else np.zeros(p.cap.shape),
        welfare=welfare_values(p, x),
        dual_value=np.concatenate(duals) if duals else np.zeros(0),
        iterations=np.concatenate(its) if its else np.zeros(0, dtype=np.int64),
        method=np.concatenate(methods) if methods else np.zeros(0, dtype="<U32"),
    )


def _solve_chunk(
    p: P1Batch, *, tol: float, max_iter: int
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64], NDArray[np.str_]]:
    nb, _, m = p.mask.shape
    # Slots that cannot trade are masked off, as solve_p1 drops them.
    mask = p.mask & (p.cap > 0)[:, None, :] & (p.b_max > 0)[:, :, None]
    p = P1Batch(mask, p.w, p.b_min, p.b_max, p.a, p.e, p.g, p.cap)
    method = np.full(nb, "free-market", dtype="<U32")
    its = np.zeros(nb, dtype=np.int64)
    with np.errstate(all="ignore"):
        free = _inner(p, np.zeros((nb, m)))
        scale = _scale(p)
        binding = free.grad.min(axis=1) < -tol * scale
        x, mu, dual = free.x, np.zeros((nb, m)), free.dual
        idx = np.flatnonzero(binding)
        if idx.size:
            sub = p.take(idx)
            mu_b, s, its_b = _newton(sub, _start(sub), tol=tol, max_iter=max_iter)
            xb = nt.repair_volumes(s.x, sub.b_min, sub.b_max, sub.g, sub.cap)
            # Feasible to rounding (or the gap proves nothing: weak duality), the gap closed and
            # the projected gradient small, or the market goes to the single-market path.
            viol = nt.feasibility_violation(xb, sub.b_min, sub.b_max, sub.g, sub.cap)
            cert = nt.certified(viol, s.dual, welfare_values(sub, xb))
            cert &= nt.converged(_residual(s, mu_b), _scale(sub))
            x[idx], mu[idx], dual[idx], its[idx] = xb, mu_b, s.dual, its_b
            method[idx] = "p1-dual-newton"
            for b in idx[~cert]:  # the safeguard, one market at a time
                sol = solve_p1(p.problem(int(b)), tol=tol)
                x[b], mu[b], dual[b] = sol.x, sol.mu, sol.dual_value
                its[b], method[b] = sol.iterations, sol.method
    return x, mu, dual, its, method
