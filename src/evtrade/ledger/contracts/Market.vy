# pragma version ~=0.4.3
"""
@title Sealed-bid trading rounds at a roadside unit, settled at Theorem 1 prices
@notice A round (ETA section III.B) opens at an RSU with a bid window T_limit.
        Buyers post requests and sellers post replies with their public bounds
        and a commitment to their private value (v_i or c_j), optionally with
        the value encrypted to the RSU's key. Every bid carries a deposit that
        is burned when the bid is not revealed. After the window the values
        are revealed, by the bidder or by the RSU (all sealed bids in one
        batch), and checked against the commitments; a bid not revealed in
        time is excluded and its deposit forfeited. The RSU then settles a list
        of trades. The contract recomputes the Bayesian prices P*, R* and T
        (ETA Theorem 1) from the revealed values, refuses pairs with P* < R*,
        checks the demand bounds (12) and the seller's spare energy (13)
        against the energy the reply reserved across the seller's open rounds,
        pays sellers from the buyers' escrow and records the energy moved (E_q).
@dev Units: prices are token base units (1e-18 token) per kWh; energy is in
     ENERGY_SCALE units per kWh; the loss rate rho is in RHO_SCALE units;
     locations are micro-degrees. Payments round down, escrow and deposits
     round up.
     Trust model (docs/ledger.md): bidders are not trusted (every bound is
     checked, money is escrowed, energy is reserved, withholding a reveal
     costs the deposit); the round's RSU is trusted only for the choice of
     feasible trades among the revealed bids (P1's optimum and the range are
     audited off chain), it cannot change a revealed value, cannot take a
     forfeited deposit and loses its open rounds when revoked.
"""
from ethereum.ercs import IERC20

interface IRegistry:
    def is_valid_vehicle(vehicle: address) -> bool: view
    def is_rsu(rsu: address) -> bool: view
    def rsu_term(rsu: address) -> uint256: view

interface IBurnable:
    def burn(amount: uint256): nonpayable

ENERGY_SCALE: public(constant(uint256)) = 10**6
RHO_SCALE: public(constant(uint256)) = 10**6
# Willingness w_i in [0, 5] (ETA Table II), in W_SCALE units.
W_SCALE: public(constant(uint256)) = 10**6
MAX_BIDS: public(constant(uint256)) = 128
MAX_TRADES: public(constant(uint256)) = 1024
MAX_SEALED: constant(uint256) = 256
# One batch reveal covers every bid of a full round.
MAX_REVEALS: public(constant(uint256)) = 2 * MAX_BIDS
# Replies one seller may have open (unsettled, unexpired) at once: a per-identity limit, and the
# bound of the loop that releases a seller's lapsed reservations.
MAX_OPEN_REPLIES: public(constant(uint256)) = 8
# Why a batch reveal skipped an entry (RevealSkipped.reason).
SKIP_UNKNOWN_BID: public(constant(uint256)) = 1
SKIP_ALREADY_REVEALED: public(constant(uint256)) = 3
SKIP_COMMITMENT: public(constant(uint256)) = 4
SKIP_OUT_OF_RANGE: public(constant(uint256)) = 5

struct Round:
    rsu: address
    # The RSU's term (Registry.rsu_term) when it opened the round: the round is void once the
    # RSU is removed, even if it is re-admitted later.
    rsu_term: uint256
    deadline: uint256
    reveal_deadline: uint256
    settle_deadline: uint256
    v_floor: uint256
    c_ceiling: uint256
    # The least deposit of a bid in this round (token base units).
    deposit: uint256
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
    # What the buyer locked: max(ceil(v_max * b_max), deposit); payments come out of it.
    escrow: uint256
    # The part of the escrow burned when the value is not revealed.
    deposit: uint256
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
    # The spare energy this reply may sell from, with losses (13): the seller's declared
    # s_t - s_r less what its other open replies reserved.
    spare: uint256
    rho: uint256
    commitment: bytes32
    deposit: uint256
    value: uint256
    revealed: bool
    # The deposit went back (revealed, or the round was void) or was burned.
    deposit_done: bool

