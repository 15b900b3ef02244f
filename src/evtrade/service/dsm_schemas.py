"""Request and response models of the driver's DSM page (``/plan``, docs/dsm.md "The driver's
page"): a charge planned against the aggregator's day, committed on chain, billed at the end."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evtrade.model.day import MAX_SLOTS
from evtrade.service.schemas import Out, Strict

#: The most power a plug may declare on the service's days (kW); the contract keeps it per day.
MAX_PLUG_KW = 22.0

DayStatus = Literal["not posted", "open", "running", "over", "settled"]


class PlanIn(Strict):
    """What the driver says about the vehicle and the charge it wants."""

    capacity_kwh: float = Field(gt=0, le=1000, description="battery capacity, kWh")
    charge_percent: float = Field(ge=0, le=100, description="charge now, % of the capacity")
    target_percent: float = Field(
        80.0, ge=0, le=100, description="charge wanted at departure, % of the capacity"
    )
    soh_percent: float = Field(100.0, ge=0, le=100, description="battery state of health, %")
    arrival: int = Field(
        0, ge=0, lt=MAX_SLOTS, description="plug-in slot of the day (the hour, for hourly slots)"
    )
    departure: int = Field(
        ge=1, le=MAX_SLOTS, description="departure slot: the charge ends at its start (the hour)"
    )
    power_kw: float = Field(11.0, gt=0, le=MAX_PLUG_KW, description="charging power at the plug")
    lat: float | None = Field(
        None, ge=-90, le=90, description="where the vehicle parks; none: where the day is"
    )
    lon: float | None = Field(
        None,
        ge=-180,
        le=180,
        description="longitude where the vehicle parks; none: where the day is",
    )

    @model_validator(mode="after")
    def _departs_after_arrival(self) -> PlanIn:
        if self.departure <= self.arrival:
            raise ValueError(
                f"departure ({self.departure}) must be after the plug-in slot arrival "
                f"({self.arrival})"
            )
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        return self


class CommitIn(PlanIn):
    """The plan's inputs, and the vehicle that commits it with its wallet's password."""

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the vehicle's account")
    password: str = Field(min_length=1, max_length=200, description="the wallet's password")


class PlanSlotOut(Out):
    """One slot of a plan."""

    slot: int = Field(description="the slot's index in the day, 0 first")
    start: int = Field(description="unix time the slot starts")
    energy_kwh: float = Field(description="drawn at the plug in this slot")
    source: str = Field(description="pv, v2g, grid, or none when nothing is drawn")
    price: float = Field(description="tokens per kWh: lambda_t for the grid, the PV price for PV")
    cost: float = Field(description="tokens")


class PlanOut(Out):
    """The plan of :func:`~evtrade.market.mechanisms.dsm.schedule_day` for the driver's vehicle
    against the day's committed load."""

    day_id: int | None = Field(description="the day on chain; null until the first commitment")
    day_start: int = Field(description="unix time the day starts")
    slot_seconds: int = Field(description="length of a slot, seconds")
    source: str = Field(description="pv, v2g, grid, or none (already at the target)")
    supplier: str | None = Field(description="the PV prosumer's id for a PV plan")
    distance_km: float | None = Field(description="distance to the PV supplier, km (null: none)")
    demand_kwh: float = Field(description="energy to draw to reach the target")
    unmet_kwh: float = Field(description="what the window cannot hold at this power")
    energy_kwh: float = Field(description="planned energy in all")
    expected_bill: float = Field(description="tokens, if nobody else commits afterwards")
    slots: list[PlanSlotOut] = Field(description="the plan, slot by slot")


class DaySlotOut(Out):
    """One slot of the day."""

    slot: int = Field(description="the slot's index in the day, 0 first")
    start: int = Field(description="unix time the slot starts")
    base_price: float = Field(description="phi_t, tokens per kWh")
    forecast: float = Field(description="Q_t, kWh")
    load: float = Field(description="q_t: the committed grid load, kWh")
    price: float = Field(description="lambda_t = phi_t + mu (q_t - Q_t), tokens per kWh")
    pv_price: float = Field(description="what PV energy costs, tokens per kWh")


class DayOut(Out):
    """The aggregator's day: its prices and the live committed load."""

    day_id: int | None = Field(description="the day on chain; null until it is posted")
    status: DayStatus = Field(
        description="not posted; open (commitments taken); running; over (to settle); settled"
    )
    start: int = Field(description="unix time the day starts")
    end: int = Field(description="unix time the day ends")
    slot_seconds: int = Field(description="length of a slot, seconds")
    mu: float = Field(description="mu of lambda_t, tokens per kWh per kWh of load above Q_t")
    feed_in: float = Field(description="gamma: what the grid pays for PV, tokens per kWh")
    lat: float = Field(description="where the day is: its PV prosumers' mean place, else the RSU")
    lon: float = Field(description="where the day is, longitude")
    commitments: int = Field(description="vehicles' commitments so far")
    escrow: float = Field(description="tokens held for the day")
    slots: list[DaySlotOut] = Field(description="the day, slot by slot")


class CommitmentOut(Out):
    """A vehicle's commitment and, once the day is settled, its bill."""

    day_id: int = Field(description="the day on chain")
    index: int = Field(description="the commitment's index in the day")
    status: DayStatus = Field(description="the day's status (see DayOut)")
    day_start: int = Field(description="unix time the day starts")
    slot_seconds: int = Field(description="length of a slot, seconds")
    arrival: int = Field(description="plug-in slot")
    departure: int = Field(description="departure slot: the charge ends at its start")
    power_kw: float = Field(description="charging power at the plug, kW")
    source: str = Field(description="pv or grid")
    supplier: str | None = Field(description="the supplier's address for a PV purchase")
    energy_kwh: list[float] = Field(description="per slot, grid and bought together")
    escrow: float = Field(description="tokens escrowed at commitment")
    expected_bill: float = Field(description="tokens, at the load committed so far")
    settled: bool = Field(description="the day is settled: the bills are final")
    grid_bill: float | None = Field(description="tokens, once settled")
    supply_bill: float | None = Field(description="tokens to the PV supplier, once settled")
    bill: float | None = Field(description="tokens in all, once settled")
    refund: float | None = Field(description="tokens of the escrow back, once settled")


class VehicleDsmOut(Out):
    """The vehicle's latest commitment (null if none) and what it may withdraw."""

    address: str = Field(description="the vehicle's account")
    credit: float = Field(description="tokens the billing contract owes the vehicle")
    commitment: CommitmentOut | None = Field(description="its latest commitment (null: none)")


class WithdrawnOut(Out):
    address: str = Field(description="the vehicle's account")
    tokens: float = Field(description="tokens withdrawn")
