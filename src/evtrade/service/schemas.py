"""The API's schemas: request bodies (checked before any use case runs) and response models.

Every response model describes exactly the JSON the routes have always returned: the same keys,
in the same order (the pages' script, ``static/app.js``, reads them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Largest id or nonce: exact in a double, so every JSON client (JavaScript too) reads it as sent.
MAX_INT = 2**53 - 1
#: Unix timestamps of signed requests: up to the year 36812, far past any clock.
MAX_TIMESTAMP = 2**40

Address = Annotated[
    str, Path(pattern=r"^0x[0-9a-fA-F]{40}$", description="the vehicle's account (0x + 40 hex)")
]
RoundId = Annotated[int, Path(ge=0, le=MAX_INT, description="the round's id")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class Unlock(Strict):
    password: str = Field(
        min_length=1, max_length=200, description="the built-in wallet's password"
    )


class RegisterIn(Strict):
    """Either ``password`` (the built-in wallet creates and keeps the key, encrypted) or
    ``address`` + ``signature`` (the vehicle keeps its key and proves it by signing
    :func:`~evtrade.service.wallets.registration_message`, EIP-191)."""

    name: str = Field(
        min_length=1,
        max_length=60,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the vehicle's name, shown only to the vehicle itself",
    )
    plate: str = Field(
        min_length=1,
        max_length=20,
        pattern=r"^[A-Za-z0-9 -]+$",
        description="licence plate (letters, digits, spaces, dashes); the chain keeps its hash",
    )
    password: str | None = Field(
        None,
        min_length=6,
        max_length=200,
        description="password of a new built-in wallet (6 characters or more)",
    )
    address: str | None = Field(
        None, pattern=r"^0x[0-9a-fA-F]{40}$", description="the account of a vehicle's own key"
    )
    signature: str | None = Field(
        None,
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="EIP-191 signature of the registration message by the key of 'address'",
    )
    lat: float | None = Field(None, ge=-90, le=90, description="latitude, degrees (private)")
    lon: float | None = Field(None, ge=-180, le=180, description="longitude, degrees (private)")

    @model_validator(mode="after")
    def _one_kind_of_key(self) -> RegisterIn:
        own = self.address is not None or self.signature is not None
        if own and self.password is not None:
            raise ValueError("give either password (built-in wallet) or address + signature")
        if own and (self.address is None or self.signature is None):
            raise ValueError("address and signature go together")
        if not own and self.password is None:
            raise ValueError("password (built-in wallet) or address + signature is required")
        return self


class Signed(Strict):
    """A request signed (EIP-191) by a key, with a fresh timestamp (two minutes) and a nonce;
    each signed text is accepted once, and only canonical signatures (v 27/28, low s)."""

    signature: str | None = Field(
        None,
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="EIP-191 signature of the request's message (without a password)",
    )
    timestamp: int | None = Field(None, ge=0, le=MAX_TIMESTAMP, description="unix seconds")
    nonce: int | None = Field(None, ge=0, le=MAX_INT, description="any number, new per request")


class DetailsIn(Signed):
    """The vehicle's own details: with the wallet ``password``, or signed over
    :func:`~evtrade.service.wallets.details_message` by a vehicle that keeps its own key."""

    password: str | None = Field(
        None, min_length=1, max_length=200, description="the built-in wallet's password"
    )


class TopUpIn(DetailsIn):
    """The development faucet (off unless the setting ``faucet_tokens`` is above 0): authorised
    by the wallet ``password``, or signed over :func:`~evtrade.service.wallets.top_up_message`."""

    tokens: float = Field(gt=0, le=1e9, description="tokens to mint to the vehicle")


class MintIn(Strict):
    """A top-up by the authority: signed with the authority's key over
    :func:`~evtrade.service.wallets.mint_message`."""

    tokens: float = Field(gt=0, le=1e9, description="tokens to mint to the vehicle")
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="EIP-191 signature of the mint message by the authority's key",
    )
    timestamp: int = Field(ge=0, le=MAX_TIMESTAMP, description="unix seconds")
    nonce: int = Field(ge=0, le=MAX_INT, description="any number, new per request")


class RequestIn(Unlock):
    """A buyer's request: demand bounds (kWh), price range and sealed value (tokens/kWh), place."""

    round_id: int | None = Field(
        None, ge=0, le=MAX_INT, description="join this round; omitted: open a new one"
    )
    b_min: float = Field(ge=0, le=1e6, description="least energy to buy, b_i^min, kWh")
    b_max: float = Field(gt=0, le=1e6, description="most energy to buy, b_i^max, kWh")
    v: float = Field(
        ge=0, le=1e6, description="private unit value v_i, sealed until the window closes"
    )
    v_min: float = Field(
        ge=0, le=1e6, description="lowest unit value of the public range, v_i^min, tokens/kWh"
    )
    v_max: float = Field(
        gt=0,
        le=1e6,
        description="highest unit value of the public range, v_i^max, tokens/kWh (the escrow"
        " locks v_max * b_max)",
    )
    w: float = Field(
        3.0, ge=0, le=5, description="willingness w_i: weight of the buyer's log utility in P1"
    )
    lat: float = Field(ge=-90, le=90, description="latitude of the bid, degrees (public)")
    lon: float = Field(ge=-180, le=180, description="longitude of the bid, degrees (public)")

    @model_validator(mode="after")
    def _ranges(self) -> RequestIn:
        if self.b_min > self.b_max:
            raise ValueError(f"b_min ({self.b_min}) must be <= b_max ({self.b_max})")
        if not self.v_min <= self.v <= self.v_max:
            raise ValueError(
                f"v ({self.v}) must lie in [v_min, v_max] = [{self.v_min}, {self.v_max}]"
            )
        return self