struct Reservation:
    round_id: uint256
    spare: uint256

struct RevealIn:
    is_buyer: bool
    index: uint256
    bid_value: uint256
    salt: bytes32

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
    deposit: uint256

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
    deposit: uint256
    sealed: Bytes[MAX_SEALED]

event ReplyPosted:
    round_id: indexed(uint256)
    seller: indexed(address)
    index: uint256
    c_min: uint256
    c_max: uint256
    s_t: uint256
    s_r: uint256
    spare: uint256
    rho: uint256
    lat: int256
    lon: int256
    commitment: bytes32
    deposit: uint256
    sealed: Bytes[MAX_SEALED]

event Revealed:
    round_id: indexed(uint256)
    bidder: indexed(address)
    value: uint256
    by_rsu: bool

event RevealSkipped:
    round_id: indexed(uint256)
    bidder: indexed(address)
    is_buyer: bool
    index: uint256
    reason: uint256

event DepositReturned:
    round_id: indexed(uint256)
    bidder: indexed(address)
    amount: uint256

event DepositForfeited:
    round_id: indexed(uint256)
    bidder: indexed(address)
    amount: uint256

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
# Each seller's open replies and the spare energy each reserved (released lazily, when the round
# is settled, past its settlement window or void).
reservations: HashMap[address, DynArray[Reservation, MAX_OPEN_REPLIES]]
# Forfeited deposits burned so far.
burned: public(uint256)


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
    deposit: uint256,
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
    @param deposit The least deposit of every bid (token base units); the
           contract raises it to the bid's bounded gain from withholding.
    @return The round's id.
    """
    term: uint256 = staticcall self.registry.rsu_term(msg.sender)
    assert term > 0, "market: caller is not an RSU"
    assert t_limit > 0, "market: t_limit must be positive"
    assert t_reveal > 0, "market: t_reveal must be positive"
    assert t_settle > 0, "market: t_settle must be positive"
    assert v_floor <= c_ceiling, "market: v_floor above c_ceiling"
    round_id: uint256 = self.round_count
    self.round_count = round_id + 1
    deadline: uint256 = block.timestamp + t_limit
    self.rounds[round_id] = Round(
        rsu=msg.sender,
        rsu_term=term,
        deadline=deadline,
        reveal_deadline=deadline + t_reveal,
        settle_deadline=deadline + t_reveal + t_settle,
        v_floor=v_floor,
        c_ceiling=c_ceiling,
        deposit=deposit,
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
        deposit=deposit,
    )
    return round_id


@view
@external
def request_lock(round_id: uint256, b_max: uint256, v_min: uint256, v_max: uint256) -> (
    uint256, uint256
):
    """
    @notice What `post_request` takes from a buyer: (escrow, deposit). The
            escrow is max(ceil(v_max * b_max), deposit) and holds the deposit.
    """
    deposit: uint256 = max(self.rounds[round_id].deposit, self._option_bound(v_max - v_min, b_max))
    return max((v_max * b_max + ENERGY_SCALE - 1) // ENERGY_SCALE, deposit), deposit


@view
@external
def reply_deposit(
    round_id: uint256, seller: address, c_min: uint256, c_max: uint256, s_t: uint256, s_r: uint256
) -> (uint256, uint256):
    """
    @notice What `post_reply` would reserve and take now: (spare, deposit);
            spare is 0 when the seller's open replies reserve all it declares.
    """
    reserved: uint256 = 0
    kept: DynArray[Reservation, MAX_OPEN_REPLIES] = []
    reserved, kept = self._live_reservations(seller)
    if s_t <= s_r or s_t - s_r <= reserved:
        return 0, 0
    spare: uint256 = s_t - s_r - reserved
    return spare, max(self.rounds[round_id].deposit, self._option_bound(c_max - c_min, spare))


@view
@external
def reserved_energy(seller: address) -> uint256:
    """
    @notice The spare energy (energy units, losses included) the seller's
            open replies reserve: a new reply can reserve only what its
            declaration s_t - s_r leaves above this.
    """
    reserved: uint256 = 0
    kept: DynArray[Reservation, MAX_OPEN_REPLIES] = []
    reserved, kept = self._live_reservations(seller)
    return reserved


@view
@external
def round_void(round_id: uint256) -> bool:
    """
    @notice True when the round's RSU was removed before it settled the round:
            nothing more happens in it and every bid recovers its money.
    """
    assert round_id < self.round_count, "market: unknown round"
    return self._void(self.rounds[round_id])


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
    @notice A buyer posts its request and escrows max(v_max * b_max, deposit)
            tokens: v_max * b_max is the most it can pay (T never exceeds
            v_max on a trading pair); the deposit is burned if it does not
            reveal its value.
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
    deposit: uint256 = max(self.rounds[round_id].deposit, self._option_bound(v_max - v_min, b_max))
    escrow: uint256 = max((v_max * b_max + ENERGY_SCALE - 1) // ENERGY_SCALE, deposit)
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
        deposit=deposit,
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
        deposit=deposit,
        sealed=sealed,
    )
    assert extcall self.token.transferFrom(msg.sender, self, escrow), "market: escrow failed"
    return index


@external
@nonreentrant
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
    @notice A seller posts its reply, reserves spare energy for this round and
            deposits tokens that are burned if it does not reveal its cost.
    @dev The reply is a declaration of the seller's energy now: s_t - s_r is
         what it can give in all its open rounds together. The reply reserves
         what that leaves after the reservations of the seller's other open
         replies; (13) is checked against the reservation at settlement, so no
         sequence of replies and settlements sells more than a declaration
         allowed. A seller that wants to keep energy for another round raises
         s_r. Reservations are released when their round settles, passes its
         settlement window or is void.
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
    reserved: uint256 = 0
    kept: DynArray[Reservation, MAX_OPEN_REPLIES] = []
    reserved, kept = self._live_reservations(msg.sender)
    assert s_t - s_r > reserved, "market: spare energy already reserved by the seller's open rounds"
    assert len(kept) < MAX_OPEN_REPLIES, "market: too many open replies for this seller"
    spare: uint256 = s_t - s_r - reserved
    kept.append(Reservation(round_id=round_id, spare=spare))
    self.reservations[msg.sender] = kept
    deposit: uint256 = max(self.rounds[round_id].deposit, self._option_bound(c_max - c_min, spare))
    self.rounds[round_id].n_sellers = index + 1
    self.bid_slot[round_id][msg.sender] = index + 1
    self.replies[round_id][index] = Reply(
        seller=msg.sender,
        c_min=c_min,
        c_max=c_max,
        s_t=s_t,
        s_r=s_r,
        spare=spare,
        rho=rho,
        commitment=commitment,
        deposit=deposit,
        value=0,
        revealed=False,
        deposit_done=False,
    )
    log ReplyPosted(
        round_id=round_id,
        seller=msg.sender,
        index=index,
        c_min=c_min,
        c_max=c_max,
        s_t=s_t,
        s_r=s_r,
        spare=spare,
        rho=rho,
        lat=lat,
        lon=lon,
        commitment=commitment,
        deposit=deposit,
        sealed=sealed,
    )
    if deposit > 0:
        assert extcall self.token.transferFrom(msg.sender, self, deposit), "market: deposit failed"
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
    r: Round = self._check_reveal_window(round_id)
    bidder: address = empty(address)
    if is_buyer:
        assert index < r.n_buyers, "market: unknown request"
        bidder = self.requests[round_id][index].buyer
    else:
        assert index < r.n_sellers, "market: unknown reply"
        bidder = self.replies[round_id][index].seller
    assert bidder == msg.sender, "market: caller is not the bidder"
    self._strict_reveal(round_id, is_buyer, index, bid_value, salt, False)


@external
def reveal_for(round_id: uint256, is_buyer: bool, index: uint256, bid_value: uint256, salt: bytes32):
    """
    @notice The round's RSU reveals a value it decrypted from the sealed bid,
            so that a vehicle need not stay online. The commitment binds it.
    """
    r: Round = self._check_reveal_window(round_id)
    assert msg.sender == r.rsu, "market: caller is not the round's RSU"
    if is_buyer:
        assert index < r.n_buyers, "market: unknown request"
    else:
        assert index < r.n_sellers, "market: unknown reply"
    self._strict_reveal(round_id, is_buyer, index, bid_value, salt, True)


@external
def reveal_for_many(round_id: uint256, reveals: DynArray[RevealIn, MAX_REVEALS]) -> uint256:
    """
    @notice The round's RSU reveals every sealed bid it opened in one
            transaction, so the number of bids never decides who is revealed
            and no bidder sees another's revealed value before its own sealed
            value is revealed (the reveal-order rule of docs/ledger.md).
    @dev An entry that cannot be revealed (unknown index, already revealed,
         a value that does not match the commitment or lies outside the
         declared range) is skipped with a RevealSkipped event; it never
         blocks the others.
    @return The number of bids revealed.
    """
    r: Round = self._check_reveal_window(round_id)
    assert msg.sender == r.rsu, "market: caller is not the round's RSU"
    count: uint256 = 0
    for x: RevealIn in reveals:
        bidder: address = empty(address)
        reason: uint256 = SKIP_UNKNOWN_BID
        if x.is_buyer and x.index < r.n_buyers:
            bidder = self.requests[round_id][x.index].buyer
        elif not x.is_buyer and x.index < r.n_sellers:
            bidder = self.replies[round_id][x.index].seller
        if bidder != empty(address):
            reason = self._try_reveal(round_id, x.is_buyer, x.index, x.bid_value, x.salt, True)
        if reason == 0:
            count += 1
        else:
            log RevealSkipped(
                round_id=round_id, bidder=bidder, is_buyer=x.is_buyer, index=x.index, reason=reason
            )
    return count


@external
@nonreentrant
def settle(round_id: uint256, trades: DynArray[Trade, MAX_TRADES]):
    """
    @notice The round's RSU settles the round with a list of trades
            (buyer index, seller index, energy). Bids left out trade nothing.
    @dev Reverts as a whole when any trade breaks a rule, so a round is
         settled entirely or not at all, and never twice.
    """
    assert round_id < self.round_count, "market: unknown round"
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
    assert round_id < self.round_count, "market: unknown round"
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
            round is settled, once the settlement window passed, or at once
            when the round is void (its RSU was removed). A buyer that did not
            reveal its value loses its deposit, which is burned, unless the
            round is void.
    """
    assert round_id < self.round_count, "market: unknown round"
    q: Request = self.requests[round_id][index]
    assert q.buyer == msg.sender, "market: caller is not the request's buyer"
    assert not q.refunded, "market: already refunded"
    r: Round = self.rounds[round_id]
    void: bool = self._void(r)
    assert r.settled or block.timestamp > r.settle_deadline or void, "market: round not settled yet"
    amount: uint256 = q.escrow - q.paid
    forfeit: uint256 = 0
    if not q.revealed and not void:
        forfeit = q.deposit
        amount -= forfeit
    self.requests[round_id][index].refunded = True
    log Refunded(round_id=round_id, buyer=msg.sender, amount=amount)
    if forfeit > 0:
        self._burn(round_id, msg.sender, forfeit)
    if amount > 0:
        assert extcall self.token.transfer(msg.sender, amount), "market: refund failed"


