# pragma version ~=0.4.3
"""
@title A day of EV charging billed at the aggregator's dynamic price (DSM, Chalmers thesis)
@notice The aggregator (thesis ch. 6) admits members (vehicles certified by the
        Registry, and PV owners) and posts a day before it starts: the base
        price phi_t, the forecast load Q_t, a cap on the total grid load per
        slot, the correction mu and the feed-in tariff gamma. Each vehicle
        commits its schedule (kWh per slot from the grid, and kWh bought from
        one PV owner or V2G seller at gamma + share (phi_t - gamma)) inside its
        window and power, and escrows tokens that cover its worst-case bill.
        After the day anyone settles: the contract computes q_t, the dynamic
        price lambda_t = phi_t + mu (q_t - Q_t) (eq. 6.3, 6.4) and each bill
        sum_t lambda_t x_i^t (eq. 6.5) itself, credits the aggregator, the
        suppliers and the refunds; everyone withdraws (pull-based).
@dev Units as Market.vy: prices in token base units (1e-18 token) per kWh,
     energy in ENERGY_SCALE units per kWh, mu in price units per kWh per kWh,
     shares in SHARE_SCALE units. Every bill is one floor of an exact
     rational sum; escrows round up. lambda_t is never negative: a day with
     phi_t < mu Q_t is refused, so no floor at 0 is needed and the bill is the
     library's (market/dsm_game.py, which does not floor lambda).
     Trust model (docs/dsm.md): the aggregator is trusted for its prices, which
     are public and fixed before anyone commits; it cannot change them, nor a
     schedule, nor a bill. Vehicles are not trusted: every limit is checked and
     the worst case is escrowed. Deliveries are declarations (the chain cannot
     meter energy), as a Market seller's spare energy is.
"""
from ethereum.ercs import IERC20

interface IRegistry:
    def is_valid_vehicle(vehicle: address) -> bool: view

ENERGY_SCALE: public(constant(uint256)) = 10**6
SHARE_SCALE: public(constant(uint256)) = 10**6
# Slots in a day (96: a day of quarter hours) and commitments per day: the bounds of settle's
# loops (docs/dsm.md measures settle at 24 slots and up to 64 commitments).
MAX_SLOTS: public(constant(uint256)) = 96
MAX_COMMITS: public(constant(uint256)) = 64
MAX_MEMBERS: public(constant(uint256)) = 4096
# Bounds on the posted numbers, so that no sum in settle can overflow (a settle that reverted on
# an overflow would lock every escrow of the day): lambda's numerator stays below 2^161, a slot's
# energy below 2^55, their products summed over 96 slots below 2^223.
MAX_PRICE: public(constant(uint256)) = 10**30
MAX_MU: public(constant(uint256)) = 10**30
MAX_ENERGY: public(constant(uint256)) = 10**18
MAX_POWER: public(constant(uint256)) = 10**15
MAX_SLOT_SECONDS: public(constant(uint256)) = 86400
KIND_VEHICLE: public(constant(uint256)) = 1
KIND_PV: public(constant(uint256)) = 2
_LOW: constant(uint256) = 2**128 - 1

struct Day:
    start: uint256
    slot_seconds: uint256
    n_slots: uint256
    mu: uint256
    feed_in: uint256
    # Most power a vehicle may declare, energy units per hour (kW x ENERGY_SCALE).
    max_power: uint256
    n_commits: uint256
    escrow: uint256
    settled: bool

struct Commitment:
    vehicle: address
    supplier: address
    share: uint256
    arrival: uint256
    departure: uint256
    power: uint256
    escrow: uint256
    grid_bill: uint256
    supply_bill: uint256

event MemberAdded:
    member: indexed(address)
    kind: uint256

event MemberRemoved:
    member: indexed(address)

event PricesPosted:
    day_id: indexed(uint256)
    start: uint256
    slot_seconds: uint256
    n_slots: uint256
    mu: uint256
    feed_in: uint256
    max_power: uint256
    base_price: DynArray[uint256, MAX_SLOTS]
    forecast: DynArray[uint256, MAX_SLOTS]
    load_cap: DynArray[uint256, MAX_SLOTS]

