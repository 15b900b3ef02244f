"""An Ethereum chain inside the process (py-evm through eth-tester) that keeps its data on disk.

eth-tester keeps its chain in memory. :class:`PersistentBackend` puts py-evm's key-value store
in one SQLite file and commits after every mined block, so a process killed at any instant
(SIGKILL included) reopens at its last mined block with state and history intact: SQLite's
write-ahead log rolls back a half-written block.

**Block time.** eth-tester mines one block per transaction, and block timestamps are whole
seconds that must increase strictly, so under load its clock ran ahead of the wall clock (280 s
was seen) and bid windows closed early. Here, as on a chain with a block time, transactions
gather in the pending block stamped with the current second and the block is mined once that
second has passed: a block's timestamp is the wall-clock second its transactions arrived in, and
never ahead of the wall clock (unless a development ``advance`` moved the clock on). Receipts
exist only for mined, committed blocks, so a transaction is durable once its receipt is seen.
``block_time=0`` keeps eth-tester's one block per transaction (anvil's automine) for callers
that send one transaction after another and need no wall clock.

It also replaces eth-tester's transaction and receipt lookups, which walk every block back from
the head, with py-evm's transaction-hash index (constant time).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.exceptions import PyEVMError
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth.vm.forks.prague import PragueVM
from eth_tester.backends.pyevm.main import PyEVMBackend, get_default_genesis_params
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound
from eth_typing import Hash32
from eth_utils.address import to_canonical_address
from eth_utils.exceptions import ValidationError
from eth_utils.hexadecimal import encode_hex
from rlp.exceptions import RLPException  # type: ignore[import-untyped]

#: Block gas limit of the embedded chain: room for a 1,000-trade settlement.
GAS_LIMIT = 120_000_000
CHAIN_ID = 1337
_CACHE_LIMIT = 400_000


class SqliteStore(BaseDB):
    """py-evm's key-value store in a SQLite file; writes are buffered until :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        self._pending: dict[bytes, bytes | None] = {}
        self._cache: dict[bytes, bytes] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        value = bytes(row[0])
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = value
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None
        self._cache.pop(key, None)

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("SqliteStore does not iterate")

    def __len__(self) -> int:
        raise NotImplementedError("SqliteStore has no length")

    def commit(self) -> None:
        """Write the buffered changes in one SQLite transaction."""
        if not self._pending:
            return
        puts = [(k, v) for k, v in self._pending.items() if v is not None]
        dels = [(k,) for k, v in self._pending.items() if v is None]
        self._conn.execute("BEGIN")
        self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts)
        self._conn.executemany("DELETE FROM kv WHERE k = ?", dels)
        self._conn.execute("COMMIT")
        for k, v in puts:
            self._cache[k] = v
        self._pending.clear()

    def is_empty(self) -> bool:
        """True before a genesis block was written."""
        return self._conn.execute("SELECT 1 FROM kv LIMIT 1").fetchone() is None

    def close(self) -> None:
        """Close the SQLite connection (buffered changes are dropped)."""
        self._pending.clear()
        self._conn.close()


class _TesterChain(MiningChain):
    chain_id = CHAIN_ID
    vm_configuration = ((0, PragueVM),)  # type: ignore[assignment]

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        # Keep the gas limit constant, as eth-tester's own chain does.
        header_params["gas_limit"] = parent_header.gas_limit
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return super().get_vm().get_transaction_builder()


