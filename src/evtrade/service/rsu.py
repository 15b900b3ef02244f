"""The RSU's use cases: what the routes call. No HTTP here, no HTML.

An :class:`Rsu` owns the chain client, the operators' keys, the SQLite index and a lock that
serialises chain writes. Vehicles that chose the built-in wallet have their key encrypted in the
index; every state-changing call unlocks it with the vehicle's password and signs the transaction
with the vehicle's own key (the contract checks ``msg.sender``). Vehicles that keep their own key
send transactions they signed themselves through :meth:`Rsu.relay`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes

from evtrade.errors import ContractRejectedError, EvtradeError, LedgerError
from evtrade.ledger.chain import Chain, open_chain, revert_reason
from evtrade.ledger.client import Ledger, plate_hash
from evtrade.ledger.operators import load_operators, open_ledger
from evtrade.model import Buyer, Seller, safejson
from evtrade.service import faults
from evtrade.service.security import (
    BidRate,
    KdfGate,
    SignatureError,
    Throttle,
    ThrottledError,
    client_ip,
    received_at,
    recover_canonical,
)
from evtrade.service.settings import Settings
from evtrade.service.store import Store, VehicleRow
from evtrade.settlement import units
from evtrade.settlement.rounds import Operators, settle_optimal
from evtrade.settlement.views import RoundParams, RoundView, has_revealed_pair, round_market

log = logging.getLogger("evtrade.service")
#: Longest pause between two attempts at a round whose reveal, settlement or view keeps failing.
RETRY_CAP_SECONDS = 60.0
#: A bid arriving this long after the announced deadline is still admitted: the deadline is a
#: whole second, and a busy event loop stamps an arrival late (the grace on chain absorbs it).
ADMISSION_SLACK_SECONDS = 1.0
#: Phases after which the RSU's clock has nothing left to do in a round.
_FINAL_PHASES = ("settled", "expired")

#: Key derivation of the built-in wallet (eth-account keystore v3, scrypt).
KDF_ITERATIONS = 2**14
#: How far a signed request's timestamp may be from the service's clock, seconds.
SIGNATURE_WINDOW = 120
_TOKEN = 10**18


def registration_message(address: str, plate: str) -> str:
    """What a vehicle that keeps its own key signs (EIP-191) to register."""
    return f"evtrade: register vehicle {to_checksum_address(address)} with plate {plate}"


def top_up_message(address: str, tokens: float, timestamp: int, nonce: int) -> str:
    """What a vehicle that keeps its own key signs (EIP-191) to ask the faucet for a top-up.

    ``tokens`` is written as Python's ``repr`` of the float the service reads (``5`` -> ``5.0``).
    """
    return (
        f"evtrade: top up {to_checksum_address(address)} by {float(tokens)!r} tokens"
        f" at {timestamp} nonce {nonce}"
    )


def mint_message(address: str, tokens: float, timestamp: int, nonce: int) -> str:
    """What the authority signs (EIP-191) to mint ``tokens`` to a vehicle."""
    return (
        f"evtrade: authority mints {float(tokens)!r} tokens to {to_checksum_address(address)}"
        f" at {timestamp} nonce {nonce}"
    )


def details_message(address: str, timestamp: int, nonce: int) -> str:
    """What a vehicle that keeps its own key signs (EIP-191) to read its own details."""
    return f"evtrade: show details of {to_checksum_address(address)} at {timestamp} nonce {nonce}"


@dataclass(frozen=True, slots=True)
class RoundFailure:
    """A round the RSU's clock could not advance: the error, since when, when it tries again."""

    message: str
    since: float
    attempts: int
    retry_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "since": self.since,
            "attempts": self.attempts,
            "retry_at": self.retry_at,
        }


def _arrival() -> float:
    """When the HTTP request being served reached the service (now, outside a request)."""
    at = received_at.get()
    return time.time() if at is None else at


class ServiceError(EvtradeError):
    """A request the service refuses; ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TooManyError(ServiceError):
    """429: password guessing or a vehicle's bids throttled; retry after ``retry_after`` s."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(429, message)
        self.retry_after = retry_after