class ReplyIn(Unlock):
    """A seller's reply: cost range and sealed cost (tokens/kWh), energy (kWh), loss rate, place."""

    c: float = Field(
        ge=0, le=1e6, description="private unit cost c_j, sealed until the window closes"
    )
    c_min: float = Field(
        ge=0, le=1e6, description="lowest unit cost of the public range, c_j^min, tokens/kWh"
    )
    c_max: float = Field(
        gt=0, le=1e6, description="highest unit cost of the public range, c_j^max, tokens/kWh"
    )
    s_t: float = Field(gt=0, le=1e6, description="energy the seller holds, s_j^t, kWh")
    s_r: float = Field(ge=0, le=1e6, description="energy the seller keeps for itself, s_j^r, kWh")
    rho: float = Field(
        gt=0, le=1, description="loss rate rho_j: each kWh delivered uses 1 + rho_j kWh, (13)"
    )
    lat: float = Field(ge=-90, le=90, description="latitude of the bid, degrees (public)")
    lon: float = Field(ge=-180, le=180, description="longitude of the bid, degrees (public)")

    @model_validator(mode="after")
    def _ranges(self) -> ReplyIn:
        if not self.c_min <= self.c <= self.c_max:
            raise ValueError(
                f"c ({self.c}) must lie in [c_min, c_max] = [{self.c_min}, {self.c_max}]"
            )
        if self.s_r >= self.s_t:
            raise ValueError(f"s_r ({self.s_r}) must be below s_t ({self.s_t}): no spare energy")
        return self


class AcceptIn(Unlock):
    """The buyer's choice of one offer (docs/service.md, "Accepting one offer")."""

    seller_index: int = Field(ge=0, le=127, description="the offer's reply index")
    kwh: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="energy to buy, kWh; omitted: the offer's take_kwh (the seller's spare"
        " energy up to b_max)",
    )


class RelayIn(Strict):
    raw: str = Field(
        pattern=r"^0x[0-9a-fA-F]+$", max_length=200_000, description="signed transaction"
    )


# -- responses ------------------------------------------------------------------------------------


class Out(BaseModel):
    """A response body."""

    model_config = ConfigDict(populate_by_name=True)


class Problem(Out):
    """A refused request."""

    detail: str | list[dict[str, Any]] = Field(
        description="what is wrong, naming the field or the rule; for a body or parameter that "
        "fails its schema, the list of the validation's errors (type, loc, msg, input)"
    )


class VehicleListed(Out):
    """A registered vehicle as the chain's registry shows it."""

    address: str = Field(description="the vehicle's account (checksummed)")
    plate_hash: str = Field(description="keccak-256 of the normalised plate, 0x-hex")


