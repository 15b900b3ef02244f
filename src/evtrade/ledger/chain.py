"""Chain back ends behind one interface: the embedded chain on disk, or any JSON-RPC node.

Both sign transactions locally (eth-account) and send them raw, always with an explicit gas limit
(estimation re-executes the call many times, which is slow on py-evm), after a preflight
``eth_call`` against the pending block: a call the contract would refuse raises
:class:`~evtrade.errors.ContractRejectedError` with the contract's reason and writes nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester
from eth_tester.exceptions import TransactionFailed
from eth_utils.exceptions import ValidationError
from hexbytes import HexBytes
from requests.exceptions import RequestException
from rlp.exceptions import RLPException  # type: ignore[import-untyped]
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import FilterParams, LogReceipt, RPCEndpoint, RPCResponse, TxParams, TxReceipt

from evtrade.errors import ContractRejectedError, LedgerError
from evtrade.ledger.embedded import PersistentBackend, SqliteStore

#: anvil's first well-known development key (its default mnemonic); funded on a fresh anvil.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
_FAUCET_FILE = "faucet.key"
_STORE_FILE = "chain.sqlite"
_FAUCET_WEI = 10**30
_MAX_BLOCK_TIME = 60


@dataclass(frozen=True, slots=True)
class Sent:
    """A transaction sent and not yet waited for."""

    tx_hash: HexBytes
    what: str


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """A block as a block explorer lists it."""

    number: int
    hash: str
    timestamp: int
    transactions: tuple[str, ...]


def _as_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def revert_reason(exc: Exception) -> str:
    """The contract's reason in a failed call's error, without the node's prefix."""
    message = getattr(exc, "message", None) or str(exc)
    for prefix in ("execution reverted: ", "execution reverted:"):
        if prefix in message:
            message = message.split(prefix, 1)[1]
    return message.strip().strip("'\"")