event ScheduleCommitted:
    day_id: indexed(uint256)
    vehicle: indexed(address)
    index: uint256
    supplier: address
    share: uint256
    arrival: uint256
    departure: uint256
    power: uint256
    escrow: uint256
    grid: DynArray[uint256, MAX_SLOTS]
    bought: DynArray[uint256, MAX_SLOTS]

event Billed:
    day_id: indexed(uint256)
    vehicle: indexed(address)
    supplier: indexed(address)
    grid_bill: uint256
    supply_bill: uint256
    refund: uint256

event DaySettled:
    day_id: indexed(uint256)
    commits: uint256
    grid_total: uint256
    supply_total: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

registry: public(IRegistry)
token: public(IERC20)
aggregator: public(address)
# KIND_VEHICLE, KIND_PV, or 0 (not a member).
member_kind: public(HashMap[address, uint256])
member_count: public(uint256)
day_count: public(uint256)
days: public(HashMap[uint256, Day])
base_price: public(HashMap[uint256, HashMap[uint256, uint256]])
forecast: public(HashMap[uint256, HashMap[uint256, uint256]])
load_cap: public(HashMap[uint256, HashMap[uint256, uint256]])
# q_t: the committed grid load per slot (energy units), final once the day starts.
load: public(HashMap[uint256, HashMap[uint256, uint256]])
commitments: public(HashMap[uint256, HashMap[uint256, Commitment]])
# 1 + a vehicle's commitment index in a day (0: none); one commitment per vehicle per day.
commit_slot: public(HashMap[uint256, HashMap[address, uint256]])
# Per day, commitment and slot: grid energy in the low 128 bits, bought energy in the high.
_energy: HashMap[uint256, HashMap[uint256, HashMap[uint256, uint256]]]
credit: public(HashMap[address, uint256])


@deploy
def __init__(registry: IRegistry, token: IERC20, aggregator: address):
    """
    @param registry The identity registry that certifies vehicles.
    @param token The token escrowed and paid.
    @param aggregator The EV aggregator: admits members and posts the days' prices.
    """
    assert aggregator != empty(address), "dsm: zero aggregator"
    self.registry = registry
    self.token = token
    self.aggregator = aggregator


@external
def add_member(member: address, pv: bool):
    """
    @notice The aggregator admits a vehicle (certified by the Registry) or a PV owner.
    """
    assert msg.sender == self.aggregator, "dsm: caller is not the aggregator"
    assert member != empty(address) and member != self.aggregator, "dsm: invalid member"
    assert self.member_kind[member] == 0, "dsm: already a member"
    assert self.member_count < MAX_MEMBERS, "dsm: too many members"
    kind: uint256 = KIND_PV
    if not pv:
        assert staticcall self.registry.is_valid_vehicle(member), (
            "dsm: vehicle not registered or expired"
        )
        kind = KIND_VEHICLE
    self.member_kind[member] = kind
    self.member_count += 1
    log MemberAdded(member=member, kind=kind)


@external
def remove_member(member: address):
    """
    @notice The aggregator removes a member. Its commitments already made are
            still billed and paid; it can commit and supply no more.
    """
    assert msg.sender == self.aggregator, "dsm: caller is not the aggregator"
    assert self.member_kind[member] != 0, "dsm: not a member"
    self.member_kind[member] = 0
    self.member_count -= 1
    log MemberRemoved(member=member)


