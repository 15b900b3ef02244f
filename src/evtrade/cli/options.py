"""Options and choices several commands share, and the check of a price-like option."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from evtrade.cli.boundary import fail
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
