"""The relay: transactions a vehicle that keeps its own key signed itself, sent on its behalf once
the signer and the target are checked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import eth_keys.exceptions
import eth_utils.exceptions
import rlp.exceptions  # type: ignore[import-untyped]  # pyrlp ships no type information
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from evtrade.errors import (
    ConflictError,
    ForbiddenError,
    LedgerError,
    MalformedRequestError,
    NotMinedError,
)
from evtrade.ledger.chain import Chain
from evtrade.service.context import RsuContext

#: How long the relay waits for a relayed transaction's block, seconds.
RECEIPT_TIMEOUT_SECONDS = 60
#: What reading a transaction's bytes raises when they are not a signed transaction (malformed
#: RLP, a signature off the curve, a field of the wrong type or size).
_UNREADABLE = (
    ValueError,
    TypeError,
    LookupError,
    rlp.exceptions.RLPException,
    eth_keys.exceptions.BadSignature,
    eth_utils.exceptions.ValidationError,
)


def decode_transaction(data: bytes) -> dict[str, Any]:
    """The target (``to``) and calldata (``data``) of a typed (EIP-2718) transaction."""
    if not data or data[0] > 0x7F:
        raise ValueError("send a typed (EIP-2718) transaction, e.g. EIP-1559")
    tx = TypedTransaction.from_bytes(HexBytes(data)).as_dict()
    to = tx.get("to")
    return {
        "to": "0x" + bytes(to).hex() if isinstance(to, bytes) else to,
        "data": tx.get("data"),
    }


class Relay:
    """Sends vehicles' own signed transactions to the market or the token contract only."""

    def __init__(self, ctx: RsuContext, chain: Chain, contracts: Iterable[str]) -> None:
        self.ctx = ctx
        self.chain = chain
        #: The contracts a relayed transaction may call (the market and the token), lower case.
        self.allowed = frozenset(address.lower() for address in contracts)

    def relay(self, raw: str) -> dict[str, Any]:
        """Relay a transaction a vehicle signed itself, once its signer and target are checked."""
        ctx = self.ctx
        try:
            data = HexBytes(raw)
            sender = Account.recover_transaction(data)
            decoded = decode_transaction(data)
        except _UNREADABLE as exc:  # the client's fault
            raise MalformedRequestError(f"field 'raw': not a signed transaction ({exc})") from None
        if not ctx.ledger.is_valid_vehicle(sender):
            raise ForbiddenError(f"transaction signed by {sender}, not a registered vehicle")
        to = str(decoded.get("to", "")).lower()
        if to not in self.allowed:
            raise ForbiddenError("transactions may only call the market or the token contract")
        ctx.take_bid(sender)
        with ctx.lock:
            try:
                self.chain.preflight(sender, to, decoded["data"], what="relayed transaction")
            except LedgerError as exc:  # a revert, or the node refusing the sender
                raise ConflictError(f"the contract refuses it: {exc}") from None
            try:  # a replayed or stale nonce, or too little gas money
                tx_hash = self.chain.send_raw(data)
            except LedgerError as exc:
                raise ConflictError(f"the node refuses it: {exc}") from None
        # Wait for the block outside the lock, as bids do: the clock and other vehicles go on.
        try:
            receipt = self.chain.receipt(tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS)
        except LedgerError as exc:  # sent, but not mined within a minute
            raise NotMinedError(
                f"transaction {HexBytes(tx_hash).to_0x_hex()} sent, not yet mined: {exc}"
            ) from None
        with ctx.lock:
            ctx.changed()
        return {
            "tx": HexBytes(tx_hash).to_0x_hex(),
            "status": int(receipt["status"]),
            "from": sender,
        }