@external
def post_prices(
    start: uint256,
    slot_seconds: uint256,
    base_price: DynArray[uint256, MAX_SLOTS],
    forecast: DynArray[uint256, MAX_SLOTS],
    load_cap: DynArray[uint256, MAX_SLOTS],
    mu: uint256,
    feed_in: uint256,
    max_power: uint256,
) -> uint256:
    """
    @notice The aggregator posts a day ahead: phi_t, Q_t and the cap on q_t per
            slot, mu, gamma and the most power a vehicle may declare. A posted
            day never changes.
    @param start Unix time the day's first slot begins; must be in the future.
    @param load_cap The most total grid load per slot (energy units): commits
           beyond it are refused, so lambda_t <= phi_t + mu (cap_t - Q_t).
    @return The day's id.
    """
    assert msg.sender == self.aggregator, "dsm: caller is not the aggregator"
    assert start > block.timestamp, "dsm: the day must start in the future"
    assert slot_seconds > 0 and slot_seconds <= MAX_SLOT_SECONDS, "dsm: slot length out of range"
    n: uint256 = len(base_price)
    assert n > 0, "dsm: no slots"
    assert len(forecast) == n and len(load_cap) == n, "dsm: series lengths differ"
    assert mu <= MAX_MU, "dsm: mu out of range"
    assert feed_in <= MAX_PRICE, "dsm: feed_in out of range"
    assert max_power > 0 and max_power <= MAX_POWER, "dsm: max_power out of range"
    day_id: uint256 = self.day_count
    self.day_count = day_id + 1
    for t: uint256 in range(n, bound=MAX_SLOTS):
        assert base_price[t] <= MAX_PRICE, "dsm: base price out of range"
        assert forecast[t] <= MAX_ENERGY and load_cap[t] <= MAX_ENERGY, "dsm: load out of range"
        # lambda_t >= phi_t - mu Q_t for every q_t >= 0: refusing phi_t < mu Q_t keeps every
        # price, hence every bill, non-negative, with no floor that the library does not apply.
        assert base_price[t] * ENERGY_SCALE >= mu * forecast[t], (
            "dsm: base price below mu * forecast (lambda could be negative)"
        )
        self.base_price[day_id][t] = base_price[t]
        self.forecast[day_id][t] = forecast[t]
        self.load_cap[day_id][t] = load_cap[t]
    self.days[day_id] = Day(
        start=start,
        slot_seconds=slot_seconds,
        n_slots=n,
        mu=mu,
        feed_in=feed_in,
        max_power=max_power,
        n_commits=0,
        escrow=0,
        settled=False,
    )
    log PricesPosted(
        day_id=day_id,
        start=start,
        slot_seconds=slot_seconds,
        n_slots=n,
        mu=mu,
        feed_in=feed_in,
        max_power=max_power,
        base_price=base_price,
        forecast=forecast,
        load_cap=load_cap,
    )
    return day_id


@view
@external
def escrow_bound(
    day_id: uint256,
    grid: DynArray[uint256, MAX_SLOTS],
    bought: DynArray[uint256, MAX_SLOTS],
    share: uint256,
) -> uint256:
    """
    @notice The least escrow `commit_schedule` takes for this schedule: its
            bill with every slot at its load cap.
    """
    assert day_id < self.day_count, "dsm: unknown day"
    d: Day = self.days[day_id]
    assert len(grid) == d.n_slots and len(bought) == d.n_slots, "dsm: schedule length is not the slot count"
    assert share <= SHARE_SCALE, "dsm: share above 1"
    return self._bound(day_id, d, grid, bought, share)


