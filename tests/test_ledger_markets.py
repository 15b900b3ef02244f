"""Random markets through the whole ledger path: the chain settles what the library clears.

Each market runs as one round (sealed bids, RSU reveal, settlement at the P1 optimum rounded to
energy units, payouts) and the audit re-checks it from chain events. Seeds are fixed, so a failure
reproduces; the markets include excluded buyers, out-of-range pairs and scarce supply. The same
use case runs on the contracts (the embedded EVM) and in-process on the settlement port's fake
(tests/fake_ledger.py), with the same assertions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from evtrade import clear
from evtrade.ledger.chain import EmbeddedChain
from evtrade.ledger.operators import load_operators, open_ledger
from evtrade.model import market_from_dict
from evtrade.settlement.rounds import Operators, run_round
from tests.conftest import random_market_dict
from tests.fake_ledger import FakeLedger


@pytest.fixture(scope="module", params=["embedded", "fake"])
def ledger_and_operators(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any]]:
    """The contracts on the embedded chain, or the port's in-memory fake, with their operators."""
    if request.param == "fake":
        fake = FakeLedger()
        yield fake, Operators(fake.new_account(), fake.new_account())
        return
    data = tmp_path_factory.mktemp("markets")
    chain = EmbeddedChain(data / "chain", block_time=0)  # a block per transaction: no waiting
    yield open_ledger(chain, data), load_operators(data)
    chain.close()


CASES = [
    (0, 3, 4, {}),
    (1, 5, 3, {}),
    (2, 4, 6, {"max_distance_km": 3.0}),
    (3, 6, 2, {}),  # scarce supply: the exclusion rule drops buyers
    (4, 2, 7, {"v_min": 0.7}),  # some buyers below the auctioneer's floor
    (5, 7, 7, {}),
]


@pytest.mark.parametrize(("seed", "n", "m", "over"), CASES)
def test_chain_settles_what_the_library_clears(
    ledger_and_operators: tuple[Any, Any],
    seed: int,
    n: int,
    m: int,
    over: dict[str, float],
) -> None:
    ledger, operators = ledger_and_operators
    market = market_from_dict(random_market_dict(np.random.default_rng(seed), n, m, **over))
    run = run_round(ledger, operators, market)
    assert run.audit is not None
    assert run.audit.ok, run.audit.findings
    library = clear(market)
    ids = {address: ident for ident, address in run.addresses.items()}
    got = {(ids[t.buyer], ids[t.seller]): t.energy / 1e6 for t in run.trades}
    want = {(p.buyer, p.seller): p.volume for p in library.pairs if p.volume > 1e-6}
    assert got.keys() == want.keys()
    for pair, volume in want.items():
        assert abs(got[pair] - volume) < 1e-4
    # The contract refuses what Algorithm 1 rejects, and replies with no spare energy (s_t <= s_r),
    # which the library keeps but reports unmatched.
    no_spare = {u["id"] for u in library.unmatched if "no spare energy" in u["reason"]}
    assert set(run.rejected) == {r["id"] for r in library.rejected} | no_spare
    # Money is conserved: what buyers lost, sellers gained, and nobody paid above its escrow.
    delta = {k: run.balances_after[k] - run.balances_before[k] for k in run.addresses}
    assert sum(delta.values()) == 0
    for b in market.buyers:
        assert -delta[b.id] <= b.v_max * b.b_max * 1e18 + 1
