# pragma version ~=0.4.3
"""
@title Sealed-bid trading rounds at a roadside unit, settled at Theorem 1 prices
@notice A round (ETA section III.B) opens at an RSU with a bid window T_limit.
        Buyers post requests and sellers post replies with their public bounds
        and a commitment to their private value (v_i or c_j), optionally with
        the value encrypted to the RSU's key. After the window the values are
        revealed, by the bidder or by the RSU, and checked against the
        commitments; a bid not revealed in time is excluded and refunded.
        The RSU then settles a list of trades. The contract recomputes the
        Bayesian prices P*, R* and T (ETA Theorem 1) from the revealed values,
        refuses pairs with P* < R*, checks the demand bounds (12) and the
        seller's spare energy (13), pays sellers from the buyers' escrow and
        records the energy moved (E_q).
@dev Units: prices are token base units (1e-18 token) per kWh; energy is in
     ENERGY_SCALE units per kWh; the loss rate rho is in RHO_SCALE units;
     locations are micro-degrees. Payments round down, escrow rounds up.
"""
from ethereum.ercs import IERC20

interface IRegistry:
    def is_valid_vehicle(vehicle: address) -> bool: view
    def is_rsu(rsu: address) -> bool: view

ENERGY_SCALE: public(constant(uint256)) = 10**6
RHO_SCALE: public(constant(uint256)) = 10**6
# Willingness w_i in [0, 5] (ETA Table II), in W_SCALE units.
W_SCALE: public(constant(uint256)) = 10**6
MAX_BIDS: public(constant(uint256)) = 128
MAX_TRADES: public(constant(uint256)) = 1024
MAX_SEALED: constant(uint256) = 256

struct Round:
    rsu: address
    deadline: uint256
    reveal_deadline: uint256
    settle_deadline: uint256
    v_floor: uint256
    c_ceiling: uint256
    n_buyers: uint256
    n_sellers: uint256
    n_revealed: uint256
    settled: bool
    # Blocks that bound the round's events, so a client reads its logs without scanning history.
    opened_block: uint256
    settled_block: uint256

struct Request:
    buyer: address
    b_min: uint256
    b_max: uint256
    v_min: uint256
    v_max: uint256
    commitment: bytes32
    escrow: uint256
    value: uint256
    revealed: bool
    paid: uint256
    refunded: bool

struct Reply:
    seller: address
    c_min: uint256
    c_max: uint256
    s_t: uint256
    s_r: uint256
    rho: uint256
    commitment: bytes32
    value: uint256
    revealed: bool

struct Trade:
    buyer: uint256
    seller: uint256
    energy: uint256

event RoundOpened:
    round_id: indexed(uint256)
    rsu: indexed(address)
    deadline: uint256
    reveal_deadline: uint256
    settle_deadline: uint256
    v_floor: uint256
    c_ceiling: uint256
    l1: uint256
    l2: uint256
    max_distance_m: uint256

event RequestPosted:
    round_id: indexed(uint256)
    buyer: indexed(address)
    index: uint256
    b_min: uint256
    b_max: uint256
    v_min: uint256
    v_max: uint256
    w: uint256
    lat: int256
    lon: int256
    commitment: bytes32
    escrow: uint256
    sealed: Bytes[MAX_SEALED]

event ReplyPosted:
    round_id: indexed(uint256)
    seller: indexed(address)
    index: uint256
    c_min: uint256
    c_max: uint256
    s_t: uint256
    s_r: uint256
    rho: uint256
    lat: int256
    lon: int256
    commitment: bytes32
    sealed: Bytes[MAX_SEALED]

event Revealed:
    round_id: indexed(uint256)
    bidder: indexed(address)
    value: uint256
    by_rsu: bool

event TradeSettled:
    round_id: indexed(uint256)
    buyer: indexed(address)
    seller: indexed(address)
    energy: uint256
    buyer_price: uint256
    seller_price: uint256
    price: uint256
    payment: uint256

