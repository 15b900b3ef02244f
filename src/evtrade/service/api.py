"""HTTP layer: thin FastAPI routes, request schemas, the web pages and the live event stream."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evtrade.errors import ContractRejectedError, EvtradeError, LedgerError, MarketError
from evtrade.ledger.client import plate_hash
from evtrade.model import Buyer, Seller
from evtrade.service.pages import page
from evtrade.service.rsu import Rsu, ServiceError, TooManyError
from evtrade.service.security import BoundedBody, finite_json
from evtrade.service.settings import Settings

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
    :func:`~evtrade.service.rsu.registration_message`, EIP-191)."""

    name: str = Field(min_length=1, max_length=60, pattern=r"^[^\x00-\x1f\x7f]+$")
    plate: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 -]+$")
    password: str | None = Field(None, min_length=6, max_length=200)
    address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$")
    signature: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{130}$")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)

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

    signature: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{130}$")
    timestamp: int | None = Field(None, ge=0, le=MAX_TIMESTAMP, description="unix seconds")
    nonce: int | None = Field(None, ge=0, le=MAX_INT, description="any number, new per request")


class DetailsIn(Signed):
    """The vehicle's own details: with the wallet ``password``, or signed over
    :func:`~evtrade.service.rsu.details_message` by a vehicle that keeps its own key."""

    password: str | None = Field(None, min_length=1, max_length=200)


class TopUpIn(DetailsIn):
    """The development faucet (off unless the setting ``faucet_tokens`` is above 0): authorised
    by the wallet ``password``, or signed over :func:`~evtrade.service.rsu.top_up_message`."""

    tokens: float = Field(gt=0, le=1e9)


class MintIn(Strict):
    """A top-up by the authority: signed with the authority's key over
    :func:`~evtrade.service.rsu.mint_message`."""

    tokens: float = Field(gt=0, le=1e9)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")
    timestamp: int = Field(ge=0, le=MAX_TIMESTAMP, description="unix seconds")
    nonce: int = Field(ge=0, le=MAX_INT, description="any number, new per request")


class RequestIn(Unlock):
    """A buyer's request: demand bounds (kWh), price range and sealed value (tokens/kWh), place."""

    round_id: int | None = Field(
        None, ge=0, le=MAX_INT, description="join this round; omitted: open a new one"
    )
    b_min: float = Field(ge=0, le=1e6)
    b_max: float = Field(gt=0, le=1e6)
    v: float = Field(
        ge=0, le=1e6, description="private unit value v_i, sealed until the window closes"
    )
    v_min: float = Field(ge=0, le=1e6)
    v_max: float = Field(gt=0, le=1e6)
    w: float = Field(3.0, ge=0, le=5)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)

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
    c_min: float = Field(ge=0, le=1e6)
    c_max: float = Field(gt=0, le=1e6)
    s_t: float = Field(gt=0, le=1e6)
    s_r: float = Field(ge=0, le=1e6)
    rho: float = Field(gt=0, le=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)

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
    seller_index: int = Field(ge=0, le=127)
    kwh: float = Field(gt=0, le=1e6)


class RelayIn(Strict):
    raw: str = Field(
        pattern=r"^0x[0-9a-fA-F]+$", max_length=200_000, description="signed transaction"
    )


log = logging.getLogger("evtrade.service")


def get_rsu(request: Request) -> Rsu:
    """The running service's :class:`Rsu` (dependency)."""
    rsu: Rsu = request.app.state.rsu
    return rsu


RsuDep = Annotated[Rsu, Depends(get_rsu)]


#: Every status a route may answer besides its success (documented for clients and fuzzers).
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": why}
    for status, why in (
        (400, "malformed request (e.g. not a signed transaction)"),
        (401, "wrong password or signature"),
        (402, "balance below the escrow"),
        (403, "not allowed (faucet off, forbidden target, revoked vehicle)"),
        (404, "unknown vehicle or round"),
        (409, "conflict: already registered, already used, or the contract refuses"),
        (413, "body too large"),
        (422, "invalid body or parameter"),
        (429, "too many wrong passwords, or bids over the vehicle's rate: see Retry-After"),
        (504, "a relayed transaction was sent but not mined within a minute"),
    )
}


