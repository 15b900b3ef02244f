"""DsmBilling.vy on the embedded chain (real py-evm, signed transactions): every function works and
refuses what it must; the bills the contract computes are the library's (market/dsm_game.py) from
the same schedules, within the fixed point's rounding; money is conserved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from evtrade.errors import ContractRejectedError, LedgerError
from evtrade.ledger.artifacts import compile_contract, load_artifact
from evtrade.ledger.chain import Chain
from evtrade.ledger.client import Ledger
from evtrade.ledger.dsm_billing import (
    ZERO_ADDRESS,
    DayPrices,
    DsmBilling,
    Schedule,
    day_prices,
    energy_units,
    plan_schedule,
)
from evtrade.market.dsm_game import ChargingGame, bills, nash_equilibrium
from evtrade.market.mechanisms.dsm import schedule_day
from evtrade.model.day import day_from_dict
from evtrade.settlement import units
from tests.ledger_world import embedded_chain
from tests.test_dsm import base_day

# The thesis's Fig. 7.6: phi_t (SEK/kWh) and Q_t (kWh) of 24 hourly slots, mu = 0.01.
PHI = [
    0.4725028, 0.4861648, 0.465014, 0.449834, 0.446292, 0.3855973, 0.3444848, 0.3584757,
    0.3915934, 0.3911633, 0.3354274, 0.3235617, 0.3013483, 0.276276, 0.2911524, 0.276782,
    0.2633224, 0.257048, 0.2564408, 0.2829552, 0.3315312, 0.3910368, 0.4200812, 0.4249388,
]  # fmt: skip
FORECAST = [10, 10, 10, 15, 15, 17, 17, 20, 23, 24, 20, 17, 18, 20, 18, 22, 19, 20, 17, 23, 10,
            12, 15, 12]  # fmt: skip
MU = 0.01
HOUR = 3600
TOKENS = 1000
ES = units.ENERGY_SCALE


@dataclass
class World:
    chain: Chain
    ledger: Ledger
    authority: LocalAccount
    aggregator: LocalAccount
    billing: DsmBilling
    plates: int = 0

    def vehicle(self, *, member: bool = True, tokens: float = TOKENS) -> LocalAccount:
        car: LocalAccount = Account.create()
        self.plates += 1
        expiry = self.chain.timestamp() + 10**7
        self.ledger.register_vehicle(self.authority, car.address, f"DSM {self.plates}", expiry)
        if tokens:
            self.ledger.mint(self.authority, car.address, tokens)
        if member:
            self.billing.add_member(self.aggregator, car.address)
        return car

    def prices(self, n: int = 24, *, lead: int = 600, cap: float = 100.0, **kw: float) -> DayPrices:
        values = {"mu": MU, "feed_in": 0.1, "max_power_kw": 22.0, **kw}
        return DayPrices(
            start=self.chain.next_timestamp() + lead,
            slot_seconds=HOUR,
            base_price=PHI[:n],
            forecast=[float(q) for q in FORECAST[:n]],
            load_cap=[cap] * n,
            mu=values["mu"],
            feed_in=values["feed_in"],
            max_power_kw=values["max_power_kw"],
        )

    def day(self, n: int = 24, *, lead: int = 600, cap: float = 100.0) -> int:
        return self.billing.post_prices(self.aggregator, self.prices(n, lead=lead, cap=cap))

    def after(self, day_id: int) -> None:
        """Move the chain's clock past the day's end."""
        self.chain.advance_time(self.billing.day(day_id).end - self.chain.timestamp() + 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chain = embedded_chain(tmp_path_factory.mktemp("dsm") / "chain")
    authority, aggregator = Account.create(), Account.create()
    ledger = Ledger.deploy(chain, authority)
    chain.fund(aggregator.address, 10**20)
    billing = DsmBilling.deploy(
        chain, authority, ledger.registry.address, ledger.token.address, aggregator.address
    )
    yield World(chain, ledger, authority, aggregator, billing)
    chain.close()


def refused(match: str) -> AbstractContextManager[Any]:
    return pytest.raises(ContractRejectedError, match=match)


def grid_only(arrival: int, departure: int, kwh: dict[int, float], n: int = 24) -> Schedule:
    grid = [kwh.get(t, 0.0) for t in range(n)]
    return Schedule(arrival, departure, 11.0, grid, [0.0] * n)


def exact_bills(
    prices: DayPrices, schedules: list[tuple[list[int], list[int], int]]
) -> tuple[list[int], list[int]]:
    """The contract's bills recomputed in Python integers: (grid bills, supply bills)."""
    phi = [units.to_fixed("phi", p, units.PRICE_SCALE) for p in prices.base_price]
    q_f = [units.to_fixed("q", q, ES) for q in prices.forecast]
    mu = units.to_fixed("mu", prices.mu, units.PRICE_SCALE)
    gamma = units.to_fixed("gamma", prices.feed_in, units.PRICE_SCALE)
    load = [sum(g[t] for g, _, _ in schedules) for t in range(len(phi))]
    lam = [phi[t] * ES + mu * (load[t] - q_f[t]) for t in range(len(phi))]
    grid = [sum(g[t] * lam[t] for t in range(len(phi))) // ES**2 for g, _, _ in schedules]
    supply = [
        sum(b[t] * (gamma * (ES - s) + s * phi[t]) for t in range(len(phi))) // ES**2
        for _, b, s in schedules
    ]
    return grid, supply


# -- artifact ---------------------------------------------------------------------------------


def test_shipped_artifact_matches_a_fresh_compile() -> None:
    shipped, fresh = load_artifact("DsmBilling"), compile_contract("DsmBilling")
    assert (shipped.abi, shipped.bytecode) == (fresh.abi, fresh.bytecode)


def test_no_contract_at_the_address(world: World) -> None:
    with pytest.raises(LedgerError, match="no DsmBilling contract"):
        DsmBilling(world.chain, Account.create().address)


# -- members ----------------------------------------------------------------------------------


def test_add_and_remove_members(world: World) -> None:
    car, pv = world.vehicle(member=False), Account.create()
    world.billing.add_member(world.aggregator, car.address)
    world.billing.add_member(world.aggregator, pv.address, pv=True)
    assert world.billing.member_kind(car.address) == "vehicle"
    assert world.billing.member_kind(pv.address) == "pv"
    world.billing.remove_member(world.aggregator, car.address)
    assert world.billing.member_kind(car.address) is None
    world.billing.add_member(world.aggregator, car.address)  # admitted again
    assert world.billing.member_kind(car.address) == "vehicle"


def test_member_refusals(world: World) -> None:
    car, stranger = world.vehicle(member=False), Account.create()
    block = world.chain.block_number()
    with refused("dsm: caller is not the aggregator"):
        world.billing.add_member(car, car.address)
    with refused("dsm: vehicle not registered or expired"):
        world.billing.add_member(world.aggregator, stranger.address)
    with refused("dsm: invalid member"):
        world.billing.add_member(world.aggregator, world.aggregator.address)
    with refused("dsm: not a member"):
        world.billing.remove_member(world.aggregator, stranger.address)
    world.billing.add_member(world.aggregator, car.address)
    with refused("dsm: already a member"):
        world.billing.add_member(world.aggregator, car.address, pv=True)
    with refused("dsm: caller is not the aggregator"):
        world.billing.remove_member(car, car.address)
    assert world.chain.block_number() == block + 1  # only the one admission was written


# -- posting the day --------------------------------------------------------------------------


def test_post_prices_is_kept_as_posted(world: World) -> None:
    prices = world.prices()
    day_id = world.billing.post_prices(world.aggregator, prices)
    d = world.billing.day(day_id)
    assert (d.start, d.slot_seconds, d.n_slots, d.n_commits, d.settled) == (
        prices.start,
        HOUR,
        24,
        0,
        False,
    )
    assert d.mu == units.to_fixed("mu", MU, units.PRICE_SCALE)
    # With no load, lambda_t = phi_t - mu Q_t (eq. 6.3, 6.4).
    expected = [p - MU * q for p, q in zip(PHI, FORECAST, strict=True)]
    assert world.billing.dynamic_prices(day_id) == pytest.approx(expected, abs=1e-15)
    with pytest.raises(LedgerError, match="unknown day"):
        world.billing.day(day_id + 1)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"start": 1}, "dsm: the day must start in the future"),
        ({"slot_seconds": 0}, "dsm: slot length out of range"),
        ({"slot_seconds": 86401}, "dsm: slot length out of range"),
        ({"base_price": [], "forecast": [], "load_cap": []}, "dsm: no slots"),
        ({"forecast": [1.0] * 23}, "dsm: series lengths differ"),
        ({"load_cap": [1.0] * 25}, "dsm: series lengths differ"),
        ({"max_power_kw": 0.0}, "dsm: max_power out of range"),
        ({"mu": 1e13}, "dsm: mu out of range"),
        ({"base_price": [1e13] * 24}, "dsm: base price out of range"),
        # phi_18 = 0.257 < mu Q = 0.01 x 30: lambda would be negative at a light load
        ({"forecast": [30.0] * 24}, "dsm: base price below mu \\* forecast"),
    ],
)
def test_post_prices_refusals(world: World, change: dict[str, object], match: str) -> None:
    with refused(match):
        world.billing.post_prices(world.aggregator, replace(world.prices(), **change))  # type: ignore[arg-type]