@external
@nonreentrant
def claim_deposit(round_id: uint256, index: uint256):
    """
    @notice Close an unrevealed reply's deposit: back to the seller's credit
            when the round is void, burned once the reveal window closed
            otherwise. Anyone may call it (a revealed reply's deposit went
            back to its seller's credit at the reveal).
    """
    assert round_id < self.round_count, "market: unknown round"
    r: Round = self.rounds[round_id]
    assert index < r.n_sellers, "market: unknown reply"
    p: Reply = self.replies[round_id][index]
    assert not p.deposit_done, "market: deposit already returned or forfeited"
    self.replies[round_id][index].deposit_done = True
    if self._void(r):
        self.credit[p.seller] += p.deposit
        log DepositReturned(round_id=round_id, bidder=p.seller, amount=p.deposit)
    else:
        assert block.timestamp > r.reveal_deadline, "market: reveal window still open"
        self._burn(round_id, p.seller, p.deposit)


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @notice A seller pulls the payments and returned deposits credited to it.
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
@pure
def _option_bound(value_range: uint256, energy: uint256) -> uint256:
    # What a bidder can gain by withholding its reveal after seeing others' values: the loss it
    # avoids on the trades it would make. On a trading pair (P* >= R*, Theorem 1) v >= c >= c_min
    # and v_max >= c_min, so T - v <= P* - v <= (v_max - v)/12 for a buyer and
    # c - T <= c - R* <= (c - c_min)/12 for a seller, per kWh: at most range/12 per kWh, plus
    # the fixed point's rounding (under one base unit per kWh and per payment).
    return (value_range * energy + 12 * ENERGY_SCALE - 1) // (12 * ENERGY_SCALE) + (
        energy + ENERGY_SCALE - 1
    ) // ENERGY_SCALE + 1


