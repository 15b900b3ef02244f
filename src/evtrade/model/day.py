"""Day scenarios: time slots, the grid's prices, vehicles and PV prosumers (DSM, shared with DV2G).

Layout (TOML uses ``[slots]``, ``[grid]``, ``[[vehicles]]``, ``[[pv]]``)::

    {"slots":    {"count": 24, "hours": 1.0},
     "grid":     {"base_price": [..], "forecast": [..], "mu": 0.01, "feed_in": 0.2},
     "vehicles": [{"id", "capacity_kwh", "energy_kwh", "soh", "arrival", "departure", "power_kw",
                   "target_soc", "lat", "lon", "v2g", "efficiency"}],
     "pv":       [{"id", "production_kwh": [..], "lat", "lon"}]}

Units and conventions (docs/dsm.md#scenario-files):

* slot ``t`` is ``[t * hours, (t + 1) * hours)`` hours after the start of the day; ``slots`` is
  optional (24 slots of one hour);
* ``base_price`` (phi_t) per kWh, ``forecast`` (Q_t) in kWh drawn per slot, ``mu`` in price per kWh
  per kWh (thesis eq. 6.4; default 0.01), ``feed_in`` (gamma) per kWh;
* a vehicle is parked over the slots ``arrival <= t < departure``; ``power_kw`` is the power at
  the plug both ways, so a slot draws at most ``power_kw * hours`` kWh and stores ``efficiency``
  times what it draws (thesis eq. 6.1, efficiency 0.95 by default); ``soh`` (state of health) is
  in percent (0-100), ``target_soc`` a fraction of ``capacity_kwh`` (default 1.0); ``v2g``
  (default false) says whether the vehicle offers its battery to others;
* ``production_kwh`` is a PV's production per slot.

``soh``, ``target_soc``, ``v2g``, ``efficiency``, ``slots``, ``forecast`` (zeros) and ``mu`` are
optional; unknown keys are ignored. Every problem is a :class:`~evtrade.errors.MarketError` whose
one-line message names the participant and the field. Files are read with the limits of market
files (:func:`evtrade.model.files.read_document`), and the counts are checked before any array of
their size is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from evtrade.errors import MarketError
from evtrade.model.files import read_document
from evtrade.model.participants import (
    MAX_ENERGY,
    MAX_PRICE,
    _check_id,
    _check_location,
    check_bounded,
    check_number,
    show_id,
)

FloatArray = NDArray[np.float64]

#: Most slots in a day (one-minute slots over 24 h).
MAX_SLOTS = 1440
#: Most vehicles and most PV prosumers in one scenario (as many buyers as a market file holds).
MAX_VEHICLES = 100_000
MAX_PV = 100_000
#: Most participant-slot cells (vehicles x slots + PVs x slots): the scheduler keeps about ten
#: float64 arrays of vehicles x slots alive (80 bytes a cell), so 1e7 cells need ~1 GB.
MAX_CELLS = 10_000_000
#: Most vehicle-PV pairs the nearest-PV search may compare (as market files' MAX_PAIRS).
MAX_PAIRS = 10_000_000
#: Largest power at a plug, kW (a megawatt truck charger is 1e3).
MAX_POWER_KW = 1e6
#: Largest correction factor mu (price per kWh per kWh).
MAX_MU = 1e3
#: The thesis's charging and discharging efficiency (eq. 6.1).
DEFAULT_EFFICIENCY = 0.95
#: The thesis's correction factor (Fig. 7.6).
DEFAULT_MU = 0.01

VEHICLE_FIELDS = ("id", "capacity_kwh", "energy_kwh", "arrival", "departure", "power_kw")
VEHICLE_OPTIONAL = ("soh", "target_soc", "v2g", "efficiency")
PV_FIELDS = ("id", "production_kwh")
GRID_FIELDS = ("base_price", "feed_in")


def _fail(where: str, message: str) -> NoReturn:
    raise MarketError(f"{where}: {message}")


def _readonly(values: FloatArray) -> FloatArray:
    values.setflags(write=False)
    return values


def check_series(where: str, name: str, value: Any, count: int, lo: float, hi: float) -> FloatArray:
    """A list of ``count`` numbers in ``[lo, hi]`` as a read-only float array; the message names
    the field and the first bad entry."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str):
        _fail(where, f"field {name!r} must be a list of {count} numbers")
    if len(value) != count:
        _fail(where, f"field {name!r} has {len(value)} entries, the day has {count} slots")
    out = np.empty(count)
    for t, item in enumerate(value):
        out[t] = check_bounded(where, f"{name}[{t}]", item, lo, hi, "per slot")
    return _readonly(out)


