"""DV2G prosumers over a day: EVs and grids with PV production, consumption and a storage unit.

Hassija et al. (spec §3, docs/dv2g.md#scenario-files), eq. 2-16. Layout (JSON or TOML)::

    {"slots":    {"count": 24, "hours": 1.0},
     "seed":     7,
     "location": {"lat": 28.6, "lon": 77.2, "date": "2019-06-21", "tz": "Asia/Kolkata"},
     "esu":      {"capacity_kwh": 10, "level_kwh": 5, "min_level_kwh": 1,
                  "charge_max_kw": 3, "discharge_max_kw": 3,
                  "charge_efficiency": 0.6, "discharge_efficiency": 0.4,
                  "depth_of_discharge": 0.8, "unit_cost": 3000, "maintenance_per_year": 50,
                  "interest_rate": 0.05, "lifetime_years": 10, "cycles_per_year": 365,
                  "days_per_year": 365},
     "evs":      [{"id", "production_kw", "consumption_kw", "price", "esu": {..}}],
     "grids":    [{"id", "production_kw", "consumption_kw", "xi", "kappa", "esu": {..}}]}

* a profile (``production_kw``, ``consumption_kw``) is a list of one power per slot (kW), or an
  object that generates it: ``{"peak_kw": 5}`` is pvlib's clear-sky irradiance at ``location``
  on its ``date`` scaled so that 1000 W/m2 gives ``peak_kw``; ``{"daily_kwh": 8}`` is demandlib's
  BDEW household standard load profile (H25) on that date scaled to ``daily_kwh`` a day.
  Generated profiles get seeded variation (``"variation"``, default 0.1: each slot times a
  lognormal factor of that spread, drawn from ``seed``, the prosumer's kind and its index);
* ``esu`` at the top gives every prosumer's storage unit; a prosumer's own ``esu`` overrides
  single fields (``{"capacity_kwh": 0}``: no storage). The defaults are the paper's setting
  (3 kW limits, efficiencies 0.6 / 0.4);
* an EV's ``price`` (per kWh) is its first announced price varpi(1), the first-bid auction's bid
  (default: midway between its degradation cost and the highest xi);
* a grid's ``xi`` (price per kWh; a number or one per slot) and ``kappa`` (> 0, price per kWh^2)
  are eq. 17's parameters.

Every problem is a :class:`~evtrade.errors.MarketError` whose one-line message names the
participant and the field; files are read with the limits of market files. A key the scenario
does not use is no error but a warning of :func:`load_dv2g_with_warnings` (ignored; with "did you
mean" when it is close to a known key, as ``capacity`` is to ``capacity_kwh``), as in market
files.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.model.day import (
    MAX_POWER_KW,
    MAX_SLOTS,
    Slots,
    _fail,
    _fields,
    _items,
    _kind,
    _readonly,
    _section,
    check_series,
)
from evtrade.model.files import MAX_KEY_WARNINGS, _named, read_document
from evtrade.model.participants import MAX_ENERGY, MAX_PRICE, _check_id, check_bounded, show_id

FloatArray = NDArray[np.float64]

#: Most EVs and most grids in one scenario.
MAX_EVS = 100_000
MAX_GRIDS = 10_000
#: Most EV x grid x slot cells the games hold at once (one float64 array of 8 bytes a cell).
MAX_GAME_CELLS = 50_000_000
#: Most prosumer-slot entries, (EVs + grids) x slots: the result holds one per prosumer and slot
#: (about 300 bytes of JSON and 4 KB of memory while built; evtrade dv2g --format json measured
#: 1.5 GB at 480,000 and 0.93 GB, 46 s at 240,000: 10,000 EVs x 1 grid x 24 slots).
MAX_PROSUMER_SLOTS = 250_000
#: Largest money amount of a storage unit (unit cost, maintenance).
MAX_COST = 1e12
#: Default spread of generated profiles' lognormal variation.
DEFAULT_VARIATION = 0.1
#: Default place and day of generated profiles (New Delhi, the authors' region; midsummer).
DEFAULT_LOCATION = {"lat": 28.61, "lon": 77.21, "date": "2019-06-21", "tz": "Asia/Kolkata"}


@dataclass(frozen=True)
class Esu:
    """A storage unit (ESU), eq. 4-11: ``capacity_kwh``, the level ``level_kwh`` E^0 at the start
    of the day, the least level ``min_level_kwh`` (theta_min), the power limits B^max (eq. 8),
    efficiencies eta (eq. 5, 6), depth of discharge D_D (eq. 11, 15) and the money of eq. 9-11
    (unit cost CU, maintenance MC a year, interest r, lifetime l in years, cycles a year, Y_d)."""

    capacity_kwh: float = 10.0
    level_kwh: float = 5.0
    min_level_kwh: float = 1.0
    charge_max_kw: float = 3.0
    discharge_max_kw: float = 3.0
    charge_efficiency: float = 0.6
    discharge_efficiency: float = 0.4
    depth_of_discharge: float = 0.8
    unit_cost: float = 3000.0
    maintenance_per_year: float = 50.0
    interest_rate: float = 0.05
    lifetime_years: float = 10.0
    cycles_per_year: float = 365.0
    days_per_year: float = 365.0
    where: str = "esu"

    def __post_init__(self) -> None:
        w = self.where
        cap = check_bounded(w, "capacity_kwh", self.capacity_kwh, 0.0, MAX_ENERGY, "kWh")
        level = check_bounded(w, "level_kwh", self.level_kwh, 0.0, MAX_ENERGY, "kWh")
        low = check_bounded(w, "min_level_kwh", self.min_level_kwh, 0.0, MAX_ENERGY, "kWh")
        if cap > 0 and not low <= level <= cap:
            _fail(
                w,
                f"field 'level_kwh' ({level:g}) must lie in [min_level_kwh, capacity_kwh] = "
                f"[{low:g}, {cap:g}] (defaults: level_kwh {Esu.level_kwh:g}, min_level_kwh "
                f"{Esu.min_level_kwh:g})",
            )
        limits = {
            "charge_max_kw": (0.0, MAX_POWER_KW, "kW"),
            "discharge_max_kw": (0.0, MAX_POWER_KW, "kW"),
            "charge_efficiency": (0.0, 1.0, "a fraction"),
            "discharge_efficiency": (0.0, 1.0, "a fraction"),
            "depth_of_discharge": (0.0, 1.0, "a fraction"),
            "unit_cost": (0.0, MAX_COST, "money"),
            "maintenance_per_year": (0.0, MAX_COST, "money a year"),
            "interest_rate": (0.0, 10.0, "a fraction a year"),
            "lifetime_years": (0.0, 100.0, "years"),
            "cycles_per_year": (0.0, 1e5, "cycles"),
            "days_per_year": (1.0, 366.0, "days"),
        }
        for name, (lo, hi, what) in limits.items():
            value = check_bounded(w, name, getattr(self, name), lo, hi, what)
            object.__setattr__(self, name, value)
        for name in (
            "charge_efficiency",
            "discharge_efficiency",
            "lifetime_years",
            "cycles_per_year",
        ):
            if not getattr(self, name) > 0:
                _fail(w, f"field {name!r} must be > 0")
        object.__setattr__(self, "capacity_kwh", cap)
        object.__setattr__(self, "level_kwh", level if cap > 0 else 0.0)
        object.__setattr__(self, "min_level_kwh", min(low, cap))

    @property
    def throughput_kwh(self) -> float:
        """Lifetime throughput L_T = D_D E l (eq. 11), l counted in cycles (years x cycles)."""
        return (
            self.depth_of_discharge * self.capacity_kwh * self.lifetime_years * self.cycles_per_year
        )

    @property
    def degradation_cost(self) -> float:
        """omega = CU / L_T (eq. 10), per kWh; 0 without storage or throughput."""
        lt = self.throughput_kwh
        return self.unit_cost / lt if lt > 0 else 0.0

    @property
    def cost_per_day(self) -> float:
        """CD = (MC + CRF x CU) / Y_d (eq. 9), CRF the capital recovery factor (CU / l at r=0)."""
        r, life = self.interest_rate, self.lifetime_years
        # (1+r)^l r / ((1+r)^l - 1) = r / (1 - (1+r)^-l), the denominator by expm1/log1p: the
        # textbook form divides by 0 when (1+r)^l rounds to 1 (r = l = 1e-17).
        growth = life * math.log1p(r)
        crf = 1.0 / life if growth == 0 else r / -math.expm1(-growth)
        return (self.maintenance_per_year + crf * self.unit_cost) / self.days_per_year


ESU_FIELDS = tuple(f.name for f in fields(Esu) if f.name != "where")
PROFILE_KEYS = ("peak_kw", "daily_kwh", "variation")
PROSUMER_KEYS = ("id", "production_kw", "consumption_kw", "esu")
#: Every key each part of a scenario may have (what is not here is ignored, with a warning).
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "scenario": ("slots", "seed", "location", "esu", "evs", "grids"),
    "slots": ("count", "hours"),
    "location": tuple(DEFAULT_LOCATION),
    "esu": ESU_FIELDS,
    "ev": (*PROSUMER_KEYS, "price"),
    "grid": (*PROSUMER_KEYS, "xi", "kappa"),
    "profile": PROFILE_KEYS,
}


@dataclass(frozen=True, eq=False)
class Prosumer:
    """An EV (seller) or a grid (buyer): production P_sp and consumption C per slot (kW, eq. 2,
    3, read-only arrays), its ESU; an EV's first price, a grid's xi (per slot) and kappa."""

    id: str
    kind: str
    production_kw: FloatArray
    consumption_kw: FloatArray
    esu: Esu
    price: float | None = None
    xi: FloatArray | None = None
    kappa: float | None = None


@dataclass(frozen=True, eq=False)
class Dv2gScenario:
    """One DV2G day: slots, the EVs (sellers) and the grids (buyers)."""

    slots: Slots
    evs: tuple[Prosumer, ...]
    grids: tuple[Prosumer, ...]

    @property
    def n_slots(self) -> int:
        return self.slots.count

    def _stack(self, group: tuple[Prosumer, ...], name: str) -> FloatArray:
        out = np.array([getattr(p, name) for p in group], dtype=float)
        return _readonly(out.reshape(len(group), self.n_slots))

    @cached_property
    def ev_production(self) -> FloatArray:
        return self._stack(self.evs, "production_kw")

    @cached_property
    def ev_consumption(self) -> FloatArray:
        return self._stack(self.evs, "consumption_kw")

    @cached_property
    def grid_production(self) -> FloatArray:
        return self._stack(self.grids, "production_kw")

    @cached_property
    def grid_consumption(self) -> FloatArray:
        return self._stack(self.grids, "consumption_kw")

    @cached_property
    def grid_xi(self) -> FloatArray:
        """xi (N, T)."""
        return self._stack(self.grids, "xi")

    @cached_property
    def grid_kappa(self) -> FloatArray:
        return _readonly(np.array([g.kappa for g in self.grids], dtype=float))


def _label(kind: str, ident: Any, k: int) -> str:
    """``ev 'a' (evs[0])``, ``grid 'g' (grids[1])``: the participant a message names."""
    name = f"{kind} {show_id(ident)}" if isinstance(ident, str) else kind
    return f"{name} ({kind}s[{k}])"


def load_dv2g(path: str | Path) -> Dv2gScenario:
    """Read a DV2G scenario from a JSON or TOML file (module docstring).

    Raises
    ------
    MarketError
        If the file cannot be read or is not a valid scenario; the message names the participant
        and the field.
    """
    return dv2g_from_dict(read_document(path, "scenario"))


@dataclass(frozen=True, eq=False)
class LoadedDv2g:
    """A scenario read from a file, with one line per key the file has and the scenario ignores
    (each line names the section or participants and the key)."""

    scenario: Dv2gScenario
    warnings: tuple[str, ...] = ()


def load_dv2g_with_warnings(path: str | Path) -> LoadedDv2g:
    """:func:`load_dv2g`, with a warning per unknown key (see the module docstring)."""
    return dv2g_from_dict_with_warnings(read_document(path, "scenario"))


def dv2g_from_dict_with_warnings(data: Any) -> LoadedDv2g:
    """:func:`dv2g_from_dict`, with a warning per unknown key (see the module docstring)."""
    scenario = dv2g_from_dict(data)
    return LoadedDv2g(scenario, tuple(unknown_key_warnings(data)))


def unknown_key_warnings(data: Mapping[str, Any]) -> list[str]:
    """One line per part, owner kind and unknown key of a valid scenario's data: who carries it
    and the known key it is probably a typo of (or the part it belongs to)."""
    # (kind of owner, part, key) -> owners in file order; part is a section or a prosumer's field
    found: dict[tuple[str, str, str], list[str]] = {}

    def collect(kind: str, part: str, who: str, item: Any) -> None:
        if isinstance(item, Mapping):
            for key in item:
                if key not in KNOWN_KEYS[_part_keys(kind, part)]:
                    found.setdefault((kind, part, str(key)), []).append(who)

    collect("scenario", "scenario", "scenario", data)
    for name in ("slots", "location", "esu"):
        collect("scenario", name, name, data.get(name))
    for kind in ("ev", "grid"):
        for item in data[f"{kind}s"]:
            who = show_id(item["id"])
            collect(kind, kind, who, item)
            for part in ("esu", "production_kw", "consumption_kw"):
                collect(kind, part, who, item.get(part))
    lines = []
    for (kind, part, key), owners in list(found.items())[:MAX_KEY_WARNINGS]:
        owner = part if kind == "scenario" else _named(kind, owners)
        if kind != "scenario" and part != kind:
            owner = f"{owner} {part}"
        lines.append(f"{owner}: unknown key {show_id(key)} ignored ({_hint(key, kind, part)})")
    if len(found) > MAX_KEY_WARNINGS:
        lines.append(f"... and {len(found) - MAX_KEY_WARNINGS} more unknown keys ignored")
    return lines


def _part_keys(kind: str, part: str) -> str:
    """The :data:`KNOWN_KEYS` entry of ``part`` of a ``kind`` (its ESU, a profile, itself)."""
    if part in ("production_kw", "consumption_kw"):
        return "profile"
    return part if kind == "scenario" or part == "esu" else kind


def _hint(key: str, kind: str, part: str) -> str:
    known = KNOWN_KEYS[_part_keys(kind, part)]
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    elsewhere = [name for name, keys in KNOWN_KEYS.items() if key in keys]
    if elsewhere:
        return f"it belongs to {' or '.join(elsewhere)}"
    return "not a key of this section"


def _esu(where: str, base: Esu, raw: Any) -> Esu:
    if raw is None:
        return replace(base, where=where)
    if not isinstance(raw, Mapping):
        _fail(where, f"field 'esu' must be an object, got {_kind(raw)}")
    given = {k: raw[k] for k in ESU_FIELDS if k in raw}
    return replace(base, **given, where=f"{where} esu")


def _location(data: Mapping[str, Any]) -> dict[str, Any]:
    loc = dict(DEFAULT_LOCATION)
    raw = _section(data, "location", required=False)
    for key in ("lat", "lon"):
        if key in raw:
            limit = 90.0 if key == "lat" else 180.0
            loc[key] = check_bounded("location", key, raw[key], -limit, limit, "degrees")
    for key in ("date", "tz"):
        if key in raw:
            if not isinstance(raw[key], str | dt.date):
                _fail("location", f"field {key!r} must be a string, got {_kind(raw[key])}")
            loc[key] = str(raw[key])
    try:
        dt.date.fromisoformat(str(loc["date"]))
    except ValueError:
        _fail("location", f"field 'date' ({str(loc['date'])[:40]!r}) must be YYYY-MM-DD")
    return loc


def _times(slots: Slots, loc: Mapping[str, Any]) -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    if slots.count * slots.hours > 24.0 + 1e-9:
        _fail("slots", "generated profiles need a day of at most 24 hours (count x hours)")
    start = pd.Timestamp(str(loc["date"]))
    try:
        start = start.tz_localize(str(loc["tz"]))
    except Exception:  # pandas/pytz raise several types for an unknown zone
        _fail("location", f"field 'tz' ({str(loc['tz'])[:40]!r}) is not a known time zone")
    # Each slot sampled about every minute, at k evenly spaced points from its own start (whole
    # minutes when the slot is), and averaged: a slot's mean power. Rounding the step to a whole
    # minute instead stretched the day (7.5-minute slots ran 8 minutes and past midnight).
    span = slots.hours * 60.0
    k = max(1, round(span))
    if abs(span - k) < 1e-9:  # whole minutes (0.1 h is 6.000000000000001 in floats)
        span = float(k)
    minutes = np.arange(slots.count)[:, None] * span + np.arange(k)[None, :] * (span / k)
    times = start + pd.to_timedelta(minutes.ravel(), unit="min")
    return times, minutes


def clear_sky_pv(slots: Slots, loc: Mapping[str, Any], peak_kw: float) -> FloatArray:
    """Mean PV power per slot (kW): pvlib's clear-sky (Ineichen) GHI at ``loc`` on its date,
    ``peak_kw`` at 1000 W/m2 (a flat panel, no temperature or inverter losses)."""
    key = (slots.count, slots.hours, *(str(loc[k]) for k in ("lat", "lon", "date", "tz")))
    return _unit_pv(*key) * peak_kw


def household_load(slots: Slots, loc: Mapping[str, Any], daily_kwh: float) -> FloatArray:
    """Mean household load per slot (kW): demandlib's BDEW H25 standard load profile on
    ``loc``'s date (its quarter hours, held per minute and averaged per slot), scaled so that the
    slots' energy is ``daily_kwh`` (over a whole 24 h day)."""
    key = (slots.count, slots.hours, *(str(loc[k]) for k in ("lat", "lon", "date", "tz")))
    return _unit_load(*key) * daily_kwh


