"""Compiled contracts: the shipped artifacts and the compiler run that makes them.

The service and the CLI load the JSON artifacts shipped in ``evtrade/ledger/artifacts`` (ABI,
bytecode, compiler version, source hash), so running a ledger needs no compiler. Vyper is a
development dependency: ``python -m evtrade.ledger.artifacts`` recompiles after a contract change,
and a test checks that the shipped artifacts are what the sources compile to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from evtrade.errors import LedgerError

#: The contracts, in deployment order.
CONTRACTS = ("Registry", "Token", "Market")
#: Every shipped contract: the market's, and the DSM day's billing (ledger/dsm_billing.py).
SHIPPED = (*CONTRACTS, "DsmBilling")
#: Compiled for Cancun: anvil, Besu and py-evm's Prague all run it (docs/ledger.md).
EVM_VERSION = "cancun"
#: The compiler the shipped artifacts come from; pyproject.toml's dev extra pins the same one
#: (tests/test_ledger_artifacts.py checks both), and a fresh compile refuses any other.
VYPER_VERSION = "0.4.3"

_PACKAGE = "evtrade.ledger"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    source_sha256: str
    compiler: str
    evm_version: str


def source_path(name: str) -> Path:
    """Path of a contract's Vyper source."""
    return Path(str(resources.files(_PACKAGE).joinpath("contracts", f"{name}.vy")))


def artifact_path(name: str) -> Path:
    """Path of a contract's shipped artifact."""
    return Path(str(resources.files(_PACKAGE).joinpath("artifacts", f"{name}.json")))


def source_hash(name: str) -> str:
    """sha256 of a contract's source, recorded in its artifact."""
    return hashlib.sha256(source_path(name).read_bytes()).hexdigest()


def load_artifact(name: str) -> Artifact:
    """Load a shipped artifact; refuse one that is stale against its source."""
    if name not in SHIPPED:
        raise LedgerError(f"unknown contract {name!r}; known: {', '.join(SHIPPED)}")
    data = json.loads(artifact_path(name).read_text())
    artifact = Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        source_sha256=data["source_sha256"],
        compiler=data["compiler"],
        evm_version=data["evm_version"],
    )
    if artifact.source_sha256 != source_hash(name):
        raise LedgerError(
            f"artifact {name}.json is stale: its source changed; run "
            "`python -m evtrade.ledger.artifacts` to recompile"
        )
    return artifact


def _vyper_executable() -> str:
    beside = Path(sys.executable).with_name("vyper")
    found = str(beside) if beside.exists() else shutil.which("vyper")
    if found is None:
        raise LedgerError(
            f"the Vyper compiler is not installed (pip install vyper=={VYPER_VERSION})"
        )
    return found


def compile_contract(name: str) -> Artifact:
    """Compile one contract with the installed Vyper."""
    out = subprocess.run(
        [
            _vyper_executable(),
            "-f",
            "abi,bytecode",
            "--evm-version",
            EVM_VERSION,
            str(source_path(name)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise LedgerError(f"vyper failed on {name}.vy:\n{out.stderr}")
    abi_text, bytecode = out.stdout.strip().split("\n")
    version = subprocess.run(
        [_vyper_executable(), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if version.split("+")[0] != VYPER_VERSION:  # another compiler emits other bytecode
        raise LedgerError(f"vyper {version} is installed; the contracts need {VYPER_VERSION}")
    return Artifact(
        name=name,
        abi=json.loads(abi_text),
        bytecode=bytecode.strip(),
        source_sha256=source_hash(name),
        compiler=f"vyper {version}",
        evm_version=EVM_VERSION,
    )


def write_artifacts(directory: Path | None = None) -> list[Path]:
    """Compile every contract and write its artifact JSON."""
    written = []
    for name in SHIPPED:
        artifact = compile_contract(name)
        path = (directory or artifact_path(name).parent) / f"{name}.json"
        payload = {
            "abi": artifact.abi,
            "bytecode": artifact.bytecode,
            "source_sha256": artifact.source_sha256,
            "compiler": artifact.compiler,
            "evm_version": artifact.evm_version,
        }
        path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_artifacts():
        print(written_path)
