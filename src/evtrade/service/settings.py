"""One settings object for the RSU service, from environment variables or a TOML file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evtrade.errors import LedgerError, MarketError, SettingsError
from evtrade.model.defaults import DEFAULT_L1, DEFAULT_L2, DEFAULT_RSU_LAT, DEFAULT_RSU_LON

_DAY = 24 * 3600


class Settings(BaseModel):
    """Everything the service reads at start-up.

    Each field can be set by ``EVTRADE_<NAME>`` (e.g. ``EVTRADE_T_LIMIT=30``) or by a TOML file
    given to ``evtrade serve --settings``; the environment wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    data_dir: Path = Path("evtrade-data")
    chain_url: str | None = None
    deployment: Path | None = Field(
        None,
        description="consortium mode (docs/consortium.md): the authority's deployment record "
        "(`evtrade authority init`); the RSU joins that shared chain with its own key (rsu_key) "
        "and never deploys nor acts as the authority. None: development mode, the service "
        "deploys its own contracts and is the authority, keys in data_dir",
    )
    rsu_key: Path | None = Field(
        None,
        description="consortium mode: this RSU's keystore file (password in "
        "EVTRADE_RSU_KEY_PASSWORD); the authority registered its public key",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    t_limit: int = Field(60, ge=1, le=_DAY, description="bid window T_limit, seconds")
    bid_grace: int = Field(
        60,
        ge=0,
        le=_DAY,
        description="seconds the on-chain bid window outlasts the announced one, so that a bid "
        "admitted before the announced deadline still reaches the chain after queueing; cover "
        "a burst: 100 bids at once took 28 s to land on a busy 2-core machine (docs/service.md)",
    )
    t_reveal: int = Field(
        30, ge=1, le=_DAY, description="reveal window (the buyer may accept an offer)"
    )
    t_settle: int = Field(3600, ge=1, le=30 * _DAY, description="settlement window")
    v_floor: float = Field(0.5, description="auctioneer's v^min")
    c_ceiling: float = Field(1.0, description="auctioneer's c^max")
    l1: float = Field(DEFAULT_L1, description="cost factor l1 of eq. (16), > 0")
    l2: float = Field(DEFAULT_L2, description="cost factor l2 of eq. (16), >= 0")
    max_distance_km: float | None = Field(None, gt=0)
    rsu_lat: float = Field(DEFAULT_RSU_LAT, ge=-90, le=90)
    rsu_lon: float = Field(DEFAULT_RSU_LON, ge=-180, le=180)
    poll_seconds: float = Field(0.5, gt=0, le=60, description="how often the RSU checks its rounds")
    bids_per_minute: int = Field(
        12,
        ge=1,
        le=10_000,
        description="bids (requests, replies, accepts, relayed transactions) one vehicle may "
        "send per minute, with bursts of as many; beyond it 429 (docs/security.md)",
    )
    dsm_day: Path | None = Field(
        None,
        description="the aggregator's day scenario for the driver's DSM page (JSON or TOML, "
        "docs/dsm.md); its grid and PV are used, its vehicles are not; none: the thesis's day",
    )
    faucet_tokens: float = Field(
        0.0,
        ge=0,
        le=1e9,
        description="development faucet: tokens each vehicle may mint itself, in all; "
        "0 (the default, production) turns it off and only the authority mints",
    )

    @model_validator(mode="after")
    def _a_consortium_rsu_has_what_it_joins_with(self) -> Settings:
        """Consortium mode needs the shared chain, the deployment and the RSU's own key; the
        authority's key is not the RSU's, so nothing that mints with it (the faucet) runs."""
        if self.deployment is None:
            if self.rsu_key is not None:
                raise ValueError("setting 'rsu_key': only with 'deployment' (consortium mode)")
            return self
        if not self.chain_url:
            raise ValueError("setting 'deployment': needs 'chain_url', the consortium's chain")
        if self.rsu_key is None:
            raise ValueError("setting 'deployment': needs 'rsu_key', this RSU's keystore file")
        if self.faucet_tokens > 0:
            raise ValueError(
                "setting 'faucet_tokens': must be 0 in consortium mode (only the authority "
                "mints: `evtrade authority mint`)"
            )
        return self

    @model_validator(mode="after")
    def _the_day_file_loads(self) -> Settings:
        """A DSM day file the service cannot read is refused at start-up, not on every request of
        the driver's page."""
        if self.dsm_day is not None:
            from evtrade.model.day import load_day

            try:
                load_day(self.dsm_day)
            except MarketError as exc:
                raise ValueError(f"setting 'dsm_day': {exc}") from None
        return self

    @model_validator(mode="after")
    def _the_model_accepts_the_auctioneer(self) -> Settings:
        """Refuse what the market model and the contract would refuse, naming the setting.

        The auctioneer of every round the service opens is built from these settings; a value the
        model refuses (e.g. ``l1 = 0``: eq. (16) needs a strictly convex cost) would otherwise
        surface only when the first round is cleared.
        """
        from evtrade.model import Auctioneer
        from evtrade.settlement import units

        model_name = {"v_min": "v_floor", "c_max": "c_ceiling"}
        try:
            Auctioneer(
                v_min=self.v_floor,
                c_max=self.c_ceiling,
                l1=self.l1,
                l2=self.l2,
                max_distance_km=self.max_distance_km,
            )
        except MarketError as exc:
            message = str(exc).removeprefix("auctioneer: ")
            field = message.split("'")[1] if message.count("'") >= 2 else ""
            setting = model_name.get(field, field)
            raise ValueError(
                f"setting {setting!r}: {message.replace(repr(field), repr(setting), 1)}"
            ) from None
        if self.v_floor > self.c_ceiling:  # Market.open_round: "v_floor above c_ceiling"
            raise ValueError(
                f"setting 'v_floor' ({self.v_floor}) must be <= 'c_ceiling' ({self.c_ceiling})"
            )
        # What the contract stores is fixed point; the round read back must satisfy the model too.
        scales = {name: units.PRICE_SCALE for name in ("v_floor", "c_ceiling", "l1", "l2")}
        scales["max_distance_km"] = 1000  # metres on chain, 0 meaning unlimited
        for name, scale in scales.items():
            value = getattr(self, name)
            if value is None:
                continue
            try:
                fixed = units.to_fixed(name, value, scale)
            except LedgerError as exc:
                raise ValueError(f"setting {name!r}: {exc}") from None
            if fixed == 0 and value > 0:
                raise ValueError(
                    f"setting {name!r} ({value}) rounds to 0 in the contract's fixed point"
                    f" (units of {1 / scale:g})"
                )
        return self

    @classmethod
    def load(cls, file: Path | None = None) -> Settings:
        """Settings from ``file`` (TOML) overridden by ``EVTRADE_*`` environment variables."""
        values: dict[str, object] = {}
        if file is not None:
            try:
                values.update(tomllib.loads(file.read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"settings file {file}: {exc}") from exc
        for name in cls.model_fields:
            raw = os.environ.get(f"EVTRADE_{name.upper()}")
            if raw is not None:
                values[name] = None if raw == "" else raw
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(settings_problem(exc)) from exc


def settings_problem(exc: ValidationError) -> str:
    """The first problem of a failed validation, as one line naming the setting."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    field = ".".join(str(p) for p in first["loc"])
    return f"setting {field!r}: {message}" if field else message