@internal
@view
def _void(r: Round) -> bool:
    # A round whose RSU left the registry (or left and came back) before settling it.
    return not r.settled and staticcall self.registry.rsu_term(r.rsu) != r.rsu_term


@internal
@view
def _live_reservations(seller: address) -> (uint256, DynArray[Reservation, MAX_OPEN_REPLIES]):
    # The seller's reservations whose round can still settle, and their total.
    total: uint256 = 0
    kept: DynArray[Reservation, MAX_OPEN_REPLIES] = []
    for res: Reservation in self.reservations[seller]:
        r: Round = self.rounds[res.round_id]
        if r.settled or block.timestamp > r.settle_deadline or self._void(r):
            continue
        total += res.spare
        kept.append(res)
    return total, kept


@internal
def _burn(round_id: uint256, bidder: address, amount: uint256):
    # Forfeited deposits are destroyed, not paid to anyone: the RSU reveals sealed bids and
    # would profit from withholding them otherwise, and no bidder gains from another's default.
    self.burned += amount
    log DepositForfeited(round_id=round_id, bidder=bidder, amount=amount)
    if amount > 0:
        extcall IBurnable(self.token.address).burn(amount)


@internal
@view
def _check_bidder(round_id: uint256, bidder: address, lat: int256, lon: int256, commitment: bytes32):
    assert round_id < self.round_count, "market: unknown round"
    assert block.timestamp <= self.rounds[round_id].deadline, "market: bid window closed"
    assert not self._void(self.rounds[round_id]), "market: the round's RSU was removed"
    assert staticcall self.registry.is_valid_vehicle(bidder), "market: vehicle not registered or expired"
    assert self.bid_slot[round_id][bidder] == 0, "market: already bid in this round"
    assert commitment != empty(bytes32), "market: empty commitment"
    assert lat >= -90_000_000 and lat <= 90_000_000, "market: latitude out of range"
    assert lon >= -180_000_000 and lon <= 180_000_000, "market: longitude out of range"


