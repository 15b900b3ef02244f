"""The benchmark suite behind ``evtrade bench``: the project against a generic solver, in-process.

Every record has ``case``, ``n_buyers``, ``n_sellers``, ``seconds`` (median of repeats),
``reference_seconds``, ``ratio`` (reference / project), ``welfare_gap`` (relative, reference
minus project: > 0 means the project is worse), ``peak_mb`` (the project run's peak of traced
Python/numpy allocations, tracemalloc), plus ``certificate`` (the relative duality gap, the
project's own proof of optimality), ``kkt`` (the largest KKT violation computed from the returned
volumes, independent of the solver) and ``note``. The reference is cvxpy with Clarabel on the
same P1 problem, where it can still solve it in reasonable time; cvxpy is a development
dependency, and without it the reference fields are null.

Timings are measured, never asserted: benchmarks are not tests. Settlement on a chain (trades
per second on the embedded chain and on anvil) is the repository's tooling, not the package's:
``benchmarks/settlement.py`` (and ``make bench``).
"""

from __future__ import annotations

import importlib.util
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from evtrade.market.batch import clear_batch
from evtrade.market.mechanisms.eta import clear, p1_problem
from evtrade.market.pricing import eta_pair_prices
from evtrade.market.welfare import P1Problem, P1Solution, kkt_residual, solve_p1
from evtrade.model.defaults import DEFAULT_L1, DEFAULT_L2
from evtrade.sim.scenarios import ScenarioSpec, random_batch, random_market

#: A case's comparison with the generic solver: its seconds, the ratio to ours, the welfare gap.
Reference = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class Record:
    case: str
    n_buyers: int
    n_sellers: int
    seconds: float
    reference_seconds: float | None
    ratio: float | None
    welfare_gap: float | None
    peak_mb: float
    certificate: float | None
    kkt: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _peak_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _record(
    case: str,
    size: tuple[int, int],
    run: Callable[[], Any],
    seconds: float,
    *,
    reference: Reference = (None, None, None),
    certificate: float | None = None,
    kkt: float | None = None,
    note: str,
) -> Record:
    """A case's record: ``size`` is (buyers, sellers), ``reference`` (seconds, ratio, welfare
    gap); ``peak_mb`` is measured here, on one more call of ``run``."""
    ref_s, ratio, gap = reference
    return Record(
        case=case,
        n_buyers=size[0],
        n_sellers=size[1],
        seconds=seconds,
        reference_seconds=ref_s,
        ratio=ratio,
        welfare_gap=gap,
        peak_mb=_peak_mb(run),
        certificate=certificate,
        kkt=kkt,
        note=note,
    )


def has_reference() -> bool:
    return importlib.util.find_spec("cvxpy") is not None


def _reference(solve: Callable[[], float]) -> tuple[float, float | None, str]:
    """Run a cvxpy + Clarabel reference: (seconds, welfare or None if it failed, note)."""
    t0 = time.perf_counter()
    try:
        value: float | None = solve()
        note = ""
    except Exception as exc:  # the reference's own failure is a result, reported as such
        value, note = None, f"; cvxpy+Clarabel failed: {type(exc).__name__}"
    return time.perf_counter() - t0, value, note


def p1_case(n: int, m: int, *, repeats: int, reference: bool, seed: int = 1) -> Record:
    """ETA clearing (``evtrade.clear``) of a random market against cvxpy on its P1."""
    market = random_market(ScenarioSpec().scaled(n, m), np.random.default_rng(seed))
    clear(market)  # warm caches (BLAS threads, imports) outside the timing
    seconds, result = _median_time(lambda: clear(market), repeats)
    problem = p1_problem(market)
    sol = solve_p1(problem)
    ref, note = _compare(_p1_reference(problem), seconds, result.welfare, reference)
    return _record(
        f"eta-p1-{n}x{m}",
        (n, m),
        lambda: clear(market),
        seconds,
        reference=ref,
        certificate=_certificate(sol),
        kkt=kkt_residual(problem, sol.x, sol.mu),
        note=f"clear() end to end; solver {result.solver['method']}{note}",
    )


