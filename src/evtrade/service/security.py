"""The RSU service's defences against hostile clients (docs/security.md).

* :class:`BoundedBody`: an ASGI middleware that reads every request body with a size limit and
  checks it with :func:`evtrade.model.safejson.loads_bounded` (depth, finite numbers, long
  integers) before any route, FastAPI's parser included, sees it.
* :func:`recover_canonical`: EIP-191 signer recovery that accepts one encoding per signature
  (``v`` in {27, 28}, low ``s``), so a signature cannot be re-encoded into a "new" one.
* :class:`Throttle`: failed password guesses per (vehicle, client), per client and per vehicle,
  with exponential back-off that expires; checked before any scrypt work is done.
* :class:`KdfGate`: at most a few scrypt derivations at once; the rest queue, briefly.
* :class:`BidRate`: bids per identity (vehicle address), a token bucket, so one vehicle cannot
  flood the service's chain queue or the RSU's rounds (issue 12, item 6).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import eth_keys.exceptions
import eth_utils.exceptions
from eth_account import Account
from eth_account.messages import encode_defunct

from evtrade import errors
from evtrade.errors import SignatureError, ThrottledError
from evtrade.model import safejson

# A relayed transaction is at most 200,000 hex characters (RelayIn.raw); 256 KiB covers it.
MAX_BODY_BYTES = 256 * 1024
# Request bodies are flat objects (depth 1); 8 leaves room without letting a parser recurse.
MAX_BODY_DEPTH = 8
# secp256k1 group order: a signature's s must lie in [1, n/2] (EIP-2), r in [1, n).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: What recovering a key from a well-formed canonical signature raises when there is none.
_NO_KEY = (
    ValueError,
    eth_keys.exceptions.BadSignature,
    eth_utils.exceptions.ValidationError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The client (its IP address, as the socket sees it) of the request being served; set by
#: :class:`BoundedBody`, read by the password throttle. Forwarded-for headers are not trusted.
client_ip: ContextVar[str] = ContextVar("client_ip", default="-")
#: When the request reached the service (wall clock): bids are admitted against it, not against
#: the time a worker thread got round to them (docs/service.md, "Bid windows and load").
received_at: ContextVar[float | None] = ContextVar("received_at", default=None)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BoundedBody:
    """Refuse a request body that is too large (413) or not bounded, finite JSON (422).

    The whole body is read here (at most ``max_bytes``) and handed on unchanged; the routes
    then parse text already known to nest at most ``max_depth`` levels. Every request also puts
    the interpreter's recursion limit back to its default (py-evm raises it on import).
    """

    def __init__(
        self, app: Asgi, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_BODY_DEPTH
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received_at.set(time.time())
        safejson.restore_recursion_limit()
        peer = scope.get("client")
        client_ip.set(str(peer[0]) if peer else "-")
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                if not value.isdigit() or len(value) > 12:
                    await _reply(send, 400, "header 'content-length' is not a length")
                    return
                if int(value) > self.max_bytes:
                    await _reply(send, 413, f"body: more than {self.max_bytes} bytes")
                    return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                await _reply(send, 413, f"body: more than {self.max_bytes} bytes")
                return
        if body.strip():
            try:
                safejson.loads_bounded(
                    bytes(body), max_bytes=self.max_bytes, max_depth=self.max_depth
                )
            except errors.JsonInputError as exc:
                await _reply(send, 422, f"body: {exc}")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text, so a reply always encodes."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def recover_canonical(text: str, signature: str) -> str:
    """The checksummed address that signed ``text`` (EIP-191), from a canonical signature only.

    One signature has several byte encodings that recover the same key: ``v`` as 0/1 or 27/28,
    and ``(r, n - s)`` with the flipped ``v``. Only ``v`` in {27, 28} and ``s <= n/2`` (EIP-2)
    are accepted, so each signed message has exactly one accepted signature.
    """
    raw = signature[2:] if signature[:2] in ("0x", "0X") else signature
    try:
        data = bytes.fromhex(raw)
    except ValueError:
        raise SignatureError("not hexadecimal") from None
    if len(data) != 65:
        raise SignatureError("not 65 bytes (r, s, v)")
    r = int.from_bytes(data[:32], "big")
    s = int.from_bytes(data[32:64], "big")
    v = data[64]
    if v not in (27, 28):
        raise SignatureError(f"v must be 27 or 28, not {v}")
    if not 1 <= r < SECP256K1_N or not 1 <= s <= SECP256K1_N // 2:
        raise SignatureError("s must be in the lower half of the curve order (EIP-2)")
    try:
        return str(Account.recover_message(encode_defunct(text=text), signature=data))
    except _NO_KEY as exc:  # e.g. an r that is no point of the curve
        raise SignatureError(f"recovers no key ({type(exc).__name__})") from None


@dataclass(slots=True)
class _Record:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True, slots=True)
class Policy:
    """How many failures are free, and the back-off after them: ``base * 2**k``, at most ``cap``.

    A record is forgotten ``forget`` seconds after its last failure.
    """

    free: int
    base: float
    cap: float
    forget: float

    def lock_for(self, failures: int) -> float:
        extra = failures - self.free - 1
        if extra < 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(extra, 40))


# The driver who mistypes gets 5 free tries, then 1 s, 2 s, 4 s... of back-off; a guesser on one
# client is down to one guess per 15 minutes after 16 failures. Every record is forgotten an hour
# after its last failure.
PAIR_POLICY = Policy(free=5, base=1.0, cap=900.0, forget=3600.0)
# One client guessing across many vehicles.
CLIENT_POLICY = Policy(free=20, base=1.0, cap=3600.0, forget=3600.0)
# Many clients guessing one vehicle. Clients that unlocked this vehicle in the last day are exempt,
# so a distributed guesser slows other guessers down, never the vehicle's own driver.
VEHICLE_POLICY = Policy(free=20, base=1.0, cap=900.0, forget=3600.0)
TRUSTED_FOR = 24 * 3600.0


class Throttle:
    """Failed password guesses, counted per (vehicle, client), per client and per vehicle.

    :meth:`check` runs before the key derivation and raises :class:`ThrottledError` while a lock
    is on; :meth:`failed` and :meth:`succeeded` record the outcome. Every lock expires (at most
    ``cap`` seconds after the last failure), and memory is bounded by ``max_entries``.
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        pair: Policy = PAIR_POLICY,
        client: Policy = CLIENT_POLICY,
        vehicle: Policy = VEHICLE_POLICY,
        max_entries: int = 100_000,
    ) -> None:
        self.clock = clock
        self.policies = {"pair": pair, "client": client, "vehicle": vehicle}
        self.max_entries = max_entries
        self._records: OrderedDict[tuple[str, ...], _Record] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(vehicle: str, client: str) -> list[tuple[str, tuple[str, ...]]]:
        v = vehicle.lower()
        return [
            ("pair", ("pair", v, client)),
            ("client", ("client", client)),
            ("vehicle", ("vehicle", v)),
        ]

    def _get(self, key: tuple[str, ...], policy: Policy, now: float) -> _Record | None:
        rec = self._records.get(key)
        if rec is not None and now - rec.last > max(policy.forget, rec.locked_until - rec.last):
            del self._records[key]
            return None
        return rec

    def check(self, vehicle: str, client: str) -> None:
        """Raise :class:`ThrottledError` if this client may not try this vehicle's password now."""
        now = self.clock()
        with self._lock:
            trusted = self._is_trusted(vehicle, client, now)
            worst, what = 0.0, ""
            for kind, key in self._keys(vehicle, client):
                if kind == "vehicle" and trusted:
                    continue
                rec = self._get(key, self.policies[kind], now)
                if rec is not None and rec.locked_until > now and rec.locked_until - now > worst:
                    worst = rec.locked_until - now
                    what = {
                        "pair": "too many wrong passwords for this vehicle from this client",
                        "client": "too many wrong passwords from this client",
                        "vehicle": "too many wrong passwords for this vehicle",
                    }[kind]
            if worst > 0:
                raise ThrottledError(max(1, math.ceil(worst)), what)

    def failed(self, vehicle: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for kind, key in self._keys(vehicle, client):
                policy = self.policies[kind]
                rec = self._get(key, policy, now) or _Record()
                rec.failures += 1
                rec.last = now
                rec.locked_until = now + policy.lock_for(rec.failures)
                self._records[key] = rec
                self._records.move_to_end(key)
            while len(self._records) > self.max_entries:
                self._records.popitem(last=False)

    def succeeded(self, vehicle: str, client: str) -> None:
        """The right password: this client's record for the vehicle is cleared, and the client
        is trusted for the vehicle (exempt from the vehicle-wide lock) for a day."""
        now = self.clock()
        with self._lock:
            self._records.pop(("pair", vehicle.lower(), client), None)
            key = (vehicle.lower(), client)
            self._trusted[key] = now
            self._trusted.move_to_end(key)
            while len(self._trusted) > self.max_entries:
                self._trusted.popitem(last=False)

    def _is_trusted(self, vehicle: str, client: str, now: float) -> bool:
        since = self._trusted.get((vehicle.lower(), client))
        return since is not None and now - since < TRUSTED_FOR


def kdf_slots() -> int:
    """Half the CPUs (at least one): password checks never take every core."""
    return max(1, (os.cpu_count() or 2) // 2)


class KdfGate:
    """At most ``slots`` scrypt derivations at once; a caller waits up to ``wait`` seconds.

    Waiting (rather than refusing at once) keeps a burst of honest bids working; a caller that
    cannot get a slot in time gets :class:`ThrottledError` (429). Callers check the throttle again
    once they hold a slot, so a burst of guesses queued behind the gate is refused unhashed as
    soon as the lock is on.
    """

    def __init__(self, slots: int | None = None, wait: float = 30.0) -> None:
        slots = kdf_slots() if slots is None else slots
        self._sem = threading.BoundedSemaphore(slots)
        self.wait = wait

    def __enter__(self) -> None:
        if not self._sem.acquire(timeout=self.wait):
            raise ThrottledError(1, "too many password checks at once; retry shortly")

    def __exit__(self, *exc: object) -> None:
        self._sem.release()


class BidRate:
    """At most ``per_minute`` bids per vehicle per minute, in bursts of as many (token bucket).

    Counted after authentication, so nobody can spend a driver's allowance; the chain's own
    rules (one bid per account per round, deposits) bound what a certified vehicle can do, this
    bounds how fast it can ask the service to do it. Memory is bounded by ``max_entries`` (least
    recently used dropped first, which only ever gives a vehicle a full bucket back).
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {per_minute}")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_entries = max_entries
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, vehicle: str) -> None:
        """Spend one bid of ``vehicle``'s allowance or raise :class:`ThrottledError`."""
        key = vehicle.lower()
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise ThrottledError(
                    wait, f"more than {int(self.capacity)} bids a minute from {vehicle}"
                )
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
