"""Market files: JSON or TOML in, one validated :class:`Market` out.

Layout (TOML uses ``[auctioneer]``, ``[[buyers]]``, ``[[sellers]]``)::

    {"auctioneer": {"v_min", "c_max", "l1", "l2", "max_distance_km"},
     "buyers":  [{"id", "v", "v_min", "v_max", "b_min", "b_max", "w", "lat", "lon"}],
     "sellers": [{"id", "c", "c_min", "c_max", "s_t", "s_r", "rho", "lat", "lon"}]}

``l1``, ``l2`` (default 0.0025, 0.005 as in BABG), ``max_distance_km``, ``lat`` and ``lon`` are
optional. Every problem is reported as a :class:`~evtrade.errors.MarketError` whose one-line message
names the participant and the field. What a file says that the market will not use is no error but
a warning of :func:`load_market_with_warnings`: an unknown key (ignored; with "did you mean" when it
is close to a known key, as ``vmax`` is to ``v_max``), and ``max_distance_km`` set while some
participants have no ``lat``/``lon`` (their distances are unknown: none of their pairs may trade).

Files come from strangers, so reading is bounded before anything is built (limits and reasons in
docs/json-format.md#limits): at most :data:`MAX_FILE_BYTES` are read, nesting deeper than
:data:`~evtrade.model.safejson.MAX_DEPTH` is refused before a parser recurses, and the counts of
buyers, sellers and pairs are checked before any participant or array exists.
"""

from __future__ import annotations

import difflib
import sys
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evtrade.errors import JsonInputError, MarketError
from evtrade.model.participants import Auctioneer, Buyer, Market, Seller, show_id
from evtrade.model.safejson import MAX_DEPTH, SAFE_RECURSION_LIMIT, loads_bounded

#: Largest market file read (bytes): 100,000 participants at ~150 bytes each, with room.
MAX_FILE_BYTES = 16 * 2**20
#: Most buyers in one market: the file limit holds ~100,000 participants, and the exclusion rule
#: and the water-filling are linear in N.
MAX_BUYERS = 100_000
#: Most sellers: the dual Newton system of P1 is a dense M x M matrix (200 MB and ~4e10 flops
#: per Cholesky factorisation at 5,000).
MAX_SELLERS = 5_000
#: Most buyer-seller pairs N x M: clearing keeps ~50 float64 arrays of N x M alive at its peak
#: (400 bytes per pair measured at 1,000 x 1,000), so 1e7 pairs need ~4 GB; 1e5 x 1e5 would need
#: 4 TB.
MAX_PAIRS = 10_000_000

BUYER_FIELDS = ("id", "v", "v_min", "v_max", "b_min", "b_max", "w")
SELLER_FIELDS = ("id", "c", "c_min", "c_max", "s_t", "s_r", "rho")
AUCTIONEER_FIELDS = ("v_min", "c_max")
_OPTIONAL_LOCATION = ("lat", "lon")
#: Every key a section may have (what is not here is ignored, with a warning).
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "market": ("auctioneer", "buyers", "sellers"),
    "auctioneer": (*AUCTIONEER_FIELDS, "l1", "l2", "max_distance_km"),
    "buyer": (*BUYER_FIELDS, *_OPTIONAL_LOCATION),
    "seller": (*SELLER_FIELDS, *_OPTIONAL_LOCATION),
}
#: Most warnings about unknown keys (one per section and key); a hostile file may carry millions.
MAX_KEY_WARNINGS = 20
#: Participants named in one warning; the rest are counted.
NAMED_IN_WARNING = 3


@dataclass(frozen=True)
class LoadedMarket:
    """A market read from a file, with one line per thing the file says that the market ignores
    (each line names the section or participants and the key)."""

    market: Market
    warnings: tuple[str, ...] = ()