class Chain(ABC):
    """A chain the client can send signed transactions to."""

    kind: str
    w3: Web3
    faucet: LocalAccount

    def __init__(self) -> None:
        self._nonces: dict[str, int] = {}
        self._lock = threading.RLock()
        self._chain_id: int | None = None
        self._fee_cap: int | None = None
        self._sent_since_fee = 0

    @property
    def chain_id(self) -> int:
        """The chain id transactions are signed for."""
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def _max_fee(self) -> int:
        # Refresh the fee cap now and then: twice the base fee covers a run of full blocks.
        if self._fee_cap is None or self._sent_since_fee >= 64:
            base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
            self._fee_cap = 2 * base + 10**9
            self._sent_since_fee = 0
        self._sent_since_fee += 1
        return self._fee_cap

    def _next_nonce(self, address: str) -> int:
        nonce = self._nonces.get(address)
        if nonce is None:
            nonce = int(self.w3.eth.get_transaction_count(address, "pending"))  # type: ignore[arg-type]
        self._nonces[address] = nonce + 1
        return nonce

    def _envelope(self, account: LocalAccount, gas: int) -> dict[str, Any]:
        """The fields every transaction carries: explicit gas, the next nonce, EIP-1559 fees."""
        return {
            "gas": gas,
            "nonce": self._next_nonce(account.address),
            "maxFeePerGas": self._max_fee(),
            "maxPriorityFeePerGas": 0,
            "chainId": self.chain_id,
        }

    def send_call(
        self,
        account: LocalAccount,
        fn: ContractFunction,
        gas: int,
        *,
        what: str,
        preflight: bool = True,
    ) -> Sent:
        """Preflight, sign and send a contract call without waiting for its block.

        ``preflight=False`` skips the ``eth_call`` (a refused call then costs gas and surfaces
        only in :meth:`wait`); the settlement benchmark measures both.
        """
        # All fields given, so web3 only encodes the call (no node round trip).
        params = {
            "from": account.address,
            "gas": gas,
            "nonce": 0,
            "maxFeePerGas": 0,
            "maxPriorityFeePerGas": 0,
            "chainId": self.chain_id,
        }
        data = fn.build_transaction(cast(TxParams, params))["data"]
        return self.send_data(
            account, fn.address, HexBytes(data), gas, what=what, preflight=preflight
        )

    def send_data(
        self,
        account: LocalAccount,
        to: str | None,
        data: bytes,
        gas: int,
        *,
        what: str,
        preflight: bool = True,
    ) -> Sent:
        """Preflight, sign and send calldata to ``to`` (``None``: deploy ``data`` as code).

        Callers with big arguments encode them with eth-abi: web3's contract layer formats
        arguments element by element, 0.6 s for a 500-trade settlement (docs/ledger.md).
        """
        with self._lock:
            if preflight:
                self.preflight(account.address, to, data, what=what)
            tx: dict[str, Any] = {"data": HexBytes(data), "value": 0}
            if to is not None:
                tx["to"] = Web3.to_checksum_address(to)
            tx.update(self._envelope(account, gas))
            return self._send_signed(account, tx, what)

    def preflight(self, sender: str, to: str | None, data: bytes, *, what: str) -> None:
        """Execute a call against the pending block and throw the result away.

        Raises :class:`ContractRejectedError` with the contract's reason when it would revert,
        :class:`LedgerError` when the node refuses the transaction itself (e.g. no gas money).
        """
        call: dict[str, Any] = {"from": Web3.to_checksum_address(sender), "data": HexBytes(data)}
        if to is not None:
            call["to"] = Web3.to_checksum_address(to)
        try:
            self.w3.eth.call(cast(TxParams, call), "pending")
        except (ContractLogicError, Web3RPCError, TransactionFailed) as exc:
            raise ContractRejectedError(f"{what}: {revert_reason(exc)}") from exc
        except ValidationError as exc:  # py-evm refuses the transaction (no gas money)
            raise LedgerError(f"{what}: {exc}") from exc

    def wait_status(self, sent: Sent, timeout: float = 120.0) -> dict[str, int]:
        """Wait for a receipt and return only its status, block and gas (no log decoding)."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self.w3.provider.make_request(
                "eth_getTransactionReceipt",  # type: ignore[arg-type]
                [sent.tx_hash.to_0x_hex()],
            )
            result = raw.get("result")
            if result:
                # eth-tester answers in snake case, nodes in camel case
                out = {
                    k: _as_int(result[k] if k in result else result[snake])
                    for k, snake in (
                        ("status", "status"),
                        ("blockNumber", "block_number"),
                        ("gasUsed", "gas_used"),
                    )
                }
                if out["status"] != 1:
                    raise ContractRejectedError(
                        f"{sent.what}: reverted on chain in block {out['blockNumber']}"
                    )
                return out
            if time.monotonic() > deadline:
                raise LedgerError(f"{sent.what}: no receipt after {timeout} s")
            time.sleep(0.01)

    def send_value(self, account: LocalAccount, to: str, wei: int, *, what: str) -> Sent:
        """Send ether (gas money) from ``account``."""
        with self._lock:
            tx = {
                "to": Web3.to_checksum_address(to),
                "value": wei,
                **self._envelope(account, 21_000),
            }
            return self._send_signed(account, tx, what)

    def _send_signed(self, account: LocalAccount, tx: Any, what: str) -> Sent:
        signed = account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except (Web3RPCError, ValueError) as exc:
            self._nonces.pop(account.address, None)
            raise LedgerError(
                f"{what}: the node refused the transaction: {revert_reason(exc)}"
            ) from exc
        return Sent(HexBytes(tx_hash), what)

    def wait(self, sent: Sent, timeout: float = 120.0) -> TxReceipt:
        """Wait for a receipt; a reverted transaction raises :class:`ContractRejectedError`."""
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                sent.tx_hash, timeout=timeout, poll_latency=0.05
            )
        except TimeExhausted as exc:
            raise LedgerError(f"{sent.what}: no receipt after {timeout} s") from exc
        if receipt["status"] != 1:
            raise ContractRejectedError(
                f"{sent.what}: reverted on chain in block {receipt['blockNumber']}"
            )
        return receipt

    def transact(
        self, account: LocalAccount, fn: ContractFunction, gas: int, *, what: str
    ) -> TxReceipt:
        """Preflight, send and wait."""
        return self.wait(self.send_call(account, fn, gas, what=what))

    def fund(self, address: str, wei: int) -> None:
        """Give an account gas money from the faucet."""
        self.wait(self.send_value(self.faucet, address, wei, what="fund"))

    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def wait_until(self, timestamp: int) -> None:
        """Let the clock pass ``timestamp``: jump on development chains, wait on real ones."""
        gap = timestamp - self.timestamp()
        if gap < 0:
            return
        try:
            self.advance_time(gap + 1)
        except LedgerError:
            while self.timestamp() <= timestamp:
                time.sleep(0.5)

    # -- reading the chain (the client and the service's explorer; nobody else touches w3) ----

    def block_number(self) -> int:
        """Number of the latest block."""
        return int(self.w3.eth.block_number)

    def recent_blocks(self, count: int) -> list[BlockSummary]:
        """The latest ``count`` blocks, newest first."""
        head = self.block_number()
        out = []
        for n in range(head, max(-1, head - count), -1):
            block = self.w3.eth.get_block(n)
            out.append(
                BlockSummary(
                    number=n,
                    hash=block["hash"].to_0x_hex(),
                    timestamp=int(block["timestamp"]),
                    transactions=tuple(HexBytes(t).to_0x_hex() for t in block["transactions"]),  # type: ignore[arg-type]
                )
            )
        return out

    def ether_balance(self, address: str) -> int:
        """An account's gas money, in wei."""
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def has_code(self, address: str) -> bool:
        """True when a contract is deployed at ``address``."""
        return len(self.w3.eth.get_code(Web3.to_checksum_address(address))) > 0

    def contract(self, address: str, abi: Any) -> Contract:
        """A contract object at ``address`` for encoding calls and decoding its events."""
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def deploy_code(self, abi: Any, bytecode: str, args: Any) -> bytes:
        """The calldata that deploys ``bytecode`` with constructor ``args``."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        return bytes(HexBytes(factory.constructor(*args).data_in_transaction))

    def logs(self, query: FilterParams) -> list[LogReceipt]:
        """``eth_getLogs``."""
        return list(self.w3.eth.get_logs(query))

    # -- relaying transactions signed elsewhere --------------------------------------------------

    def send_raw(self, data: bytes) -> HexBytes:
        """Send a transaction a client signed itself; returns its hash.

        The node's refusal (a stale nonce, too little gas money, bytes that are no transaction)
        is a :class:`LedgerError` whose message is the node's reason.
        """
        try:
            return HexBytes(self.w3.eth.send_raw_transaction(data))
        except (Web3RPCError, ValueError, ValidationError, RLPException) as exc:
            # a JSON-RPC node answers an error (Web3RPCError, ValueError); py-evm raises
            # ValidationError for the nonce or the balance, rlp for bytes it cannot decode
            raise LedgerError(revert_reason(exc)) from exc

    def receipt(self, tx_hash: bytes, timeout: float) -> TxReceipt:
        """Wait for a transaction's receipt, whatever its status.

        Raises :class:`LedgerError` (only) when it is not mined within ``timeout`` seconds.
        """
        try:
            return self.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=timeout)
        except TimeExhausted as exc:
            raise LedgerError(str(exc)) from exc

    def next_timestamp(self) -> int:
        """The earliest timestamp a transaction sent now can carry: the chain's deadlines use it.

        Timestamps are whole seconds, strictly increasing, so it is never before the latest
        block's plus one.
        """
        return max(int(time.time()), self.timestamp() + 1)

    @abstractmethod
    def advance_time(self, seconds: int) -> None:
        """Move the chain's clock forward (development chains only)."""

    def close(self) -> None:  # noqa: B027 - only the embedded chain holds a resource
        """Release the back end."""


