"""Who is asking: the built-in wallet's passwords and the signed requests (EIP-191).

Vehicles that chose the built-in wallet have their key encrypted in the index; every
state-changing call unlocks it with the vehicle's password (:meth:`Wallets.unlock`) and signs the
transaction with the vehicle's own key (the contract checks ``msg.sender``). Vehicles that keep
their own key sign a request text (the ``*_message`` functions below) instead, checked by
:meth:`Wallets.check_signed`, or relay transactions they signed (:mod:`evtrade.service.relay`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from evtrade.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    SignatureError,
    ThrottledError,
    TooManyError,
    UnauthorizedError,
)
from evtrade.service.security import (
    KdfGate,
    Throttle,
    client_ip,
    recover_canonical,
)
from evtrade.service.store import Store, VehicleRow

#: Key derivation of the built-in wallet (eth-account keystore v3, scrypt).
KDF_ITERATIONS = 2**14
#: How far a signed request's timestamp may be from the service's clock, seconds.
SIGNATURE_WINDOW = 120


def registration_message(address: str, plate: str) -> str:
    """What a vehicle that keeps its own key signs (EIP-191) to register."""
    return f"evtrade: register vehicle {to_checksum_address(address)} with plate {plate}"


def top_up_message(address: str, tokens: float, timestamp: int, nonce: int) -> str:
    """What a vehicle that keeps its own key signs (EIP-191) to ask the faucet for a top-up.

    ``tokens`` is written as Python's ``repr`` of the float the service reads (``5`` -> ``5.0``).
    """
    return (
        f"evtrade: top up {to_checksum_address(address)} by {float(tokens)!r} tokens"
        f" at {timestamp} nonce {nonce}"
    )


def mint_message(address: str, tokens: float, timestamp: int, nonce: int) -> str:
    """What the authority signs (EIP-191) to mint ``tokens`` to a vehicle."""
    return (
        f"evtrade: authority mints {float(tokens)!r} tokens to {to_checksum_address(address)}"
        f" at {timestamp} nonce {nonce}"
    )


def details_message(address: str, timestamp: int, nonce: int) -> str:
    """What a vehicle that keeps its own key signs (EIP-191) to read its own details."""
    return f"evtrade: show details of {to_checksum_address(address)} at {timestamp} nonce {nonce}"


#: A request text to sign, given the request's timestamp and nonce.
MessageOf = Callable[[int, int], str]


class Wallets:
    """The built-in wallet and the checks of signed requests, over the vehicles' index."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.throttle = Throttle()
        self.kdf = KdfGate()

    def vehicle(self, address: str) -> VehicleRow:
        """The registered vehicle at ``address``; :class:`~evtrade.errors.NotFoundError` if none."""
        row = self.store.vehicle(address)
        if row is None:
            raise NotFoundError(f"unknown vehicle {address}")
        return row

    def new_keystore(self, password: str) -> tuple[str, dict[str, Any]]:
        """A new key for the built-in wallet: its address and its keystore under ``password``."""
        account = Account.create()
        try:
            with self.kdf:
                keystore = dict(
                    Account.encrypt(account.key, password, kdf="scrypt", iterations=KDF_ITERATIONS)
                )
        except ThrottledError as exc:  # the scrypt gate stayed full: a 429, as in unlock
            raise TooManyError(exc.retry_after, exc.what) from None
        return str(account.address), keystore

    def unlock(self, address: str, password: str) -> LocalAccount:
        """The vehicle's key from the built-in wallet; a wrong password is refused.

        Guessing is throttled per (vehicle, client), per client and per vehicle
        (:class:`~evtrade.service.security.Throttle`): a throttled check is refused
        (:class:`~evtrade.errors.TooManyError`) before any scrypt work, and at most
        :func:`~evtrade.service.security.kdf_slots` derivations run at once.
        """
        row = self.vehicle(address)
        if row.keystore is None:
            raise ForbiddenError(
                f"vehicle {address} keeps its own key: send signed transactions to /api/tx"
            )
        client = client_ip.get()
        try:
            self.throttle.check(row.address, client)
            with self.kdf:
                self.throttle.check(row.address, client)  # a queued burst stops here
                try:
                    key = Account.decrypt(row.keystore, password)
                except ValueError:
                    self.throttle.failed(row.address, client)
                    raise UnauthorizedError(
                        "field 'password': wrong password for this vehicle"
                    ) from None
        except ThrottledError as exc:
            raise TooManyError(exc.retry_after, f"field 'password': {exc.what}") from None
        self.throttle.succeeded(row.address, client)
        account: LocalAccount = Account.from_key(key)
        return account

    def authenticate(
        self,
        row: VehicleRow,
        password: str | None,
        message: MessageOf,
        signature: str | None,
        timestamp: int | None,
        nonce: int | None,
    ) -> None:
        """The vehicle's wallet password (:meth:`unlock`) or else its signed, fresh, unused
        request (:meth:`check_signed`) over ``message(timestamp, nonce)``."""
        if password is not None:
            self.unlock(row.address, password)
        else:
            self.check_signed(row.address, message, signature, timestamp, nonce)

    def check_signed(
        self,
        signer: str,
        message: MessageOf,
        signature: str | None,
        timestamp: int | None,
        nonce: int | None,
        *,
        who: str = "this vehicle's key",
    ) -> None:
        """A signed request (EIP-191): by ``signer``, fresh (2 minutes), never used before.

        The replay key is the digest of the signed text (address, amount, timestamp, nonce), not
        the signature's bytes, and only canonical signatures (``v`` 27/28, low ``s``) are
        accepted: re-encoding a signature does not make a new request.
        """
        if signature is None or timestamp is None or nonce is None:
            raise UnauthorizedError(
                "unsigned request: give password, or signature, timestamp and nonce"
            )
        now = time.time()
        if abs(now - timestamp) > SIGNATURE_WINDOW:
            raise UnauthorizedError(f"field 'timestamp': more than {SIGNATURE_WINDOW} s from now")
        text = message(timestamp, nonce)
        try:
            recovered: str | None = recover_canonical(text, signature)
        except SignatureError as exc:
            raise UnauthorizedError(f"field 'signature': {exc}") from None
        if recovered != to_checksum_address(signer):
            raise UnauthorizedError(f"field 'signature': not signed by {who}")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if not self.store.use_request(digest, timestamp, int(now) - 2 * SIGNATURE_WINDOW):
            raise ConflictError("field 'signature': this signed request was already used")

    def proves_own_key(self, address: str, plate: str, signature: str) -> bool:
        """True when ``signature`` is ``address``'s (EIP-191) over its registration text."""
        try:
            signer: str | None = recover_canonical(registration_message(address, plate), signature)
        except SignatureError:
            signer = None
        return signer == address