@cache
def _unit_pv(count: int, hours: float, lat: str, lon: str, date: str, tz: str) -> FloatArray:
    import pvlib  # type: ignore[import-untyped]

    slots = Slots(count, hours)
    loc = {"lat": lat, "lon": lon, "date": date, "tz": tz}
    times, minutes = _times(slots, loc)
    location = pvlib.location.Location(float(loc["lat"]), float(loc["lon"]), tz=str(loc["tz"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ghi = np.asarray(location.get_clearsky(times)["ghi"], dtype=float)
    return _readonly(np.asarray(ghi.reshape(minutes.shape).mean(axis=1) / 1000.0))


@cache
def _unit_load(count: int, hours: float, lat: str, lon: str, date: str, tz: str) -> FloatArray:
    import pandas as pd
    from demandlib import bdew  # type: ignore[import-untyped]

    slots = Slots(count, hours)
    loc = {"lat": lat, "lon": lon, "date": date, "tz": tz}
    _, minutes = _times(slots, loc)  # the profile is held per quarter hour, local time
    naive = pd.date_range(str(loc["date"]), periods=96, freq="15min")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quarter = np.asarray(bdew.H25(naive), dtype=float)
    mean = quarter[np.minimum(minutes // 15, 95).astype(np.int64)].mean(axis=1)
    total = quarter.mean() * 24.0  # the whole day's energy at the profile's own scale
    return _readonly(np.asarray(mean / total))


def _profile(
    where: str,
    name: str,
    raw: Any,
    slots: Slots,
    loc: Mapping[str, Any],
    rng: np.random.Generator,
) -> FloatArray:
    if not isinstance(raw, Mapping):
        return check_series(where, name, raw, slots.count, 0.0, MAX_POWER_KW)
    spread = check_bounded(
        where, f"{name}.variation", raw.get("variation", DEFAULT_VARIATION), 0.0, 1.0, "spread"
    )
    if "peak_kw" in raw and "daily_kwh" in raw:
        _fail(where, f"field {name!r}: give 'peak_kw' (PV) or 'daily_kwh' (load), not both")
    if "peak_kw" in raw:
        peak = check_bounded(where, f"{name}.peak_kw", raw["peak_kw"], 0.0, MAX_POWER_KW, "kW")
        base = clear_sky_pv(slots, loc, peak)
    elif "daily_kwh" in raw:
        daily = check_bounded(where, f"{name}.daily_kwh", raw["daily_kwh"], 0.0, 1e7, "kWh")
        base = household_load(slots, loc, daily)
    else:
        _fail(where, f"field {name!r}: a generated profile needs 'peak_kw' or 'daily_kwh'")
    noise = rng.lognormal(-0.5 * spread**2, spread, size=slots.count) if spread > 0 else 1.0
    return _readonly(np.minimum(base * noise, MAX_POWER_KW))


def _prosumer(
    kind: str,
    k: int,
    item: Any,
    slots: Slots,
    base_esu: Esu,
    loc: Mapping[str, Any],
    seed: int,
) -> Prosumer:
    where = _label(kind, item.get("id") if isinstance(item, Mapping) else None, k)
    own = ("xi", "kappa") if kind == "grid" else ()
    optional = ("price", "esu") if kind == "ev" else ("esu",)
    f = _fields(where, item, ("id", "production_kw", "consumption_kw", *own), optional)
    _check_id(where, f["id"])
    rng = np.random.default_rng([seed, 0 if kind == "ev" else 1, k])
    prod = _profile(where, "production_kw", f["production_kw"], slots, loc, rng)
    cons = _profile(where, "consumption_kw", f["consumption_kw"], slots, loc, rng)
    esu = _esu(where, base_esu, f.get("esu"))
    if kind == "ev":
        price = f.get("price")
        if price is not None:
            price = check_bounded(where, "price", price, 0.0, MAX_PRICE, "per kWh")
        return Prosumer(f["id"], kind, prod, cons, esu, price=price)
    xi_raw = f["xi"]
    if isinstance(xi_raw, list):
        xi = check_series(where, "xi", xi_raw, slots.count, 0.0, MAX_PRICE)
    else:
        value = check_bounded(where, "xi", xi_raw, 0.0, MAX_PRICE, "per kWh")
        xi = _readonly(np.full(slots.count, value))
    kappa = check_bounded(where, "kappa", f["kappa"], 0.0, MAX_PRICE, "per kWh^2")
    if not kappa > 0:
        _fail(where, "field 'kappa' must be > 0")
    return Prosumer(f["id"], kind, prod, cons, esu, xi=xi, kappa=kappa)


def dv2g_from_dict(data: Any) -> Dv2gScenario:
    """Build a validated :class:`Dv2gScenario` from parsed JSON/TOML data (module docstring)."""
    if not isinstance(data, Mapping):
        _fail("scenario", f"top level must be an object, got {_kind(data)}")
    slots_in = _section(data, "slots", required=False)
    slots = Slots(**_fields("slots", slots_in, (), ("count", "hours")))
    seed_raw = data.get("seed", 0)
    if isinstance(seed_raw, bool) or not isinstance(seed_raw, int) or not 0 <= seed_raw < 2**63:
        _fail("scenario", "field 'seed' must be a whole number in [0, 2**63)")
    loc = _location(data)
    esu_in = _section(data, "esu", required=False)
    base_esu = Esu(**{k: esu_in[k] for k in ESU_FIELDS if k in esu_in}, where="esu")
    evs_in = _items(data, "evs", required=True)
    grids_in = _items(data, "grids", required=True)
    for key, items in (("evs", evs_in), ("grids", grids_in)):
        if not items:  # eq. 19's simplex needs at least one EV; a day without buyers is empty
            one = "EV" if key == "evs" else "grid"
            _fail("scenario", f"section {key!r} must list at least one {one}")
    check_dv2g_size(slots.count, len(evs_in), len(grids_in))
    evs = tuple(_prosumer("ev", k, x, slots, base_esu, loc, seed_raw) for k, x in enumerate(evs_in))
    grids = tuple(
        _prosumer("grid", k, x, slots, base_esu, loc, seed_raw) for k, x in enumerate(grids_in)
    )
    seen: dict[str, str] = {}
    for kind, group in (("ev", evs), ("grid", grids)):
        for k, p in enumerate(group):
            if p.id in seen:
                _fail(_label(kind, p.id, k), f"field 'id' duplicates {seen[p.id]} id")
            seen[p.id] = f"an {kind}" if kind == "ev" else "a grid"
    return Dv2gScenario(slots=slots, evs=evs, grids=grids)


def check_dv2g_size(slots: int, evs: int, grids: int) -> None:
    """Refuse a scenario above :data:`MAX_EVS`, :data:`MAX_GRIDS`, :data:`MAX_GAME_CELLS` or
    :data:`MAX_PROSUMER_SLOTS` before anything of its size is built."""
    if evs > MAX_EVS:
        _fail("scenario", f"{evs} EVs is more than the limit of {MAX_EVS}")
    if grids > MAX_GRIDS:
        _fail("scenario", f"{grids} grids is more than the limit of {MAX_GRIDS}")
    if slots > MAX_SLOTS:
        _fail("scenario", f"{slots} slots is more than the limit of {MAX_SLOTS}")
    cells = evs * grids * slots
    if cells > MAX_GAME_CELLS:
        _fail(
            "scenario",
            f"{evs} EVs x {grids} grids x {slots} slots = {cells} cells is more than the limit "
            f"of {MAX_GAME_CELLS}",
        )
    entries = (evs + grids) * slots
    if entries > MAX_PROSUMER_SLOTS:
        _fail(
            "scenario",
            f"({evs} EVs + {grids} grids) x {slots} slots = {entries} prosumer-slots is more than "
            f"the limit of {MAX_PROSUMER_SLOTS} (one result entry each)",
        )


__all__ = [
    "Dv2gScenario",
    "Esu",
    "LoadedDv2g",
    "Prosumer",
    "clear_sky_pv",
    "dv2g_from_dict",
    "household_load",
    "load_dv2g",
    "load_dv2g_with_warnings",
]
