"""How many BLAS threads the solvers use.

Measured on this project's 2-core machine (docs/performance.md): OpenBLAS's threads cost more
than they bring for the dense systems of mid-size markets (1,000 x 1,000 P1: 0.55 s single-
threaded against 0.76 s with two threads; the interior point on a degenerate 200 x 200 market:
0.30 s against 0.82 s; 2,000 rounds batched: 2.8 s against 3.5 s), and less than they bring
from about 2,000 x 2,000 up. Tiny problems are left alone: switching costs about a millisecond.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from threadpoolctl import threadpool_limits

#: Largest min(N, M) solved with single-threaded BLAS.
SINGLE_THREAD_MAX = 1500
#: Smallest N * M worth the switch.
SWITCH_MIN_PAIRS = 100_000


def blas_threads_for(n: int, m: int) -> AbstractContextManager[Any]:
    """A context that runs an N x M market's solve with the BLAS thread count that suits it."""
    if n * m < SWITCH_MIN_PAIRS or min(n, m) > SINGLE_THREAD_MAX:
        return nullcontext()
    return single_blas_thread()


def single_blas_thread() -> AbstractContextManager[Any]:
    """Single-threaded BLAS (the batched solver's many small systems)."""
    return cast(AbstractContextManager[Any], threadpool_limits(limits=1, user_api="blas"))
