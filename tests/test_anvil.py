"""anvil as the tests and benchmarks start it keeps recent states (issue 11, item 11).

With a bare ``--prune-history`` anvil kept no past state, so a call it had resolved to the latest
block failed when the next block was mined meanwhile ("BlockOutOfRangeError: block height is 70
but requested was 69"). Reading a recent past block is the deterministic form of that race.
"""

from __future__ import annotations

import time

from benchmarks.anvil import running_anvil
from web3 import Web3

from evtrade.ledger.chain import RpcChain


def test_anvil_keeps_recent_states_while_it_mines() -> None:
    with running_anvil("--block-time", "0.1") as url:
        chain = RpcChain(url)
        w3: Web3 = chain.w3
        deadline = time.monotonic() + 60
        while w3.eth.block_number < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        latest = int(w3.eth.block_number)
        assert latest >= 12
        for back in (1, 5, 10):
            assert w3.eth.get_balance(chain.faucet.address, latest - back) > 0