event RoundSettled:
    round_id: indexed(uint256)
    trades: uint256
    energy: uint256
    payment: uint256

event Refunded:
    round_id: indexed(uint256)
    buyer: indexed(address)
    amount: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

registry: public(IRegistry)
token: public(IERC20)
round_count: public(uint256)
rounds: public(HashMap[uint256, Round])
requests: public(HashMap[uint256, HashMap[uint256, Request]])
replies: public(HashMap[uint256, HashMap[uint256, Reply]])
# 1 + index of an address's bid in a round (0: no bid); one bid per address per round.
bid_slot: public(HashMap[uint256, HashMap[address, uint256]])
energy_bought: public(HashMap[address, uint256])
energy_sold: public(HashMap[address, uint256])
credit: public(HashMap[address, uint256])


@deploy
def __init__(registry: IRegistry, token: IERC20):
    """
    @param registry The identity registry.
    @param token The token that buyers escrow and sellers receive.
    """
    self.registry = registry
    self.token = token


@external
def open_round(
    t_limit: uint256,
    t_reveal: uint256,
    t_settle: uint256,
    v_floor: uint256,
    c_ceiling: uint256,
    l1: uint256,
    l2: uint256,
    max_distance_m: uint256,
) -> uint256:
    """
    @notice An RSU opens a trading round.
    @param t_limit Bid window T_limit in seconds; bids after T_stamp + T_limit are refused.
    @param t_reveal Reveal window in seconds after the bid window.
    @param t_settle Settlement window in seconds after the reveal window; past
           it, buyers take back their whole escrow.
    @param v_floor The auctioneer's v^min (buyers' v_i^min must not be below it).
    @param c_ceiling The auctioneer's c^max (sellers' c_j^max must not exceed it).
    @param l1 Loss coefficient l1 of P1 (price units per kWh), for the audit.
    @param l2 Loss coefficient l2 of P1 (price units), for the audit.
    @param max_distance_m Trading range in metres (0: unlimited), for the audit.
    @return The round's id.
    """
    assert staticcall self.registry.is_rsu(msg.sender), "market: caller is not an RSU"
    assert t_limit > 0, "market: t_limit must be positive"
    assert t_reveal > 0, "market: t_reveal must be positive"
    assert t_settle > 0, "market: t_settle must be positive"
    assert v_floor <= c_ceiling, "market: v_floor above c_ceiling"
    round_id: uint256 = self.round_count
    self.round_count = round_id + 1
    deadline: uint256 = block.timestamp + t_limit
    self.rounds[round_id] = Round(
        rsu=msg.sender,
        deadline=deadline,
        reveal_deadline=deadline + t_reveal,
        settle_deadline=deadline + t_reveal + t_settle,
        v_floor=v_floor,
        c_ceiling=c_ceiling,
        n_buyers=0,
        n_sellers=0,
        n_revealed=0,
        settled=False,
        opened_block=block.number,
        settled_block=0,
    )
    log RoundOpened(
        round_id=round_id,
        rsu=msg.sender,
        deadline=deadline,
        reveal_deadline=deadline + t_reveal,
        settle_deadline=deadline + t_reveal + t_settle,
        v_floor=v_floor,
        c_ceiling=c_ceiling,
        l1=l1,
        l2=l2,
        max_distance_m=max_distance_m,
    )
    return round_id


