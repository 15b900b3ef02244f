"""The driver's DSM page (issue 14 item 7, the thesis's Fig. 7.1): plan a charge against the
aggregator's day, commit it on chain with escrow, see the bill the contract settles.

The RSU is the aggregator. Its day scenario is ``settings.dsm_day`` (a day file, docs/dsm.md) or,
without one, the thesis's day (:func:`evtrade.model.dsm_thesis.thesis_day`: Fig. 7.6's prices and
forecast, Table 7.2's PV prosumers); only its grid and PV are used, the vehicles of the day being
the drivers who commit. The day is posted on :class:`~evtrade.ledger.dsm_billing.DsmBilling` a day
ahead (hourly days start at the next UTC midnight) when the first driver commits.

A plan is :func:`~evtrade.market.mechanisms.dsm.schedule_day` for the driver's vehicle alone on
the day *as committed so far*: the grid load c_t already committed enters lambda_t = phi_t +
mu (c_t + q_t - Q_t) (thesis eq. 6.3, 6.4) by raising the base price to phi_t + mu c_t, and PV
energy already bought is taken off its production. The plan is thus the driver's best response to
the commitments before it, and its expected bill is what the contract charges if nobody commits
after it (later commitments in the same hours raise lambda_t, as the game says).

The billing contract's address and the PV prosumers' payee accounts are kept in
``dsm-deployment.json`` in the data directory, beside (not inside) the market's deployment file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.errors import (
    ConflictError,
    InsufficientFundsError,
    InvalidRequestError,
    LedgerError,
    MarketError,
)
from evtrade.ledger.chain import Chain, read_json
from evtrade.ledger.dsm_billing import DayView, DsmBilling, day_prices, plan_schedule
from evtrade.market.mechanisms.dsm import DsmParams, VehiclePlan, schedule_day
from evtrade.model.day import PV, DayScenario, FloatArray, Grid, Vehicle, day_from_dict, load_day
from evtrade.service.context import RsuContext
from evtrade.service.dsm_schemas import MAX_PLUG_KW, PlanIn
from evtrade.service.history import record
from evtrade.service.store import TxEntry
from evtrade.service.wallets import Wallets
from evtrade.settlement import units

DEPLOYMENT_FILE = "dsm-deployment.json"
#: Each slot's cap on the total grid load is its forecast plus this (kWh): the escrow covers the
#: bill at the cap (docs/dsm.md, "Billing on chain"), and a commitment past it is refused.
HEADROOM_KWH = 100.0
#: The newest days searched for a vehicle's commitment.
DAYS_BACK = 7
#: The day is posted at least this long before it starts (seconds).
MIN_LEAD = 60
#: The driver's vehicle in the scheduled day.
DRIVER = "driver"
PARAMS = DsmParams(optimum=False)


def aggregator_day(settings_day: Path | None) -> DayScenario:
    """The aggregator's day without vehicles: the day file's grid and PV, else the thesis's."""
    if settings_day is not None:
        day = load_day(settings_day)
    else:
        from evtrade.model.dsm_thesis import thesis_day  # pvlib: imported on first use only

        day = day_from_dict(thesis_day(0))
    return replace(day, vehicles=())


