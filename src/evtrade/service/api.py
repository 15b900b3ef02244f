"""HTTP layer: thin FastAPI routes, the one mapping of errors to statuses, the web pages and the
live event stream.

Each route checks its input (:mod:`evtrade.service.schemas`), calls one use case of the
:class:`~evtrade.service.rsu.Rsu` and returns its response model. A refusal is a domain error
(:mod:`evtrade.errors`), answered by :func:`create_app`'s one exception handler with the status of
:data:`evtrade.errors.HTTP_STATUS` and the body ``{"detail": message}``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from evtrade.errors import EvtradeError, TooManyError, http_status
from evtrade.model import Buyer, Seller
from evtrade.service.assets import FAVICON, docs_page, static_dir
from evtrade.service.consortium import ConsortiumOut, OpenRoundIn
from evtrade.service.dsm_schemas import (
    CommitIn,
    DayOut,
    PlanIn,
    PlanOut,
    VehicleDsmOut,
    WithdrawnOut,
)
from evtrade.service.pages import page
from evtrade.service.rsu import Rsu, build_rsu
from evtrade.service.schemas import (
    AcceptIn,
    Address,
    BidPosted,
    ChainOut,
    CollectedOut,
    DetailsIn,
    HistoryOut,
    MintIn,
    PricePointOut,
    Problem,
    RegisterIn,
    RelayedOut,
    RelayIn,
    ReplyIn,
    RequestIn,
    RoundDetailOut,
    RoundId,
    RoundOut,
    TopUpIn,
    Unlock,
    VehicleListed,
    VehiclePrivate,
    VehiclePublic,
)
from evtrade.service.security import BoundedBody, finite_json
from evtrade.service.settings import Settings


def get_rsu(request: Request) -> Rsu:
    """The running service's :class:`Rsu` (dependency)."""
    rsu: Rsu = request.app.state.rsu
    return rsu


RsuDep = Annotated[Rsu, Depends(get_rsu)]

