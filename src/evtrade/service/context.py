"""What every use case of the RSU shares: its settings, its ledger, its index and one lock.

Built once by :func:`evtrade.service.rsu.build_rsu`; the use-case modules (:mod:`.vehicles`,
:mod:`.trading`, :mod:`.relay`, :mod:`.explorer`, :mod:`.clock`) each take it. The ledger is
reached through the settlement port (:class:`~evtrade.settlement.port.LedgerPort`), the chain
through its clock only: the use cases run against the contracts or against a fake. Only the relay
and the explorer, which speak of transactions and blocks, are handed the chain adapter itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from eth_account.signers.local import LocalAccount

from evtrade.errors import ThrottledError, TooManyError
from evtrade.service.security import BidRate, received_at
from evtrade.service.settings import Settings
from evtrade.service.store import Store
from evtrade.settlement.port import LedgerPort
from evtrade.settlement.rounds import Operators


class ChainClock(Protocol):
    """The chain's clock as the use cases read it (:class:`~evtrade.ledger.chain.Chain` has it)."""

    def timestamp(self) -> int:
        """Timestamp of the latest block (unix seconds)."""
        ...

    def next_timestamp(self) -> int:
        """The earliest timestamp a transaction sent now can carry."""
        ...


@dataclass(slots=True)
class RsuContext:
    """The RSU's state: chain client, operators' keys, SQLite index, and a lock that serialises
    chain writes and index updates. ``version`` counts changes; the pages' live stream
    (``/api/events``) tells browsers when it moves."""

    settings: Settings
    chain: ChainClock
    ledger: LedgerPort[LocalAccount]
    operators: Operators[LocalAccount]
    store: Store
    bid_rate: BidRate
    lock: threading.RLock = field(default_factory=threading.RLock)
    version: int = 0

    def changed(self) -> None:
        """Something the pages show changed."""
        self.version += 1

    def take_bid(self, vehicle: str) -> None:
        """Count one bid against the vehicle's allowance (``bids_per_minute``), else
        :class:`~evtrade.errors.TooManyError`."""
        try:
            self.bid_rate.take(vehicle)
        except ThrottledError as exc:
            raise TooManyError(exc.retry_after, exc.what) from None

    def next_block_time(self) -> float:
        """The earliest timestamp a transaction sent now can carry: the chain's deadlines use it
        (:meth:`~evtrade.ledger.chain.Chain.next_timestamp`)."""
        return float(self.chain.next_timestamp())


def arrival() -> float:
    """When the HTTP request being served reached the service (now, outside a request)."""
    at = received_at.get()
    return time.time() if at is None else at
