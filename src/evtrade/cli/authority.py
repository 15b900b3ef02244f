"""``evtrade authority ...`` and ``evtrade rsu vote``: the consortium's operators, apart from the
RSU service (docs/consortium.md).

The certificate authority deploys the contracts once (``init``), certifies vehicles, adds and
removes RSUs and mints top-ups, each with its key from an encrypted keystore file
(:mod:`evtrade.ledger.keystore`); an RSU votes on membership with its own key. A key is never
given on the command line: the password comes from an environment variable or a prompt.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evtrade.cli import render
from evtrade.cli.boundary import fail
from evtrade.errors import LedgerError
from evtrade.settlement.rounds import SECONDS_PER_DAY, VEHICLE_CERTIFICATE_DAYS

if TYPE_CHECKING:  # the ledger side is imported by the commands that use it (slow to import)
    from eth_account.signers.local import LocalAccount

    from evtrade.ledger.client import Ledger

AUTHORITY_PASSWORD = "EVTRADE_AUTHORITY_PASSWORD"
RSU_PASSWORD = "EVTRADE_RSU_KEY_PASSWORD"

ChainUrl = Annotated[str, typer.Option("--chain-url", help="The chain's JSON-RPC node.")]
Keystore = Annotated[
    Path,
    typer.Option(
        "--keystore",
        help=f"The authority's keystore file (password: ${AUTHORITY_PASSWORD} or a prompt); "
        "`init` creates it when there is none.",
    ),
]
#: Where the authority's keystore is unless --keystore says otherwise.
DEFAULT_KEYSTORE = Path("authority.json")

DeploymentFile = Annotated[
    Path,
    typer.Option("--deployment", help="The deployment record `evtrade authority init` wrote."),
]


def _prompt(text: str) -> str:
    return str(typer.prompt(text, hide_input=True))


def _key(path: Path, variable: str, what: str) -> LocalAccount:
    from evtrade.ledger.keystore import load_keystore, password

    option = "--keystore" if variable == AUTHORITY_PASSWORD else "--rsu-key"
    if not path.is_file():
        fail(f"{option} {path}: no such file")
    try:
        return load_keystore(path, password(variable, prompt=_prompt, what=what))
    except LedgerError as exc:
        fail(f"{option} {exc}")


def _address(option: str, value: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if not is_address(value):
        fail(f"{option} {value!r}: not an Ethereum address (0x and 40 hex digits)")
    return str(to_checksum_address(value))


def _pubkey(value: str) -> bytes:
    try:
        key = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        key = b""
    if len(key) == 64:
        import coincurve

        try:  # a point of the curve, or vehicles could not seal their bids to it
            coincurve.PublicKey(b"\x04" + key)
            return key
        except ValueError:
            fail("--pubkey: not a point of the secp256k1 curve")
    fail(
        f"--pubkey: the 64-byte public key in hex (128 hex digits, as `evtrade authority "
        f"new-key` prints it), got {len(value)} characters"
    )


def _ledger(chain_url: str, deployment: Path) -> Ledger:
    from evtrade.ledger.chain import open_chain
    from evtrade.ledger.client import Deployment, Ledger

    if not deployment.is_file():
        fail(f"--deployment {deployment}: no such file (`evtrade authority init` writes it)")
    return Ledger(open_chain(chain_url=chain_url), Deployment.load(deployment))


def new_key(
    out: Annotated[Path, typer.Option("--out", help="Keystore file to create (never replaced).")],
) -> None:
    """Create a key in a new encrypted keystore file (password: $EVTRADE_KEYSTORE_PASSWORD or a
    prompt); print its address and public key."""
    from evtrade.ledger.client import public_key
    from evtrade.ledger.keystore import new_keystore, password

    if out.exists():
        fail(f"--out {out}: exists already (a keystore is never overwritten)")

    def twice(text: str) -> str:
        return str(typer.prompt(text, hide_input=True, confirmation_prompt=True))

    account = new_keystore(
        out, password("EVTRADE_KEYSTORE_PASSWORD", prompt=twice, what="new keystore")
    )
    render.key_created(out, account.address, public_key(account).hex())


def init(
    chain_url: ChainUrl,
    keystore: Keystore = DEFAULT_KEYSTORE,
    out: Annotated[
        Path, typer.Option("--out", help="Deployment record to write (never replaced).")
    ] = Path("deployment.json"),
) -> None:
    """Deploy the registry, token and market once; the keystore's account becomes the authority."""
    from evtrade.ledger.chain import open_chain
    from evtrade.ledger.client import Ledger, public_key
    from evtrade.ledger.keystore import new_keystore, password

    if out.exists():
        fail(f"--out {out}: exists already (one deployment per consortium; remove it to redeploy)")
    if not keystore.exists():  # the authority's first key, under its password
        secret = password(AUTHORITY_PASSWORD, prompt=_prompt, what="authority's new keystore")
        created = new_keystore(keystore, secret)
        render.key_created(keystore, created.address, public_key(created).hex())
    authority = _key(keystore, AUTHORITY_PASSWORD, "authority's keystore")
    chain = open_chain(chain_url=chain_url)
    try:
        ledger = Ledger.deploy(chain, authority)
        ledger.deployment.save(out)
    finally:
        chain.close()
    d = ledger.deployment
    render.deployed(out, authority.address, d.chain_id, d.registry, d.token, d.market)


