"""Sealed bids: commitments to private values and their encryption to the RSU's key.

A Bayesian double auction needs each side not to see the other's value (spec section 5). A
bidder posts ``commitment = keccak256(abi_encode(market, round_id, bidder, value, salt))`` with its
public bounds, and may attach ``seal(rsu_pubkey, value, salt)``, the value encrypted to the RSU
(ECIES on secp256k1: ephemeral ECDH, keccak key derivation, AES-256-GCM), so that the RSU can
reveal it after the bid window when the vehicle is offline. The contract checks the commitment
either way, so the RSU cannot change a value it reveals.
"""

from __future__ import annotations

import secrets

import coincurve
from Crypto.Cipher import AES
from eth_abi.abi import encode
from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

from evtrade.errors import LedgerError

_INFO = b"evtrade sealed bid v1"
_PUB = 65
_NONCE = 12
_TAG = 16
_PLAIN = 64
SEALED_SIZE = _PUB + _NONCE + _TAG + _PLAIN


def new_salt() -> bytes:
    """32 random bytes for a commitment."""
    return secrets.token_bytes(32)


def commitment(market: str, round_id: int, bidder: str, value: int, salt: bytes) -> bytes:
    """The commitment the market contract checks at reveal."""
    if len(salt) != 32:
        raise LedgerError(f"field 'salt' must be 32 bytes, got {len(salt)}")
    payload = encode(
        ["address", "uint256", "address", "uint256", "bytes32"],
        [to_canonical_address(market), round_id, to_canonical_address(bidder), value, salt],
    )
    return keccak(payload)


def _key(shared_point: bytes) -> bytes:
    return keccak(shared_point + _INFO)


def seal(rsu_pubkey: bytes, value: int, salt: bytes) -> bytes:
    """Encrypt ``(value, salt)`` to the RSU's 64-byte public key."""
    if len(rsu_pubkey) != 64:
        raise LedgerError(f"RSU public key must be 64 bytes, got {len(rsu_pubkey)}")
    if len(salt) != 32:
        raise LedgerError(f"field 'salt' must be 32 bytes, got {len(salt)}")
    ephemeral = coincurve.PrivateKey()
    shared = coincurve.PublicKey(b"\x04" + rsu_pubkey).multiply(ephemeral.secret).format()
    nonce = secrets.token_bytes(_NONCE)
    cipher = AES.new(_key(shared), AES.MODE_GCM, nonce=nonce)
    body, tag = cipher.encrypt_and_digest(value.to_bytes(32, "big") + salt)
    return ephemeral.public_key.format(compressed=False) + nonce + tag + body


def unseal(rsu_private_key: bytes, sealed: bytes) -> tuple[int, bytes]:
    """Decrypt a sealed bid with the RSU's private key: ``(value, salt)``."""
    if len(sealed) != SEALED_SIZE:
        raise LedgerError(f"sealed bid must be {SEALED_SIZE} bytes, got {len(sealed)}")
    try:
        ephemeral = coincurve.PublicKey(sealed[:_PUB])
        shared = ephemeral.multiply(rsu_private_key).format()
        nonce = sealed[_PUB : _PUB + _NONCE]
        tag = sealed[_PUB + _NONCE : _PUB + _NONCE + _TAG]
        cipher = AES.new(_key(shared), AES.MODE_GCM, nonce=nonce)
        plain = cipher.decrypt_and_verify(sealed[_PUB + _NONCE + _TAG :], tag)
    except ValueError as exc:
        raise LedgerError(f"sealed bid cannot be opened with this key: {exc}") from exc
    return int.from_bytes(plain[:32], "big"), plain[32:]