def load_market(path: str | Path) -> Market:
    """Read a market from a JSON (``.json``) or TOML (``.toml``) file.

    Other extensions are tried as JSON, then TOML. The warnings are dropped; a tool that shows
    them to a user calls :func:`load_market_with_warnings`.

    Raises
    ------
    MarketError
        If the file cannot be read or parsed, or its content is not a valid market.
    """
    return load_market_with_warnings(path).market


def load_market_with_warnings(path: str | Path) -> LoadedMarket:
    """:func:`load_market`, with the warnings about the file (see the module docstring)."""
    return market_from_dict_with_warnings(read_document(path))


def read_document(path: str | Path, what: str = "market") -> Any:
    """Parse a JSON or TOML file of at most :data:`MAX_FILE_BYTES` into plain data (the bounded
    reading of :func:`load_market`, shared with the day scenarios of :mod:`evtrade.model.day`).

    ``what`` names the kind of file in messages. Raises :class:`MarketError`.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MarketError(f"{p}: cannot read {what} file ({exc.strerror or exc})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise MarketError(f"{p}: larger than the limit of {MAX_FILE_BYTES} bytes")
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
    return data


@contextmanager
def _safe_recursion() -> Iterator[None]:
    """The interpreter's default recursion limit while a parser runs (py-evm raises it to 1e5;
    a deep recursion then may overflow the C stack instead of raising RecursionError)."""
    old = sys.getrecursionlimit()
    if old > SAFE_RECURSION_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _parse_json(p: Path, text: str) -> Any:
    try:
        with _safe_recursion():
            return loads_bounded(text, max_bytes=MAX_FILE_BYTES, max_depth=MAX_DEPTH)
    except JsonInputError as exc:
        raise MarketError(f"{p}: not valid JSON: {exc}") from exc


def toml_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of arrays and inline tables in TOML ``text``, stopping once above ``limit``.

    Brackets inside strings (basic, literal, multi-line) and comments do not count; a table header
    counts as the brackets it has. Linear in the length; the text need not be valid TOML.
    """
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if ch in "\"'":
            delim = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(delim)
            while i < n and not text.startswith(delim, i):
                if ch == '"' and text[i] == "\\":
                    i += 1  # a basic string's escape: skip the escaped character
                elif len(delim) == 1 and text[i] == "\n":
                    break  # single-line strings end at the line (invalid; the parser says so)
                i += 1
            i += len(delim)
            continue
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}" and depth > 0:
            depth -= 1
        i += 1
    return deepest


def _parse_toml(p: Path, text: str) -> Any:
    if toml_depth(text) > MAX_DEPTH:
        raise MarketError(f"{p}: not valid TOML: nested deeper than {MAX_DEPTH} levels")
    try:
        with _safe_recursion():
            return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MarketError(f"{p}: not valid TOML: {exc}") from exc
    except RecursionError:  # unreachable below MAX_DEPTH; kept as a last line
        raise MarketError(f"{p}: not valid TOML: nested too deep") from None
    except ValueError as exc:  # an integer too long for int() (over 4,300 digits)
        raise MarketError(f"{p}: not valid TOML: {exc}") from exc


def market_from_dict(data: Any) -> Market:
    """Build a validated :class:`Market` from parsed JSON/TOML data (see module docstring)."""
    return market_from_dict_with_warnings(data).market


