"""`evtrade authority ...` and `evtrade rsu vote` against a real anvil node: keystores, the one
deployment, certifying and revoking vehicles, adding RSUs, minting, votes; bad inputs end as one
line naming the option (docs/consortium.md)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.anvil import running_anvil
from eth_account import Account
from typer.testing import CliRunner, Result

from evtrade.cli import app
from evtrade.errors import LedgerError
from evtrade.ledger.chain import open_chain
from evtrade.ledger.client import Deployment, Ledger
from evtrade.ledger.keystore import load_keystore, new_keystore

PASSWORDS = {
    "EVTRADE_KEYSTORE_PASSWORD": "authority pw",
    "EVTRADE_AUTHORITY_PASSWORD": "authority pw",
    "EVTRADE_RSU_KEY_PASSWORD": "rsu pw",
}


def cli(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**PASSWORDS, "COLUMNS": "200", **env})


def ok(*args: str, **env: str) -> str:
    result = cli(*args, **env)
    assert result.exit_code == 0, result.output
    return result.output


def error(*args: str, **env: str) -> str:
    """The one line a refused command prints (stderr is mixed into the output)."""
    result = cli(*args, **env)
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[-1]


def new_key(path: Path, password: str) -> tuple[str, str]:
    """Address and public key printed by `authority new-key`."""
    out = ok("authority", "new-key", "--out", str(path), EVTRADE_KEYSTORE_PASSWORD=password)
    fields = dict(line.split(maxsplit=1) for line in out.splitlines())
    return fields["address"], fields["pubkey"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_anvil() as u:  # automine: one block per transaction, no waiting
        yield u


@pytest.fixture(scope="module")
def world(url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("consortium")
    authority, _ = new_key(d / "authority.json", PASSWORDS["EVTRADE_AUTHORITY_PASSWORD"])
    rsus = [new_key(d / f"rsu{i}.json", PASSWORDS["EVTRADE_RSU_KEY_PASSWORD"]) for i in (1, 2)]
    deployment = d / "deployment.json"
    out = ok(
        "authority", "init", "--chain-url", url, "--keystore", str(d / "authority.json"),
        "--out", str(deployment),
    )  # fmt: skip
    assert authority in out
    return {"dir": d, "authority": authority, "rsus": rsus, "deployment": deployment}


def ledger_of(url: str, deployment: Path) -> Ledger:
    return Ledger(open_chain(chain_url=url), Deployment.load(deployment))


def common(url: str, world: dict[str, object]) -> list[str]:
    d = world["dir"]
    assert isinstance(d, Path)
    return [
        "--chain-url", url, "--keystore", str(d / "authority.json"),
        "--deployment", str(world["deployment"]),
    ]  # fmt: skip


def test_new_key_writes_an_encrypted_keystore_it_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    address, pubkey = new_key(path, "s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "crypto" in json.loads(text) and pubkey[2:] not in text
    assert load_keystore(path, "s3cret").address == address
    with pytest.raises(LedgerError, match="cannot open the keystore"):
        load_keystore(path, "wrong")
    assert "exists already" in error("authority", "new-key", "--out", str(path))
    assert path.read_text() == text
    with pytest.raises(LedgerError, match="empty keystore password"):
        new_keystore(tmp_path / "e.json", "")


def test_init_deploys_once_with_the_authority_as_the_registrys_authority(
    url: str, world: dict[str, object]
) -> None:
    deployment = world["deployment"]
    assert isinstance(deployment, Path)
    ledger = ledger_of(url, deployment)
    assert ledger.registry.functions.authority().call() == world["authority"]
    d = world["dir"]
    assert isinstance(d, Path)
    again = error(
        "authority", "init", "--chain-url", url, "--keystore", str(d / "authority.json"),
        "--out", str(deployment),
    )  # fmt: skip
    assert "--out" in again and "exists already" in again


def test_register_mint_revoke_and_vote(url: str, world: dict[str, object]) -> None:
    args = common(url, world)
    deployment = world["deployment"]
    assert isinstance(deployment, Path)
    ledger = ledger_of(url, deployment)
    rsus = world["rsus"]
    assert isinstance(rsus, list)
    for address, pubkey in rsus:
        out = ok("authority", "register-rsu", *args, "--pubkey", pubkey)
        assert address in out
        assert ledger.is_rsu(address) and ledger.rsu_pubkey(address).hex() == pubkey[2:]
        assert ledger.chain.ether_balance(address) > 0  # its gas funded
    vehicle = Account.create().address
    ok("authority", "register-vehicle", *args, "--address", vehicle, "--plate", "abc 123")
    assert ledger.is_valid_vehicle(vehicle)
    assert ledger.chain.ether_balance(vehicle) > 0
    ok("authority", "mint", *args, "--to", vehicle, "--tokens", "12.5")
    assert ledger.balance(vehicle) == 12_500_000_000_000_000_000
    ok("authority", "revoke", *args, "--vehicle", vehicle)
    assert not ledger.is_valid_vehicle(vehicle)
    assert "not registered" in error("authority", "revoke", *args, "--vehicle", vehicle)

    # Removing an RSU by vote: one of two members is not a majority, both are.
    d = world["dir"]
    assert isinstance(d, Path)
    (first, _), (second, _) = rsus
    chain = ["--chain-url", url, "--deployment", str(deployment)]
    vote = ["rsu", "vote", *chain, "--candidate", second, "--remove"]
    assert "not yet a majority" in ok(*vote, "--rsu-key", str(d / "rsu1.json"))
    assert ledger.is_rsu(second)
    assert "already voted" in error(*vote, "--rsu-key", str(d / "rsu1.json"))
    assert "applied" in ok(*vote, "--rsu-key", str(d / "rsu2.json"))
    assert not ledger.is_rsu(second) and ledger.is_rsu(first)
    # The authority removes the last one itself.
    ok("authority", "revoke", *args, "--rsu", first)
    assert not ledger.is_rsu(first)


def test_bad_inputs_are_one_line_naming_the_option(
    url: str, world: dict[str, object], tmp_path: Path
) -> None:
    args = common(url, world)
    d = world["dir"]
    assert isinstance(d, Path)
    someone = Account.create().address
    assert "--to '0xdead'" in error("authority", "mint", *args, "--to", "0xdead", "--tokens", "1")
    for tokens in ("nan", "inf", "0", "-3"):
        line = error("authority", "mint", *args, "--to", someone, "--tokens", tokens)
        assert "--tokens" in line
    assert "--pubkey" in error("authority", "register-rsu", *args, "--pubkey", "0x12")
    assert "secp256k1" in error("authority", "register-rsu", *args, "--pubkey", "0x" + "00" * 64)
    line = error("authority", "register-vehicle", *args, "--address", someone, "--plate", "  ")
    assert "--plate" in line
    assert "--vehicle" in error("authority", "revoke", *args)  # neither --vehicle nor --rsu
    # The keystore: wrong password, missing, not a keystore, no password and no terminal.
    assert "MAC mismatch" in error(
        "authority", "mint", *args, "--to", someone, "--tokens", "1",
        EVTRADE_AUTHORITY_PASSWORD="wrong",
    )  # fmt: skip
    missing = [*args[:2], "--keystore", str(tmp_path / "none.json"), *args[4:]]
    assert "--keystore" in error("authority", "mint", *missing, "--to", someone, "--tokens", "1")
    junk = tmp_path / "junk.json"
    junk.write_text('{"address": 1}')
    not_keystore = [*args[:2], "--keystore", str(junk), *args[4:]]
    line = error("authority", "mint", *not_keystore, "--to", someone, "--tokens", "1")
    assert "not a keystore file" in line
    result = CliRunner().invoke(
        app, ["authority", "mint", *args, "--to", someone, "--tokens", "1"], env={}
    )
    assert result.exit_code == 1 and "EVTRADE_AUTHORITY_PASSWORD" in result.output
    # An RSU's key is not the authority's: the registry refuses it.
    rsu_key = [*args[:2], "--keystore", str(d / "rsu1.json"), *args[4:]]
    line = error(
        "authority", "mint", *rsu_key, "--to", someone, "--tokens", "1",
        EVTRADE_AUTHORITY_PASSWORD=PASSWORDS["EVTRADE_RSU_KEY_PASSWORD"],
    )  # fmt: skip
    assert "error: " in line
    # No deployment record, no node.
    no_record = [*args[:4], "--deployment", str(tmp_path / "nothing.json")]
    assert "--deployment" in error(
        "authority", "mint", *no_record, "--to", someone, "--tokens", "1"
    )
    line = error(
        "authority", "init", "--chain-url", "http://127.0.0.1:9", "--keystore",
        str(d / "authority.json"), "--out", str(tmp_path / "d.json"),
    )  # fmt: skip
    assert "no Ethereum JSON-RPC node" in line


def test_init_creates_the_authoritys_keystore_and_register_rsu_reads_a_keystore(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the defaults: authority.json and deployment.json here
    out = ok("authority", "init", "--chain-url", url)
    authority = load_keystore(tmp_path / "authority.json", PASSWORDS["EVTRADE_AUTHORITY_PASSWORD"])
    assert authority.address in out and (tmp_path / "deployment.json").is_file()
    rsu = new_keystore(tmp_path / "rsu.json", PASSWORDS["EVTRADE_RSU_KEY_PASSWORD"])
    assert rsu.address in ok(
        "authority", "register-rsu", "--chain-url", url, "--rsu-key", "rsu.json"
    )
    assert ledger_of(url, tmp_path / "deployment.json").is_rsu(rsu.address)
    line = error("authority", "register-rsu", "--chain-url", url)
    assert "--pubkey" in line and "--rsu-key" in line
    someone = Account.create().address
    ok("authority", "mint", "--chain-url", url, "--address", someone, "--tokens", "2")
    assert ledger_of(url, tmp_path / "deployment.json").balance(someone) == 2 * 10**18