class VehiclePublic(VehicleListed):
    """What the chain makes public about a vehicle: no name, plate or location."""

    valid: bool = Field(description="certified by the authority and not revoked or expired")
    balance: float = Field(description="token balance, tokens")
    credit: float = Field(description="payments and refunds to withdraw (pull payments), tokens")
    energy_bought: float = Field(description="energy bought in settled trades, kWh")
    energy_sold: float = Field(description="energy sold in settled trades, kWh")


class VehiclePrivate(VehiclePublic):
    """The vehicle's own view (after it authenticated): the public one and its own details."""

    name: str = Field(description="the name the vehicle registered with")
    plate: str = Field(description="the normalised plate (upper case, no spaces)")
    lat: float | None = Field(description="registered latitude, degrees")
    lon: float | None = Field(description="registered longitude, degrees")
    wallet: bool = Field(description="true: the built-in wallet keeps the key; false: its own")
    faucet_left: float = Field(description="tokens the development faucet still gives it")


class CollectedOut(VehiclePublic):
    """The vehicle after a collect: its public view and what the payouts brought in."""

    refunded: float = Field(description="tokens the escrows of finished requests gave back")
    withdrawn: float = Field(description="tokens of credit (payments, deposits) withdrawn")


class HistoryOut(Out):
    """A transaction the service sent for the vehicle, as a wallet lists it."""

    kind: str = Field(
        description="register, top-up, request, reply, accept, trade, refund or withdraw"
    )
    what: str = Field(description="what it did, in words")
    tokens: float | None = Field(
        description="tokens it moved into (+) or out of (-) the wallet (null: none)"
    )
    round_id: int | None = Field(description="the round it belongs to (null: none)")
    tx: str | None = Field(description="the transaction's hash (null: pending, or not sent)")
    block: int | None = Field(description="the block it was mined in (null: not mined)")
    status: str = Field(description="pending, confirmed or failed")
    detail: str | None = Field(description="why it failed (null otherwise)")
    time: float = Field(
        description="when the service sent it, or its block's time for an event read back from "
        "the chain (0: a block older than the service reads back), unix seconds"
    )
    rsu: str | None = Field(
        default=None,
        description="consortium mode: the RSU of the round it belongs to, read from the chain "
        "(null: no round, or not read back)",
    )


class BidPosted(Out):
    """Where a bid landed."""

    round_id: int = Field(description="the round's id")
    index: int = Field(description="the bid's index among the round's requests or replies")


class BidOut(Out):
    """What every bid of a round shows."""

    index: int = Field(description="the bid's index among the round's requests or replies")
    address: str = Field(description="the bidder's account")


class RequestOut(BidOut):
    """A buyer's request (ETA Table II): bounds and place; the value stays sealed."""

    b_min: float = Field(description="least energy the buyer takes, kWh")
    b_max: float = Field(description="most energy the buyer takes, kWh")
    v_min: float = Field(description="lowest unit value of the range, tokens/kWh")
    v_max: float = Field(description="highest unit value of the range, tokens/kWh")
    lat: float = Field(description="latitude, degrees")
    lon: float = Field(description="longitude, degrees")
    escrow: float = Field(description="tokens locked by the request (v_max * b_max)")
    revealed: bool = Field(description="the sealed value was revealed on chain")
    status: str = Field(
        description="pending (bid window open), priced (an offer stands), accepted (the buyer's"
        " choice is on its way to the chain), completed (traded and settled) or failed"
    )
    reason: str = Field(description="why, in words a driver knows")
    kwh: float = Field(description="energy bought in this round, kWh")
    paid: float = Field(description="tokens paid out of the escrow in this round")
    refund: float | None = Field(
        description="tokens the escrow gives back once the round is over (escrow - paid, less the"
        " deposit if the value was not revealed); null while the round runs"
    )


class ReplyOut(BidOut):
    """A seller's reply (ETA Table II): cost range, energy, loss rate and place."""

    c_min: float = Field(description="lowest unit cost of the range, tokens/kWh")
    c_max: float = Field(description="highest unit cost of the range, tokens/kWh")
    s_t: float = Field(description="energy the seller holds, kWh")
    s_r: float = Field(description="energy the seller keeps, kWh")
    rho: float = Field(description="loss rate of the transfer per unit distance")
    lat: float = Field(description="latitude, degrees")
    lon: float = Field(description="longitude, degrees")
    revealed: bool = Field(description="the sealed cost was revealed on chain")
    status: str = Field(
        description="pending (bid window open), priced (an offer stands), accepted (the buyer's"
        " choice is on its way to the chain), completed (traded and settled) or failed"
    )
    reason: str = Field(description="why, in words a driver knows")
    kwh: float = Field(description="energy sold in this round, kWh")
    earned: float = Field(description="tokens earned in this round (credited: withdraw them)")


