"""The DSM billing contract's client: a day of charging posted, committed, billed on chain.

``DsmBilling.vy`` (docs/dsm.md, "Billing on chain") sits beside the market's contracts and reuses
their Registry (vehicles' identities) and Token (escrow and payments). Amounts cross this API in
the project's units (kWh, kW, tokens per kWh) and are converted by
:mod:`evtrade.settlement.units`; every call is preflighted like
:class:`~evtrade.ledger.client.Ledger`'s, so a refused one raises
:class:`~evtrade.errors.ContractRejectedError` with the contract's reason and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD
from web3.types import TxReceipt

from evtrade.errors import ContractRejectedError, LedgerError
from evtrade.ledger.artifacts import load_artifact
from evtrade.ledger.chain import Chain, revert_reason
from evtrade.market.mechanisms.dsm import VehiclePlan
from evtrade.model.day import DayScenario, Vehicle
from evtrade.settlement import units

#: Gas limits, about 1.5 x the use measured on the embedded chain (docs/dsm.md, "Billing on
#: chain"); post, commit and settle grow with the slots, the slots in a window and the commitments.
GAS = {
    "deploy": 5_000_000,
    "add_member": 120_000,
    "remove_member": 60_000,
    "approve": 80_000,
    "withdraw": 120_000,
}
_POST_BASE, _POST_PER_SLOT = 300_000, 100_000
_COMMIT_BASE, _COMMIT_PER_SLOT, _COMMIT_PER_WINDOW_SLOT = 150_000, 15_000, 80_000
_SETTLE_BASE, _SETTLE_PER_SLOT, _SETTLE_PER_COMMIT, _SETTLE_PER_ENTRY = (
    150_000,
    12_000,
    70_000,
    5_000,
)
#: No settlement needs more than this (the contract's caps keep it under; anvil's block takes 30M).
SETTLE_GAS_CAP = 30_000_000
#: Shares (the supplier's price between feed-in and base price) in millionths, as the contract.
SHARE_SCALE = 10**6
#: Power is stored as energy units per hour.
POWER_SCALE = units.ENERGY_SCALE
ZERO_ADDRESS = "0x" + "00" * 20
#: Energy units a slot may pass its power limit by through rounding (one per part).
ROUNDING_UNITS = 2


@dataclass(frozen=True, slots=True)
class DayPrices:
    """What the aggregator posts a day ahead: ``start`` (unix time) and ``slot_seconds``;
    per slot the base price phi_t (tokens per kWh), the forecast Q_t and the cap on the total
    grid load (kWh); ``mu`` (tokens per kWh per kWh), the feed-in tariff and the most power a
    vehicle may declare (kW)."""

    start: int
    slot_seconds: int
    base_price: Sequence[float]
    forecast: Sequence[float]
    load_cap: Sequence[float]
    mu: float
    feed_in: float
    max_power_kw: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """A vehicle's day: plugged in over slots [arrival, departure) at ``power_kw``, drawing
    ``grid_kwh`` from the grid and ``bought_kwh`` from ``supplier`` (an address; None when it buys
    nothing) at feed-in + ``share`` (base price - feed-in)."""

    arrival: int
    departure: int
    power_kw: float
    grid_kwh: Sequence[float]
    bought_kwh: Sequence[float]
    supplier: str | None = None
    share: float = 0.0


@dataclass(frozen=True, slots=True)
class DayView:
    """A posted day as the contract holds it (fixed point)."""

    start: int
    slot_seconds: int
    n_slots: int
    mu: int
    feed_in: int
    max_power: int
    n_commits: int
    escrow: int
    settled: bool

    @property
    def end(self) -> int:
        """Unix time the day's last slot ends: settlement opens then."""
        return self.start + self.n_slots * self.slot_seconds


@dataclass(frozen=True, slots=True)
class BillView:
    """One vehicle's commitment and, once settled, its bills (token base units)."""

    vehicle: str
    supplier: str | None
    share: int
    arrival: int
    departure: int
    power: int
    escrow: int
    grid_bill: int
    supply_bill: int

    @property
    def refund(self) -> int:
        """What comes back once the day is settled."""
        return self.escrow - self.grid_bill - self.supply_bill