def _slot_index(where: str, name: str, value: Any, lo: int, hi: int) -> int:
    number = check_number(where, name, value)
    if number != math.floor(number):
        _fail(where, f"field {name!r} ({number:g}) must be a whole slot number")
    if not lo <= number <= hi:
        _fail(where, f"field {name!r} ({number:g}) must lie in [{lo}, {hi}] (a slot boundary)")
    return int(number)


@dataclass(frozen=True)
class Slots:
    """``count`` slots of ``hours`` hours each (24 of one hour by default)."""

    count: int = 24
    hours: float = 1.0

    def __post_init__(self) -> None:
        where = "slots"
        _slot_index(where, "count", self.count, 1, MAX_SLOTS)
        object.__setattr__(self, "count", int(self.count))
        check_bounded(where, "hours", self.hours, 0.0, 24.0, "hours per slot")
        if not self.hours > 0:
            _fail(where, f"field 'hours' ({self.hours}) must be > 0")


@dataclass(frozen=True, eq=False)
class Grid:
    """The aggregator's day-ahead data: phi_t, Q_t (arrays of the slot count), mu and gamma.

    The dynamic price is lambda_t = phi_t + mu (q_t - Q_t) (thesis eq. 6.3, 6.4), q_t the
    vehicles' total grid load in slot t.
    """

    base_price: FloatArray
    forecast: FloatArray
    feed_in: float
    mu: float = DEFAULT_MU

    def __post_init__(self) -> None:
        where = "grid"
        raw = self.base_price
        if isinstance(raw, np.ndarray):
            raw = raw.tolist()
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            _fail(where, "field 'base_price' must be a non-empty list of numbers, one per slot")
        count = len(raw)
        phi = check_series(where, "base_price", self.base_price, count, -MAX_PRICE, MAX_PRICE)
        q = check_series(where, "forecast", self.forecast, count, 0.0, MAX_ENERGY)
        object.__setattr__(self, "base_price", phi)
        object.__setattr__(self, "forecast", q)
        check_bounded(where, "feed_in", self.feed_in, 0.0, MAX_PRICE, "a price")
        check_bounded(where, "mu", self.mu, 0.0, MAX_MU, "price per kWh per kWh")
        object.__setattr__(self, "feed_in", float(self.feed_in))
        object.__setattr__(self, "mu", float(self.mu))


def _label(kind: str, ident: Any, index: int | None) -> str:
    name = f"{kind} {show_id(ident)}" if isinstance(ident, str) else kind
    return name if index is None else f"{name} ({kind}{'s' if kind == 'vehicle' else ''}[{index}])"