@external
@nonreentrant
def commit_schedule(
    day_id: uint256,
    arrival: uint256,
    departure: uint256,
    power: uint256,
    grid: DynArray[uint256, MAX_SLOTS],
    bought: DynArray[uint256, MAX_SLOTS],
    supplier: address,
    share: uint256,
    escrow: uint256,
) -> uint256:
    """
    @notice A member vehicle commits its day: energy per slot from the grid and
            from one supplier, and escrows `escrow` tokens (at least
            `escrow_bound`); the rest of the escrow comes back at settlement.
    @param arrival First slot the vehicle is plugged in.
    @param departure Slot it leaves (exclusive): it draws nothing outside [arrival, departure).
    @param power Its charging power (energy units per hour); grid + bought in a
           slot is at most power x slot length.
    @param supplier The PV owner or V2G vehicle it buys from (a member; zero when it buys nothing).
    @param share Where the supplier's price lies between gamma (0) and phi_t
           (SHARE_SCALE): gamma + share (phi_t - gamma), the thesis's midpoint at SHARE_SCALE / 2.
    @return The commitment's index in the day.
    """
    assert day_id < self.day_count, "dsm: unknown day"
    d: Day = self.days[day_id]
    assert block.timestamp < d.start, "dsm: the day has started"
    assert self.member_kind[msg.sender] == KIND_VEHICLE, "dsm: caller is not a member vehicle"
    assert staticcall self.registry.is_valid_vehicle(msg.sender), (
        "dsm: vehicle not registered or expired"
    )
    assert self.commit_slot[day_id][msg.sender] == 0, "dsm: already committed this day"
    assert d.n_commits < MAX_COMMITS, "dsm: the day is full"
    assert len(grid) == d.n_slots and len(bought) == d.n_slots, "dsm: schedule length is not the slot count"
    assert arrival < departure and departure <= d.n_slots, "dsm: window out of the day"
    assert power > 0 and power <= d.max_power, "dsm: power above the day's limit"
    assert share <= SHARE_SCALE, "dsm: share above 1"
    if supplier == empty(address):
        assert share == 0, "dsm: share without a supplier"
    else:
        kind: uint256 = self.member_kind[supplier]
        assert kind != 0 and supplier != msg.sender, "dsm: supplier is not a member"
        if kind == KIND_VEHICLE:
            assert staticcall self.registry.is_valid_vehicle(supplier), (
                "dsm: vehicle not registered or expired"
            )
    # Energy per slot at the vehicle's power (floor: the limit never exceeds power x length).
    step: uint256 = power * d.slot_seconds // 3600
    index: uint256 = d.n_commits
    total: uint256 = 0
    for t: uint256 in range(d.n_slots, bound=MAX_SLOTS):
        g: uint256 = grid[t]
        b: uint256 = bought[t]
        if t < arrival or t >= departure:
            assert g == 0 and b == 0, "dsm: energy outside the window"
            continue
        assert g + b <= step, "dsm: energy above the power limit"
        if b > 0:
            assert supplier != empty(address), "dsm: bought energy without a supplier"
        q: uint256 = self.load[day_id][t] + g
        assert q <= self.load_cap[day_id][t], "dsm: slot load cap exceeded"
        self.load[day_id][t] = q
        if g + b > 0:
            self._energy[day_id][index][t] = g | (b << 128)
            total += g + b
    assert total > 0, "dsm: empty schedule"
    bound: uint256 = self._bound(day_id, d, grid, bought, share)
    assert escrow >= bound, "dsm: escrow below the worst-case bill"
    self.days[day_id].n_commits = index + 1
    self.days[day_id].escrow = d.escrow + escrow
    self.commit_slot[day_id][msg.sender] = index + 1
    self.commitments[day_id][index] = Commitment(
        vehicle=msg.sender,
        supplier=supplier,
        share=share,
        arrival=arrival,
        departure=departure,
        power=power,
        escrow=escrow,
        grid_bill=0,
        supply_bill=0,
    )
    log ScheduleCommitted(
        day_id=day_id,
        vehicle=msg.sender,
        index=index,
        supplier=supplier,
        share=share,
        arrival=arrival,
        departure=departure,
        power=power,
        escrow=escrow,
        grid=grid,
        bought=bought,
    )
    assert extcall self.token.transferFrom(msg.sender, self, escrow), "dsm: escrow failed"
    return index


