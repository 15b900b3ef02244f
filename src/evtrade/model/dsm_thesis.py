"""The Chalmers thesis's day (spec §4): its facts as data and the days built from them.

The facts ship as data (``model/data/dsm_thesis.json``): Table 7.1's vehicles, Table 7.2's PV
prosumers and Fig. 7.6's 24 hours (phi_t in EUR/MWh, l_t, Q_t, lambda_t as printed). The days are
day-scenario documents (:func:`evtrade.model.day.day_from_dict` reads them): scenarios 1 and 2
(:func:`thesis_day`) and the fleet of scenario 3 (:func:`fleet_day`), used by the thesis's figures
(:mod:`evtrade.sim.dsm_figures`) and as the RSU service's default day (:mod:`evtrade.service.dsm`).
What the thesis does not state is chosen once, in the constants below (docs/dsm.md).
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: The spring day of the PV profiles (the thesis: "24 hours randomly taken during spring" 2018).
DAY = "2018-04-15"
TIMEZONE = "Europe/Stockholm"
#: Power at every plug, kW, both ways (Fig. 7.3: 10 kWh/h).
POWER_KW = 10.0
#: EV1's target state of charge (22 kWh stored, 23.2 kWh drawn; spec §4).
EV1_TARGET = 0.8
#: EV2's own target: it sells down to the V2G floor of 50 % (§6.1.1, §7.4).
EV2_TARGET = 0.5
#: Feed-in tariff gamma, SEK/kWh (not stated in the thesis; below every phi_t).
FEED_IN = 0.20
#: Plug-in hours and windows (slot t is t:00-t+1:00).
SCENARIO1_PLUG_IN = 10
SCENARIO2_PLUG_IN = 14
SCENARIO3_PLUG_IN = 9
#: Other vehicles on the grid in scenario 3 (their total demand is about sum_t Q_t).
FLEET = 19
HOURS = 24


@cache
def thesis() -> dict[str, Any]:
    """The thesis's facts (``model/data/dsm_thesis.json``)."""
    text = resources.files("evtrade.model").joinpath("data/dsm_thesis.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def base_price_sek() -> FloatArray:
    """phi_t in SEK/kWh: Fig. 7.6's EUR/MWh times its rate 0.01012."""
    f = thesis()["fig7_6"]
    rate = float(f["sek_per_eur_mwh"])
    return np.asarray(f["eur_mwh"], dtype=float) * rate


@cache
def pv_profile(ident: str) -> tuple[float, ...]:
    """A PV's production per hour: pvlib clear-sky GHI at its coordinates on :data:`DAY`, hourly
    means of minute values, zero outside its hours (PV1: 9-18), scaled to its daily total."""
    import pandas as pd  # type: ignore[import-untyped]
    import pvlib  # type: ignore[import-untyped]

    pv = next(p for p in thesis()["pv"] if p["id"] == ident)
    location = pvlib.location.Location(pv["lat"], pv["lon"], tz=TIMEZONE)
    times = pd.date_range(DAY, periods=HOURS * 60, freq="1min", tz=TIMEZONE)
    with warnings.catch_warnings():
        # pvlib's calls of pandas APIs that pandas 4 renames; the values are unchanged.
        warnings.simplefilter("ignore", DeprecationWarning)
        ghi = np.asarray(location.get_clearsky(times)["ghi"], dtype=float)
    hourly = ghi.reshape(HOURS, 60).mean(axis=1)
    if ident == "PV1":
        first, last = thesis()["pv1_hours"]
        hourly[:first] = 0.0
        hourly[last:] = 0.0
    return tuple(float(x) for x in hourly / hourly.sum() * pv["daily_kwh"])


def _vehicle(ident: str, arrival: int, departure: int, target: float, v2g: bool) -> dict[str, Any]:
    v = next(v for v in thesis()["vehicles"] if v["id"] == ident)
    return {
        "id": ident,
        "capacity_kwh": v["capacity_kwh"],
        "energy_kwh": v["energy_kwh"],
        "soh": v["soh"],
        "arrival": arrival,
        "departure": departure,
        "power_kw": POWER_KW,
        "target_soc": target,
        "lat": v["lat"],
        "lon": v["lon"],
        "v2g": v2g,
    }


def _grid() -> dict[str, Any]:
    f = thesis()["fig7_6"]
    return {
        "base_price": base_price_sek().tolist(),
        "forecast": list(f["forecast_kwh"]),
        "mu": f["mu"],
        "feed_in": FEED_IN,
    }


def thesis_day(plug_in: int) -> dict[str, Any]:
    """Scenarios 1 and 2: EV1 (Table 7.1's 5 h from ``plug_in``), EV2 offering V2G parked from
    ``plug_in`` for its 10 h (to the end of the day at most), PV1-3 with pvlib profiles."""
    ev1 = thesis()["vehicles"][0]
    ev2 = thesis()["vehicles"][1]
    return {
        "slots": {"count": HOURS, "hours": 1.0},
        "grid": _grid(),
        "vehicles": [
            _vehicle("EV1", plug_in, plug_in + ev1["end_time_h"], EV1_TARGET, False),
            _vehicle("EV2", plug_in, min(HOURS, plug_in + ev2["end_time_h"]), EV2_TARGET, True),
        ],
        "pv": [
            {
                "id": p["id"],
                "production_kwh": list(pv_profile(p["id"])),
                "lat": p["lat"],
                "lon": p["lon"],
            }
            for p in thesis()["pv"]
        ],
    }


def fleet_day(seed: int) -> dict[str, Any]:
    """Scenario 3: EV1 from 9 AM to midnight on the grid alone (no PV offers, no V2G seller),
    among :data:`FLEET` seeded vehicles (arrival 0-16 h, 6-12 h parked, 10-30 kWh drawn)."""
    rng = np.random.default_rng(seed)
    ev1 = _vehicle("EV1", SCENARIO3_PLUG_IN, HOURS, EV1_TARGET, False)
    vehicles = [ev1]
    for k in range(FLEET):
        arrival = int(rng.integers(0, 17))
        departure = min(HOURS, arrival + int(rng.integers(6, 13)))
        drawn = float(rng.uniform(10.0, 30.0))
        vehicles.append(
            {
                "id": f"F{k + 1:02d}",
                "capacity_kwh": 60.0,
                "energy_kwh": 60.0 - drawn * 0.95,
                "arrival": arrival,
                "departure": departure,
                "power_kw": POWER_KW,
                "lat": ev1["lat"] + float(rng.uniform(-0.01, 0.01)),
                "lon": ev1["lon"] + float(rng.uniform(-0.01, 0.01)),
            }
        )
    return {"slots": {"count": HOURS, "hours": 1.0}, "grid": _grid(), "vehicles": vehicles}