def _certificate(sol: P1Solution) -> float:
    """The solver's optimality certificate: its duality gap relative to max(1, |welfare|)."""
    return sol.duality_gap / max(1.0, abs(sol.welfare))


def _p1_reference(problem: P1Problem) -> Callable[[], float]:
    def solve() -> float:
        from evtrade.market.reference import solve_p1_cvxpy

        return solve_p1_cvxpy(problem)[0]

    return solve


def _compare(
    solve: Callable[[], float], seconds: float, welfare: float, reference: bool
) -> tuple[Reference, str]:
    """(Reference seconds, ratio, relative welfare gap) and a note (``solve`` runs cvxpy)."""
    if not reference:
        return (None, None, None), "; no reference (generic solvers fail or take minutes here)"
    if not has_reference():
        return (None, None, None), "; cvxpy not installed"
    ref_s, ref_w, failed = _reference(solve)
    if ref_w is None:
        return (ref_s, None, None), failed
    return (ref_s, ref_s / seconds, (ref_w - welfare) / max(1.0, abs(ref_w))), failed


def binding_problem(n: int, m: int, seed: int) -> P1Problem:
    """A P1 where every seller's capacity binds: 60 % of pairs trade, supply half of demand."""
    rng = np.random.default_rng(seed)
    b_min = rng.uniform(0, 2, n)
    return P1Problem.from_arrays(
        mask=rng.random((n, m)) < 0.6,
        w=rng.uniform(1, 5, n),
        b_min=b_min,
        b_max=b_min + rng.uniform(6, 12, n),
        rho=rng.uniform(0.05, 0.15, m),
        spare=rng.uniform(5, 20, m) * 0.5 * n / m,
        l1=DEFAULT_L1,
        l2=DEFAULT_L2,
    )


def binding_case(n: int, m: int, *, repeats: int, reference: bool, seed: int = 4) -> Record:
    """``solve_p1`` on a market where every capacity binds (the dual Newton path throughout)."""
    problem = binding_problem(n, m, seed)
    solve_p1(problem)
    seconds, sol = _median_time(lambda: solve_p1(problem), repeats)
    ref, note = _compare(_p1_reference(problem), seconds, sol.welfare, reference)
    note = f"solve_p1 on P1 directly; {sol.method}, {sol.iterations} iterations{note}"
    return _record(
        f"p1-binding-{n}x{m}",
        (n, m),
        lambda: solve_p1(problem),
        seconds,
        reference=ref,
        certificate=_certificate(sol),
        kkt=kkt_residual(problem, sol.x, sol.mu),
        note=note,
    )


def babg_case(*, repeats: int, reference: bool, seed: int = 5) -> Record:
    """One BABG round (auction + SWM2) at the paper's scale, cvxpy on the same SWM2."""
    from evtrade.market.mechanisms.babg import babg_round
    from evtrade.sim.babg_figures import BABG_SPEC

    market = random_market(BABG_SPEC, np.random.default_rng(seed))
    babg_round(market)
    seconds, rnd = _median_time(lambda: babg_round(market), repeats)
    auctions = rnd.rounds[rnd.candidates]

    def swm2_reference() -> float:
        from evtrade.market.reference import solve_swm2_cvxpy

        q = rnd.swm2
        return solve_swm2_cvxpy(
            q.mask, q.w, q.d_min, q.d_max, q.efficiency, q.s_max, l1=q.l1, l2=q.l2
        )

    ref, note = _compare(swm2_reference, seconds, rnd.welfare, reference)
    note = f"auction + SWM2; up to {int(auctions.max())} auctions per pair{note}"
    return _record(
        f"babg-{market.n_buyers}x{market.n_sellers}",
        (market.n_buyers, market.n_sellers),
        lambda: babg_round(market),
        seconds,
        reference=ref,
        note=note + " (reference: SWM2 alone)",
    )