def test_only_the_aggregator_posts(world: World) -> None:
    car = world.vehicle()
    with refused("dsm: caller is not the aggregator"):
        world.billing.post_prices(car, world.prices())


# -- commitments ------------------------------------------------------------------------------


def test_commit_schedule_escrows_the_worst_case(world: World) -> None:
    day_id, car = world.day(), world.vehicle()
    schedule = grid_only(13, 18, {13: 10.0, 14: 11.0, 15: 5.0})
    bound = world.billing.escrow_bound(day_id, schedule)
    # At the cap (100 kWh) lambda_t = phi_t + mu (100 - Q_t); rounded up.
    worst = sum(
        kwh * (PHI[t] + MU * (100 - FORECAST[t])) for t, kwh in ((13, 10), (14, 11), (15, 5))
    )
    assert units.to_tokens(bound) == pytest.approx(worst, rel=1e-14)
    before = world.ledger.balance(car.address)
    index = world.billing.commit_schedule(car, day_id, schedule)
    assert index == 0 and world.billing.commit_index(day_id, car.address) == 0
    assert world.ledger.balance(car.address) == before - bound
    assert world.billing.load(day_id)[13:16] == [10.0, 11.0, 5.0]
    bill = world.billing.bill(day_id, 0)
    assert (bill.vehicle, bill.supplier, bill.escrow, bill.arrival, bill.departure) == (
        car.address,
        None,
        bound,
        13,
        18,
    )
    assert world.billing.day(day_id).escrow == bound