def register_rsu(
    chain_url: ChainUrl,
    pubkey: Annotated[
        str | None,
        typer.Option("--pubkey", help="The RSU's public key (`evtrade authority new-key`)."),
    ] = None,
    rsu_key: Annotated[
        Path | None,
        typer.Option(
            "--rsu-key",
            help=f"Or the RSU's keystore (password: ${RSU_PASSWORD}): its public key is read.",
        ),
    ] = None,
    keystore: Keystore = DEFAULT_KEYSTORE,
    deployment: DeploymentFile = Path("deployment.json"),
) -> None:
    """Add an RSU to the registry (its address follows from its public key) and fund its gas."""
    from eth_utils.address import to_checksum_address
    from eth_utils.crypto import keccak

    from evtrade.ledger.client import GAS, RSU_GAS_WEI, public_key

    if (pubkey is None) == (rsu_key is None):
        fail("give one of --pubkey KEY or --rsu-key KEYSTORE")
    if pubkey is not None:
        key = _pubkey(pubkey)
    else:
        key = public_key(_key(Path(str(rsu_key)), RSU_PASSWORD, "RSU's keystore"))
    authority = _key(keystore, AUTHORITY_PASSWORD, "authority's keystore")
    ledger = _ledger(chain_url, deployment)
    address = to_checksum_address(keccak(key)[12:])  # as Registry._pubkey_address
    fn = ledger.registry.functions.register_rsu(address, key)
    receipt = ledger.chain.transact(authority, fn, GAS["register_rsu"], what="register_rsu")
    ledger.top_up_gas(address, RSU_GAS_WEI)
    render.authority_done(f"RSU {address} added", receipt["transactionHash"].to_0x_hex())


def register_vehicle(
    chain_url: ChainUrl,
    address: Annotated[str, typer.Option("--address", help="The vehicle's account.")],
    plate: Annotated[str, typer.Option("--plate", help="Its licence plate (hashed on chain).")],
    days: Annotated[
        int, typer.Option("--days", min=1, max=3650, help="Days the certificate lasts.")
    ] = VEHICLE_CERTIFICATE_DAYS,
    keystore: Keystore = DEFAULT_KEYSTORE,
    deployment: DeploymentFile = Path("deployment.json"),
) -> None:
    """Certify a vehicle (one account per plate) and fund its gas; it trades at every RSU."""
    vehicle = _address("--address", address)
    if not "".join(plate.split()):
        fail("--plate: must not be empty")
    authority = _key(keystore, AUTHORITY_PASSWORD, "authority's keystore")
    ledger = _ledger(chain_url, deployment)
    expiry = ledger.chain.timestamp() + days * SECONDS_PER_DAY
    receipt = ledger.register_vehicle(authority, vehicle, plate, expiry)
    render.authority_done(
        f"vehicle {vehicle} certified until {expiry} (unix time)",
        receipt["transactionHash"].to_0x_hex(),
    )


