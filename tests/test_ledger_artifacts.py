"""The shipped artifacts are what the Vyper sources compile to; units and sealing round-trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import coincurve
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtrade.errors import LedgerError
from evtrade.ledger.artifacts import CONTRACTS, VYPER_VERSION, compile_contract, load_artifact
from evtrade.ledger.sealing import commitment, new_salt, seal, unseal
from evtrade.settlement import units


@pytest.mark.parametrize("name", CONTRACTS)
def test_shipped_artifact_matches_a_fresh_compile(name: str) -> None:
    shipped, fresh = load_artifact(name), compile_contract(name)
    assert shipped.abi == fresh.abi
    assert shipped.bytecode == fresh.bytecode
    assert shipped.evm_version == "cancun"


def test_one_vyper_version_everywhere() -> None:
    """The shipped artifacts, the dev extra's pin and VYPER_VERSION name the same compiler."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    dev = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["dev"]
    assert f"vyper=={VYPER_VERSION}" in dev
    for name in CONTRACTS:
        assert load_artifact(name).compiler.startswith(f"vyper {VYPER_VERSION}+")


def test_unknown_contract_is_refused() -> None:
    with pytest.raises(LedgerError, match="unknown contract 'Escrow'"):
        load_artifact("Escrow")


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_sealed_bid_round_trip(value: int) -> None:
    key = coincurve.PrivateKey()
    salt = new_salt()
    assert unseal(key.secret, seal(key.public_key.format(compressed=False)[1:], value, salt)) == (
        value,
        salt,
    )


def test_sealed_bid_refuses_the_wrong_key_and_tampering() -> None:
    key, other = coincurve.PrivateKey(), coincurve.PrivateKey()
    blob = seal(key.public_key.format(compressed=False)[1:], 7, new_salt())
    with pytest.raises(LedgerError, match="cannot be opened"):
        unseal(other.secret, blob)
    with pytest.raises(LedgerError, match="cannot be opened"):
        unseal(key.secret, blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(LedgerError, match="must be 157 bytes"):
        unseal(key.secret, blob[:100])


def test_commitment_binds_every_field() -> None:
    salt = new_salt()
    base = commitment("0x" + "11" * 20, 3, "0x" + "22" * 20, 5, salt)
    assert base != commitment("0x" + "12" * 20, 3, "0x" + "22" * 20, 5, salt)
    assert base != commitment("0x" + "11" * 20, 4, "0x" + "22" * 20, 5, salt)
    assert base != commitment("0x" + "11" * 20, 3, "0x" + "23" * 20, 5, salt)
    assert base != commitment("0x" + "11" * 20, 3, "0x" + "22" * 20, 6, salt)
    assert base != commitment("0x" + "11" * 20, 3, "0x" + "22" * 20, 5, new_salt())


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (-1.0, "must be >= 0"),
        (float("nan"), "must be finite"),
        ("3", "must be a number"),
        (True, "must be a number"),
        (1e80, "too large"),
    ],
)
def test_to_fixed_refuses_bad_numbers(value: object, match: str) -> None:
    with pytest.raises(LedgerError, match=f"field 'b_max'.*{match}|{match}"):
        units.to_fixed("b_max", value, units.ENERGY_SCALE)  # type: ignore[arg-type]


def test_to_fixed_is_exact_on_decimals() -> None:
    assert units.to_fixed("v", 0.1, units.PRICE_SCALE) == 10**17
    assert units.to_fixed("lat", -57.123456, units.DEGREE_SCALE, signed=True) == -57123456
    assert units.escrow(10**18, 1) == 10**12
    assert units.escrow(3, 1) == 1  # rounds up