def batch_case(rounds: int, *, sample: int, seed: int = 2) -> Record:
    """``rounds`` paper-scale (35 x 40) markets, drawn and cleared in one batch, end to end.

    The reference is a Python loop of ``evtrade.clear`` over ``sample`` of the same rounds,
    scaled to ``rounds``; the welfare gap is the largest relative difference on that sample.
    """
    spec = ScenarioSpec()

    def run() -> Any:
        batch = random_batch(spec, rounds, np.random.default_rng(seed))
        return batch, clear_batch(batch)

    run()
    seconds, (batch, res) = _median_time(run, 1)
    k = min(sample, rounds)
    t0 = time.perf_counter()
    single = np.array([clear(batch.market(r)).welfare for r in range(k)])
    loop_s = (time.perf_counter() - t0) * rounds / k
    gap = float(np.max((single - res.welfare[:k]) / np.maximum(1.0, np.abs(single))))
    cert = float(np.max(res.solver.duality_gap / np.maximum(1.0, np.abs(res.solver.welfare))))
    methods = {str(m_): int(np.sum(res.solver.method == m_)) for m_ in np.unique(res.solver.method)}
    return _record(
        f"eta-batch-{rounds}x35x40",
        (spec.n_buyers, spec.n_sellers),
        run,
        seconds,
        reference=(loop_s, loop_s / seconds, gap),
        certificate=cert,
        note=f"draw + clear_batch; reference: loop of clear() on {k} rounds, scaled; {methods}",
    )


def pricing_case(n: int, m: int, *, repeats: int, seed: int = 3) -> Record:
    """Theorem 1 prices and trade test for n x m pairs, chunked."""
    rng = np.random.default_rng(seed)
    spec = ScenarioSpec()
    v_lo, v_hi = rng.uniform(*spec.v_min, n), rng.uniform(*spec.v_max, n)
    c_lo, c_hi = rng.uniform(*spec.c_min, m), rng.uniform(*spec.c_max, m)
    v, c = rng.uniform(v_lo, v_hi), rng.uniform(c_lo, c_hi)
    seconds, (T, trade) = _median_time(lambda: eta_pair_prices(v, v_hi, c, c_lo), repeats)
    share = float(trade.mean())
    del T, trade
    return _record(
        f"eta-pricing-{n}x{m}",
        (n, m),
        lambda: eta_pair_prices(v, v_hi, c, c_lo),
        seconds,
        note=f"{n * m:.2e} pairs (T float64 + trade bool kept); {share:.1%} trade",
    )


def suite(*, quick: bool, repeats: int = 3) -> Iterator[Record]:
    """The benchmark cases in order; ``quick`` is the smoke run of ``make test``."""
    if quick:
        yield p1_case(35, 40, repeats=repeats, reference=True)
        yield p1_case(100, 100, repeats=repeats, reference=True)
        yield binding_case(60, 60, repeats=repeats, reference=True)
        yield p1_case(300, 300, repeats=1, reference=False)
        yield batch_case(200, sample=20)
        yield pricing_case(1000, 1000, repeats=repeats)
        yield babg_case(repeats=repeats, reference=True)
        return
    yield p1_case(35, 40, repeats=repeats, reference=True)
    yield p1_case(100, 100, repeats=repeats, reference=True)
    yield p1_case(200, 200, repeats=repeats, reference=True)
    yield binding_case(35, 40, repeats=repeats, reference=True)
    yield binding_case(100, 100, repeats=repeats, reference=True)
    yield binding_case(200, 200, repeats=repeats, reference=True)
    yield p1_case(1000, 1000, repeats=repeats, reference=False)
    yield binding_case(1000, 1000, repeats=repeats, reference=False)
    yield p1_case(3000, 3000, repeats=1, reference=False)
    yield binding_case(3000, 3000, repeats=1, reference=False)
    yield batch_case(10_000, sample=200)
    yield pricing_case(10_000, 10_000, repeats=repeats)
    yield babg_case(repeats=repeats, reference=True)