class PersistentBackend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm back end on a :class:`SqliteStore`, with a block time.

    Not thread-safe (neither is py-evm): the caller serialises every call, and calls
    :meth:`tick` before each request so that a block whose second has passed is mined.
    """

    def __init__(
        self, store: SqliteStore, funded: dict[str, int] | None = None, *, block_time: int = 1
    ) -> None:
        # PyEVMBackend.__init__ would build an in-memory chain; this one opens or creates on disk.
        self.store = store
        self.account_keys = ()
        self.block_time = block_time
        self._pending: set[bytes] = set()
        base_db = AtomicDB(store)
        if store.is_empty():
            params = get_default_genesis_params(
                # a second back, so that the first block can carry the current second
                {"gas_limit": GAS_LIMIT, "timestamp": int(time.time()) - 1}
            )
            state: Any = {
                to_canonical_address(address): {
                    "balance": balance,
                    "nonce": 0,
                    "code": b"",
                    "storage": {},
                }
                for address, balance in (funded or {}).items()
            }
            self.chain = _TesterChain.from_genesis(base_db, params, state)
            store.commit()
        else:
            self.chain = _TesterChain(base_db)
        # A chain whose clock a development advance moved past the wall clock keeps its lead.
        self.offset = max(0, self._head_timestamp() - int(time.time()))

    # -- the clock ----------------------------------------------------------------------------

    def now(self) -> int:
        """The chain's clock: the wall-clock second plus the lead of development advances."""
        return int(time.time()) + self.offset

    def _head_timestamp(self) -> int:
        return int(self.chain.get_canonical_head().timestamp)

    def pending_timestamp(self) -> int:
        """The timestamp of the pending block, which the next transaction joins."""
        self.tick()
        chain: Any = self.chain
        return int(chain.header.timestamp)

    def tick(self) -> None:
        """Mine the pending block once its block time has passed; restamp an empty one to now.

        py-evm stamps the pending block when the previous one is mined; after an idle spell that
        stamp is stale, and block.timestamp (the contracts' deadlines) would lag the wall clock.
        """
        chain: Any = self.chain
        now = self.now()
        if self._pending and now >= chain.header.timestamp + self.block_time:
            self.mine_blocks()
        if not self._pending and now > chain.header.timestamp:
            chain.header = chain.header.copy(timestamp=now)

    def seconds_to_mine(self, transaction_hash: bytes) -> float | None:
        """Seconds until the pending transaction's block is due; ``None`` when it is not pending."""
        if transaction_hash not in self._pending:
            return None
        chain: Any = self.chain
        due = int(chain.header.timestamp) + self.block_time
        return max(0.0, due - (time.time() + self.offset))

    def seal(self) -> None:
        """Mine the pending block now if it holds transactions (its stamp is not in the future)."""
        if self._pending:
            self.mine_blocks()

    def advance(self, seconds: int) -> int:
        """Development only: mine an empty block ``seconds`` after now, and keep that lead."""
        self.seal()
        target = max(self._head_timestamp(), self.now()) + seconds
        chain: Any = self.chain
        chain.header = chain.header.copy(timestamp=target)
        self.mine_blocks()
        self.offset = max(self.offset, target - int(time.time()))
        return target

    # -- transactions and mining --------------------------------------------------------------

    def _make_room(self, raw_transaction: bytes) -> None:
        """A transaction that does not fit in the pending block waits for the next block.

        py-evm refuses one whose gas limit exceeds what is left of the block's. The full block is
        mined now (its stamp is not in the future) and the sender waits, under the caller's lock,
        until the next block's second has come: a real chain leaves it in the mempool as long.
        """
        chain: Any = self.chain
        header = chain.header
        try:
            gas = int(chain.get_transaction_builder().decode(raw_transaction).gas)
        except (RLPException, ValidationError, PyEVMError):
            # not decodable (bad RLP, empty, an unknown type): send_raw_transaction refuses it
            return
        if not self._pending or header.gas_used + gas <= header.gas_limit:
            return
        self.mine_blocks()
        time.sleep(max(0.0, chain.header.timestamp - (time.time() + self.offset)))
        self.tick()

    def send_raw_transaction(self, raw_transaction: bytes) -> Any:
        self.tick()
        if self.block_time > 0:
            self._make_room(raw_transaction)
        tx_hash = super().send_raw_transaction(raw_transaction)
        self._pending.add(bytes(tx_hash))
        if self.block_time == 0:
            self.mine_blocks()
        return tx_hash

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes | None = None) -> Any:
        if coinbase is None:
            hashes = super().mine_blocks(num_blocks)
        else:
            hashes = super().mine_blocks(num_blocks, coinbase)
        self.store.commit()
        self._pending.clear()
        return hashes

    def _locate(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        if transaction_hash in self._pending:
            for index, transaction in enumerate(self.chain.get_block().transactions):
                if transaction.hash == transaction_hash:
                    return self.chain.get_block(), transaction, index
        try:
            block_number, index = self.chain.chaindb.get_transaction_index(Hash32(transaction_hash))
        except EvmTransactionNotFound as exc:  # py-evm's own, not eth-tester's
            raise TransactionNotFound(
                f"No transaction found for transaction hash: {encode_hex(transaction_hash)}"
            ) from exc
        block = self.chain.get_canonical_block_by_number(block_number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, transaction, index, is_pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        # A node has no receipt for a pending transaction; the block may not be committed yet.
        if transaction_hash in self._pending:
            raise TransactionNotFound(
                f"Transaction {encode_hex(transaction_hash)} is pending: no receipt yet"
            )
        block, transaction, index = self._locate(transaction_hash)
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, False, self.chain.get_vm()
        )