class _Tester(EthereumTester):  # type: ignore[misc]
    """eth-tester that leaves mining to the back end's block time."""

    def send_raw_transaction(self, raw_transaction_hex: Any) -> Any:
        # eth-tester's own method, without its decorator that mines a block per transaction.
        return EthereumTester.send_raw_transaction.__wrapped__(self, raw_transaction_hex)


class _LockedProvider(EthereumTesterProvider):
    """Every request under the chain's lock (py-evm is not thread-safe), after a clock tick."""

    def __init__(self, tester: _Tester, backend: PersistentBackend, lock: threading.RLock) -> None:
        super().__init__(tester)
        self._backend = backend
        self._chain_lock = lock

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._chain_lock:
            self._backend.tick()
            return super().make_request(method, params)


class EmbeddedChain(Chain):
    """py-evm in this process, persisted to ``data_dir`` (nothing to start).

    Blocks follow the wall clock with a ``block_time`` of 1 s (docs/ledger.md): transactions
    sent within one second share a block stamped with that second, mined once it has passed,
    so a caller that waits for each receipt in turn gets one transaction per second.
    ``block_time=0`` mines a block per transaction at once (stamped ``max(now, parent + 1)``,
    so a burst runs the clock ahead of the wall clock), for tests that care about speed only.
    """

    kind = "embedded"

    def __init__(self, data_dir: Path, *, block_time: int = 1) -> None:
        super().__init__()
        if isinstance(block_time, bool) or not isinstance(block_time, int):
            raise LedgerError(f"block_time must be a whole number of seconds, not {block_time!r}")
        if not 0 <= block_time <= _MAX_BLOCK_TIME:
            raise LedgerError(f"block_time must be 0 to {_MAX_BLOCK_TIME} s, not {block_time}")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        faucet_path = data_dir / _FAUCET_FILE
        if not faucet_path.exists():
            fd = os.open(faucet_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("0x" + secrets.token_hex(32))
        self.faucet = Account.from_key(faucet_path.read_text().strip())
        self.store = SqliteStore(data_dir / _STORE_FILE)
        self.backend = PersistentBackend(
            self.store, {self.faucet.address: _FAUCET_WEI}, block_time=block_time
        )
        self.tester = _Tester(backend=self.backend)
        self.w3 = Web3(_LockedProvider(self.tester, self.backend, self._lock))
        self.w3.eth.default_account = self.faucet.address  # the sender of read-only calls

    def _await_block(self, sent: Sent, timeout: float) -> None:
        # Sleep until the pending block is due instead of polling the chain (and its lock).
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self.backend.tick()
                delay = self.backend.seconds_to_mine(bytes(sent.tx_hash))
            if delay is None or time.monotonic() + delay > deadline:
                return
            time.sleep(delay + 0.002)

    def wait(self, sent: Sent, timeout: float = 120.0) -> TxReceipt:
        self._await_block(sent, timeout)
        return super().wait(sent, timeout)

    def wait_status(self, sent: Sent, timeout: float = 120.0) -> dict[str, int]:
        self._await_block(sent, timeout)
        return super().wait_status(sent, timeout)

    def next_timestamp(self) -> int:
        with self._lock:
            return self.backend.pending_timestamp()

    def advance_time(self, seconds: int) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise LedgerError(f"advance_time needs a positive whole number of seconds: {seconds!r}")
        with self._lock:
            self.backend.advance(seconds)

    def close(self) -> None:
        """Mine what is pending (its second need not have passed), then close the store."""
        with self._lock:
            self.backend.seal()
            self.store.close()


class RpcChain(Chain):
    """Any Ethereum JSON-RPC node (anvil locally, a Besu QBFT network of RSUs)."""

    kind = "rpc"

    def __init__(self, url: str, faucet_key: str | None = None) -> None:
        super().__init__()
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        if not self.w3.is_connected():
            raise LedgerError(f"no Ethereum JSON-RPC node answers at {url}")
        key = faucet_key or os.environ.get("EVTRADE_FAUCET_KEY") or ANVIL_DEV_KEY
        self.faucet = Account.from_key(key)
        self.w3.eth.default_account = self.faucet.address  # the sender of read-only calls

    def advance_time(self, seconds: int) -> None:
        for method, params in (("evm_increaseTime", [int(seconds)]), ("evm_mine", [])):
            try:
                answer = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
            except (RequestException, ValueError) as exc:  # HTTP failure, or not JSON
                raise LedgerError(f"the node at {self.url} cannot move its clock: {exc}") from exc
            if answer.get("error"):  # a node without the development methods (not anvil)
                raise LedgerError(
                    f"the node at {self.url} cannot move its clock: {answer['error']}"
                )


def open_chain(
    *, data_dir: Path | None = None, chain_url: str | None = None, block_time: int = 1
) -> Chain:
    """The embedded chain in ``data_dir`` (with ``block_time``) or the node at ``chain_url``."""
    if chain_url:
        return RpcChain(chain_url)
    if data_dir is None:
        raise LedgerError("give a data directory for the embedded chain or a --chain-url")
    return EmbeddedChain(data_dir, block_time=block_time)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` or a :class:`LedgerError` naming the file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LedgerError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise LedgerError(f"{path}: expected a JSON object")
    return data