def test_commit_refusals(world: World) -> None:
    day_id = world.day(cap=30.0)
    car, outsider, pv = world.vehicle(), world.vehicle(member=False), Account.create()
    world.billing.add_member(world.aggregator, pv.address, pv=True)
    ok = grid_only(2, 6, {2: 5.0, 3: 5.0})
    commit = world.billing.commit_schedule
    block = world.chain.block_number()
    fns = world.billing.contract.functions
    with refused("dsm: unknown day"):
        raw = fns.commit_schedule(day_id + 7, 0, 1, 1, [1] * 24, [0] * 24, ZERO_ADDRESS, 0, 0)
        world.chain.transact(car, raw, 10**6, what="commit_schedule")
    with refused("dsm: unknown day"):
        world.chain.transact(car, fns.settle(day_id + 7), 10**6, what="settle")
    with refused("dsm: caller is not a member vehicle"):
        commit(outsider, day_id, ok)
    with refused("dsm: caller is not a member vehicle"):
        commit(world.aggregator, day_id, ok, escrow=0)
    cases = [
        (replace(ok, arrival=6, departure=6), "dsm: window out of the day"),
        (replace(ok, departure=25), "dsm: window out of the day"),
        (grid_only(3, 6, {2: 5.0}), "dsm: energy outside the window"),
        (grid_only(2, 6, {6: 1.0}), "dsm: energy outside the window"),
        (grid_only(2, 6, {2: 11.5}), "dsm: energy above the power limit"),  # 11 kW x 1 h
        (replace(ok, power_kw=23.0), "dsm: power above the day's limit"),
        (grid_only(2, 6, {}), "dsm: empty schedule"),
        (grid_only(2, 6, {2: 5.0}, n=23), "dsm: schedule length is not the slot count"),
        (
            replace(ok, bought_kwh=[0, 0, 0, 1.0] + [0] * 20),
            "dsm: bought energy without a supplier",
        ),
        (replace(ok, share=0.5), "dsm: share without a supplier"),
        (replace(ok, supplier=outsider.address), "dsm: supplier is not a member"),
        (replace(ok, supplier=car.address), "dsm: supplier is not a member"),
        (replace(ok, supplier=pv.address, share=1.5), "dsm: share above 1"),
    ]
    for schedule, match in cases:
        with refused(match):
            commit(car, day_id, schedule, escrow=10**21)
    bound = world.billing.escrow_bound(day_id, ok)
    with refused("dsm: escrow below the worst-case bill"):
        commit(car, day_id, ok, escrow=bound - 1)
    poor = world.vehicle(tokens=0.001)
    with refused("token: insufficient balance"):
        commit(poor, day_id, ok)
    # the slot cap: 30 kWh in slot 2; 25 taken by five vehicles, 5.5 more do not fit
    for _ in range(5):
        commit(world.vehicle(), day_id, grid_only(2, 3, {2: 5.0}))
    with refused("dsm: slot load cap exceeded"):
        commit(car, day_id, grid_only(2, 3, {2: 5.5}))
    commit(car, day_id, ok)
    with refused("dsm: already committed this day"):
        commit(car, day_id, ok)
    assert world.billing.day(day_id).n_commits == 6
    # each refused commit wrote nothing; the approvals before them did
    assert world.billing.load(day_id)[2] == 30.0
    assert world.chain.block_number() > block