class OfferOut(Out):
    """A priced pair of revealed bids (Theorem 1's prices) with the P1 amount."""

    buyer: str = Field(description="the buyer's account")
    seller: str = Field(description="the seller's account")
    buyer_index: int = Field(description="the request's index")
    seller_index: int = Field(description="the reply's index (what the buyer accepts)")
    P: float = Field(description="buyer's price P*, tokens/kWh")
    R: float = Field(description="seller's price R*, tokens/kWh")
    T: float = Field(description="trading price T, tokens/kWh")
    kwh: float = Field(description="the P1 optimum's energy for the pair, kWh")
    distance_km: float | None = Field(description="distance between the two, km (null: unknown)")
    take_kwh: float | None = Field(
        description="energy the buyer gets by accepting this offer alone: the seller's spare"
        " energy after losses up to b_max, kWh (null: below b_min, it cannot be accepted alone)"
    )
    total: float | None = Field(
        description="tokens the buyer pays for take_kwh at T (null: cannot be accepted alone)"
    )


class TradeOut(Out):
    """A settled trade, as the chain recorded it."""

    buyer: str = Field(description="the buyer's account")
    seller: str = Field(description="the seller's account")
    kwh: float = Field(description="energy traded, kWh")
    price: float = Field(description="unit price, tokens/kWh")
    payment: float = Field(description="tokens paid to the seller")
    block: int = Field(description="block of the settlement")
    tx: str = Field(description="hash of the settling transaction")


class FailureOut(Out):
    """The RSU's clock could not advance a round: the error, since when, when it tries again."""

    message: str = Field(description="what failed, with the error")
    since: float = Field(description="first failure, unix seconds")
    attempts: int = Field(description="failed attempts so far")
    retry_at: float = Field(description="next attempt, unix seconds")


class RoundOut(Out):
    """A round as the RSU indexes it; the deadlines are unix seconds (null: not read yet)."""

    round_id: int = Field(description="the round's id")
    rsu: str | None = Field(description="the account of the RSU that opened it")
    phase: str = Field(
        description="bidding, closing, reveal, settling, settled, expired or unknown"
    )
    deadline: int | None = Field(description="bid deadline announced to drivers (wall clock)")
    chain_deadline: int | None = Field(description="the chain's bid deadline (with the grace)")
    reveal_deadline: int | None = Field(description="end of the reveal window")
    settle_deadline: int | None = Field(description="end of the settlement window")
    v_floor: float | None = Field(description="auctioneer's v^min, tokens/kWh")
    c_ceiling: float | None = Field(description="auctioneer's c^max, tokens/kWh")
    requests: list[RequestOut] = Field(description="buyers' requests")
    replies: list[ReplyOut] = Field(description="sellers' replies")
    offers: list[OfferOut] = Field(description="priced pairs, once the bids are revealed")
    trades: list[TradeOut] = Field(description="settled trades")
    error: FailureOut | None = Field(None, description="the clock's last failure on this round")


class PricePointOut(Out):
    """One settled trade in the price history."""

    round_id: int = Field(description="the round's id")
    time: int | None = Field(
        description="the settling block's time, unix seconds (null: too far back to read)"
    )
    block: int = Field(description="block of the settlement")
    price: float = Field(description="trading price T, tokens/kWh")
    kwh: float = Field(description="energy traded, kWh")
    buyer: str = Field(description="the buyer's account")
    seller: str = Field(description="the seller's account")


class RevealedBidOut(Out):
    """A bid's sealed value, shown once the bid window is over and the value revealed."""

    side: str = Field(description="request (a buyer's) or reply (a seller's)")
    index: int = Field(description="the bid's index among the round's requests or replies")
    address: str = Field(description="the bidder's account")
    value: float | None = Field(
        description="v_i of a request or c_j of a reply, tokens/kWh (null: not revealed)"
    )