def energy_units(
    grid_kwh: Sequence[float], bought_kwh: Sequence[float], limit: int
) -> tuple[list[int], list[int]]:
    """Grid and bought kWh per slot as energy units. Rounding the library's floats to the unit
    can pass a slot's power ``limit`` (energy units) by a unit or two; that much is taken back,
    from the bought part first. A larger excess is left for the contract to refuse."""
    grid = [units.to_fixed(f"grid_kwh[{t}]", v, units.ENERGY_SCALE) for t, v in enumerate(grid_kwh)]
    bought = [
        units.to_fixed(f"bought_kwh[{t}]", v, units.ENERGY_SCALE) for t, v in enumerate(bought_kwh)
    ]
    for t in range(min(len(grid), len(bought))):
        excess = grid[t] + bought[t] - limit
        if 0 < excess <= ROUNDING_UNITS:
            take = min(excess, bought[t])
            bought[t] -= take
            grid[t] -= excess - take
    return grid, bought


def slot_energy_limit(power: int, slot_seconds: int) -> int:
    """The most energy units a slot takes at ``power`` (energy units per hour), as the contract."""
    return power * slot_seconds // 3600


def day_prices(
    day: DayScenario, start: int, load_cap: Sequence[float], max_power_kw: float
) -> DayPrices:
    """The aggregator's posting for a day scenario: its phi_t, Q_t, mu and feed-in, starting at
    ``start`` (unix time), with the load caps and power limit the contract adds."""
    seconds = day.slots.hours * 3600
    if seconds != int(seconds):
        raise LedgerError(f"slots of {day.slots.hours} h are not a whole number of seconds")
    g = day.grid
    return DayPrices(
        start=start,
        slot_seconds=int(seconds),
        base_price=g.base_price.tolist(),
        forecast=g.forecast.tolist(),
        load_cap=list(load_cap),
        mu=g.mu,
        feed_in=g.feed_in,
        max_power_kw=max_power_kw,
    )


def plan_schedule(
    vehicle: Vehicle, plan: VehiclePlan, supplier: str | None = None, share: float = 0.5
) -> Schedule:
    """What a vehicle commits for its plan of :func:`~evtrade.market.mechanisms.dsm.schedule_day`:
    grid energy for a grid plan, energy bought from ``supplier`` (the address of the plan's PV or
    V2G seller) at ``share`` (``DsmParams.pv_share`` / ``v2g_share``) otherwise."""
    energy = plan.energy_kwh.tolist()
    zeros = [0.0] * len(energy)
    if plan.source == "grid":
        return Schedule(vehicle.arrival, vehicle.departure, vehicle.power_kw, energy, zeros)
    if plan.source in ("pv", "v2g"):
        if supplier is None:
            raise LedgerError(
                f"vehicle {plan.id}: its {plan.source} plan needs the supplier's address"
            )
        return Schedule(
            vehicle.arrival, vehicle.departure, vehicle.power_kw, zeros, energy, supplier, share
        )
    raise LedgerError(f"vehicle {plan.id} draws nothing: there is nothing to commit")