@external
@nonreentrant
def post_request(
    round_id: uint256,
    b_min: uint256,
    b_max: uint256,
    v_min: uint256,
    v_max: uint256,
    w: uint256,
    lat: int256,
    lon: int256,
    commitment: bytes32,
    sealed: Bytes[MAX_SEALED],
) -> uint256:
    """
    @notice A buyer posts its request and escrows v_max * b_max tokens (the
            most it can pay: T never exceeds v_max on a trading pair).
    @param b_min Demand lower bound b_i^min (energy units).
    @param b_max Demand upper bound b_i^max (energy units).
    @param v_min Public lower bound of the buyer's value v_i^min (price units).
    @param v_max Public upper bound of the buyer's value v_i^max (price units).
    @param w Willingness w_i in [0, 5] (W_SCALE units), for the audit of P1.
    @param commitment keccak256(abi_encode(market, round_id, buyer, v_i, salt)).
    @param sealed v_i and salt encrypted to the RSU's key (may be empty).
    @return The request's index in the round.
    """
    self._check_bidder(round_id, msg.sender, lat, lon, commitment)
    assert b_max > 0, "market: b_max must be positive"
    assert b_min <= b_max, "market: b_min above b_max"
    assert v_max > 0, "market: v_max must be positive"
    assert v_min <= v_max, "market: v_min above v_max"
    assert v_min >= self.rounds[round_id].v_floor, "market: v_min below the round's v_floor"
    assert w <= 5 * W_SCALE, "market: willingness w above 5"
    index: uint256 = self.rounds[round_id].n_buyers
    assert index < MAX_BIDS, "market: round full"
    escrow: uint256 = (v_max * b_max + ENERGY_SCALE - 1) // ENERGY_SCALE
    self.rounds[round_id].n_buyers = index + 1
    self.bid_slot[round_id][msg.sender] = index + 1
    self.requests[round_id][index] = Request(
        buyer=msg.sender,
        b_min=b_min,
        b_max=b_max,
        v_min=v_min,
        v_max=v_max,
        commitment=commitment,
        escrow=escrow,
        value=0,
        revealed=False,
        paid=0,
        refunded=False,
    )
    log RequestPosted(
        round_id=round_id,
        buyer=msg.sender,
        index=index,
        b_min=b_min,
        b_max=b_max,
        v_min=v_min,
        v_max=v_max,
        w=w,
        lat=lat,
        lon=lon,
        commitment=commitment,
        escrow=escrow,
        sealed=sealed,
    )
    assert extcall self.token.transferFrom(msg.sender, self, escrow), "market: escrow failed"
    return index


@external
def post_reply(
    round_id: uint256,
    c_min: uint256,
    c_max: uint256,
    s_t: uint256,
    s_r: uint256,
    rho: uint256,
    lat: int256,
    lon: int256,
    commitment: bytes32,
    sealed: Bytes[MAX_SEALED],
) -> uint256:
    """
    @notice A seller posts its reply.
    @param c_min Public lower bound of the seller's cost c_j^min (price units).
    @param c_max Public upper bound of the seller's cost c_j^max (price units).
    @param s_t Current energy s_j^t (energy units).
    @param s_r Reserve s_j^r the seller keeps for its own trip (energy units).
    @param rho Loss rate rho_j (RHO_SCALE units).
    @param commitment keccak256(abi_encode(market, round_id, seller, c_j, salt)).
    @param sealed c_j and salt encrypted to the RSU's key (may be empty).
    @return The reply's index in the round.
    """
    self._check_bidder(round_id, msg.sender, lat, lon, commitment)
    assert c_max > 0, "market: c_max must be positive"
    assert c_min <= c_max, "market: c_min above c_max"
    assert c_max <= self.rounds[round_id].c_ceiling, "market: c_max above the round's c_ceiling"
    assert s_t > s_r, "market: reserve s_r must be below energy s_t (no spare energy)"
    assert rho > 0 and rho <= RHO_SCALE, "market: loss rate rho must lie in (0, 1]"
    index: uint256 = self.rounds[round_id].n_sellers
    assert index < MAX_BIDS, "market: round full"
    self.rounds[round_id].n_sellers = index + 1
    self.bid_slot[round_id][msg.sender] = index + 1
    self.replies[round_id][index] = Reply(
        seller=msg.sender,
        c_min=c_min,
        c_max=c_max,
        s_t=s_t,
        s_r=s_r,
        rho=rho,
        commitment=commitment,
        value=0,
        revealed=False,
    )
    log ReplyPosted(
        round_id=round_id,
        seller=msg.sender,
        index=index,
        c_min=c_min,
        c_max=c_max,
        s_t=s_t,
        s_r=s_r,
        rho=rho,
        lat=lat,
        lon=lon,
        commitment=commitment,
        sealed=sealed,
    )
    return index