class Rsu:
    """The roadside unit: auctioneer, relay and index of one market contract."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.chain: Chain = open_chain(
            data_dir=settings.data_dir / "chain", chain_url=settings.chain_url
        )
        self.ledger: Ledger = open_ledger(self.chain, settings.data_dir)
        self.operators: Operators[LocalAccount] = load_operators(settings.data_dir)
        self.store = Store(settings.data_dir / "service.sqlite")
        # py-evm raised the recursion limit on import; C code recursing on a request's data must
        # raise RecursionError, not overflow the C stack (docs/security.md).
        safejson.restore_recursion_limit()
        self.throttle = Throttle()
        self.kdf = KdfGate()
        self.bid_rate = BidRate(settings.bids_per_minute)
        self.version = 0
        # The RSU's clock (tick), per round: failures with their back-off, rounds whose index
        # entry is behind the chain (bids posted since), the bid deadlines announced to drivers.
        self._failures: dict[int, RoundFailure] = {}
        self._retrying: dict[int, RoundFailure] = {}
        self._dirty: set[int] = set()
        self._next_refresh: dict[int, float] = {}
        self._announced: dict[int, int] = {}
        self._rsu_pubkey: bytes | None = None
        self._registering: set[str] = set()  # plates and addresses being registered
        faults.install(self.chain)  # test hook: a no-op unless EVTRADE_TEST_FAULT is set
        self.rebuild_index()

    # -- index ----------------------------------------------------------------------------------

    def rebuild_index(self) -> None:
        """Rebuild the round index from chain events (start-up, after a crash).

        A round that cannot be read or cleared keeps its last indexed view (or a stub) with its
        error recorded; the other rounds and the start-up go on, and the clock retries it.
        The bid deadlines announced to drivers are kept from the previous index.
        """
        with self.lock:
            old = {int(v["round_id"]): v for v in self.store.rounds()}
            for rid, v in old.items():
                if v.get("chain_deadline") is not None and v.get("deadline") is not None:
                    self._announced[rid] = int(v["deadline"])
            views: dict[int, dict[str, Any]] = {}
            for rid in range(self.ledger.round_count()):
                try:
                    views[rid] = self._round_json(self.ledger.round_view(rid))
                except Exception as exc:  # one bad round must not stop the others, nor start-up
                    self._round_failed(rid, exc, "indexing")
                    views[rid] = self._failed_view(rid, old.get(rid))
            self.store.replace_rounds(views)
            self.version += 1

    def _refresh(self, round_id: int) -> dict[str, Any]:
        """Re-read one round from the chain into the index."""
        self._dirty.discard(round_id)  # bids landing from now on mark it again
        start = time.monotonic()
        view = self._round_json(self.ledger.round_view(round_id))
        self.store.put_round(round_id, view)
        # A round of many bids costs a noticeable time to read back: refresh it because of new
        # bids at most every poll interval and at most a third of the time.
        cost = time.monotonic() - start
        self._next_refresh[round_id] = time.monotonic() + max(self.settings.poll_seconds, 2 * cost)
        self.version += 1
        return view

    def _failed_view(self, round_id: int, last: dict[str, Any] | None) -> dict[str, Any]:
        """The index entry of a round that could not be read: its last view, or a stub."""
        view = (
            dict(last)
            if last is not None
            else {
                "round_id": round_id,
                "rsu": None,
                "phase": "unknown",
                "deadline": None,
                "chain_deadline": None,
                "reveal_deadline": None,
                "settle_deadline": None,
                "v_floor": None,
                "c_ceiling": None,
                "requests": [],
                "replies": [],
                "offers": [],
                "trades": [],
            }
        )
        view["error"] = self._failure_json(round_id)
        return view

    # -- failures of one round ------------------------------------------------------------------

    def _round_failed(self, round_id: int, exc: BaseException, doing: str) -> None:
        """Record a failure of one round: logged (with its traceback the first time and whenever
        the error changes), shown in the round's JSON, retried with exponential back-off."""
        message = f"{doing}: {type(exc).__name__}: {exc}"
        now = time.time()
        last = self._failures.get(round_id) or self._retrying.get(round_id)
        attempts = 1 if last is None else last.attempts + 1
        delay = min(RETRY_CAP_SECONDS, self.settings.poll_seconds * 2.0 ** min(attempts, 16))
        failure = RoundFailure(
            message=message,
            since=now if last is None else last.since,
            attempts=attempts,
            retry_at=now + delay,
        )
        self._failures[round_id] = failure
        if last is None or last.message != message:
            log.error(
                "round %d: %s (attempt %d, retrying in %.1f s)",
                round_id,
                message,
                attempts,
                delay,
                exc_info=exc,
            )
        else:
            log.warning(
                "round %d: still failing, attempt %d (retrying in %.1f s): %s",
                round_id,
                attempts,
                delay,
                message,
            )

    def _failure_json(self, round_id: int) -> dict[str, Any] | None:
        failure = self._failures.get(round_id)
        return None if failure is None else failure.to_json()

    def round_failures(self) -> dict[int, dict[str, Any]]:
        """The rounds whose last attempt failed, with the error, since when and the next try."""
        return {rid: f.to_json() for rid, f in list(self._failures.items())}

    def _announced_deadline(self, view: RoundView) -> int:
        """The bid deadline drivers were told (wall clock): the on-chain one less the grace.

        Rounds this service opened keep the deadline it announced; a round it did not open (or
        whose announcement a crash lost) is taken to have been opened with today's grace.
        """
        announced = self._announced.get(view.round_id)
        if announced is not None:
            return announced
        if view.rsu.lower() == self.operators.rsu.address.lower():
            return view.deadline - self.settings.bid_grace
        return view.deadline

    def _phase(
        self, settled: bool, deadlines: tuple[float, float, float, float], wall: float, now: float
    ) -> str:
        """A round's phase: bids are admitted until the announced deadline (wall clock); the chain
        keeps its window open ``bid_grace`` longer for the bids admitted in time ("closing")."""
        announced, deadline, reveal_deadline, settle_deadline = deadlines
        if settled:
            return "settled"
        if now <= deadline:
            return "bidding" if wall <= announced else "closing"
        if now <= reveal_deadline:
            return "reveal"
        if now <= settle_deadline:
            return "settling"
        return "expired"

    def _round_json(self, view: RoundView) -> dict[str, Any]:
        announced = self._announced_deadline(view)
        deadlines = (announced, view.deadline, view.reveal_deadline, view.settle_deadline)
        phase = self._phase(view.settled, deadlines, time.time(), self.next_block_time())
        if phase == "settled":
            self._failures.pop(view.round_id, None)
        P, E = units.PRICE_SCALE, units.ENERGY_SCALE
        offers: list[dict[str, Any]] = []
        if phase in ("reveal", "settling", "settled"):
            try:
                offers = self._offers(view)
            except Exception as exc:  # the round is shown without offers, with the error
                self._round_failed(view.round_id, exc, "pricing the offers")
        traded_buyers = {t.buyer for t in view.trades}
        traded_sellers = {t.seller for t in view.trades}
        offered_buyers = {o["buyer"] for o in offers}
        offered_sellers = {o["seller"] for o in offers}

        def status(
            address: str, revealed: bool, traded: set[str], offered: set[str]
        ) -> tuple[str, str]:
            if phase == "bidding":
                return "pending", "bid window open"
            if phase == "closing":
                return "pending", "bid window closed; bids admitted in time still reach the chain"
            if not revealed:
                return "failed", "value not revealed in time"
            if phase == "settled":
                return (
                    ("completed", "traded")
                    if address in traded
                    else ("failed", "no trade in the settlement")
                )
            if address in offered:
                return "accepted", "priced: bid covers ask"
            return "failed", "no counterpart with P* >= R* in range"

        requests = []
        for q in view.requests:
            st, why = status(q.buyer, q.value is not None, traded_buyers, offered_buyers)
            requests.append(
                {
                    "index": q.index,
                    "address": q.buyer,
                    "b_min": q.b_min / E,
                    "b_max": q.b_max / E,
                    "v_min": q.v_min / P,
                    "v_max": q.v_max / P,
                    "lat": q.lat / units.DEGREE_SCALE,
                    "lon": q.lon / units.DEGREE_SCALE,
                    "escrow": q.escrow / _TOKEN,
                    "revealed": q.value is not None,
                    "status": st,
                    "reason": why,
                }
            )
        replies = []
        for p in view.replies:
            st, why = status(p.seller, p.value is not None, traded_sellers, offered_sellers)
            replies.append(
                {
                    "index": p.index,
                    "address": p.seller,
                    "c_min": p.c_min / P,
                    "c_max": p.c_max / P,
                    "s_t": p.s_t / E,
                    "s_r": p.s_r / E,
                    "rho": p.rho / units.RHO_SCALE,
                    "lat": p.lat / units.DEGREE_SCALE,
                    "lon": p.lon / units.DEGREE_SCALE,
                    "revealed": p.value is not None,
                    "status": st,
                    "reason": why,
                }
            )
        trades = [
            {
                "buyer": t.buyer,
                "seller": t.seller,
                "kwh": t.energy / E,
                "price": t.price / P,
                "payment": t.payment / _TOKEN,
                "block": t.block,
                "tx": t.tx_hash,
            }
            for t in view.trades
        ]
        return {
            "round_id": view.round_id,
            "rsu": view.rsu,
            "phase": phase,
            "deadline": announced,
            "chain_deadline": view.deadline,
            "reveal_deadline": view.reveal_deadline,
            "settle_deadline": view.settle_deadline,
            "v_floor": view.v_floor / P,
            "c_ceiling": view.c_ceiling / P,
            "requests": requests,
            "replies": replies,
            "offers": offers,
            "trades": trades,
            "error": self._failure_json(view.round_id),
        }

    def _offers(self, view: RoundView) -> list[dict[str, Any]]:
        """Priced pairs of the revealed bids, with the P1 amounts the RSU would settle."""
        from evtrade.market.mechanisms.eta import clear

        if not has_revealed_pair(view):
            return []
        table = clear(round_market(view), "eta").pair_table  # priced and in range
        q_of = {q.buyer: q for q in view.requests}
        p_of = {p.seller: p for p in view.replies}
        offers = []
        for i, j, kwh, d in zip(table.i, table.j, table.volume, table.distance_km, strict=True):
            q, p = q_of[table.buyer_ids[i]], p_of[table.seller_ids[j]]
            assert q.value is not None and p.value is not None
            # The contract's exact prices; a float tie the contract would refuse is no offer.
            P, R, T, ok = units.fixed_prices(q.value, q.v_max, p.value, p.c_min)
            if not ok:
                continue
            offers.append(
                {
                    "buyer": q.buyer,
                    "seller": p.seller,
                    "buyer_index": q.index,
                    "seller_index": p.index,
                    "P": P / units.PRICE_SCALE,
                    "R": R / units.PRICE_SCALE,
                    "T": T / units.PRICE_SCALE,
                    "kwh": float(kwh),
                    "distance_km": round(float(d), 3) if math.isfinite(d) else None,
                }
            )
        return offers

    # -- vehicles -------------------------------------------------------------------------------

    def register_vehicle(
        self,
        name: str,
        plate: str,
        password: str | None,
        lat: float | None,
        lon: float | None,
        *,
        own_address: str | None = None,
        signature: str | None = None,
    ) -> str:
        """The authority certifies a new vehicle.

        With a password the key is created in the built-in wallet; with ``own_address`` the
        vehicle keeps its key and ``signature`` (EIP-191 over :func:`registration_message`)
        proves it holds it. Plate and address are unique: checked again under the lock, so of
        concurrent registrations of one plate or one address exactly one succeeds (409 for the
        others).
        """
        normal = "".join(plate.split()).upper()
        if self.store.plate_taken(normal):  # early, before any key work
            raise ServiceError(409, f"field 'plate': {normal} is already registered")
        keystore: dict[str, Any] | None = None
        if own_address is not None and signature is not None:
            address = to_checksum_address(own_address)
            try:
                signer: str | None = recover_canonical(
                    registration_message(address, normal), signature
                )
            except SignatureError:
                signer = None
            if signer != address:
                raise ServiceError(401, "field 'signature': not signed by the key of 'address'")
        elif password is not None:
            account = Account.create()
            address = account.address
            with self.kdf:
                keystore = dict(
                    Account.encrypt(account.key, password, kdf="scrypt", iterations=KDF_ITERATIONS)
                )
        else:
            raise ServiceError(422, "give a password (built-in wallet) or address + signature")
        with self.lock:  # check and reserve; the transactions wait for their block unlocked
            if self.store.plate_taken(normal) or normal in self._registering:
                raise ServiceError(409, f"field 'plate': {normal} is already registered")
            if (
                self.store.address_taken(address)
                or address in self._registering
                or self.ledger.is_valid_vehicle(address)
            ):
                raise ServiceError(409, f"field 'address': {address} is already registered")
            self._registering.update((normal, address))
        try:
            expiry = self.chain.timestamp() + 365 * 24 * 3600
            self.ledger.register_vehicle(self.operators.authority, address, normal, expiry)
            with self.lock:
                if not self.store.add_vehicle(
                    VehicleRow(address, name, normal, keystore, lat, lon)
                ):
                    raise ServiceError(409, "field 'plate': already registered")  # unreachable
                self.version += 1
        finally:
            with self.lock:
                self._registering.difference_update((normal, address))
        return str(address)

    def vehicle(self, address: str) -> VehicleRow:
        row = self.store.vehicle(address)
        if row is None:
            raise ServiceError(404, f"unknown vehicle {address}")
        return row

    def unlock(self, address: str, password: str) -> LocalAccount:
        """The vehicle's key from the built-in wallet; a wrong password is refused.

        Guessing is throttled per (vehicle, client), per client and per vehicle
        (:class:`~evtrade.service.security.Throttle`): a throttled check is refused (429) before
        any scrypt work, and at most :func:`~evtrade.service.security.kdf_slots` derivations run
        at once.
        """
        row = self.vehicle(address)
        if row.keystore is None:
            raise ServiceError(
                403, f"vehicle {address} keeps its own key: send signed transactions to /api/tx"
            )
        client = client_ip.get()
        try:
            self.throttle.check(row.address, client)
            with self.kdf:
                self.throttle.check(row.address, client)  # a queued burst stops here
                try:
                    key = Account.decrypt(row.keystore, password)
                except ValueError:
                    self.throttle.failed(row.address, client)
                    raise ServiceError(
                        401, "field 'password': wrong password for this vehicle"
                    ) from None
        except ThrottledError as exc:
            raise TooManyError(exc.retry_after, f"field 'password': {exc.what}") from None
        self.throttle.succeeded(row.address, client)
        account: LocalAccount = Account.from_key(key)
        return account

    def vehicle_info(self, address: str) -> dict[str, Any]:
        """What the chain already makes public about a vehicle: no name, plate or location."""
        row = self.vehicle(address)
        with self.lock:
            bought, sold = self.ledger.energy(row.address)
            return {
                "address": row.address,
                "plate_hash": "0x" + plate_hash(row.plate).hex(),
                "valid": self.ledger.is_valid_vehicle(row.address),
                "balance": self.ledger.balance(row.address) / _TOKEN,
                "credit": self.ledger.credit(row.address) / _TOKEN,
                "energy_bought": bought / units.ENERGY_SCALE,
                "energy_sold": sold / units.ENERGY_SCALE,
            }

    def private_info(self, address: str) -> dict[str, Any]:
        """The vehicle's own view (after it authenticated): the public one, plus its name, plate,
        location, kind of key and what the development faucet has left for it."""
        row = self.vehicle(address)
        info = self.vehicle_info(address)
        cap = self.settings.faucet_tokens
        info.update(
            name=row.name,
            plate=row.plate,
            lat=row.lat,
            lon=row.lon,
            wallet=row.keystore is not None,
            faucet_left=max(0.0, cap - self.store.faucet_given(row.address)),
        )
        return info

    def details(
        self,
        address: str,
        *,
        password: str | None = None,
        signature: str | None = None,
        timestamp: int | None = None,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """A vehicle reads its own details, with its wallet password or a signed request."""
        row = self.vehicle(address)
        self._authenticate(
            row,
            password,
            lambda t, n: details_message(row.address, t, n),
            signature,
            timestamp,
            nonce,
        )
        return self.private_info(address)

    def _authenticate(
        self,
        row: VehicleRow,
        password: str | None,
        message: Callable[[int, int], str],
        signature: str | None,
        timestamp: int | None,
        nonce: int | None,
    ) -> None:
        """The vehicle's wallet password (:meth:`unlock`) or else its signed, fresh, unused
        request (:meth:`check_signed`) over ``message(timestamp, nonce)``."""
        if password is not None:
            self.unlock(row.address, password)
        else:
            self.check_signed(row.address, message, signature, timestamp, nonce)

    def top_up(
        self,
        address: str,
        tokens: float,
        *,
        password: str | None = None,
        signature: str | None = None,
        timestamp: int | None = None,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """The development faucet: a vehicle mints itself a top-up, within its cap.

        Off unless the setting ``faucet_tokens`` is above 0: minting is the authority's act
        (:meth:`mint`). Asked for with the wallet password or a signed request.
        """
        cap = self.settings.faucet_tokens
        if cap <= 0:
            raise ServiceError(
                403,
                "minting is the authority's act: the development faucet is off "
                "(setting faucet_tokens); ask the authority for a top-up",
            )
        row = self.vehicle(address)
        if tokens > cap - self.store.faucet_given(row.address):  # early, before any key work
            raise ServiceError(403, self._faucet_left(row.address, cap))
        self._authenticate(
            row,
            password,
            lambda t, n: top_up_message(row.address, tokens, t, n),
            signature,
            timestamp,
            nonce,
        )
        with self.lock:  # count it against the cap first; the mint waits for its block unlocked
            if tokens > cap - self.store.faucet_given(row.address):
                raise ServiceError(403, self._faucet_left(row.address, cap))
            self.store.faucet_add(row.address, tokens)
        try:
            self.ledger.mint(self.operators.authority, row.address, tokens)
        except BaseException:
            with self.lock:
                self.store.faucet_add(row.address, -tokens)
            raise
        self.version += 1
        return self.private_info(address)

    def _faucet_left(self, address: str, cap: float) -> str:
        left = max(0.0, cap - self.store.faucet_given(address))
        return (
            f"field 'tokens': the development faucet gives each vehicle {cap:g} tokens in all;"
            f" {left:g} left for this one"
        )

    def mint(
        self, address: str, tokens: float, *, signature: str, timestamp: int, nonce: int
    ) -> dict[str, Any]:
        """The authority mints a top-up: a request signed with the authority's key, used once."""
        row = self.vehicle(address)
        authority = self.operators.authority.address
        self.check_signed(
            authority,
            lambda t, n: mint_message(row.address, tokens, t, n),
            signature,
            timestamp,
            nonce,
            who="the authority's key",
        )
        # The mint waits for its block without the service lock, as the faucet's does.
        self.ledger.mint(self.operators.authority, row.address, tokens)
        with self.lock:
            self.version += 1
        return self.vehicle_info(address)

    def check_signed(
        self,
        signer: str,
        message: Callable[[int, int], str],
        signature: str | None,
        timestamp: int | None,
        nonce: int | None,
        *,
        who: str = "this vehicle's key",
    ) -> None:
        """A signed request (EIP-191): by ``signer``, fresh (2 minutes), never used before.

        The replay key is the digest of the signed text (address, amount, timestamp, nonce), not
        the signature's bytes, and only canonical signatures (``v`` 27/28, low ``s``) are
        accepted: re-encoding a signature does not make a new request.
        """
        if signature is None or timestamp is None or nonce is None:
            raise ServiceError(
                401, "unsigned request: give password, or signature, timestamp and nonce"
            )
        now = time.time()
        if abs(now - timestamp) > SIGNATURE_WINDOW:
            raise ServiceError(401, f"field 'timestamp': more than {SIGNATURE_WINDOW} s from now")
        text = message(timestamp, nonce)
        try:
            recovered: str | None = recover_canonical(text, signature)
        except SignatureError as exc:
            raise ServiceError(401, f"field 'signature': {exc}") from None
        if recovered != to_checksum_address(signer):
            raise ServiceError(401, f"field 'signature': not signed by {who}")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if not self.store.use_request(digest, timestamp, int(now) - 2 * SIGNATURE_WINDOW):
            raise ServiceError(409, "field 'signature': this signed request was already used")

    def collect(self, address: str, password: str) -> dict[str, Any]:
        """Claim every refund due to the vehicle and withdraw its credit (pull payments)."""
        account = self.unlock(address, password)
        with self.lock:
            for view in self.store.rounds():
                if view["phase"] not in ("settled", "expired"):
                    continue
                for q in view["requests"]:
                    if q["address"].lower() == account.address.lower():
                        with contextlib.suppress(ContractRejectedError):  # already refunded
                            self.ledger.claim_refund(account, view["round_id"], q["index"])
            if self.ledger.credit(account.address) > 0:
                self.ledger.withdraw(account)
            self.version += 1
        return self.vehicle_info(address)

    # -- the trading flow -----------------------------------------------------------------------

    def open_round(self) -> int:
        """Open a round: drivers are told the bid window ``t_limit`` (wall clock); the chain's
        window is ``bid_grace`` longer, so that a bid admitted before the announced deadline
        still reaches the chain after waiting its turn (issue 11, item 9)."""
        s = self.settings
        params = RoundParams(
            v_floor=s.v_floor,
            c_ceiling=s.c_ceiling,
            t_limit=s.t_limit + s.bid_grace,
            t_reveal=s.t_reveal,
            t_settle=s.t_settle,
            l1=s.l1,
            l2=s.l2,
            max_distance_km=s.max_distance_km,
        )
        # The chain stamps the opening block no earlier than this second, so the chain's deadline
        # is at least ``bid_grace`` after the announced one.
        opened = int(time.time())
        round_id = self.ledger.open_round(self.operators.rsu, params)
        with self.lock:
            self._announced[round_id] = opened + s.t_limit
            self._refresh(round_id)
        return round_id

    def _admit_bid(self, round_id: int, received: float) -> None:
        """Refuse a bid that reached the service after the round's announced deadline.

        Checked against the time the request arrived, before any key work or queueing, so every
        bid sent inside the window as the driver's clock sees it is admitted; the chain's window
        is ``bid_grace`` longer to take it in (:meth:`open_round`).
        """
        view = self.store.round(round_id)
        if view is None:  # not in the index: the chain decides (404 if there is no such round)
            self._check_round(round_id)
            return
        deadline = view.get("deadline")
        late = deadline is not None and received > deadline + ADMISSION_SLACK_SECONDS
        if view.get("phase") in _FINAL_PHASES or late:
            raise ServiceError(
                409,
                f"field 'round_id': bid window closed: round {round_id} took bids until"
                f" {deadline} (unix time); this bid arrived at {received:.0f}",
            )

    def _sealing_key(self) -> bytes:
        """The RSU's public key the bids are sealed to (read from the registry once)."""
        if self._rsu_pubkey is None:
            self._rsu_pubkey = self.ledger.rsu_pubkey(self.operators.rsu.address)
        return self._rsu_pubkey

    def _bid_posted(self, round_id: int) -> None:
        """The round's index entry is behind the chain: the clock re-reads it (coalesced)."""
        self._dirty.add(round_id)

    def post_request(
        self,
        address: str,
        password: str,
        round_id: int | None,
        buyer: Buyer,
        *,
        received: float | None = None,
    ) -> dict[str, Any]:
        """A buyer's request; with no round given, the RSU opens one (the seed app's flow).

        ``received`` is when the request reached the service (default: the HTTP request's
        arrival, stamped by the middleware before any queueing; now outside one). No lock is held
        while the transactions wait for their block, so bids of many vehicles share blocks; the
        round's index entry catches up on the clock's next tick.
        """
        received = _arrival() if received is None else received
        if round_id is not None:
            self._admit_bid(round_id, received)
        account = self.unlock(address, password)
        self._take_bid(account.address)
        if buyer.v_min < self.settings.v_floor:
            raise ServiceError(
                422,
                f"field 'v_min' ({buyer.v_min}) is below the RSU's floor ({self.settings.v_floor})",
            )
        if not self.ledger.is_valid_vehicle(account.address):
            raise ServiceError(403, f"vehicle {account.address}: certificate revoked or expired")
        need = units.escrow(
            units.to_fixed("v_max", buyer.v_max, units.PRICE_SCALE),
            units.to_fixed("b_max", buyer.b_max, units.ENERGY_SCALE),
        )
        if self.ledger.balance(account.address) < need:
            raise ServiceError(
                402,
                f"balance below the escrow v_max * b_max = {need / _TOKEN:g} tokens; top up",
            )
        if round_id is None:
            round_id = self.open_round()
        bid = self.ledger.post_request(account, round_id, buyer, rsu_pubkey=self._sealing_key())
        self._bid_posted(round_id)
        return {"round_id": round_id, "index": bid.index}

    def post_reply(
        self,
        address: str,
        password: str,
        round_id: int,
        seller: Seller,
        *,
        received: float | None = None,
    ) -> dict[str, Any]:
        """A seller's reply to an open round (admitted as :meth:`post_request`)."""
        received = _arrival() if received is None else received
        self._admit_bid(round_id, received)
        account = self.unlock(address, password)
        self._take_bid(account.address)
        bid = self.ledger.post_reply(account, round_id, seller, rsu_pubkey=self._sealing_key())
        self._bid_posted(round_id)
        return {"round_id": round_id, "index": bid.index}

    def accept(
        self, address: str, password: str, round_id: int, seller_index: int, kwh: float
    ) -> dict[str, Any]:
        """The buyer chooses one offer; the trade completes and the others fail."""
        account = self.unlock(address, password)
        self._take_bid(account.address)
        with self.lock:
            self._check_round(round_id)
            self._reveal_if_due(round_id)
            self.ledger.accept(account, round_id, seller_index, kwh)
            return self._refresh(round_id)

    def _take_bid(self, vehicle: str) -> None:
        """Count one bid against the vehicle's allowance (``bids_per_minute``), else 429."""
        try:
            self.bid_rate.take(vehicle)
        except ThrottledError as exc:
            raise TooManyError(exc.retry_after, exc.what) from None

    def next_block_time(self) -> float:
        """The earliest timestamp a transaction sent now can carry: the chain's deadlines use it
        (:meth:`~evtrade.ledger.chain.Chain.next_timestamp`)."""
        return float(self.chain.next_timestamp())

    def _check_round(self, round_id: int) -> None:
        if not 0 <= round_id < self.ledger.round_count():
            raise ServiceError(404, f"field 'round_id': no round {round_id}")

    def _reveal_if_due(self, round_id: int) -> None:
        view = self.ledger.round_view(round_id)
        if view.settled or self.next_block_time() <= view.deadline:
            return
        if any(q.value is None for q in view.requests) or any(
            p.value is None for p in view.replies
        ):
            self.ledger.reveal_sealed(self.operators.rsu, round_id)

    def tick(self) -> None:
        """The RSU's clock: reveal sealed bids after the window, settle at the P1 optimum after
        the reveal window (unless the buyer already chose an offer), and keep the index current.

        Each round is advanced on its own, under the lock for that round only: a round whose
        reveal, settlement or view fails is logged with its traceback, recorded (its JSON and the
        dashboard show the error and since when) and retried with exponential back-off, while
        the other rounds go on.
        """
        views = self.store.rounds()
        self._index_new_rounds({int(v["round_id"]) for v in views})
        for view in views:
            rid = int(view["round_id"])
            if view.get("phase") in _FINAL_PHASES and rid not in self._dirty:
                continue
            failure = self._failures.get(rid)
            if failure is not None and time.time() < failure.retry_at:
                continue
            try:
                with self.lock:
                    self._advance(rid, view, failed=failure is not None)
            except Exception as exc:  # isolate the round; the next tick goes on with the others
                self._round_failed(rid, exc, f"advancing from phase {view.get('phase')!r}")
                with self.lock, contextlib.suppress(Exception):
                    last = self.store.round(rid)
                    self.store.put_round(rid, self._failed_view(rid, last or view))
                    self.version += 1
            finally:
                self._retrying.pop(rid, None)

    def _index_new_rounds(self, known: set[int]) -> None:
        """Index rounds opened on the market by anyone else (another tool, another RSU)."""
        for rid in range(self.ledger.round_count()):
            if rid in known or time.time() < getattr(self._failures.get(rid), "retry_at", 0.0):
                continue
            try:
                with self.lock:
                    self._refresh(rid)
            except Exception as exc:  # recorded and shown; the clock retries it with back-off
                self._round_failed(rid, exc, "indexing")
                with self.lock:
                    self.store.put_round(rid, self._failed_view(rid, None))
                    self.version += 1

    def _advance(self, rid: int, view: dict[str, Any], *, failed: bool) -> None:
        """One step of the clock for one round: reveal, settle or refresh, whatever is due."""
        now = self.next_block_time()
        if view.get("chain_deadline") is None:  # a stub: the round could not be read yet
            self._refresh(rid)
            return
        acted = False
        bids = view["requests"] + view["replies"]
        revealing = view["chain_deadline"] < now <= view["reveal_deadline"]
        if revealing and not all(b["revealed"] for b in bids):
            self._reveal_if_due(rid)
            acted = True
        # Past the settlement window the contract refuses; the refresh below marks it expired.
        settling = view["reveal_deadline"] + 1 < now <= view["settle_deadline"]
        if settling and view.get("phase") != "settled":
            settle_optimal(self.ledger, self.operators.rsu, rid)
            acted = True
        deadlines = (
            view["deadline"],
            view["chain_deadline"],
            view["reveal_deadline"],
            view["settle_deadline"],
        )
        stale = self._phase(False, deadlines, time.time(), now) != view.get("phase")
        behind = rid in self._dirty and time.monotonic() >= self._next_refresh.get(rid, 0.0)
        if acted or stale or behind or failed:
            # What was due went through; a failure of the refresh itself continues the record.
            previous = self._failures.pop(rid, None)
            if previous is not None:
                self._retrying[rid] = previous
            self._refresh(rid)

    def relay(self, raw: str) -> dict[str, Any]:
        """Relay a transaction a vehicle signed itself, once its signer and target are checked."""
        try:
            data = HexBytes(raw)
            sender = Account.recover_transaction(data)
            decoded = self._decode_tx(data)
        except Exception as exc:  # malformed RLP, bad signature: the client's fault
            raise ServiceError(400, f"field 'raw': not a signed transaction ({exc})") from None
        if not self.ledger.is_valid_vehicle(sender):
            raise ServiceError(403, f"transaction signed by {sender}, not a registered vehicle")
        to = str(decoded.get("to", "")).lower()
        allowed = {self.ledger.market.address.lower(), self.ledger.token.address.lower()}
        if to not in allowed:
            raise ServiceError(403, "transactions may only call the market or the token contract")
        self._take_bid(sender)
        with self.lock:
            try:
                self.chain.preflight(sender, to, decoded["data"], what="relayed transaction")
            except LedgerError as exc:  # a revert, or the node refusing the sender
                raise ServiceError(409, f"the contract refuses it: {exc}") from None
            try:  # a replayed or stale nonce, or too little gas money
                tx_hash = self.chain.w3.eth.send_raw_transaction(data)
            except Exception as exc:
                raise ServiceError(409, f"the node refuses it: {revert_reason(exc)}") from None
        # Wait for the block outside the lock, as bids do: the clock and other vehicles go on.
        try:
            receipt = self.chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        except Exception as exc:  # web3's TimeExhausted: sent, but not mined within a minute
            raise ServiceError(
                504, f"transaction {HexBytes(tx_hash).to_0x_hex()} sent, not yet mined: {exc}"
            ) from None
        with self.lock:
            self.version += 1
        return {
            "tx": HexBytes(tx_hash).to_0x_hex(),
            "status": int(receipt["status"]),
            "from": sender,
        }

    @staticmethod
    def _decode_tx(data: bytes) -> dict[str, Any]:
        from eth_account.typed_transactions.typed_transaction import TypedTransaction

        if not data or data[0] > 0x7F:
            raise ValueError("send a typed (EIP-2718) transaction, e.g. EIP-1559")
        tx = TypedTransaction.from_bytes(HexBytes(data)).as_dict()
        to = tx.get("to")
        return {
            "to": "0x" + bytes(to).hex() if isinstance(to, bytes) else to,
            "data": tx.get("data"),
        }

    # -- chain view for the dashboard -----------------------------------------------------------

    def recent_blocks(self, count: int = 10) -> list[dict[str, Any]]:
        with self.lock:
            head = int(self.chain.w3.eth.block_number)
            out = []
            for n in range(head, max(-1, head - count), -1):
                block = self.chain.w3.eth.get_block(n)
                out.append(
                    {
                        "number": n,
                        "hash": block["hash"].to_0x_hex(),
                        "timestamp": int(block["timestamp"]),
                        "transactions": [HexBytes(t).to_0x_hex() for t in block["transactions"]],  # type: ignore[arg-type]
                    }
                )
            return out

    def close(self) -> None:
        self.chain.close()
        self.store.close()