def test_a_revoked_vehicle_cannot_commit(world: World) -> None:
    day_id, car = world.day(), world.vehicle()
    world.ledger.revoke_vehicle(world.authority, car.address)
    with refused("dsm: vehicle not registered or expired"):
        world.billing.commit_schedule(car, day_id, grid_only(2, 6, {2: 5.0}))


def test_a_removed_member_cannot_commit(world: World) -> None:
    day_id, car = world.day(), world.vehicle()
    world.billing.remove_member(world.aggregator, car.address)
    with refused("dsm: caller is not a member vehicle"):
        world.billing.commit_schedule(car, day_id, grid_only(2, 6, {2: 5.0}))


def test_late_commit_and_early_settle_are_refused(world: World) -> None:
    car, late = world.vehicle(), world.vehicle()
    day_id = world.day(lead=30)
    world.billing.commit_schedule(car, day_id, grid_only(0, 2, {0: 4.0}))
    with refused("dsm: the day is not over"):
        world.billing.settle(car, day_id)
    world.chain.advance_time(31)
    with refused("dsm: the day has started"):
        world.billing.commit_schedule(late, day_id, grid_only(0, 2, {0: 4.0}))


# -- settlement -------------------------------------------------------------------------------


def equilibrium(prices: DayPrices, windows: list[tuple[int, int, float]]) -> np.ndarray:
    """The library's Nash equilibrium of the grid game for vehicles (arrival, departure, kWh)."""
    n = len(prices.base_price)
    upper = np.zeros((len(windows), n))
    for i, (a, d, _) in enumerate(windows):
        upper[i, a:d] = 11.0
    game = ChargingGame(
        base_price=np.array(prices.base_price),
        forecast=np.array(prices.forecast),
        mu=prices.mu,
        upper=upper,
        demand=np.array([kwh for _, _, kwh in windows]),
    )
    return nash_equilibrium(game).schedule