@external
def reveal(round_id: uint256, is_buyer: bool, index: uint256, bid_value: uint256, salt: bytes32):
    """
    @notice A bidder reveals its own private value after the bid window.
    @param is_buyer True for a request, False for a reply.
    @param index The bid's index in the round.
    @param bid_value v_i (request) or c_j (reply), in price units.
    @param salt The salt of the commitment.
    """
    self._reveal(round_id, is_buyer, index, bid_value, salt, msg.sender, False)


@external
def reveal_for(round_id: uint256, is_buyer: bool, index: uint256, bid_value: uint256, salt: bytes32):
    """
    @notice The round's RSU reveals a value it decrypted from the sealed bid,
            so that a vehicle need not stay online. The commitment binds it.
    """
    assert msg.sender == self.rounds[round_id].rsu, "market: caller is not the round's RSU"
    bidder: address = empty(address)
    if is_buyer:
        bidder = self.requests[round_id][index].buyer
    else:
        bidder = self.replies[round_id][index].seller
    self._reveal(round_id, is_buyer, index, bid_value, salt, bidder, True)


@external
@nonreentrant
def settle(round_id: uint256, trades: DynArray[Trade, MAX_TRADES]):
    """
    @notice The round's RSU settles the round with a list of trades
            (buyer index, seller index, energy). Bids left out trade nothing.
    @dev Reverts as a whole when any trade breaks a rule, so a round is
         settled entirely or not at all, and never twice.
    """
    assert msg.sender == self.rounds[round_id].rsu, "market: caller is not the round's RSU"
    self._check_settleable(round_id)
    self._settle(round_id, trades)


@external
@nonreentrant
def accept(round_id: uint256, seller_index: uint256, energy: uint256):
    """
    @notice The single buyer of a round (the seed app's case) accepts one
            seller's offer; the same checks as `settle` apply.
    """
    assert self.rounds[round_id].n_buyers == 1, "market: accept needs a single-buyer round"
    assert self.requests[round_id][0].buyer == msg.sender, "market: caller is not the round's buyer"
    assert block.timestamp > self.rounds[round_id].deadline, "market: bid window still open"
    self._check_settleable(round_id)
    self._settle(round_id, [Trade(buyer=0, seller=seller_index, energy=energy)])