@internal
@view
def _check_reveal_window(round_id: uint256) -> Round:
    assert round_id < self.round_count, "market: unknown round"
    r: Round = self.rounds[round_id]
    assert block.timestamp > r.deadline, "market: bid window still open"
    assert block.timestamp <= r.reveal_deadline, "market: reveal window closed"
    assert not self._void(r), "market: the round's RSU was removed"
    return r


@internal
def _strict_reveal(
    round_id: uint256, is_buyer: bool, index: uint256, bid_value: uint256, salt: bytes32, by_rsu: bool
):
    reason: uint256 = self._try_reveal(round_id, is_buyer, index, bid_value, salt, by_rsu)
    assert reason != SKIP_ALREADY_REVEALED, "market: already revealed"
    assert reason != SKIP_COMMITMENT, "market: reveal does not match the commitment"
    if is_buyer:
        assert reason != SKIP_OUT_OF_RANGE, "market: value outside [v_min, v_max]"
    else:
        assert reason != SKIP_OUT_OF_RANGE, "market: value outside [c_min, c_max]"


@internal
def _try_reveal(
    round_id: uint256, is_buyer: bool, index: uint256, bid_value: uint256, salt: bytes32, by_rsu: bool
) -> uint256:
    # Reveal one existing bid (the caller checked the window and the index); 0 on success, else
    # the reason it was skipped. Writes nothing unless it succeeds. Reads only the fields it
    # checks: a whole bid is a dozen cold storage slots.
    bidder: address = empty(address)
    if is_buyer:
        bidder = self.requests[round_id][index].buyer
        if self.requests[round_id][index].revealed:
            return SKIP_ALREADY_REVEALED
        expected: bytes32 = keccak256(abi_encode(self, round_id, bidder, bid_value, salt))
        if self.requests[round_id][index].commitment != expected:
            return SKIP_COMMITMENT
        if bid_value < self.requests[round_id][index].v_min:
            return SKIP_OUT_OF_RANGE
        if bid_value > self.requests[round_id][index].v_max:
            return SKIP_OUT_OF_RANGE
        self.requests[round_id][index].value = bid_value
        self.requests[round_id][index].revealed = True
    else:
        bidder = self.replies[round_id][index].seller
        if self.replies[round_id][index].revealed:
            return SKIP_ALREADY_REVEALED
        expected: bytes32 = keccak256(abi_encode(self, round_id, bidder, bid_value, salt))
        if self.replies[round_id][index].commitment != expected:
            return SKIP_COMMITMENT
        if bid_value < self.replies[round_id][index].c_min:
            return SKIP_OUT_OF_RANGE
        if bid_value > self.replies[round_id][index].c_max:
            return SKIP_OUT_OF_RANGE
        self.replies[round_id][index].value = bid_value
        self.replies[round_id][index].revealed = True
        # Revealed: the deposit is no longer at stake and goes back to the seller's credit.
        deposit: uint256 = self.replies[round_id][index].deposit
        self.replies[round_id][index].deposit_done = True
        self.credit[bidder] += deposit
        log DepositReturned(round_id=round_id, bidder=bidder, amount=deposit)
    self.rounds[round_id].n_revealed += 1
    log Revealed(round_id=round_id, bidder=bidder, value=bid_value, by_rsu=by_rsu)
    return 0