def test_settle_computes_the_library_bills_and_conserves_money(world: World) -> None:
    windows = [(0, 24, 40.0), (12, 20, 35.0), (13, 18, 23.2), (8, 22, 50.0)]
    cars = [world.vehicle() for _ in windows]
    prices = world.prices(lead=120)
    day_id = world.billing.post_prices(world.aggregator, prices)
    x = equilibrium(prices, windows)
    fixed = []
    for car, (a, d, _), row in zip(cars, windows, x, strict=True):
        schedule = Schedule(a, d, 11.0, row.tolist(), [0.0] * 24)
        world.billing.commit_schedule(car, day_id, schedule)
        grid, bought, _, share = world.billing.fixed_schedule(day_id, schedule)
        fixed.append((grid, bought, share))
    stranger = world.vehicle(member=False)
    aggregator_before = world.billing.credit(world.aggregator.address)
    world.after(day_id)
    receipt = world.billing.settle(stranger, day_id)  # anyone settles
    assert receipt["gasUsed"] > 0
    with refused("dsm: day already settled"):
        world.billing.settle(world.aggregator, day_id)
    assert world.billing.day(day_id).settled
    views = world.billing.bills(day_id)
    grid_bills, _ = exact_bills(prices, fixed)
    assert [v.grid_bill for v in views] == grid_bills
    # The library's bills (eq. 6.5) from the same schedules, in floating point.
    game = ChargingGame(
        base_price=np.array(PHI),
        forecast=np.array(FORECAST, dtype=float),
        mu=MU,
        upper=np.full((len(windows), 24), 11.0),
        demand=np.array([sum(g) / ES for g, _, _ in fixed]),
    )
    as_kwh = np.array([[e / ES for e in g] for g, _, _ in fixed])
    library = bills(game, as_kwh)
    assert [units.to_tokens(v.grid_bill) for v in views] == pytest.approx(library, abs=1e-12)
    assert [units.to_tokens(v.grid_bill) for v in views] == pytest.approx(bills(game, x), abs=1e-4)
    # Money: every escrowed unit is owed to someone, and withdrawn to the last unit.
    escrow = sum(v.escrow for v in views)
    assert world.billing.day(day_id).escrow == escrow
    assert world.billing.credit(world.aggregator.address) - aggregator_before == sum(grid_bills)
    for car, v in zip(cars, views, strict=True):
        assert v.refund > 0 and world.billing.credit(car.address) == v.refund
        before = world.ledger.balance(car.address)
        world.billing.withdraw(car)
        assert world.ledger.balance(car.address) == before + v.refund
        with refused("dsm: nothing to withdraw"):
            world.billing.withdraw(car)


def test_pv_and_v2g_purchases_pay_their_suppliers(world: World) -> None:
    data = base_day()
    result = schedule_day(day_from_dict(data))
    plan = {p.id: p for p in result.plans}["EV1"]
    assert plan.source == "pv" and plan.supplier == "PV_far"
    g = data["grid"]
    car, seller, buyer2, pv_owner = (
        world.vehicle(),
        world.vehicle(),
        world.vehicle(),
        Account.create(),
    )
    world.billing.add_member(world.aggregator, pv_owner.address, pv=True)
    prices = DayPrices(
        start=world.chain.next_timestamp() + 120,
        slot_seconds=HOUR,
        base_price=g["base_price"],
        forecast=g["forecast"],
        load_cap=[50.0] * 6,
        mu=g["mu"],
        feed_in=g["feed_in"],
        max_power_kw=22.0,
    )
    day_id = world.billing.post_prices(world.aggregator, prices)
    pv_schedule = Schedule(1, 4, 10.0, [0.0] * 6, plan.energy_kwh.tolist(), pv_owner.address, 0.5)
    world.billing.commit_schedule(car, day_id, pv_schedule)
    # A V2G purchase and grid energy in one commitment, at a share of 0.25.
    mixed = Schedule(
        0, 6, 10.0, [0, 2.0, 0, 0, 3.0, 0], [4.0, 0, 1.0, 0, 0, 0], seller.address, 0.25
    )
    world.billing.commit_schedule(buyer2, day_id, mixed)
    world.after(day_id)
    aggregator_before = world.billing.credit(world.aggregator.address)
    world.billing.settle(world.aggregator, day_id)
    pv_bill, v2g_bill = world.billing.bills(day_id)
    fixed = [world.billing.fixed_schedule(day_id, s) for s in (pv_schedule, mixed)]
    grid, supply = exact_bills(prices, [(a, b, share) for a, b, _, share in fixed])
    assert (pv_bill.grid_bill, pv_bill.supply_bill) == (0, supply[0])
    assert (v2g_bill.grid_bill, v2g_bill.supply_bill) == (grid[1], supply[1])
    assert units.to_tokens(pv_bill.supply_bill) == pytest.approx(plan.cost, abs=1e-5)
    v2g_price = [0.1 + 0.25 * (p - 0.1) for p in g["base_price"]]
    assert units.to_tokens(v2g_bill.supply_bill) == pytest.approx(
        4 * v2g_price[0] + v2g_price[2], abs=1e-15
    )
    assert world.billing.credit(pv_owner.address) == pv_bill.supply_bill
    assert world.billing.credit(seller.address) == v2g_bill.supply_bill
    assert world.billing.credit(world.aggregator.address) - aggregator_before == grid[1]
    chain_before = world.ledger.balance(world.billing.address)
    world.chain.fund(pv_owner.address, 10**18)
    world.billing.withdraw(pv_owner)
    assert world.ledger.balance(pv_owner.address) == pv_bill.supply_bill
    assert world.ledger.balance(world.billing.address) == chain_before - pv_bill.supply_bill


