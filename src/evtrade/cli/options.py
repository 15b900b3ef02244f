"""Options and choices several commands share, the check of a price-like option, and the command
and group classes (error boundary, flags shown without a `<bool>` in --help)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperOption

from evtrade.cli.boundary import BoundedGroup, fail
from evtrade.market.mechanisms import DEFAULT, names
from evtrade.model.files import MAX_BUYERS, MAX_FILE_BYTES, MAX_PAIRS, MAX_SELLERS
from evtrade.model.participants import MAX_ENERGY, MAX_PRICE, MIN_RHO

LIMITS_HELP = (
    f"Limits (docs/json-format.md#limits): a file of at most {MAX_FILE_BYTES // 2**20} MiB "
    f"nested at most 32 deep, {MAX_BUYERS:,} buyers, {MAX_SELLERS:,} sellers, "
    f"{MAX_PAIRS:,} buyer-seller pairs (memory: ~400 bytes per pair), prices in "
    f"[0, {MAX_PRICE:g}], energies in [0, {MAX_ENERGY:g}] kWh, rho in [{MIN_RHO:g}, 1]."
)

#: The choices of ``--mechanism``: the registry's mechanisms that clear one market, in its order.
MechanismName = StrEnum(  # type: ignore[misc]
    "MechanismName", {name.replace("-", "_"): name for name in names("round")}
)
DEFAULT_MECHANISM = MechanismName(DEFAULT)


class VolumeRule(StrEnum):
    p1 = "p1"
    theorem2 = "theorem2"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]
MarketFileArgument = Annotated[Path, typer.Argument(help="Market file (.json or .toml).")]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Embedded chain's data, the operators' development keys and the deployment record.",
    ),
]
ChainUrlOption = Annotated[
    str | None,
    typer.Option(
        "--chain-url", help="An Ethereum JSON-RPC node (anvil, Besu) instead of the embedded chain."
    ),
]
DeploymentOption = Annotated[
    Path | None,
    typer.Option("--deployment", help="Deployment record (default: DATA_DIR/deployment.json)."),
]
DEFAULT_DATA_DIR = Path("evtrade-data")


def check_option(name: str, value: float | None, hi: float = MAX_PRICE) -> None:
    """A price-like option: finite and in [0, hi] (products with volumes stay finite)."""
    if value is not None and not 0.0 <= value <= hi:
        fail(f"--{name.replace('_', '-')}: must lie in [0, {hi:g}], got {value!r}")


def _plain_flags(params: list[Any]) -> list[Any]:
    """On/off flags (``--help``, ``--quick``, ``--all-pairs``) shown without a value: typer's
    rich help prints ``<bool>`` after each flag, as if it took one."""
    for p in params:
        if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
            p.metavar = ""
    return params


class Command(TyperCommand):
    """Every ``evtrade`` command: its flags in ``--help`` show no ``<bool>``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class Group(BoundedGroup):
    """``evtrade`` and its sub-groups: commands inside the error boundary, flags plain."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))