def revoke(
    chain_url: ChainUrl,
    vehicle: Annotated[
        str | None, typer.Option("--vehicle", help="Revoke this vehicle's certificate.")
    ] = None,
    rsu: Annotated[str | None, typer.Option("--rsu", help="Remove this RSU.")] = None,
    keystore: Keystore = DEFAULT_KEYSTORE,
    deployment: DeploymentFile = Path("deployment.json"),
) -> None:
    """Revoke a vehicle's certificate (--vehicle) or remove an RSU (--rsu): its unsettled rounds
    become void and every bid in them recovers its escrow and deposit."""
    if (vehicle is None) == (rsu is None):
        fail("give one of --vehicle ADDRESS or --rsu ADDRESS")
    authority = _key(keystore, AUTHORITY_PASSWORD, "authority's keystore")
    ledger = _ledger(chain_url, deployment)
    if vehicle is not None:
        address = _address("--vehicle", vehicle)
        receipt = ledger.revoke_vehicle(authority, address)
        what = f"vehicle {address} revoked"
    else:
        address = _address("--rsu", str(rsu))
        receipt = ledger.revoke_rsu(authority, address)
        what = f"RSU {address} removed"
    render.authority_done(what, receipt["transactionHash"].to_0x_hex())


def mint(
    chain_url: ChainUrl,
    to: Annotated[str, typer.Option("--to", "--address", help="The account credited.")],
    tokens: Annotated[float, typer.Option("--tokens", help="Tokens to mint (a top-up paid).")],
    keystore: Keystore = DEFAULT_KEYSTORE,
    deployment: DeploymentFile = Path("deployment.json"),
) -> None:
    """Mint a top-up: ``--tokens`` tokens to ``--to``."""
    address = _address("--to", to)
    if not (math.isfinite(tokens) and 0 < tokens <= 1e12):
        fail(f"--tokens: must be a number in (0, 1e12], got {tokens!r}")
    authority = _key(keystore, AUTHORITY_PASSWORD, "authority's keystore")
    ledger = _ledger(chain_url, deployment)
    receipt = ledger.mint(authority, address, tokens)
    render.authority_done(
        f"{tokens:g} tokens minted to {address}", receipt["transactionHash"].to_0x_hex()
    )


def vote(
    chain_url: ChainUrl,
    rsu_key: Annotated[
        Path,
        typer.Option(
            "--rsu-key", help=f"This RSU's keystore file (password: ${RSU_PASSWORD} or a prompt)."
        ),
    ],
    candidate: Annotated[str, typer.Option("--candidate", help="The RSU voted in or out.")],
    add: Annotated[
        bool, typer.Option("--add/--remove", help="Vote to add the candidate or to remove it.")
    ],
    pubkey: Annotated[
        str | None, typer.Option("--pubkey", help="The candidate's public key (when adding).")
    ] = None,
    deployment: DeploymentFile = Path("deployment.json"),
) -> None:
    """An RSU's vote to add or remove an RSU: the change applies once more than half of the
    current RSUs voted for it (Registry.vote_rsu)."""
    address = _address("--candidate", candidate)
    if add and pubkey is None:
        fail("--pubkey: adding an RSU needs its public key")
    key = _pubkey(pubkey) if add and pubkey is not None else b""
    voter = _key(rsu_key, RSU_PASSWORD, "RSU's keystore")
    ledger = _ledger(chain_url, deployment)
    receipt = ledger.vote_rsu(voter, address, add, key)
    applied = not ledger.is_rsu(address) if not add else ledger.is_rsu(address)
    outcome = "applied" if applied else "counted, not yet a majority"
    verb = "add" if add else "remove"
    render.authority_done(
        f"vote to {verb} {address}: {outcome}", receipt["transactionHash"].to_0x_hex()
    )


def register(app: typer.Typer) -> None:
    """Add the ``authority`` and ``rsu`` command groups to ``app``."""
    from evtrade.cli.options import Command, Group

    authority_app = typer.Typer(
        help="The certificate authority: deploy once, certify vehicles, add RSUs, mint.",
        cls=Group,
        no_args_is_help=True,
    )
    for name, command in (
        ("new-key", new_key),
        ("init", init),
        ("register-rsu", register_rsu),
        ("register-vehicle", register_vehicle),
        ("revoke", revoke),
        ("mint", mint),
    ):
        authority_app.command(name, cls=Command)(command)
    rsu_app = typer.Typer(help="An RSU's own operations on the chain.", cls=Group)
    rsu_app.command("vote", cls=Command)(vote)
    app.add_typer(authority_app, name="authority")
    app.add_typer(rsu_app, name="rsu")