@external
@nonreentrant
def claim_refund(round_id: uint256, index: uint256):
    """
    @notice A buyer takes back the part of its escrow it did not pay, once the
            round is settled, or all of it once the settlement window passed.
    """
    q: Request = self.requests[round_id][index]
    assert q.buyer == msg.sender, "market: caller is not the request's buyer"
    assert not q.refunded, "market: already refunded"
    r: Round = self.rounds[round_id]
    assert r.settled or block.timestamp > r.settle_deadline, "market: round not settled yet"
    amount: uint256 = q.escrow - q.paid
    self.requests[round_id][index].refunded = True
    log Refunded(round_id=round_id, buyer=msg.sender, amount=amount)
    if amount > 0:
        assert extcall self.token.transfer(msg.sender, amount), "market: refund failed"


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @notice A seller pulls the payments credited to it.
    @return The amount withdrawn.
    """
    amount: uint256 = self.credit[msg.sender]
    assert amount > 0, "market: nothing to withdraw"
    self.credit[msg.sender] = 0
    log Withdrawn(account=msg.sender, amount=amount)
    assert extcall self.token.transfer(msg.sender, amount), "market: withdraw failed"
    return amount


@pure
@external
def bayesian_prices(v: uint256, v_max: uint256, c: uint256, c_min: uint256) -> (
    uint256, uint256, uint256, bool
):
    """
    @notice ETA Theorem 1 in fixed point: buyer's bid P*, seller's ask R*,
            transaction price T and whether the pair trades (P* >= R*).
    """
    return self._prices(v, v_max, c, c_min)


@internal
@pure
def _prices(v: uint256, v_max: uint256, c: uint256, c_min: uint256) -> (
    uint256, uint256, uint256, bool
):
    # Theorem 1: P* = v_max/12 + c_min/4 + 2v/3 and R* = c_min/12 + v_max/4 + 2c/3,
    # kept over the common denominator 12 so that the trade test P* >= R* is exact.
    num_p: uint256 = v_max + 3 * c_min + 8 * v
    num_r: uint256 = c_min + 3 * v_max + 8 * c
    return num_p // 12, num_r // 12, (num_p + num_r) // 24, num_p >= num_r


@internal
@view
def _check_bidder(round_id: uint256, bidder: address, lat: int256, lon: int256, commitment: bytes32):
    assert round_id < self.round_count, "market: unknown round"
    assert block.timestamp <= self.rounds[round_id].deadline, "market: bid window closed"
    assert staticcall self.registry.is_valid_vehicle(bidder), "market: vehicle not registered or expired"
    assert self.bid_slot[round_id][bidder] == 0, "market: already bid in this round"
    assert commitment != empty(bytes32), "market: empty commitment"
    assert lat >= -90_000_000 and lat <= 90_000_000, "market: latitude out of range"
    assert lon >= -180_000_000 and lon <= 180_000_000, "market: longitude out of range"


@internal
def _reveal(
    round_id: uint256,
    is_buyer: bool,
    index: uint256,
    bid_value: uint256,
    salt: bytes32,
    bidder: address,
    by_rsu: bool,
):
    assert round_id < self.round_count, "market: unknown round"
    r: Round = self.rounds[round_id]
    assert block.timestamp > r.deadline, "market: bid window still open"
    assert block.timestamp <= r.reveal_deadline, "market: reveal window closed"
    expected: bytes32 = keccak256(abi_encode(self, round_id, bidder, bid_value, salt))
    if is_buyer:
        assert index < r.n_buyers, "market: unknown request"
        q: Request = self.requests[round_id][index]
        assert q.buyer == bidder, "market: caller is not the bidder"
        assert not q.revealed, "market: already revealed"
        assert q.commitment == expected, "market: reveal does not match the commitment"
        assert bid_value >= q.v_min and bid_value <= q.v_max, "market: value outside [v_min, v_max]"
        self.requests[round_id][index].value = bid_value
        self.requests[round_id][index].revealed = True
    else:
        assert index < r.n_sellers, "market: unknown reply"
        p: Reply = self.replies[round_id][index]
        assert p.seller == bidder, "market: caller is not the bidder"
        assert not p.revealed, "market: already revealed"
        assert p.commitment == expected, "market: reveal does not match the commitment"
        assert bid_value >= p.c_min and bid_value <= p.c_max, "market: value outside [c_min, c_max]"
        self.replies[round_id][index].value = bid_value
        self.replies[round_id][index].revealed = True
    self.rounds[round_id].n_revealed = r.n_revealed + 1
    log Revealed(round_id=round_id, bidder=bidder, value=bid_value, by_rsu=by_rsu)


@internal
@view
def _check_settleable(round_id: uint256):
    assert round_id < self.round_count, "market: unknown round"
    r: Round = self.rounds[round_id]
    assert not r.settled, "market: round already settled"
    assert block.timestamp <= r.settle_deadline, "market: settlement window closed"
    everyone: bool = r.n_revealed == r.n_buyers + r.n_sellers
    assert everyone or block.timestamp > r.reveal_deadline, "market: reveal window still open"


@internal
def _settle(round_id: uint256, trades: DynArray[Trade, MAX_TRADES]):
    self.rounds[round_id].settled = True
    self.rounds[round_id].settled_block = block.number
    n_buyers: uint256 = self.rounds[round_id].n_buyers
    n_sellers: uint256 = self.rounds[round_id].n_sellers
    bought: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    paid: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    sold: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    earned: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    total_energy: uint256 = 0
    total_payment: uint256 = 0
    # Each bid's revealed value, bound and address are read from storage once, on its first
    # trade, and kept in memory: storage reads dominate a long settlement otherwise.
    b_value: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    b_bound: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    b_addr: address[MAX_BIDS] = empty(address[MAX_BIDS])
    s_value: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    s_bound: uint256[MAX_BIDS] = empty(uint256[MAX_BIDS])
    s_addr: address[MAX_BIDS] = empty(address[MAX_BIDS])
    for t: Trade in trades:
        assert t.buyer < n_buyers, "market: unknown request"
        assert t.seller < n_sellers, "market: unknown reply"
        assert t.energy > 0, "market: zero energy"
        if b_addr[t.buyer] == empty(address):
            assert self.requests[round_id][t.buyer].revealed, "market: buyer's value not revealed"
            b_value[t.buyer] = self.requests[round_id][t.buyer].value
            b_bound[t.buyer] = self.requests[round_id][t.buyer].v_max
            b_addr[t.buyer] = self.requests[round_id][t.buyer].buyer
        if s_addr[t.seller] == empty(address):
            assert self.replies[round_id][t.seller].revealed, "market: seller's value not revealed"
            s_value[t.seller] = self.replies[round_id][t.seller].value
            s_bound[t.seller] = self.replies[round_id][t.seller].c_min
            s_addr[t.seller] = self.replies[round_id][t.seller].seller
        p_star: uint256 = 0
        r_star: uint256 = 0
        price: uint256 = 0
        trades_ok: bool = False
        p_star, r_star, price, trades_ok = self._prices(
            b_value[t.buyer], b_bound[t.buyer], s_value[t.seller], s_bound[t.seller]
        )
        assert trades_ok, "market: bid below ask (P* < R*)"
        payment: uint256 = price * t.energy // ENERGY_SCALE
        bought[t.buyer] += t.energy
        paid[t.buyer] += payment
        sold[t.seller] += t.energy
        earned[t.seller] += payment
        total_energy += t.energy
        total_payment += payment
        log TradeSettled(
            round_id=round_id,
            buyer=b_addr[t.buyer],
            seller=s_addr[t.seller],
            energy=t.energy,
            buyer_price=p_star,
            seller_price=r_star,
            price=price,
            payment=payment,
        )
    for i: uint256 in range(n_buyers, bound=MAX_BIDS):
        if bought[i] == 0:
            continue
        q: Request = self.requests[round_id][i]
        # (12): b_i^min <= sum_j b_ij <= b_i^max
        assert bought[i] >= q.b_min, "market: energy below b_min (12)"
        assert bought[i] <= q.b_max, "market: energy above b_max (12)"
        assert paid[i] <= q.escrow, "market: payment above escrow"
        self.requests[round_id][i].paid = paid[i]
        self.energy_bought[q.buyer] += bought[i]
    for j: uint256 in range(n_sellers, bound=MAX_BIDS):
        if sold[j] == 0:
            continue
        p: Reply = self.replies[round_id][j]
        # (13), sign corrected: sum_i (1 + rho_j) b_ij <= s_j^t - s_j^r
        assert sold[j] * (RHO_SCALE + p.rho) <= (p.s_t - p.s_r) * RHO_SCALE, (
            "market: energy above the seller's spare energy (13)"
        )
        self.energy_sold[p.seller] += sold[j]
        self.credit[p.seller] += earned[j]
    log RoundSettled(
        round_id=round_id, trades=len(trades), energy=total_energy, payment=total_payment
    )
