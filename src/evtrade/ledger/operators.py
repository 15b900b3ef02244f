"""A development deployment's operators and contracts, kept in a data directory.

Wiring for the edges (the CLI's ``chain`` commands, the demo, the RSU service): the operators'
keys and the deployment file of a chain, created on first use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.ledger.chain import Chain, read_json
from evtrade.ledger.client import Deployment, Ledger
from evtrade.settlement.rounds import Operators

_KEYS_FILE = "operator-keys.json"
_DEPLOYMENT_FILE = "deployment.json"


def load_operators(data_dir: Path) -> Operators[LocalAccount]:
    """The operators' keys kept in ``data_dir`` (created, mode 0600, on first use).

    Development only: a production RSU keeps its key in its own keystore or HSM.
    """
    path = data_dir / _KEYS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        keys = {"authority": Account.create().key.hex(), "rsu": Account.create().key.hex()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keys, handle)
    data = read_json(path)
    return Operators(Account.from_key(data["authority"]), Account.from_key(data["rsu"]))


def open_ledger(chain: Chain, data_dir: Path, deployment_file: Path | None = None) -> Ledger:
    """The deployment recorded for this chain, or a fresh one (recorded in ``data_dir``)."""
    path = deployment_file or data_dir / _DEPLOYMENT_FILE
    if path.exists():
        return Ledger(chain, Deployment.load(path))
    operators = load_operators(data_dir)
    ledger = Ledger.deploy(chain, operators.authority)
    ledger.register_rsu(operators.authority, operators.rsu)
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger.deployment.save(path)
    return ledger
