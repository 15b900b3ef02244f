"""Market files: JSON or TOML in, one validated :class:`Market` out.

Layout (TOML uses ``[auctioneer]``, ``[[buyers]]``, ``[[sellers]]``)::

    {"auctioneer": {"v_min", "c_max", "l1", "l2", "max_distance_km"},
     "buyers":  [{"id", "v", "v_min", "v_max", "b_min", "b_max", "w", "lat", "lon"}],
     "sellers": [{"id", "c", "c_min", "c_max", "s_t", "s_r", "rho", "lat", "lon"}]}

``l1``, ``l2`` (default 0.0025, 0.005 as in BABG), ``max_distance_km``, ``lat`` and ``lon`` are
optional; unknown keys are ignored so files may carry more. Every problem is reported as a
:class:`~evtrade.errors.MarketError` whose one-line message names the participant and the field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evtrade.errors import MarketError
from evtrade.model.participants import Auctioneer, Buyer, Market, Seller

BUYER_FIELDS = ("id", "v", "v_min", "v_max", "b_min", "b_max", "w")
SELLER_FIELDS = ("id", "c", "c_min", "c_max", "s_t", "s_r", "rho")
AUCTIONEER_FIELDS = ("v_min", "c_max")
_OPTIONAL_LOCATION = ("lat", "lon")


def load_market(path: str | Path) -> Market:
    """Read a market from a JSON (``.json``) or TOML (``.toml``) file.

    Other extensions are tried as JSON, then TOML.

    Raises
    ------
    MarketError
        If the file cannot be read or parsed, or its content is not a valid market.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise MarketError(f"{p}: cannot read market file ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MarketError(f"{p}: not a UTF-8 text file ({exc.reason})") from exc
    suffix = p.suffix.lower()
    if suffix == ".toml":
        data = _parse_toml(p, text)
    elif suffix == ".json":
        data = _parse_json(p, text)
    else:
        try:
            data = _parse_json(p, text)
        except MarketError:
            try:
                data = _parse_toml(p, text)
            except MarketError:
                raise MarketError(f"{p}: neither valid JSON nor valid TOML") from None
    return market_from_dict(data)


def _parse_json(p: Path, text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MarketError(
            f"{p}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except ValueError as exc:
        raise MarketError(f"{p}: not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_toml(p: Path, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MarketError(f"{p}: not valid TOML: {exc}") from exc


def market_from_dict(data: Any) -> Market:
    """Build a validated :class:`Market` from parsed JSON/TOML data (see module docstring)."""
    if not isinstance(data, Mapping):
        raise MarketError(f"market: top level must be an object, got {_kind(data)}")
    if "auctioneer" not in data:
        raise MarketError("market: missing section 'auctioneer'")
    auctioneer = _auctioneer(data["auctioneer"])
    buyers = tuple(
        _participant(Buyer, "buyer", k, item, BUYER_FIELDS)
        for k, item in enumerate(_list(data, "buyers"))
    )
    sellers = tuple(
        _participant(Seller, "seller", k, item, SELLER_FIELDS)
        for k, item in enumerate(_list(data, "sellers"))
    )
    return Market(auctioneer=auctioneer, buyers=buyers, sellers=sellers)


def market_to_dict(market: Market) -> dict[str, Any]:
    """Inverse of :func:`market_from_dict` (locations left out when absent)."""
    a = market.auctioneer
    out: dict[str, Any] = {
        "auctioneer": {
            "v_min": a.v_min,
            "c_max": a.c_max,
            "l1": a.l1,
            "l2": a.l2,
            "max_distance_km": a.max_distance_km,
        },
        "buyers": [],
        "sellers": [],
    }
    for group, names, key in (
        (market.buyers, BUYER_FIELDS, "buyers"),
        (market.sellers, SELLER_FIELDS, "sellers"),
    ):
        for p in group:
            row = {n: getattr(p, n) for n in names}
            if p.lat is not None:
                row["lat"], row["lon"] = p.lat, p.lon
            out[key].append(row)
    return out


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    if key not in data:
        raise MarketError(f"market: missing section {key!r}")
    items = data[key]
    if not isinstance(items, list):
        raise MarketError(f"market: section {key!r} must be a list, got {_kind(items)}")
    if not items:
        raise MarketError(f"market: section {key!r} must list at least one {key[:-1]}")
    return items


def _auctioneer(section: Any) -> Auctioneer:
    if not isinstance(section, Mapping):
        raise MarketError(f"auctioneer: section must be an object, got {_kind(section)}")
    for name in AUCTIONEER_FIELDS:
        if name not in section:
            raise MarketError(f"auctioneer: missing field {name!r}")
    kwargs = {n: section[n] for n in ("v_min", "c_max", "l1", "l2") if n in section}
    distance = section.get("max_distance_km")
    return Auctioneer(**kwargs, max_distance_km=distance)


def _participant(
    cls: type[Buyer] | type[Seller],
    kind: str,
    index: int,
    item: Any,
    names: tuple[str, ...],
) -> Any:
    if not isinstance(item, Mapping):
        raise MarketError(f"{kind} ({kind}s[{index}]): must be an object, got {_kind(item)}")
    ident = item.get("id")
    label = (
        f"{kind} {ident!r} ({kind}s[{index}])"
        if isinstance(ident, str)
        else (f"{kind} ({kind}s[{index}])")
    )
    for name in names:
        if name not in item:
            raise MarketError(f"{label}: missing field {name!r}")
    kwargs = {n: item[n] for n in names}
    for name in _OPTIONAL_LOCATION:
        value = item.get(name)
        kwargs[name] = value
    for name in _OPTIONAL_LOCATION:
        if kwargs[name] is not None and (
            isinstance(kwargs[name], bool) or not isinstance(kwargs[name], int | float)
        ):
            raise MarketError(
                f"{label}: field {name!r} must be a number, got {type(kwargs[name]).__name__}"
            )
    return cls(**kwargs, index=index)
