"""The block explorer of the RSU's dashboard: which chain, which contracts, the latest blocks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from evtrade.ledger.chain import Chain
from evtrade.ledger.client import Deployment
from evtrade.service.context import RsuContext

#: How many of the latest blocks the dashboard lists.
RECENT_BLOCKS = 10


class Explorer:
    """What the chain and the RSU's deployment look like, for the dashboard."""

    def __init__(self, ctx: RsuContext, chain: Chain, deployment: Deployment) -> None:
        self.ctx = ctx
        self.chain = chain
        self.deployment = deployment

    def recent_blocks(self, count: int = RECENT_BLOCKS) -> list[dict[str, Any]]:
        """The latest ``count`` blocks, newest first, with their transactions' hashes."""
        with self.ctx.lock:
            return [
                {
                    "number": b.number,
                    "hash": b.hash,
                    "timestamp": b.timestamp,
                    "transactions": list(b.transactions),
                }
                for b in self.chain.recent_blocks(count)
            ]

    def chain_info(self) -> dict[str, Any]:
        """The chain, the contracts, the RSU and the authority, and the latest blocks."""
        ctx = self.ctx
        return {
            "kind": self.chain.kind,
            "chain_id": self.chain.chain_id,
            "deployment": asdict(self.deployment),
            "rsu": {
                "address": ctx.operators.rsu.address,
                "lat": ctx.settings.rsu_lat,
                "lon": ctx.settings.rsu_lon,
            },
            "authority": ctx.operators.authority.address,
            "faucet_tokens": ctx.settings.faucet_tokens,
            "blocks": self.recent_blocks(),
        }