#: What each error status means, for the OpenAPI description of the routes that answer it.
_MEANING: dict[int, str] = {
    400: "malformed request (a 'content-length' that is not a length, not a signed transaction)",
    401: "wrong password or signature, or neither given",
    402: "balance below the escrow v_max * b_max",
    403: "not allowed: faucet off or spent, revoked vehicle, forbidden target, own-key vehicle",
    404: "unknown vehicle or round",
    409: "conflict: already registered or used, bid window closed, the contract or node refuses",
    413: "body too large",
    422: "invalid body or parameter (the detail names the field)",
    429: "too many wrong passwords, or bids over the vehicle's rate: see Retry-After",
    504: "a relayed transaction was sent but not mined within a minute",
}
#: Every route may answer these: the body guard (:class:`~evtrade.service.security.BoundedBody`)
#: and the request validation run before any route.
_ANY_ROUTE = (400, 413, 422)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that may answer ``statuses`` besides its success."""
    return {
        status: {"model": Problem, "description": _MEANING[status]} for status in sorted(statuses)
    }


def create_app(settings: Settings) -> FastAPI:
    """The RSU service: REST API under /api, pages at /, /buyer, /seller, /rsu."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rsu = build_rsu(settings)
        app.state.rsu = rsu
        stop = threading.Event()
        thread = threading.Thread(target=rsu.clock.run, args=(stop,), name="rsu-clock", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)
        rsu.close()

    app = FastAPI(
        title="evtrade RSU service",
        version="0.1.0",
        lifespan=lifespan,
        responses=_errors(*_ANY_ROUTE),
        # /docs is served from the package (assets.docs_page), never from a CDN; no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    # Outermost of the app's own layers: no route, and no parser, sees an unbounded body.
    app.add_middleware(BoundedBody)
    static = static_dir()
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return docs_page(app.openapi_url or "/openapi.json", app.title)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(str(static.joinpath(FAVICON)), media_type="image/svg+xml")

    @app.exception_handler(EvtradeError)
    async def refused(request: Request, exc: EvtradeError) -> JSONResponse:
        """Every domain error, with its status from :data:`evtrade.errors.HTTP_STATUS`."""
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyError) else None
        return JSONResponse(
            status_code=http_status(exc), content={"detail": str(exc)}, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The errors echo the input; a value JSON cannot carry (NaN from a path or query) is
        # written as text, so the 422 itself always encodes.
        detail = finite_json(jsonable_encoder(exc.errors()))
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.post(
        "/api/vehicles",
        status_code=201,
        response_model=VehiclePrivate,
        responses=_errors(401, 409, 429),
    )
    def register(body: RegisterIn, rsu: RsuDep) -> dict[str, Any]:
        """Register a vehicle; the reply is its own view (name, plate, location included)."""
        return rsu.vehicles.register(
            body.name,
            body.plate,
            body.password,
            body.lat,
            body.lon,
            own_address=body.address,
            signature=body.signature,
        )

    @app.get("/api/vehicles", response_model=list[VehicleListed])
    def vehicles(rsu: RsuDep) -> list[dict[str, Any]]:
        """Registered vehicles: address and plate hash, what the chain's registry shows."""
        return rsu.vehicles.listing()

    @app.get("/api/vehicles/{address}", response_model=VehiclePublic, responses=_errors(404))
    def vehicle(address: Address, rsu: RsuDep) -> dict[str, Any]:
        """A vehicle's public view: what the chain shows (no name, plate or location)."""
        return rsu.vehicles.public_info(address)

    @app.post(
        "/api/vehicles/{address}/details",
        response_model=VehiclePrivate,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def details(address: Address, body: DetailsIn, rsu: RsuDep) -> dict[str, Any]:
        """The vehicle's own view, after it authenticates (password or signed request)."""
        return rsu.vehicles.details(
            address,
            password=body.password,
            signature=body.signature,
            timestamp=body.timestamp,
            nonce=body.nonce,
        )

    @app.post(
        "/api/vehicles/{address}/topup",
        response_model=VehiclePrivate,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def top_up(address: Address, body: TopUpIn, rsu: RsuDep) -> dict[str, Any]:
        """The development faucet (403 unless the setting ``faucet_tokens`` turns it on)."""
        return rsu.vehicles.top_up(
            address,
            body.tokens,
            password=body.password,
            signature=body.signature,
            timestamp=body.timestamp,
            nonce=body.nonce,
        )

    @app.post(
        "/api/vehicles/{address}/mint",
        response_model=VehiclePublic,
        responses=_errors(401, 404, 409),
    )
    def mint(address: Address, body: MintIn, rsu: RsuDep) -> dict[str, Any]:
        """The authority mints a top-up (a request signed with the authority's key)."""
        return rsu.vehicles.mint(
            address,
            body.tokens,
            signature=body.signature,
            timestamp=body.timestamp,
            nonce=body.nonce,
        )

    @app.post(
        "/api/vehicles/{address}/collect",
        response_model=CollectedOut,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def collect(address: Address, body: Unlock, rsu: RsuDep) -> dict[str, Any]:
        """Claim the vehicle's refunds and withdraw its credit (pull payments); the reply says
        how many tokens came back of each."""
        return rsu.trading.collect(address, body.password)

    @app.get(
        "/api/vehicles/{address}/history",
        response_model=list[HistoryOut],
        responses=_errors(404),
    )
    def history(address: Address, rsu: RsuDep) -> list[dict[str, Any]]:
        """The vehicle's transactions the service sent, newest first, each with what it did, the
        tokens it moved and its status on chain (pending, confirmed, failed)."""
        return rsu.vehicles.history(address)

    @app.post(
        "/api/vehicles/{address}/requests",
        status_code=201,
        response_model=BidPosted,
        responses=_errors(401, 402, 403, 404, 409, 429),
    )
    def post_request(address: Address, body: RequestIn, rsu: RsuDep) -> dict[str, Any]:
        """A buyer's sealed request, in the given round or, with none, in a new one."""
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
        return rsu.trading.post_request(address, body.password, body.round_id, buyer)

    @app.post(
        "/api/rounds/{round_id}/replies/{address}",
        status_code=201,
        response_model=BidPosted,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def post_reply(
        round_id: RoundId, address: Address, body: ReplyIn, rsu: RsuDep
    ) -> dict[str, Any]:
        """A seller's sealed reply to an open round."""
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
        return rsu.trading.post_reply(address, body.password, round_id, seller)

    @app.post(
        "/api/rounds/{round_id}/accept/{address}",
        response_model=RoundOut,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def accept(round_id: RoundId, address: Address, body: AcceptIn, rsu: RsuDep) -> dict[str, Any]:
        """The buyer chooses one offer; the reply is the round, re-read from the chain."""
        return rsu.trading.accept(address, body.password, round_id, body.seller_index, body.kwh)

    @app.get("/api/rounds", response_model=list[RoundOut])
    def rounds(rsu: RsuDep) -> list[dict[str, Any]]:
        """Every round the RSU indexes, oldest first."""
        return rsu.clock.rounds()

    @app.get("/api/prices", response_model=list[PricePointOut])
    def prices(rsu: RsuDep) -> list[dict[str, Any]]:
        """The price history: every settled trade's price and energy with its block's time."""
        return rsu.explorer.price_history(rsu.clock.rounds())

    @app.get("/api/rounds/{round_id}", response_model=RoundDetailOut, responses=_errors(404))
    def round_detail(round_id: RoundId, rsu: RsuDep) -> dict[str, Any]:
        """One round as the RSU indexes it, with its bids' revealed values once the bid window
        is over (null before: sealed bids stay sealed) and the audit of its settlement."""
        return rsu.explorer.round_detail(rsu.clock.round(round_id))

    @app.post(
        "/api/tx",
        response_model=RelayedOut,
        responses=_errors(403, 409, 429, 504),
    )
    def relay(body: RelayIn, rsu: RsuDep) -> dict[str, Any]:
        """Relay a transaction a vehicle that keeps its own key signed (market or token only)."""
        return rsu.relay.relay(body.raw)

    @app.get("/api/consortium", response_model=ConsortiumOut)
    def consortium(rsu: RsuDep) -> dict[str, Any]:
        """The consortium of RSUs on the chain: the authority, the members, the open votes
        (docs/consortium.md; votes are cast with ``evtrade rsu vote``)."""
        return rsu.consortium.view()

    @app.post(
        "/api/rounds",
        status_code=201,
        response_model=RoundOut,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def open_round(body: OpenRoundIn, rsu: RsuDep) -> dict[str, Any]:
        """A vehicle that keeps its own key asks the RSU to open a round (signed over
        ``open_round_message``); it then bids through ``/api/tx``."""
        rsu.consortium.check_open_request(body)
        return rsu.clock.round(rsu.trading.open_round())

    @app.get("/api/chain", response_model=ChainOut)
    def chain(rsu: RsuDep) -> dict[str, Any]:
        """The chain, the contracts, the RSU and the authority, and the latest blocks."""
        return rsu.explorer.chain_info()

    # -- the driver's DSM page (evtrade.service.dsm; docs/dsm.md "The driver's page") ---------

    @app.post("/api/dsm/plan", response_model=PlanOut, responses=_errors(409))
    def dsm_plan(body: PlanIn, rsu: RsuDep) -> dict[str, Any]:
        """Plan a charge on the aggregator's open day (PV, V2G, then the grid's cheapest hours
        given the commitments so far): energy, source and price per slot, the expected bill.
        Nothing is written."""
        return rsu.dsm.plan(body)

    @app.post(
        "/api/dsm/commit",
        status_code=201,
        response_model=VehicleDsmOut,
        responses=_errors(401, 402, 403, 404, 409, 429),
    )
    def dsm_commit(body: CommitIn, rsu: RsuDep) -> dict[str, Any]:
        """Plan again and commit the plan on chain with the vehicle's key, escrowing its
        worst-case bill (the aggregator posts the day first if needed)."""
        return rsu.dsm.commit(body.address, body.password, body)

    @app.get("/api/dsm/day", response_model=DayOut, responses=_errors(409))
    def dsm_day(rsu: RsuDep) -> dict[str, Any]:
        """The newest day: base price, forecast, committed load and dynamic price per slot."""
        return rsu.dsm.day_view()

    @app.post("/api/dsm/settle", response_model=DayOut, responses=_errors(409))
    def dsm_settle(rsu: RsuDep) -> dict[str, Any]:
        """Settle the days that are over: the contract computes every bill (the RSU pays gas)."""
        return rsu.dsm.settle()

    @app.get("/api/vehicles/{address}/dsm", response_model=VehicleDsmOut, responses=_errors(404))
    def vehicle_dsm(address: Address, rsu: RsuDep) -> dict[str, Any]:
        """The vehicle's newest commitment: its schedule, escrow, live expected bill and, once
        the day is settled, its bill and refund."""
        return rsu.dsm.vehicle_view(address)

    @app.post(
        "/api/vehicles/{address}/dsm/withdraw",
        response_model=WithdrawnOut,
        responses=_errors(401, 403, 404, 409, 429),
    )
    def dsm_withdraw(address: Address, body: Unlock, rsu: RsuDep) -> dict[str, Any]:
        """Take back what the billing contract owes the vehicle (its refund)."""
        return rsu.dsm.withdraw(address, body.password)

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

    for path, kind in (
        ("/", "home"),
        ("/buyer", "buyer"),
        ("/seller", "seller"),
        ("/rsu", "rsu"),
        ("/plan", "plan"),
    ):
        app.add_api_route(
            path,
            _page_route(kind, settings.faucet_tokens),
            methods=["GET"],
            response_class=HTMLResponse,
            include_in_schema=False,
        )

    @app.get("/rounds/{round_id}", response_class=HTMLResponse, include_in_schema=False)
    def round_page(round_id: RoundId) -> HTMLResponse:
        return HTMLResponse(page("round", faucet_tokens=settings.faucet_tokens))

    return app


def _page_route(kind: str, faucet_tokens: float) -> Callable[[], HTMLResponse]:
    def route() -> HTMLResponse:
        return HTMLResponse(page(kind, faucet_tokens=faucet_tokens))

    return route
