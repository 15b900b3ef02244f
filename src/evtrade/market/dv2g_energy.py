"""DV2G prosumers' energy over a day: storage dispatch, sellers and buyers, supply and need.

Hassija et al. eq. 4-16 (spec §3, docs/dv2g.md#the-model). Vectorised over prosumers; a loop
over the slots only (a storage level carries from one slot to the next).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.model.prosumers import Esu

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Relative size below which a surplus or deficit is rounding, not energy to trade.
DUST = 1e-9


@dataclass(frozen=True, eq=False)
class EsuArrays:
    """The storage units of K prosumers as arrays of length K (fields of :class:`Esu`)."""

    capacity: FloatArray
    level: FloatArray
    min_level: FloatArray
    charge_max: FloatArray
    discharge_max: FloatArray
    eta_c: FloatArray
    eta_d: FloatArray
    depth: FloatArray

    @classmethod
    def of(cls, units: tuple[Esu, ...]) -> EsuArrays:
        def col(name: str) -> FloatArray:
            return np.array([getattr(u, name) for u in units], dtype=float)

        return cls(
            col("capacity_kwh"),
            col("level_kwh"),
            col("min_level_kwh"),
            col("charge_max_kw"),
            col("discharge_max_kw"),
            col("charge_efficiency"),
            col("discharge_efficiency"),
            col("depth_of_discharge"),
        )


@dataclass(frozen=True, eq=False)
class Storage:
    """A day of storage, (K, T) arrays: charging and discharging power B_cp, B_dp (kW), the
    binaries alpha, beta (eq. 4), the energies phi (stored, eq. 5) and varphi (taken, eq. 6), and
    the level E^t at the end of each slot (eq. 7)."""

    charge_kw: FloatArray
    discharge_kw: FloatArray
    alpha: BoolArray
    beta: BoolArray
    stored_kwh: FloatArray
    taken_kwh: FloatArray
    level_kwh: FloatArray


def dispatch_storage(
    production: FloatArray, consumption: FloatArray, esu: EsuArrays, hours: float
) -> Storage:
    """Self-consumption dispatch of each prosumer's ESU over the day (eq. 4-8, 15).

    In slot t a prosumer with surplus (P > C) charges with it, one with a deficit discharges into
    it, never both (alpha + beta <= 1, eq. 4); powers within B^max (eq. 8); the ESU stores
    phi = B_cp eta_c dt (eq. 5) and gives varphi = B_dp dt / eta_d (eq. 6); E^t = E^{t-1} -
    (varphi - phi) (eq. 7) stays within [min_level, capacity], and what the ESU gives in a slot is
    at most D_D (E - theta_min) (eq. 15, the energy an EV can deliver).
    """
    k, t_count = production.shape
    shape = (k, t_count)
    charge = np.zeros(shape)
    discharge = np.zeros(shape)
    stored = np.zeros(shape)
    taken = np.zeros(shape)
    level = np.zeros(shape)
    e = esu.level.copy()
    net = production - consumption
    for t in range(t_count):
        room = np.maximum(esu.capacity - e, 0.0)
        available = np.maximum(esu.depth * (e - esu.min_level), 0.0)  # eq. 15
        b_c = np.minimum(
            np.minimum(np.maximum(net[:, t], 0.0), esu.charge_max), room / (esu.eta_c * hours)
        )
        b_d = np.minimum(
            np.minimum(np.maximum(-net[:, t], 0.0), esu.discharge_max),
            available * esu.eta_d / hours,
        )
        phi = b_c * esu.eta_c * hours  # eq. 5
        varphi = b_d * hours / esu.eta_d  # eq. 6
        # eq. 7; the clip only absorbs rounding (the limits above keep E in its bounds)
        e = np.clip(e - (varphi - phi), np.minimum(esu.min_level, e), esu.capacity)
        charge[:, t], discharge[:, t], stored[:, t], taken[:, t], level[:, t] = (
            b_c,
            b_d,
            phi,
            varphi,
            e,
        )
    return Storage(charge, discharge, charge > 0, discharge > 0, stored, taken, level)


@dataclass(frozen=True, eq=False)
class Balance:
    """Sellers and buyers per slot (eq. 12-14), (K, T): zeta the production-to-consumption ratio
    after storage, ``sell_kwh`` B_s dt and ``buy_kwh`` B_b dt."""

    zeta: FloatArray
    sell_kwh: FloatArray
    buy_kwh: FloatArray


def balance(
    production: FloatArray, consumption: FloatArray, storage: Storage, hours: float
) -> Balance:
    """zeta = (P + B_dp) / (C + B_cp) (eq. 12, storage counted on its side); B_s = C (zeta - 1)
    for zeta > 1 (eq. 13), B_b = C (1 - zeta) for zeta < 1 (eq. 14), both as energy per slot.

    zeta is inf for production without consumption and 1 for neither.
    """
    supply = production + storage.discharge_kw
    demand = consumption + storage.charge_kw
    with np.errstate(divide="ignore", invalid="ignore"):
        zeta = np.where(demand > 0, supply / np.where(demand > 0, demand, 1.0), 0.0)
    zeta = np.where(demand > 0, zeta, np.where(supply > 0, np.inf, 1.0))
    sell = np.where(zeta > 1, supply - demand, 0.0) * hours  # eq. 13: C (zeta - 1)
    buy = np.where(zeta < 1, demand - supply, 0.0) * hours  # eq. 14: C (1 - zeta)
    # A difference at rounding level (a surplus stored to the last bit) is no trade: 4e-16 kWh
    # made an EV a seller whose demand could never match it.
    dust = DUST * (supply + demand) * hours
    sell = np.where(sell > dust, sell, 0.0)
    buy = np.where(buy > dust, buy, 0.0)
    return Balance(zeta, sell, buy)