class FindingOut(Out):
    """One thing the audit found wrong with a settlement."""

    kind: str = Field(description="price, volume, missing, range or unsettled")
    buyer: str | None = Field(description="the buyer's account (null: none)")
    seller: str | None = Field(description="the seller's account (null: none)")
    message: str = Field(description="what differs, with the numbers")


class AuditOut(Out):
    """The off-chain audit of a settled round (Theorem 1's prices and the P1 volumes)."""

    round_id: int = Field(description="the round's id")
    settled: bool = Field(description="the round is settled on chain")
    trades: int = Field(description="settled trades")
    revealed_buyers: int = Field(description="requests whose value was revealed")
    revealed_sellers: int = Field(description="replies whose cost was revealed")
    max_price_error: float = Field(
        description="largest gap between a price on chain and the library's, tokens/kWh"
    )
    max_volume_gap_kwh: float = Field(
        description="largest gap between a settled volume and the P1 optimum, kWh"
    )
    findings: list[FindingOut] = Field(description="what differs (empty: nothing)")
    ok: bool = Field(description="true when the audit found nothing wrong")


class RoundDetailOut(RoundOut):
    """One round with its revealed bids (after the bid window only) and its audit."""

    bids: list[RevealedBidOut] | None = Field(
        description="every bid with its revealed value; null while the bids are sealed "
        "(bid window open or closing)"
    )
    audit: AuditOut | None = Field(description="the audit of the settlement (null: not settled)")
    settled_by: str | None = Field(
        description="rsu (settled at the P1 optimum) or buyer (the single buyer accepted one "
        "offer at its own amount: the audit's volume findings are expected); null: no trade"
    )


class RelayedOut(Out):
    """A relayed transaction, mined."""

    tx: str = Field(description="the transaction's hash")
    status: int = Field(description="1: it succeeded; 0: it reverted")
    sender: str = Field(alias="from", description="its signer")


class DeploymentOut(Out):
    """Where the contracts live."""

    chain_id: int = Field(description="the chain's id")
    registry: str = Field(description="the vehicles' and RSUs' registry contract")
    token: str = Field(description="the token contract")
    market: str = Field(description="the market contract")
    block: int = Field(description="block of the deployment")


class PlaceOut(Out):
    """The RSU's account and where it stands."""

    address: str = Field(description="the RSU's account")
    lat: float = Field(description="latitude, degrees")
    lon: float = Field(description="longitude, degrees")


class TxOut(Out):
    """A transaction in words, decoded from its receipt with the contracts' ABIs."""

    hash: str = Field(description="the transaction's hash")
    block: int = Field(description="block number")
    timestamp: int = Field(description="the block's time, unix seconds")
    status: str = Field(description="confirmed, failed (reverted) or pending")
    sender: str | None = Field(description="the account that signed it (null: pending)")
    to: str | None = Field(description="the contract or account it was sent to (null: deploy)")
    what: str = Field(
        description="register, open round, request, reply, reveal, settle, accept, collect, "
        "withdraw, forfeit, mint, approve, transfer, gas money, deploy, failed, call or pending"
    )
    who: str | None = Field(description="the account it concerns (bidder, vehicle, receiver)")
    kwh: float | None = Field(description="energy it concerns, kWh (null: none)")
    tokens: float | None = Field(description="tokens it moved, locked or paid (null: none)")
    summary: str = Field(description="what it did, in words, with units")
    round_id: int | None = Field(description="the round it belongs to (null: none)")
    events: list[str] = Field(description="names of the events the contracts logged")


class BlockOut(Out):
    """A block as the dashboard lists it."""

    number: int = Field(description="block number")
    hash: str = Field(description="block hash")
    timestamp: int = Field(description="unix seconds")
    transactions: list[str] = Field(description="hashes of its transactions")
    decoded: list[TxOut] = Field(description="its transactions in words, in block order")


class ChainOut(Out):
    """The chain the RSU runs on, its contracts, its operators and the latest blocks."""

    kind: str = Field(description="embedded or rpc")
    chain_id: int = Field(description="the chain's id")
    deployment: DeploymentOut = Field(description="the contracts")
    rsu: PlaceOut = Field(description="the RSU")
    authority: str = Field(description="the authority's account (certifies and mints)")
    faucet_tokens: float = Field(description="the development faucet's cap per vehicle (0: off)")
    blocks: list[BlockOut] = Field(description="the latest blocks, newest first")