def test_the_aggregator_cannot_overcharge(world: World) -> None:
    """A bill is fixed by the prices posted before the commitments and by the committed load:
    a later day's prices do not reach it, and with the load at its cap it meets the escrow."""
    first, second = world.vehicle(), world.vehicle()
    day_id = world.day(lead=120, cap=22.0)
    world.billing.commit_schedule(first, day_id, grid_only(13, 15, {13: 11.0, 14: 11.0}))
    world.billing.commit_schedule(second, day_id, grid_only(13, 15, {13: 11.0, 14: 11.0}))
    dearer = replace(world.prices(), base_price=[10 * p for p in PHI])
    assert world.billing.post_prices(world.aggregator, dearer) == day_id + 1  # a new day
    world.after(day_id)
    world.billing.settle(world.aggregator, day_id)
    views = world.billing.bills(day_id)
    # Both slots at the cap: each bill is the worst case the escrow was sized for.
    for v in views:
        assert 0 <= v.escrow - (v.grid_bill + v.supply_bill) <= 1
    # lambda_t = phi_t + mu (22 - Q_t): 0.276276 + 0.02 and 0.2911524 + 0.04.
    assert units.to_tokens(views[0].grid_bill) == pytest.approx(
        11 * 0.296276 + 11 * 0.3311524, abs=1e-15
    )


def test_client_refuses_unknown_days_and_commitments(world: World) -> None:
    day_id = world.day()
    with pytest.raises(LedgerError, match="unknown day -1"):
        world.billing.day(-1)
    with pytest.raises(LedgerError, match=f"day {day_id} has no commitment 0"):
        world.billing.bill(day_id, 0)
    with pytest.raises(LedgerError, match="must be finite"):
        world.billing.escrow_bound(day_id, grid_only(0, 2, {0: float("nan")}))


def test_energy_units_take_back_only_rounding() -> None:
    limit = 5 * ES
    # one unit over the limit, from the bought part first; then from the grid part
    assert energy_units([2.0], [3.000001], limit) == ([2 * ES], [3 * ES])
    assert energy_units([5.000001], [0.0], limit) == ([5 * ES], [0])
    assert energy_units([5.000001], [0.000001], limit) == ([5 * ES], [0])
    assert energy_units([5.000002], [0.000001], limit) == ([5_000_002], [1])  # 3 units: real
    # a real excess is left for the contract to refuse
    assert energy_units([5.1], [0.0], limit) == ([5_100_000], [0])