def create_app(settings: Settings) -> FastAPI:
    """The RSU service: REST API under /api, pages at /, /buyer, /seller, /rsu."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rsu = Rsu(settings)
        app.state.rsu = rsu
        stop = threading.Event()

        def clock() -> None:
            while not stop.wait(settings.poll_seconds):
                try:
                    rsu.tick()
                except Exception:  # the clock must outlive a failed tick; the next one retries
                    log.exception("RSU clock tick failed")

        thread = threading.Thread(target=clock, name="rsu-clock", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)
        rsu.close()

    app = FastAPI(
        title="evtrade RSU service", version="0.1.0", lifespan=lifespan, responses=_ERRORS
    )
    # Outermost of the app's own layers: no route, and no parser, sees an unbounded body.
    app.add_middleware(BoundedBody)
    static = resources.files("evtrade.service").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.exception_handler(EvtradeError)
    async def domain_error(request: Request, exc: EvtradeError) -> JSONResponse:
        headers = None
        if isinstance(exc, TooManyError):
            status = 429
            headers = {"Retry-After": str(exc.retry_after)}
        elif isinstance(exc, ServiceError):
            status = exc.status
        elif isinstance(exc, ContractRejectedError):
            status = 409
        elif isinstance(exc, MarketError | LedgerError):
            status = 422
        else:
            status = 400
        return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The errors echo the input; a value JSON cannot carry (NaN from a path or query) is
        # written as text, so the 422 itself always encodes.
        detail = finite_json(jsonable_encoder(exc.errors()))
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.post("/api/vehicles", status_code=201)
    def register(body: RegisterIn, rsu: RsuDep) -> dict[str, Any]:
        """Register a vehicle; the reply is its own view (name, plate, location included)."""
        address = rsu.register_vehicle(
            body.name,
            body.plate,
            body.password,
            body.lat,
            body.lon,
            own_address=body.address,
            signature=body.signature,
        )
        return rsu.private_info(address)

    @app.get("/api/vehicles")
    def vehicles(rsu: RsuDep) -> list[dict[str, Any]]:
        """Registered vehicles: address and plate hash, what the chain's registry shows."""
        return [
            {"address": v.address, "plate_hash": "0x" + plate_hash(v.plate).hex()}
            for v in rsu.store.vehicles()
        ]

    @app.get("/api/vehicles/{address}")
    def vehicle(address: Address, rsu: RsuDep) -> dict[str, Any]:
        """A vehicle's public view: what the chain shows (no name, plate or location)."""
        return rsu.vehicle_info(address)

    @app.post("/api/vehicles/{address}/details")
    def details(address: Address, body: DetailsIn, rsu: RsuDep) -> dict[str, Any]:
        """The vehicle's own view, after it authenticates (password or signed request)."""
        return rsu.details(
            address,
            password=body.password,
            signature=body.signature,
            timestamp=body.timestamp,
            nonce=body.nonce,
        )

    @app.post("/api/vehicles/{address}/topup")
    def top_up(address: Address, body: TopUpIn, rsu: RsuDep) -> dict[str, Any]:
        """The development faucet (403 unless the setting ``faucet_tokens`` turns it on)."""
        return rsu.top_up(
            address,
            body.tokens,
            password=body.password,
            signature=body.signature,
            timestamp=body.timestamp,
            nonce=body.nonce,
        )

    @app.post("/api/vehicles/{address}/mint")
    def mint(address: Address, body: MintIn, rsu: RsuDep) -> dict[str, Any]:
        """The authority mints a top-up (a request signed with the authority's key)."""
        return rsu.mint(
            address,
            body.tokens,
            signature=body.signature,
            timestamp=body.timestamp,
            nonce=body.nonce,
        )

    @app.post("/api/vehicles/{address}/collect")
    def collect(address: Address, body: Unlock, rsu: RsuDep) -> dict[str, Any]:
        return rsu.collect(address, body.password)

    @app.post("/api/vehicles/{address}/requests", status_code=201)
    def post_request(address: Address, body: RequestIn, rsu: RsuDep) -> dict[str, Any]:
        buyer = Buyer(
            id=address,
            v=body.v,
            v_min=body.v_min,
            v_max=body.v_max,
            b_min=body.b_min,
            b_max=body.b_max,
            w=body.w,
            lat=body.lat,
            lon=body.lon,
        )
        return rsu.post_request(address, body.password, body.round_id, buyer)

    @app.post("/api/rounds/{round_id}/replies/{address}", status_code=201)
    def post_reply(
        round_id: RoundId, address: Address, body: ReplyIn, rsu: RsuDep
    ) -> dict[str, Any]:
        seller = Seller(
            id=address,
            c=body.c,
            c_min=body.c_min,
            c_max=body.c_max,
            s_t=body.s_t,
            s_r=body.s_r,
            rho=body.rho,
            lat=body.lat,
            lon=body.lon,
        )
        return rsu.post_reply(address, body.password, round_id, seller)

    @app.post("/api/rounds/{round_id}/accept/{address}")
    def accept(round_id: RoundId, address: Address, body: AcceptIn, rsu: RsuDep) -> dict[str, Any]:
        return rsu.accept(address, body.password, round_id, body.seller_index, body.kwh)

    @app.get("/api/rounds")
    def rounds(rsu: RsuDep) -> list[dict[str, Any]]:
        return rsu.store.rounds()

    @app.get("/api/rounds/{round_id}")
    def round_detail(round_id: RoundId, rsu: RsuDep) -> dict[str, Any]:
        view = rsu.store.round(round_id)
        if view is None:
            raise ServiceError(404, f"field 'round_id': no round {round_id}")
        return view

    @app.post("/api/tx")
    def relay(body: RelayIn, rsu: RsuDep) -> dict[str, Any]:
        return rsu.relay(body.raw)

    @app.get("/api/chain")
    def chain(rsu: RsuDep) -> dict[str, Any]:
        return {
            "kind": rsu.chain.kind,
            "chain_id": rsu.chain.chain_id,
            "deployment": asdict(rsu.ledger.deployment),
            "rsu": {
                "address": rsu.operators.rsu.address,
                "lat": settings.rsu_lat,
                "lon": settings.rsu_lon,
            },
            "authority": rsu.operators.authority.address,
            "faucet_tokens": settings.faucet_tokens,
            "blocks": rsu.recent_blocks(),
        }

    # A stream, not a REST resource: left out of the schema (fuzzers would wait an hour on it).
    @app.get("/api/events", include_in_schema=False)
    async def events(rsu: RsuDep) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            seen = -1
            for _ in range(36_000):  # an hour at most; EventSource reconnects
                if rsu.version != seen:
                    seen = rsu.version
                    yield f"data: {json.dumps({'version': seen})}\n\n"
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream")

    for path, kind in (("/", "home"), ("/buyer", "buyer"), ("/seller", "seller"), ("/rsu", "rsu")):
        app.add_api_route(
            path,
            _page_route(kind, settings.faucet_tokens),
            methods=["GET"],
            response_class=HTMLResponse,
            include_in_schema=False,
        )
    return app


def _page_route(kind: str, faucet_tokens: float) -> Callable[[], HTMLResponse]:
    def route() -> HTMLResponse:
        return HTMLResponse(page(kind, faucet_tokens=faucet_tokens))

    return route