def day_start(now: int, slot_seconds: int, n_slots: int) -> int:
    """When a day posted at ``now`` starts: the next UTC midnight for a 24-hour day, else the next
    whole slot, at least :data:`MIN_LEAD` seconds ahead."""
    period = 86_400 if slot_seconds * n_slots == 86_400 else slot_seconds
    return ((now + MIN_LEAD) // period + 1) * period


def pv_prices(grid: Grid) -> FloatArray:
    """What PV energy costs per slot on the posted phi_t: gamma + share (phi_t - gamma), the
    thesis's midpoint (§6.4.2) at the library's default share, as the contract bills it."""
    return grid.feed_in + PARAMS.pv_share * (grid.base_price - grid.feed_in)


@dataclass(frozen=True, slots=True)
class Committed:
    """What the day holds so far: grid load c_t and PV energy bought, per PV id (kWh per slot)."""

    load: list[float]
    pv_bought: dict[str, list[float]]


class Dsm:
    """The driver's DSM use cases (module docstring)."""

    def __init__(
        self, ctx: RsuContext, wallets: Wallets, chain: Chain, registry: str, token: str
    ) -> None:
        self.ctx = ctx
        self.wallets = wallets
        self.chain = chain
        self.registry = registry
        self.token = token
        self._day: DayScenario | None = None
        self._billing: DsmBilling | None = None
        self._pv: dict[str, str] = {}

    # -- what it runs on ------------------------------------------------------------------------

    @property
    def day(self) -> DayScenario:
        """The aggregator's day scenario (read once)."""
        if self._day is None:
            self._day = aggregator_day(self.ctx.settings.dsm_day)
        return self._day

    @property
    def place(self) -> tuple[float, float]:
        """Where the day is: the mean of its PV prosumers' places, the RSU's when it has none
        (a driver who gives no place parks here)."""
        if not self.day.pv:
            return self.ctx.settings.rsu_lat, self.ctx.settings.rsu_lon
        return (
            float(np.mean([p.lat for p in self.day.pv])),
            float(np.mean([p.lon for p in self.day.pv])),
        )

    @property
    def aggregator(self) -> LocalAccount:
        return self.ctx.operators.rsu

    @property
    def slot_seconds(self) -> int:
        seconds = self.day.slots.hours * 3600
        if seconds != int(seconds):
            raise ConflictError(
                f"the day's slots of {self.day.slots.hours} h are not whole seconds"
            )
        return int(seconds)

    def deployed(self) -> DsmBilling | None:
        """The billing contract if it is deployed already (reading never deploys it)."""
        if self._billing is None and (self.ctx.settings.data_dir / DEPLOYMENT_FILE).exists():
            self.billing()
        return self._billing

    def billing(self) -> DsmBilling:
        """The billing contract of the deployment file, deployed (and the day's PV owners made
        members) on first use."""
        if self._billing is not None:
            return self._billing
        with self.ctx.lock:
            path = self.ctx.settings.data_dir / DEPLOYMENT_FILE
            data: dict[str, Any] = read_json(path) if path.exists() else {}
            billing: DsmBilling | None = None
            if "billing" in data:
                try:
                    billing = DsmBilling(self.chain, str(data["billing"]))
                except LedgerError:  # a fresh chain: deploy again
                    data = {}
            if billing is None:
                billing = DsmBilling.deploy(
                    self.chain,
                    self.ctx.operators.authority,
                    self.registry,
                    self.token,
                    self.aggregator.address,
                )
                data = {"billing": billing.address, "pv": {}}
            if self.chain.ether_balance(self.aggregator.address) == 0:
                self.chain.fund(self.aggregator.address, 10**20)
            pv: dict[str, Any] = data.setdefault("pv", {})
            for prosumer in self.day.pv:
                if prosumer.id not in pv:
                    owner: LocalAccount = Account.create()
                    billing.add_member(self.aggregator, owner.address, pv=True)
                    pv[prosumer.id] = {"address": owner.address, "key": owner.key.hex()}
            _write_private(path, data)
            self._pv = {ident: str(v["address"]) for ident, v in pv.items()}
            self._billing = billing
            return billing

    def pv_address(self, ident: str) -> str:
        self.billing()
        return self._pv[ident]

    # -- the day --------------------------------------------------------------------------------

    def _status(self, view: DayView) -> str:
        if view.settled:
            return "settled"
        if self.chain.next_timestamp() < view.start:
            return "open"
        return "running" if self.chain.timestamp() < view.end else "over"

    def _newest_day(self) -> int | None:
        billing = self.deployed()
        count = 0 if billing is None else billing.day_count()
        return count - 1 if count else None

    def _open_day(self) -> int | None:
        """The newest posted day still taking commitments, or None."""
        day_id = self._newest_day()
        if day_id is None:
            return None
        return day_id if self._status(self.billing().day(day_id)) == "open" else None

    def _post_day(self) -> int:
        """The open day, posted now if there is none."""
        day_id = self._open_day()
        if day_id is not None:
            return day_id
        start = day_start(self.chain.next_timestamp(), self.slot_seconds, self.day.n_slots)
        caps = (self.day.grid.forecast + HEADROOM_KWH).tolist()
        prices = day_prices(self.day, start, caps, MAX_PLUG_KW)
        return self.billing().post_prices(self.aggregator, prices)

    def _committed(self, day_id: int | None) -> Committed:
        n = self.day.n_slots
        if day_id is None:
            return Committed([0.0] * n, {})
        billing = self.billing()
        by_address = {address: ident for ident, address in self._pv.items()}
        bought: dict[str, list[float]] = {}
        for index, c in enumerate(billing.bills(day_id)):
            ident = None if c.supplier is None else by_address.get(c.supplier)
            if ident is not None:
                _, energy = billing.committed_schedule(day_id, index)
                bought[ident] = [
                    a + b for a, b in zip(bought.get(ident, [0.0] * n), energy, strict=True)
                ]
        return Committed(billing.load(day_id), bought)

    def day_view(self) -> dict[str, Any]:
        """The newest day with its live committed load and prices (the scenario's own day,
        priced at no load, before any is posted)."""
        g = self.day.grid
        pv_price = pv_prices(g)
        day_id = self._newest_day()
        n = self.day.n_slots
        if day_id is None:
            view = None
            start = day_start(self.chain.next_timestamp(), self.slot_seconds, n)
            load = [0.0] * n
        else:
            view = self.billing().day(day_id)
            start = view.start
            load = self.billing().load(day_id)
        # lambda_t = phi_t + mu (q_t - Q_t), thesis eq. 6.3-6.4 (the contract's dynamic_price).
        price = g.base_price + g.mu * (np.asarray(load) - g.forecast)
        seconds = self.slot_seconds
        return {
            "day_id": day_id,
            "status": "not posted" if view is None else self._status(view),
            "start": start,
            "end": start + n * seconds,
            "slot_seconds": seconds,
            "mu": g.mu,
            "feed_in": g.feed_in,
            "lat": self.place[0],
            "lon": self.place[1],
            "commitments": 0 if view is None else view.n_commits,
            "escrow": 0.0 if view is None else units.to_tokens(view.escrow),
            "slots": [
                {
                    "slot": t,
                    "start": start + t * seconds,
                    "base_price": float(g.base_price[t]),
                    "forecast": float(g.forecast[t]),
                    "load": float(load[t]),
                    "price": float(price[t]),
                    "pv_price": float(pv_price[t]),
                }
                for t in range(n)
            ],
        }

    # -- planning -------------------------------------------------------------------------------

    def _vehicle(self, body: PlanIn, lat: float | None, lon: float | None) -> Vehicle:
        n = self.day.n_slots
        if body.departure > n:
            raise InvalidRequestError(
                f"departure ({body.departure}) must be <= {n}, the day's slots"
            )
        try:
            return Vehicle(
                id=DRIVER,
                capacity_kwh=body.capacity_kwh,
                energy_kwh=body.capacity_kwh * body.charge_percent / 100.0,
                arrival=body.arrival,
                departure=body.departure,
                power_kw=body.power_kw,
                lat=self.place[0] if lat is None else lat,
                lon=self.place[1] if lon is None else lon,
                soh=body.soh_percent,
                target_soc=body.target_percent / 100.0,
                slot_count=n,
            )
        except MarketError as exc:
            raise InvalidRequestError(str(exc).replace(f"vehicle {DRIVER!r}: ", "")) from None

    def _schedule(self, vehicle: Vehicle, day_id: int | None) -> tuple[VehiclePlan, list[float]]:
        """The library's plan for ``vehicle`` on the day as committed, and its price per slot."""
        day, committed = self.day, self._committed(day_id)
        g = day.grid
        load = np.asarray(committed.load)
        # phi_t + mu c_t: the committed load c_t inside lambda_t (module docstring).
        grid = Grid(
            base_price=g.base_price + g.mu * load, forecast=g.forecast, feed_in=g.feed_in, mu=g.mu
        )
        pv = tuple(
            PV(
                id=p.id,
                production_kwh=np.maximum(
                    0.0, p.production_kwh - np.asarray(committed.pv_bought.get(p.id, 0.0))
                ),
                lat=p.lat,
                lon=p.lon,
            )
            for p in day.pv
        )
        result = schedule_day(DayScenario(day.slots, grid, (vehicle,), pv), PARAMS)
        (plan,) = result.plans
        # A PV price is on the posted phi_t, not on phi_t + mu c_t.
        price = pv_prices(g) if plan.source == "pv" else result.price
        return plan, [float(p) for p in price]

    def plan(self, body: PlanIn) -> dict[str, Any]:
        """The plan for the driver's inputs on the open day (nothing is written)."""
        with self.ctx.lock:
            day_id = self._open_day()
            vehicle = self._vehicle(body, body.lat, body.lon)
            plan, price = self._schedule(vehicle, day_id)
        return self._plan_out(day_id, plan, price)

    def _plan_out(
        self, day_id: int | None, plan: VehiclePlan, price: list[float]
    ) -> dict[str, Any]:
        seconds = self.slot_seconds
        start = (
            self.billing().day(day_id).start
            if day_id is not None
            else day_start(self.chain.next_timestamp(), seconds, self.day.n_slots)
        )
        energy = plan.energy_kwh.tolist()
        cost = [e * p for e, p in zip(energy, price, strict=True)]
        return {
            "day_id": day_id,
            "day_start": start,
            "slot_seconds": seconds,
            "source": plan.source,
            "supplier": plan.supplier,
            "distance_km": plan.distance_km,
            "demand_kwh": plan.demand_kwh,
            "unmet_kwh": plan.unmet_kwh,
            "energy_kwh": float(sum(energy)),
            "expected_bill": plan.cost if plan.source == "grid" else float(sum(cost)),
            "slots": [
                {
                    "slot": t,
                    "start": start + t * seconds,
                    "energy_kwh": energy[t],
                    "source": plan.source if energy[t] > 0 else "none",
                    "price": price[t],
                    "cost": cost[t],
                }
                for t in range(len(energy))
            ],
        }

    # -- commitment and bill --------------------------------------------------------------------

    def commit(self, address: str, password: str, body: PlanIn) -> dict[str, Any]:
        """Plan again on the open day (posting it if needed) and commit the plan with the
        vehicle's key: it escrows the worst-case bill (the contract's bound)."""
        row = self.wallets.vehicle(address)
        account = self.wallets.unlock(row.address, password)
        ctx = self.ctx
        with ctx.lock:
            billing = self.billing()
            lat = body.lat if body.lat is not None else row.lat
            lon = body.lon if body.lon is not None else row.lon
            vehicle = self._vehicle(body, lat, lon)
            day_id = self._post_day()
            if billing.commit_index(day_id, account.address) is not None:
                raise ConflictError(f"vehicle {account.address} already committed to day {day_id}")
            plan, _ = self._schedule(vehicle, day_id)
            if plan.source == "none" or plan.energy_kwh.sum() <= 0:
                raise ConflictError("nothing to charge: the battery is at its target already")
            if plan.source == "v2g":  # the service's days have no V2G sellers (module docstring)
                raise ConflictError("a V2G plan cannot be committed here")
            supplier = None if plan.supplier is None else self.pv_address(plan.supplier)
            schedule = plan_schedule(vehicle, plan, supplier, PARAMS.pv_share)
            if billing.member_kind(account.address) is None:
                billing.add_member(self.aggregator, account.address)
            escrow = billing.escrow_bound(day_id, schedule)
            balance = ctx.ledger.balance(account.address)
            if balance < escrow:
                raise InsufficientFundsError(
                    f"the escrow for this plan is {units.to_tokens(escrow):.4f} tokens, "
                    f"the balance {units.to_tokens(balance):.4f}"
                )
            what = f"DSM day {day_id}: {plan.energy_kwh.sum():.3f} kWh from {plan.source}"
            entry = TxEntry(account.address, "dsm", what, -units.to_tokens(escrow))
            record(
                ctx.store,
                entry,
                lambda: billing.commit_schedule(account, day_id, schedule, escrow=escrow),
            )
            ctx.changed()
        return self.vehicle_view(account.address)

    def settle(self) -> dict[str, Any]:
        """Settle every recent day that is over (the RSU pays the gas; anyone may): the contract
        computes q_t, lambda_t and every bill from the commitments."""
        settled = 0
        with self.ctx.lock:
            newest = self._newest_day()
            billing = self.billing() if newest is not None else None
            days = range(0) if newest is None else range(max(0, newest - DAYS_BACK), newest + 1)
            for day_id in days:
                if billing is not None and self._status(billing.day(day_id)) == "over":
                    billing.settle(self.aggregator, day_id)
                    settled += 1
            if not settled:
                raise ConflictError("no day to settle: the newest day is not over, or is settled")
            self.ctx.changed()
        return self.day_view()

    def vehicle_view(self, address: str) -> dict[str, Any]:
        """The vehicle's newest commitment with its live or settled bill."""
        row = self.wallets.vehicle(address)
        billing = self.deployed()
        out: dict[str, Any] = {"address": row.address, "credit": 0.0, "commitment": None}
        newest = self._newest_day()
        if billing is None or newest is None:
            return out
        out["credit"] = units.to_tokens(billing.credit(row.address))
        for day_id in range(newest, max(-1, newest - DAYS_BACK - 1), -1):
            index = billing.commit_index(day_id, row.address)
            if index is not None:
                out["commitment"] = self._commitment(billing, day_id, index)
                break
        return out

    def _commitment(self, billing: DsmBilling, day_id: int, index: int) -> dict[str, Any]:
        view = billing.day(day_id)
        c = billing.bill(day_id, index)
        grid, bought = billing.committed_schedule(day_id, index)
        g = self.day.grid
        pv_price = pv_prices(g)
        lam = billing.dynamic_prices(day_id)
        expected = sum(x * p for x, p in zip(grid, lam, strict=True)) + sum(
            b * float(p) for b, p in zip(bought, pv_price, strict=True)
        )
        done = view.settled
        bill = c.grid_bill + c.supply_bill
        return {
            "day_id": day_id,
            "index": index,
            "status": self._status(view),
            "day_start": view.start,
            "slot_seconds": view.slot_seconds,
            "arrival": c.arrival,
            "departure": c.departure,
            "power_kw": units.to_kwh(c.power),
            "source": "grid" if c.supplier is None else "pv",
            "supplier": c.supplier,
            "energy_kwh": [a + b for a, b in zip(grid, bought, strict=True)],
            "escrow": units.to_tokens(c.escrow),
            "expected_bill": expected,
            "settled": done,
            "grid_bill": units.to_tokens(c.grid_bill) if done else None,
            "supply_bill": units.to_tokens(c.supply_bill) if done else None,
            "bill": units.to_tokens(bill) if done else None,
            "refund": units.to_tokens(c.refund) if done else None,
        }

    def withdraw(self, address: str, password: str) -> dict[str, Any]:
        """The vehicle pulls what the billing contract owes it (its refund)."""
        row = self.wallets.vehicle(address)
        account = self.wallets.unlock(row.address, password)
        billing = self.deployed()
        with self.ctx.lock:
            owed = 0 if billing is None else billing.credit(account.address)
            if owed == 0:
                raise ConflictError("nothing to withdraw: the day is not settled, or it was taken")
            tokens = units.to_tokens(owed)
            entry = TxEntry(account.address, "withdraw", "DSM refund", tokens)
            record(self.ctx.store, entry, lambda: self.billing().withdraw(account))
            self.ctx.changed()
        return {"address": account.address, "tokens": tokens}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON at ``path``, readable by the owner only (it holds the PV payees' keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)