def market_from_dict_with_warnings(data: Any) -> LoadedMarket:
    """:func:`market_from_dict`, with the warnings about ``data`` (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise MarketError(f"market: top level must be an object, got {_kind(data)}")
    if "auctioneer" not in data:
        raise MarketError("market: missing section 'auctioneer'")
    auctioneer = _auctioneer(data["auctioneer"])
    check_market_size(len(_list(data, "buyers")), len(_list(data, "sellers")))
    buyers = tuple(
        _participant(Buyer, "buyer", k, item, BUYER_FIELDS)
        for k, item in enumerate(_list(data, "buyers"))
    )
    sellers = tuple(
        _participant(Seller, "seller", k, item, SELLER_FIELDS)
        for k, item in enumerate(_list(data, "sellers"))
    )
    market = Market(auctioneer=auctioneer, buyers=buyers, sellers=sellers)
    return LoadedMarket(market, (*_unknown_key_warnings(data), *_distance_warnings(market)))


def _unknown_key_warnings(data: Mapping[str, Any]) -> list[str]:
    """One line per section kind and unknown key: who carries it, and the known key it is
    probably a typo of (difflib's close matches over that section's keys)."""
    found: dict[tuple[str, str], list[str]] = {}  # (section, key) -> where, in file order

    def collect(section: str, where: str, item: Mapping[Any, Any]) -> None:
        known = KNOWN_KEYS[section]
        for key in item:
            if key not in known:
                found.setdefault((section, str(key)), []).append(where)

    collect("market", "market", data)
    collect("auctioneer", "auctioneer", data["auctioneer"])
    for section in ("buyer", "seller"):
        for k, item in enumerate(data[f"{section}s"]):
            ident = item.get("id")
            collect(section, show_id(ident) if isinstance(ident, str) else f"[{k}]", item)
    lines = []
    for (section, key), where in list(found.items())[:MAX_KEY_WARNINGS]:
        who = section if section in ("market", "auctioneer") else _named(section, where)
        close = difflib.get_close_matches(key, KNOWN_KEYS[section], n=1)
        hint = f"did you mean {close[0]!r}?" if close else "not a key of this section"
        lines.append(f"{who}: unknown key {show_id(key)} ignored ({hint})")
    if len(found) > MAX_KEY_WARNINGS:
        lines.append(f"... and {len(found) - MAX_KEY_WARNINGS} more unknown keys ignored")
    return lines


def _named(section: str, who: list[str]) -> str:
    """``buyers 'B1', 'B2', 'B3' and 4 more`` (or ``buyer 'B1'`` for one)."""
    if len(who) == 1:
        return f"{section} {who[0]}"
    named = ", ".join(who[:NAMED_IN_WARNING])
    more = len(who) - NAMED_IN_WARNING
    return f"{section}s {named}" + (f" and {more} more" if more > 0 else "")


def _distance_warnings(market: Market) -> list[str]:
    """``max_distance_km`` with participants that have no location: the distance of each of
    their pairs is unknown, so the range check drops every one of them (one line)."""
    if market.auctioneer.max_distance_km is None:
        return []
    parts, count = [], 0
    for section, group in (("buyer", market.buyers), ("seller", market.sellers)):
        lacking = [show_id(p.id) for p in group if p.lat is None]
        count += len(lacking)
        if lacking:
            parts.append(_named(section, lacking))
    if not parts:
        return []
    total = market.n_buyers + market.n_sellers
    share = "every participant has" if count == total else f"{count} of {total} participants have"
    return [
        f"auctioneer: max_distance_km is set but {share} no lat/lon ({'; '.join(parts)}): their "
        "distances are unknown, so their bids are rejected; give them lat and lon, or drop "
        "max_distance_km"
    ]


def check_market_size(n_buyers: int, n_sellers: int) -> None:
    """Refuse a market above :data:`MAX_BUYERS`, :data:`MAX_SELLERS` or :data:`MAX_PAIRS`
    before anything of its size is built (the reasons are at the constants)."""
    if n_buyers > MAX_BUYERS:
        raise MarketError(f"market: {n_buyers} buyers is more than the limit of {MAX_BUYERS}")
    if n_sellers > MAX_SELLERS:
        raise MarketError(f"market: {n_sellers} sellers is more than the limit of {MAX_SELLERS}")
    if n_buyers * n_sellers > MAX_PAIRS:
        raise MarketError(
            f"market: {n_buyers} buyers x {n_sellers} sellers = {n_buyers * n_sellers} pairs is "
            f"more than the limit of {MAX_PAIRS} (clearing needs ~400 bytes per pair)"
        )


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
        f"{kind} {show_id(ident)} ({kind}s[{index}])"
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