@dataclass(frozen=True)
class Vehicle:
    """An EV: battery ``capacity_kwh`` holding ``energy_kwh``, parked over slots
    ``arrival <= t < departure``, charging towards ``target_soc`` (a fraction of the capacity).

    ``power_kw`` is the power at the plug in both directions and ``efficiency`` the share of drawn
    energy that is stored (thesis eq. 6.1: B_chg = B_pr eta dt); ``soh`` is the state of health in
    percent; ``v2g`` says whether the vehicle sells from its battery (thesis §7.4: only with
    soh >= 80 and never below 50 % state of charge).
    """

    id: str
    capacity_kwh: float
    energy_kwh: float
    arrival: int
    departure: int
    power_kw: float
    lat: float
    lon: float
    soh: float = 100.0
    target_soc: float = 1.0
    v2g: bool = False
    efficiency: float = DEFAULT_EFFICIENCY
    index: int | None = field(default=None, compare=False, repr=False)
    slot_count: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = _label("vehicle", self.id, self.index)
        _check_id(where, self.id)
        cap = check_bounded(where, "capacity_kwh", self.capacity_kwh, 0.0, MAX_ENERGY, "kWh")
        if not cap > 0:
            _fail(where, f"field 'capacity_kwh' ({cap:g}) must be > 0")
        energy = check_bounded(where, "energy_kwh", self.energy_kwh, 0.0, MAX_ENERGY, "kWh")
        if energy > cap:
            _fail(where, f"field 'energy_kwh' ({energy:g}) must be <= capacity_kwh ({cap:g})")
        last = MAX_SLOTS if self.slot_count is None else self.slot_count
        arrival = _slot_index(where, "arrival", self.arrival, 0, last - 1)
        departure = _slot_index(where, "departure", self.departure, 1, last)
        if departure <= arrival:
            _fail(where, f"field 'departure' ({departure}) must be > arrival ({arrival})")
        power = check_bounded(where, "power_kw", self.power_kw, 0.0, MAX_POWER_KW, "kW")
        if not power > 0:
            _fail(where, f"field 'power_kw' ({power:g}) must be > 0")
        if self.lat is None or self.lon is None:
            _fail(where, "fields 'lat' and 'lon' are required (the nearest supplier is chosen)")
        _check_location(where, self.lat, self.lon)
        check_bounded(where, "soh", self.soh, 0.0, 100.0, "state of health in percent")
        check_bounded(where, "target_soc", self.target_soc, 0.0, 1.0, "a fraction of capacity")
        eff = check_bounded(where, "efficiency", self.efficiency, 0.0, 1.0, "a fraction")
        if not eff > 0:
            _fail(where, "field 'efficiency' must be > 0")
        if not isinstance(self.v2g, bool):
            _fail(where, f"field 'v2g' must be true or false, got {type(self.v2g).__name__}")
        for name, value in (
            ("capacity_kwh", cap),
            ("energy_kwh", energy),
            ("power_kw", power),
            ("lat", float(self.lat)),
            ("lon", float(self.lon)),
            ("soh", float(self.soh)),
            ("target_soc", float(self.target_soc)),
            ("efficiency", eff),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "arrival", arrival)
        object.__setattr__(self, "departure", departure)

    @property
    def need_kwh(self) -> float:
        """Energy to store to reach the target state of charge (0 when already there)."""
        return max(0.0, self.target_soc * self.capacity_kwh - self.energy_kwh)

    @property
    def soc(self) -> float:
        """State of charge now, a fraction of ``capacity_kwh``."""
        return self.energy_kwh / self.capacity_kwh


@dataclass(frozen=True, eq=False)
class PV:
    """A PV prosumer: ``production_kwh`` per slot (a read-only array) at ``lat``/``lon``."""

    id: str
    production_kwh: FloatArray
    lat: float
    lon: float
    index: int | None = field(default=None, repr=False)
    slot_count: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = _label("pv", self.id, self.index)
        _check_id(where, self.id)
        raw = self.production_kwh
        count = self.slot_count if self.slot_count is not None else len(raw)
        prod = check_series(where, "production_kwh", raw, count, 0.0, MAX_ENERGY)
        object.__setattr__(self, "production_kwh", prod)
        if self.lat is None or self.lon is None:
            _fail(where, "fields 'lat' and 'lon' are required (the nearest supplier is chosen)")
        _check_location(where, self.lat, self.lon)
        object.__setattr__(self, "lat", float(self.lat))
        object.__setattr__(self, "lon", float(self.lon))


