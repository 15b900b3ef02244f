"""One settings object for the RSU service, from environment variables or a TOML file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evtrade.errors import EvtradeError


class SettingsError(EvtradeError, ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(BaseModel):
    """Everything the service reads at start-up.

    Each field can be set by ``EVTRADE_<NAME>`` (e.g. ``EVTRADE_T_LIMIT=30``) or by a TOML file
    given to ``evtrade serve --settings``; the environment wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("evtrade-data")
    chain_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    t_limit: int = Field(60, ge=1, description="bid window T_limit, seconds")
    t_reveal: int = Field(30, ge=1, description="reveal window (the buyer may accept an offer)")
    t_settle: int = Field(3600, ge=1, description="settlement window")
    v_floor: float = Field(0.5, ge=0, description="auctioneer's v^min")
    c_ceiling: float = Field(1.0, gt=0, description="auctioneer's c^max")
    l1: float = Field(0.0025, ge=0)
    l2: float = Field(0.005, ge=0)
    max_distance_km: float | None = Field(None, gt=0)
    rsu_lat: float = Field(57.7089, ge=-90, le=90)
    rsu_lon: float = Field(11.9746, ge=-180, le=180)
    poll_seconds: float = Field(0.5, gt=0, description="how often the RSU checks its rounds")

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
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise SettingsError(f"setting {field!r}: {first['msg']}") from exc