class DsmBilling:
    """Typed access to one deployed ``DsmBilling`` contract."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        address = to_checksum_address(address)
        if not chain.has_code(address):
            raise LedgerError(f"no DsmBilling contract at {address} on this chain")
        self.contract = chain.contract(address, load_artifact("DsmBilling").abi)
        self.address = address

    @classmethod
    def deploy(
        cls, chain: Chain, deployer: LocalAccount, registry: str, token: str, aggregator: str
    ) -> DsmBilling:
        """Deploy the billing contract on the market's ``registry`` and ``token``."""
        if chain.ether_balance(deployer.address) == 0:
            chain.fund(deployer.address, 10**20)
        artifact = load_artifact("DsmBilling")
        code = chain.deploy_code(
            artifact.abi,
            artifact.bytecode,
            (
                to_checksum_address(registry),
                to_checksum_address(token),
                to_checksum_address(aggregator),
            ),
        )
        sent = chain.send_data(
            deployer, None, HexBytes(code), GAS["deploy"], what="deploy DsmBilling"
        )
        address = chain.wait(sent)["contractAddress"]
        if address is None:
            raise LedgerError("deploy DsmBilling: no contract address in the receipt")
        return cls(chain, str(address))

    def _do(
        self, account: LocalAccount, name: str, *args: object, gas: int | None = None
    ) -> TxReceipt:
        fn = self.contract.get_function_by_name(name)(*args)
        return self.chain.transact(account, fn, gas or GAS[name], what=name)

    def _view(self, name: str, *args: object) -> Any:
        try:
            return self.contract.get_function_by_name(name)(*args).call()
        except (ContractLogicError, Web3RPCError, TransactionFailed) as exc:
            raise ContractRejectedError(f"{name}: {revert_reason(exc)}") from exc

    # -- members --------------------------------------------------------------------------------

    def add_member(self, aggregator: LocalAccount, member: str, *, pv: bool = False) -> TxReceipt:
        """The aggregator admits a vehicle (certified by the Registry) or, ``pv``, a PV owner."""
        return self._do(aggregator, "add_member", to_checksum_address(member), pv)

    def remove_member(self, aggregator: LocalAccount, member: str) -> TxReceipt:
        """The aggregator removes a member (its commitments made stay billed)."""
        return self._do(aggregator, "remove_member", to_checksum_address(member))

    def member_kind(self, member: str) -> str | None:
        """ "vehicle", "pv", or None for a non-member."""
        kind = int(self._view("member_kind", to_checksum_address(member)))
        return {1: "vehicle", 2: "pv"}.get(kind)

    # -- the day --------------------------------------------------------------------------------

    def post_prices(self, aggregator: LocalAccount, prices: DayPrices) -> int:
        """The aggregator posts a day; returns its id."""
        n = len(prices.base_price)
        receipt = self._do(
            aggregator,
            "post_prices",
            prices.start,
            prices.slot_seconds,
            [
                units.to_fixed(f"base_price[{t}]", p, units.PRICE_SCALE)
                for t, p in enumerate(prices.base_price)
            ],
            [
                units.to_fixed(f"forecast[{t}]", q, units.ENERGY_SCALE)
                for t, q in enumerate(prices.forecast)
            ],
            [
                units.to_fixed(f"load_cap[{t}]", c, units.ENERGY_SCALE)
                for t, c in enumerate(prices.load_cap)
            ],
            units.to_fixed("mu", prices.mu, units.PRICE_SCALE),
            units.to_fixed("feed_in", prices.feed_in, units.PRICE_SCALE),
            units.to_fixed("max_power_kw", prices.max_power_kw, POWER_SCALE),
            gas=_POST_BASE + _POST_PER_SLOT * n,
        )
        (event,) = self.contract.events.PricesPosted().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["day_id"])

    def day(self, day_id: int) -> DayView:
        """The posted day ``day_id``."""
        if not 0 <= day_id < self.day_count():
            raise LedgerError(f"unknown day {day_id}")
        return DayView(*self._view("days", day_id))

    def day_count(self) -> int:
        """Days posted so far."""
        return int(self._view("day_count"))

    def fixed_schedule(
        self, day_id: int, schedule: Schedule
    ) -> tuple[list[int], list[int], int, int]:
        """(grid, bought, power, share) of ``schedule`` in the contract's units; each slot's
        energy is kept within the power limit (:func:`energy_units`)."""
        d = self.day(day_id)
        power = units.to_fixed("power_kw", schedule.power_kw, POWER_SCALE)
        limit = slot_energy_limit(power, d.slot_seconds)
        grid, bought = energy_units(schedule.grid_kwh, schedule.bought_kwh, limit)
        share = units.to_fixed("share", schedule.share, SHARE_SCALE)
        return grid, bought, power, share

    def escrow_bound(self, day_id: int, schedule: Schedule) -> int:
        """The least escrow (token base units) the schedule needs: its bill at every slot's cap."""
        grid, bought, _, share = self.fixed_schedule(day_id, schedule)
        return int(self._view("escrow_bound", day_id, grid, bought, share))

    def commit_schedule(
        self, vehicle: LocalAccount, day_id: int, schedule: Schedule, *, escrow: int | None = None
    ) -> int:
        """A member vehicle commits its schedule and escrows ``escrow`` base units (default: the
        bound, :meth:`escrow_bound`), approving the contract first; returns its index in the day."""
        grid, bought, power, share = self.fixed_schedule(day_id, schedule)
        if escrow is None:
            escrow = int(self._view("escrow_bound", day_id, grid, bought, share))
        token = self.chain.contract(str(self._view("token")), load_artifact("Token").abi)
        fn = token.get_function_by_name("approve")(self.address, escrow)
        self.chain.transact(vehicle, fn, GAS["approve"], what="approve")
        supplier = (
            ZERO_ADDRESS if schedule.supplier is None else to_checksum_address(schedule.supplier)
        )
        receipt = self._do(
            vehicle,
            "commit_schedule",
            day_id,
            schedule.arrival,
            schedule.departure,
            power,
            grid,
            bought,
            supplier,
            share,
            escrow,
            gas=_COMMIT_BASE
            + _COMMIT_PER_SLOT * len(grid)
            + _COMMIT_PER_WINDOW_SLOT * max(0, schedule.departure - schedule.arrival),
        )
        (event,) = self.contract.events.ScheduleCommitted().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["index"])

    def settle(self, account: LocalAccount, day_id: int) -> TxReceipt:
        """Anyone settles a day once it is over."""
        d = self.day(day_id)
        entries = sum(b.departure - b.arrival for b in self.bills(day_id))
        gas = min(
            SETTLE_GAS_CAP,
            _SETTLE_BASE
            + _SETTLE_PER_SLOT * d.n_slots
            + _SETTLE_PER_COMMIT * d.n_commits
            + _SETTLE_PER_ENTRY * entries,
        )
        return self._do(account, "settle", day_id, gas=gas)

    def withdraw(self, account: LocalAccount) -> TxReceipt:
        """Pull the caller's credit (bills received, refunds)."""
        return self._do(account, "withdraw")

    # -- views ----------------------------------------------------------------------------------

    def credit(self, address: str) -> int:
        """Token base units owed to ``address`` and not yet withdrawn."""
        return int(self._view("credit", to_checksum_address(address)))

    def load(self, day_id: int) -> list[float]:
        """q_t: the committed grid load per slot (kWh)."""
        d = self.day(day_id)
        return [units.to_kwh(int(self._view("load", day_id, t))) for t in range(d.n_slots)]

    def dynamic_prices(self, day_id: int) -> list[float]:
        """lambda_t (tokens per kWh) at the committed load; final once the day has started."""
        d = self.day(day_id)
        return [
            units.to_tokens(int(self._view("dynamic_price", day_id, t))) for t in range(d.n_slots)
        ]

    def bill(self, day_id: int, index: int) -> BillView:
        """The commitment ``index`` of the day and its bills (zero before settlement)."""
        if not 0 <= index < self.day(day_id).n_commits:
            raise LedgerError(f"day {day_id} has no commitment {index}")
        return self._bill(day_id, index)

    def _bill(self, day_id: int, index: int) -> BillView:
        vehicle, supplier, *rest = self._view("commitments", day_id, index)
        return BillView(
            str(vehicle), None if int(str(supplier), 16) == 0 else str(supplier), *map(int, rest)
        )

    def committed_schedule(self, day_id: int, index: int) -> tuple[list[float], list[float]]:
        """(grid, bought) kWh per slot of the commitment ``index`` of the day, as committed."""
        d = self.day(day_id)
        if not 0 <= index < d.n_commits:
            raise LedgerError(f"day {day_id} has no commitment {index}")
        n = d.n_slots
        pairs = [self._view("schedule", day_id, index, t) for t in range(n)]
        return [units.to_kwh(int(g)) for g, _ in pairs], [units.to_kwh(int(b)) for _, b in pairs]

    def bills(self, day_id: int) -> list[BillView]:
        """Every commitment of the day, in commit order."""
        n = self.day(day_id).n_commits
        return [self._bill(day_id, i) for i in range(n)]

    def commit_index(self, day_id: int, vehicle: str) -> int | None:
        """The vehicle's commitment index in the day, or None."""
        slot = int(self._view("commit_slot", day_id, to_checksum_address(vehicle)))
        return slot - 1 if slot else None