@dataclass(frozen=True, eq=False)
class DayScenario:
    """One day: slots, the grid, the vehicles and the PV prosumers (ids unique across both).

    ``vehicle_arrays`` is the vectorised view the scheduler works on; nothing is mutated.
    """

    slots: Slots
    grid: Grid
    vehicles: tuple[Vehicle, ...]
    pv: tuple[PV, ...] = ()

    def __post_init__(self) -> None:
        t = self.slots.count
        if len(self.grid.base_price) != t:
            _fail(
                "grid",
                f"field 'base_price' has {len(self.grid.base_price)} entries, "
                f"the day has {t} slots",
            )
        check_day_size(t, len(self.vehicles), len(self.pv))
        seen: dict[str, str] = {}
        groups: tuple[tuple[str, tuple[Vehicle | PV, ...]], ...] = (
            ("vehicle", self.vehicles),
            ("pv", self.pv),
        )
        for kind, group in groups:
            for k, item in enumerate(group):
                where = _label(kind, item.id, k)
                if isinstance(item, Vehicle) and item.departure > t:
                    _fail(where, f"field 'departure' ({item.departure}) must be <= {t} slots")
                if isinstance(item, PV) and len(item.production_kwh) != t:
                    _fail(
                        where,
                        f"field 'production_kwh' has {len(item.production_kwh)} "
                        f"entries, the day has {t} slots",
                    )
                if item.id in seen:
                    _fail(where, f"field 'id' duplicates {seen[item.id]} id")
                seen[item.id] = f"a {kind}"

    @property
    def n_slots(self) -> int:
        return self.slots.count

    @cached_property
    def vehicle_arrays(self) -> dict[str, NDArray[Any]]:
        """Vehicle fields as read-only arrays of length N (``v2g`` boolean, slots integer)."""
        out: dict[str, NDArray[Any]] = {}
        for name in (
            "capacity_kwh",
            "energy_kwh",
            "power_kw",
            "lat",
            "lon",
            "soh",
            "target_soc",
            "efficiency",
        ):
            out[name] = np.array([getattr(v, name) for v in self.vehicles], dtype=float)
        for name in ("arrival", "departure"):
            out[name] = np.array([getattr(v, name) for v in self.vehicles], dtype=np.int64)
        out["v2g"] = np.array([v.v2g for v in self.vehicles], dtype=bool)
        for values in out.values():
            values.setflags(write=False)
        return out

    @cached_property
    def pv_production(self) -> FloatArray:
        """PV production as a read-only (M, T) array."""
        prod = np.array([p.production_kwh for p in self.pv], dtype=float).reshape(
            len(self.pv), self.n_slots
        )
        return _readonly(prod)


def check_day_size(slots: int, vehicles: int, pvs: int) -> None:
    """Refuse a day above :data:`MAX_VEHICLES`, :data:`MAX_PV`, :data:`MAX_CELLS` or
    :data:`MAX_PAIRS` before anything of its size is built."""
    if vehicles > MAX_VEHICLES:
        _fail("scenario", f"{vehicles} vehicles is more than the limit of {MAX_VEHICLES}")
    if pvs > MAX_PV:
        _fail("scenario", f"{pvs} PV prosumers is more than the limit of {MAX_PV}")
    cells = (vehicles + pvs) * slots
    if cells > MAX_CELLS:
        _fail(
            "scenario",
            f"{vehicles + pvs} participants x {slots} slots = {cells} cells is "
            f"more than the limit of {MAX_CELLS}",
        )
    if vehicles * pvs > MAX_PAIRS:
        _fail(
            "scenario",
            f"{vehicles} vehicles x {pvs} PV = {vehicles * pvs} pairs is more "
            f"than the limit of {MAX_PAIRS}",
        )


