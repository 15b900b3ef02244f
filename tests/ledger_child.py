"""Child of the persistence test: half a round on the embedded chain, then busy until killed.

Writes ``progress.json`` (keys, deployment, sealed bids) once the bids are posted, then mints
tokens in a loop, appending each mined transaction hash to ``minted.txt``, until SIGKILL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eth_account import Account

from evtrade.ledger.chain import EmbeddedChain
from tests.ledger_world import World


def main(data_dir: Path, out: Path) -> None:
    chain = EmbeddedChain(data_dir)
    world = World.build(chain)
    rid = world.open()
    bids = world.bid(rid)
    world.ledger.deployment.save(out / "deployment.json")
    keys = {
        "authority": world.authority.key.hex(),
        "rsu": world.rsu.key.hex(),
        "buyers": [a.key.hex() for a in world.buyers],
        "sellers": [a.key.hex() for a in world.sellers],
    }
    bid_rows = [
        {
            "round_id": b.round_id,
            "is_buyer": b.is_buyer,
            "index": b.index,
            "bidder": b.bidder,
            "value": b.value,
            "salt": b.salt.hex(),
        }
        for b in bids
    ]
    (out / "progress.json").write_text(json.dumps({"keys": keys, "round": rid, "bids": bid_rows}))
    sink = Account.create().address
    with (out / "minted.txt").open("a") as log:
        while True:
            receipt = world.ledger.mint(world.authority, sink, 1)
            log.write(receipt["transactionHash"].to_0x_hex() + "\n")
            log.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
