"""Encrypted key files (Ethereum's JSON keystore, v3) for the authority and the RSUs.

A key never travels on a command line: it lives in a keystore file (scrypt, AES-128-CTR, as
``eth_account.Account.encrypt`` writes it) and is unlocked with a password read from an
environment variable or typed at a prompt (:func:`password`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.errors import LedgerError
from evtrade.model.safejson import loads_bounded

#: A keystore file is a few hundred bytes; anything much larger is not one.
MAX_KEYSTORE_BYTES = 64 * 1024


def new_keystore(path: Path, password: str) -> LocalAccount:
    """Create a random key, write it encrypted to ``path`` (mode 0600, never over an existing
    file) and return its account."""
    if not password:
        raise LedgerError(f"{path}: refusing an empty keystore password")
    account: LocalAccount = Account.create()
    data = Account.encrypt(account.key, password)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise LedgerError(f"{path}: exists already (a keystore is never overwritten)") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
        handle.write("\n")
    return account


def load_keystore(path: Path, password: str) -> LocalAccount:
    """The account of the keystore at ``path``; a :class:`LedgerError` naming the file when it
    is not a keystore or the password does not open it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"{path}: {exc.strerror or exc}") from exc
    try:
        data = loads_bounded(raw, max_bytes=MAX_KEYSTORE_BYTES)
        if not isinstance(data, dict) or "crypto" not in {str(k).lower() for k in data}:
            raise ValueError("no 'crypto' section")
    except ValueError as exc:  # JsonInputError is one
        raise LedgerError(f"{path}: not a keystore file ({exc})") from None
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:  # eth_keyfile: "MAC mismatch" for a wrong password
        raise LedgerError(f"{path}: cannot open the keystore ({exc})") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise LedgerError(f"{path}: not a keystore file ({type(exc).__name__}: {exc})") from None
    account: LocalAccount = Account.from_key(key)
    return account


def password(
    variable: str, *, prompt: Callable[[str], str] | None = None, what: str = "keystore"
) -> str:
    """The password in the environment variable ``variable``, or typed at ``prompt`` when the
    variable is unset and stdin is a terminal; else a :class:`LedgerError` naming the variable."""
    value = os.environ.get(variable)
    if value is not None:
        return value
    if prompt is not None and sys.stdin.isatty():
        return prompt(f"password of the {what}")
    raise LedgerError(f"set {variable} to the {what}'s password (no terminal to ask it at)")