@internal
@view
def _check_settleable(round_id: uint256):
    assert round_id < self.round_count, "market: unknown round"
    r: Round = self.rounds[round_id]
    assert not r.settled, "market: round already settled"
    assert block.timestamp <= r.settle_deadline, "market: settlement window closed"
    assert not self._void(r), "market: the round's RSU was removed"
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
        # Only the fields checked are read: a whole request is a dozen cold storage slots.
        # (12): b_i^min <= sum_j b_ij <= b_i^max
        assert bought[i] >= self.requests[round_id][i].b_min, "market: energy below b_min (12)"
        assert bought[i] <= self.requests[round_id][i].b_max, "market: energy above b_max (12)"
        assert paid[i] <= self.requests[round_id][i].escrow, "market: payment above escrow"
        self.requests[round_id][i].paid = paid[i]
        self.energy_bought[b_addr[i]] += bought[i]
    for j: uint256 in range(n_sellers, bound=MAX_BIDS):
        if sold[j] == 0:
            continue
        # (13), sign corrected: sum_i (1 + rho_j) b_ij <= s_j^t - s_j^r, where the seller's
        # spare s_j^t - s_j^r is what this reply reserved across the seller's open rounds.
        rho: uint256 = self.replies[round_id][j].rho
        assert sold[j] * (RHO_SCALE + rho) <= self.replies[round_id][j].spare * RHO_SCALE, (
            "market: energy above the seller's spare energy (13)"
        )
        self.energy_sold[s_addr[j]] += sold[j]
        self.credit[s_addr[j]] += earned[j]
    log RoundSettled(
        round_id=round_id, trades=len(trades), energy=total_energy, payment=total_payment
    )