@external
@nonreentrant
def settle(day_id: uint256):
    """
    @notice Anyone settles a day once it is over: lambda_t from the committed
            load, each vehicle's grid bill to the aggregator, its purchase to
            its supplier, the rest of its escrow back to it (all as credit).
    """
    assert day_id < self.day_count, "dsm: unknown day"
    d: Day = self.days[day_id]
    assert block.timestamp >= d.start + d.n_slots * d.slot_seconds, "dsm: the day is not over"
    assert not d.settled, "dsm: day already settled"
    self.days[day_id].settled = True
    # ENERGY_SCALE x lambda_t = ENERGY_SCALE phi_t + mu (q_t - Q_t) (eq. 6.3, 6.4), exact; >= 0
    # because phi_t ENERGY_SCALE >= mu Q_t (post_prices).
    lam: DynArray[uint256, MAX_SLOTS] = []
    phi: DynArray[uint256, MAX_SLOTS] = []
    for t: uint256 in range(d.n_slots, bound=MAX_SLOTS):
        p: uint256 = self.base_price[day_id][t]
        phi.append(p)
        lam.append(p * ENERGY_SCALE + d.mu * self.load[day_id][t] - d.mu * self.forecast[day_id][t])
    grid_total: uint256 = 0
    supply_total: uint256 = 0
    for i: uint256 in range(d.n_commits, bound=MAX_COMMITS):
        c: Commitment = self.commitments[day_id][i]
        grid_sum: uint256 = 0
        bought_sum: uint256 = 0
        bought_phi: uint256 = 0
        for t: uint256 in range(c.arrival, c.departure, bound=MAX_SLOTS):
            e: uint256 = self._energy[day_id][i][t]
            if e == 0:
                continue
            b: uint256 = e >> 128
            grid_sum += (e & _LOW) * lam[t]
            bought_sum += b
            bought_phi += b * phi[t]
        # Bill sum_t lambda_t x_i^t (eq. 6.5): one floor of the exact sum.
        grid_bill: uint256 = grid_sum // (ENERGY_SCALE * ENERGY_SCALE)
        supply_bill: uint256 = self._supply_sum(bought_sum, bought_phi, c.share, d.feed_in) // (
            ENERGY_SCALE * SHARE_SCALE
        )
        refund: uint256 = c.escrow - grid_bill - supply_bill
        self.commitments[day_id][i].grid_bill = grid_bill
        self.commitments[day_id][i].supply_bill = supply_bill
        if supply_bill > 0:
            self.credit[c.supplier] += supply_bill
        self.credit[c.vehicle] += refund
        grid_total += grid_bill
        supply_total += supply_bill
        log Billed(
            day_id=day_id,
            vehicle=c.vehicle,
            supplier=c.supplier,
            grid_bill=grid_bill,
            supply_bill=supply_bill,
            refund=refund,
        )
    self.credit[self.aggregator] += grid_total
    log DaySettled(
        day_id=day_id, commits=d.n_commits, grid_total=grid_total, supply_total=supply_total
    )


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @notice Pull the credit (bills received, refunds) owed to the caller.
    @return The amount withdrawn.
    """
    amount: uint256 = self.credit[msg.sender]
    assert amount > 0, "dsm: nothing to withdraw"
    self.credit[msg.sender] = 0
    log Withdrawn(account=msg.sender, amount=amount)
    assert extcall self.token.transfer(msg.sender, amount), "dsm: withdraw failed"
    return amount


@view
@external
def dynamic_price(day_id: uint256, t: uint256) -> uint256:
    """
    @notice lambda_t (price units per kWh, rounded down) at the committed load;
            final once the day has started.
    """
    assert day_id < self.day_count, "dsm: unknown day"
    d: Day = self.days[day_id]
    assert t < d.n_slots, "dsm: unknown slot"
    return (
        self.base_price[day_id][t] * ENERGY_SCALE
        + d.mu * self.load[day_id][t]
        - d.mu * self.forecast[day_id][t]
    ) // ENERGY_SCALE


@view
@external
def schedule(day_id: uint256, index: uint256, t: uint256) -> (uint256, uint256):
    """
    @notice A commitment's (grid, bought) energy in slot t.
    """
    e: uint256 = self._energy[day_id][index][t]
    return e & _LOW, e >> 128


@internal
@pure
def _supply_sum(bought_sum: uint256, bought_phi: uint256, share: uint256, feed_in: uint256) -> uint256:
    # ENERGY_SCALE SHARE_SCALE x sum_t b_t (gamma + share (phi_t - gamma))
    # = gamma (S - share) sum_t b_t + share sum_t b_t phi_t (S = SHARE_SCALE, b in energy units).
    return feed_in * (SHARE_SCALE - share) * bought_sum + share * bought_phi


@internal
@view
def _bound(
    day_id: uint256,
    d: Day,
    grid: DynArray[uint256, MAX_SLOTS],
    bought: DynArray[uint256, MAX_SLOTS],
    share: uint256,
) -> uint256:
    # Worst case: the slot's load at its cap, lambda_t <= phi_t + mu (cap_t - Q_t); the supplier's
    # price does not depend on the load. Each part rounds up, settle's bills round down.
    grid_sum: uint256 = 0
    bought_sum: uint256 = 0
    bought_phi: uint256 = 0
    for t: uint256 in range(d.n_slots, bound=MAX_SLOTS):
        p: uint256 = self.base_price[day_id][t]
        if grid[t] > 0:
            worst: uint256 = (
                p * ENERGY_SCALE + d.mu * self.load_cap[day_id][t] - d.mu * self.forecast[day_id][t]
            )
            grid_sum += grid[t] * worst
        bought_sum += bought[t]
        bought_phi += bought[t] * p
    scale: uint256 = ENERGY_SCALE * ENERGY_SCALE
    supply: uint256 = self._supply_sum(bought_sum, bought_phi, share, d.feed_in)
    return (grid_sum + scale - 1) // scale + (supply + ENERGY_SCALE * SHARE_SCALE - 1) // (
        ENERGY_SCALE * SHARE_SCALE
    )
