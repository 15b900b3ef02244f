"""Domain errors become HTTP statuses in one place: each error a use case raises reaches the client
with its status from ``HTTP_STATUS``, the body ``{"detail": message}`` and, for a 429, the
``Retry-After`` header. In process, with a stand-in for the RSU (no chain)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import NoReturn

import pytest
from fastapi.testclient import TestClient

from evtrade.errors import (
    HTTP_STATUS,
    ConflictError,
    ContractRejectedError,
    EvtradeError,
    ForbiddenError,
    InsufficientFundsError,
    InvalidRequestError,
    JsonInputError,
    LedgerError,
    MalformedRequestError,
    MarketError,
    NotFoundError,
    NotMinedError,
    ServiceError,
    SettingsError,
    SolverError,
    TooManyError,
    UnauthorizedError,
    http_status,
)
from evtrade.service.api import create_app
from evtrade.service.settings import Settings

CASES: list[tuple[EvtradeError, int]] = [
    (MalformedRequestError("field 'raw': not a signed transaction"), 400),
    (UnauthorizedError("field 'password': wrong password for this vehicle"), 401),
    (InsufficientFundsError("balance below the escrow"), 402),
    (ForbiddenError("the development faucet is off"), 403),
    (NotFoundError("unknown vehicle 0x12"), 404),
    (ConflictError("field 'plate': AB1 is already registered"), 409),
    (ContractRejectedError("market: bid window closed"), 409),
    (InvalidRequestError("field 'v_min' (0.4) is below the RSU's floor (0.5)"), 422),
    (MarketError("auctioneer: field 'l1' (0.0) must be > 0"), 422),
    (LedgerError("field 'b_max': does not fit"), 422),
    (TooManyError(7, "more than 12 bids a minute"), 429),
    (NotMinedError("transaction 0xab sent, not yet mined"), 504),
    (SettingsError("setting 'l1': must be > 0"), 400),
    (JsonInputError("nested deeper than 8"), 400),
    (SolverError("no certificate"), 400),
]


def client_raising(exc: EvtradeError) -> TestClient:
    """The app, its RSU replaced by one whose explorer (``GET /api/chain``) raises ``exc``."""

    def chain_info() -> NoReturn:
        raise exc

    app = create_app(Settings())
    app.state.rsu = SimpleNamespace(explorer=SimpleNamespace(chain_info=chain_info))
    return TestClient(app)  # no lifespan: nothing opens a chain


@pytest.mark.parametrize(("exc", "status"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_domain_error_is_answered_with_its_status_and_message(
    exc: EvtradeError, status: int
) -> None:
    r = client_raising(exc).get("/api/chain")
    assert r.status_code == status
    assert r.json() == {"detail": str(exc)}
    assert http_status(exc) == status
    if isinstance(exc, ServiceError):
        assert exc.status == status
    if isinstance(exc, TooManyError):
        assert r.headers["retry-after"] == "7"
    else:
        assert "retry-after" not in r.headers


def test_every_service_error_has_a_status_of_its_own() -> None:
    kinds = [
        MalformedRequestError,
        UnauthorizedError,
        InsufficientFundsError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        InvalidRequestError,
        TooManyError,
        NotMinedError,
    ]
    assert set(ServiceError.__subclasses__()) == set(kinds)
    assert len({HTTP_STATUS[k] for k in kinds}) == len(kinds)


def test_every_route_documents_its_errors_with_a_body_schema() -> None:
    spec = create_app(Settings()).openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            errors = {int(s) for s in op["responses"] if int(s) >= 400}
            assert {400, 413, 422} <= errors, (method, path)
            for status in errors:
                schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
            success = min(int(s) for s in op["responses"])
            assert "content" in op["responses"][str(success)], (method, path)