def busy_day() -> dict[str, Any]:
    """base_day with four more vehicles: two served by PV, one by EV2's V2G, two by the grid."""
    data = base_day()
    ev = data["vehicles"][0]
    data["vehicles"] += [
        dict(ev, id="EV3", energy_kwh=70, arrival=2, departure=5),
        dict(ev, id="EV4", energy_kwh=20, arrival=0, departure=6, power_kw=11),
        dict(ev, id="EV5", energy_kwh=30, arrival=1, departure=6, power_kw=11),
        dict(ev, id="EV6", energy_kwh=65, arrival=2, departure=5, power_kw=11),
    ]
    return data


def test_a_scheduled_day_is_billed_as_the_library_bills_it(world: World) -> None:
    day = day_from_dict(busy_day())
    result = schedule_day(day)
    sources = {p.id: p.source for p in result.plans}
    assert sources == {
        "EV1": "pv",
        "EV2": "none",
        "EV3": "pv",
        "EV4": "grid",
        "EV5": "grid",
        "EV6": "v2g",
    }
    accounts = {v.id: world.vehicle() for v in day.vehicles}
    pv_owners = {q.id: Account.create() for q in day.pv}
    for owner in pv_owners.values():
        world.billing.add_member(world.aggregator, owner.address, pv=True)
    addresses = {k: a.address for k, a in (accounts | pv_owners).items()}
    prices = day_prices(day, world.chain.next_timestamp() + 300, [50.0] * 6, 22.0)
    day_id = world.billing.post_prices(world.aggregator, prices)
    committed = []
    for vehicle, plan in zip(day.vehicles, result.plans, strict=True):
        if plan.source == "none":
            continue
        supplier = None if plan.supplier is None else addresses[plan.supplier]
        schedule = plan_schedule(vehicle, plan, supplier)
        world.billing.commit_schedule(accounts[vehicle.id], day_id, schedule)
        committed.append(plan)
    assert world.billing.load(day_id) == pytest.approx(result.load.tolist(), abs=1e-5)
    assert world.billing.dynamic_prices(day_id) == pytest.approx(result.price.tolist(), abs=1e-6)
    aggregator_before = world.billing.credit(world.aggregator.address)
    world.after(day_id)
    world.billing.settle(world.aggregator, day_id)
    views = world.billing.bills(day_id)
    for plan, v in zip(committed, views, strict=True):
        assert units.to_tokens(v.grid_bill + v.supply_bill) == pytest.approx(plan.cost, abs=1e-4)
    for m, (ident, owner) in enumerate(pv_owners.items()):
        revenue = float(result.pv_sold[m] @ result.pv_price)
        assert units.to_tokens(world.billing.credit(owner.address)) == pytest.approx(
            revenue, abs=1e-4
        ), ident
    v2g_revenue = float(result.v2g_sold[1] @ result.v2g_price)
    ev2_credit = world.billing.credit(accounts["EV2"].address)
    assert units.to_tokens(ev2_credit) == pytest.approx(v2g_revenue, abs=1e-4)
    grid_total = sum(v.grid_bill for v in views)
    assert units.to_tokens(grid_total) == pytest.approx(result.grid_cost, abs=1e-4)
    assert world.billing.credit(world.aggregator.address) - aggregator_before == grid_total
    # Conservation: what was escrowed is exactly what is owed (bills and refunds).
    owed = grid_total + sum(v.supply_bill + v.refund for v in views)
    assert owed == sum(v.escrow for v in views) == world.billing.day(day_id).escrow


def test_library_adapters_refuse_what_cannot_be_committed() -> None:
    data = base_day()
    day = day_from_dict(data)
    result = schedule_day(day)
    ev1, ev2 = day.vehicles
    with pytest.raises(LedgerError, match="EV1: its pv plan needs the supplier's address"):
        plan_schedule(ev1, result.plans[0])
    with pytest.raises(LedgerError, match="EV2 draws nothing"):
        plan_schedule(ev2, result.plans[1])
    data["slots"]["hours"] = 0.0001  # 0.36 s
    with pytest.raises(LedgerError, match="not a whole number of seconds"):
        day_prices(day_from_dict(data), 10**9, [1.0] * 6, 10.0)