def load_day(path: str | Path) -> DayScenario:
    """Read a day scenario from a JSON (``.json``) or TOML (``.toml``) file (module docstring).

    Raises
    ------
    MarketError
        If the file cannot be read or parsed, or is not a valid scenario; the message names the
        participant and the field.
    """
    return day_from_dict(read_document(path, "scenario"))


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _section(data: Mapping[str, Any], key: str, required: bool) -> Mapping[str, Any]:
    if key not in data:
        if required:
            _fail("scenario", f"missing section {key!r}")
        return {}
    section = data[key]
    if not isinstance(section, Mapping):
        _fail(key, f"section must be an object, got {_kind(section)}")
    return section


def _items(data: Mapping[str, Any], key: str, required: bool) -> list[Any]:
    if key not in data:
        if required:
            _fail("scenario", f"missing section {key!r}")
        return []
    items = data[key]
    if not isinstance(items, list):
        _fail("scenario", f"section {key!r} must be a list, got {_kind(items)}")
    return items


def _fields(
    where: str, item: Any, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        _fail(where, f"must be an object, got {_kind(item)}")
    for name in required:
        if name not in item:
            _fail(where, f"missing field {name!r}")
    return {n: item[n] for n in (*required, *optional) if n in item}


def day_from_dict(data: Any) -> DayScenario:
    """Build a validated :class:`DayScenario` from parsed JSON/TOML data (module docstring)."""
    if not isinstance(data, Mapping):
        _fail("scenario", f"top level must be an object, got {_kind(data)}")
    slots_in = _section(data, "slots", required=False)
    slots = Slots(**_fields("slots", slots_in, (), ("count", "hours")))
    grid_in = _fields(
        "grid", _section(data, "grid", required=True), GRID_FIELDS, ("forecast", "mu")
    )
    t = slots.count
    grid_in.setdefault("forecast", [0.0] * t)
    if isinstance(grid_in["base_price"], list) and len(grid_in["base_price"]) != t:
        _fail(
            "grid",
            f"field 'base_price' has {len(grid_in['base_price'])} entries, the day has {t} slots",
        )
    grid = Grid(**grid_in)
    vehicles_in = _items(data, "vehicles", required=True)
    pv_in = _items(data, "pv", required=False)
    check_day_size(t, len(vehicles_in), len(pv_in))
    vehicles = []
    for k, item in enumerate(vehicles_in):
        where = _label("vehicle", item.get("id") if isinstance(item, Mapping) else None, k)
        kwargs = _fields(where, item, (*VEHICLE_FIELDS, "lat", "lon"), VEHICLE_OPTIONAL)
        vehicles.append(Vehicle(**kwargs, index=k, slot_count=t))
    pvs = []
    for k, item in enumerate(pv_in):
        where = _label("pv", item.get("id") if isinstance(item, Mapping) else None, k)
        kwargs = _fields(where, item, (*PV_FIELDS, "lat", "lon"), ())
        pvs.append(PV(**kwargs, index=k, slot_count=t))
    return DayScenario(slots=slots, grid=grid, vehicles=tuple(vehicles), pv=tuple(pvs))


def day_to_dict(day: DayScenario) -> dict[str, Any]:
    """Inverse of :func:`day_from_dict` (every optional field written out)."""
    return {
        "slots": {"count": day.slots.count, "hours": day.slots.hours},
        "grid": {
            "base_price": day.grid.base_price.tolist(),
            "forecast": day.grid.forecast.tolist(),
            "mu": day.grid.mu,
            "feed_in": day.grid.feed_in,
        },
        "vehicles": [
            {n: getattr(v, n) for n in (*VEHICLE_FIELDS, "lat", "lon", *VEHICLE_OPTIONAL)}
            for v in day.vehicles
        ],
        "pv": [
            {"id": p.id, "production_kwh": p.production_kwh.tolist(), "lat": p.lat, "lon": p.lon}
            for p in day.pv
        ],
    }
