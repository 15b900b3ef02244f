"""Exception hierarchy: one root, one branch per subsystem.

Every error evtrade raises on purpose is defined here and subclasses :class:`EvtradeError`, so
the two edges catch one type: the CLI turns it into a one-line ``error:`` message, the service
into an HTTP status. Each error also subclasses the built-in it refines (``ValueError``
for bad input, ``RuntimeError`` for a failure to compute or reach something), so code written
against the built-ins keeps working. Messages name the field or participant at fault.

::

    EvtradeError
    ├── MarketError            (ValueError)   model: a malformed market
    ├── JsonInputError         (ValueError)   model: untrusted JSON refused
    ├── MechanismError         (ValueError)   market: a mechanism called wrongly
    ├── SolverError            (RuntimeError) market: a solver missed its accuracy
    ├── SweepError             (ValueError)   sim: a sweep file or run refused
    ├── LedgerError            (RuntimeError) ledger: contracts, chain or client failed
    │   └── ContractRejectedError (ValueError) ledger: a contract refused a call
    ├── SettingsError          (ValueError)   service: a setting missing or malformed
    └── ServiceError                          service: a refused request (HTTP_STATUS)
        ├── MalformedRequestError  (ValueError)   400
        │   └── SignatureError                    400 (a bad signature)
        ├── UnauthorizedError                     401
        ├── InsufficientFundsError                402
        ├── ForbiddenError                        403
        ├── NotFoundError          (LookupError)  404
        ├── ConflictError                         409
        ├── InvalidRequestError    (ValueError)   422
        ├── TooManyError                          429 (retry_after)
        │   └── ThrottledError                    429 (a throttle, before any work)
        └── NotMinedError                         504
"""

from __future__ import annotations

__all__ = [
    "HTTP_STATUS",
    "ConflictError",
    "ContractRejectedError",
    "EvtradeError",
    "ForbiddenError",
    "InsufficientFundsError",
    "InvalidRequestError",
    "JsonInputError",
    "LedgerError",
    "MalformedRequestError",
    "MarketError",
    "MechanismError",
    "NotFoundError",
    "NotMinedError",
    "ServiceError",
    "SettingsError",
    "SignatureError",
    "SolverError",
    "SweepError",
    "ThrottledError",
    "TooManyError",
    "UnauthorizedError",
    "http_status",
]


class EvtradeError(Exception):
    """Root of every error raised on purpose by evtrade; the CLI and the service catch it."""


# --- model ------------------------------------------------------------------------------------


class MarketError(EvtradeError, ValueError):
    """A market (file or in-memory) is malformed.

    Raised by :mod:`evtrade.model` when a market is built or loaded, and by the market core when
    a market cannot be cleared as given (e.g. a buyer no seller can serve). The message names the
    participant and the field, e.g. ``buyer 'B3': field 'b_max' (4.0) must be >= b_min (6.0)``.
    """


class JsonInputError(EvtradeError, ValueError):
    """Untrusted JSON was refused; the message says why (size, depth, syntax, number).

    Raised by :func:`evtrade.model.safejson.loads_bounded`; the market loader turns it into a
    :class:`MarketError` naming the file, the service into a 422 reply.
    """


# --- market -----------------------------------------------------------------------------------


class MechanismError(EvtradeError, ValueError):
    """A mechanism was called with arguments it cannot use (unknown name, missing price).

    Raised by the market core before any computation; the message names the argument.
    """


class SolverError(EvtradeError, RuntimeError):
    """A solver failed to reach the requested accuracy.

    Raised by the welfare solvers (P1's Newton method, the interior-point method, the reference
    LP) when they stop without a certificate of optimality; the input was valid.
    """


class SweepError(EvtradeError, ValueError):
    """An experiment sweep cannot run: its file is malformed (the message names the key), its
    output directory holds records it cannot read, or a Dask scheduler cannot be reached.

    Raised by :mod:`evtrade.sim.sweep` before a run starts, or while the sweep gathers its runs.
    """


# --- ledger -----------------------------------------------------------------------------------


class LedgerError(EvtradeError, RuntimeError):
    """The ledger (contracts, chain back end or client) could not do what was asked.

    Raised by :mod:`evtrade.ledger`: a value that does not fit the contracts' fixed-point units
    (the message names the field), a chain that does not answer, a missing artifact or compiler,
    a deployment file that cannot be read, a sealed bid that cannot be opened.
    """


class ContractRejectedError(LedgerError, ValueError):
    """A contract refused a call; the message is the contract's reason.

    E.g. ``market: bid window closed``. Raised by the ledger client when a transaction would
    revert; nothing was written to the chain.
    """


# --- service (the RSU service's section) --------------------------------------------------------
#
# The use cases of :mod:`evtrade.service` refuse a request by raising one of these; they name the
# kind of refusal, never an HTTP status. The HTTP status of every evtrade error is written once,
# in :data:`HTTP_STATUS` at the end of this section, and read by the service's one exception
# handler (:func:`evtrade.service.api.create_app`) and by :attr:`ServiceError.status`.


class SettingsError(EvtradeError, ValueError):
    """A setting of the RSU service is missing or malformed; the message names it.

    Raised by :meth:`evtrade.service.settings.Settings.load` and by the service's test hook
    (:mod:`evtrade.service.faults`) for a malformed ``EVTRADE_TEST_FAULT``.
    """


class ServiceError(EvtradeError):
    """A request the RSU service refuses; the subclass says why, the message names the field."""

    @property
    def status(self) -> int:
        """The HTTP status the service answers this refusal with (:data:`HTTP_STATUS`)."""
        return http_status(self)


class MalformedRequestError(ServiceError, ValueError):
    """The request cannot be read at all (e.g. a relayed transaction that is not one)."""


class InvalidRequestError(ServiceError, ValueError):
    """The request is well-formed but a value is not acceptable (e.g. below the RSU's floor)."""


class UnauthorizedError(ServiceError):
    """The caller did not prove who it is: wrong password, missing or wrong signature."""


class InsufficientFundsError(ServiceError):
    """The vehicle's balance does not cover what the request must lock (the escrow)."""


class ForbiddenError(ServiceError):
    """The caller is known but may not do this (faucet off or spent, revoked vehicle, a relayed
    transaction to another contract, a wallet action on a vehicle that keeps its own key)."""


class NotFoundError(ServiceError, LookupError):
    """No such vehicle or round."""


class ConflictError(ServiceError):
    """The request clashes with the state: already registered, a signed request used twice, a
    bid after the window, a transaction the contract or the node refuses."""


class TooManyError(ServiceError):
    """Too many wrong passwords or too many bids from a vehicle; try again in ``retry_after`` s."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SignatureError(MalformedRequestError):
    """A signature that is malformed, non-canonical or recovers to no key (raised by
    :func:`evtrade.service.security.recover_canonical`; the wallet answers it as a refusal)."""


class ThrottledError(TooManyError):
    """A password check or a bid refused by a throttle before any work is done (the service's
    password guard, key-derivation gate and bid rate); ``what`` says which limit."""

    def __init__(self, retry_after: int, what: str) -> None:
        super().__init__(retry_after, what)
        self.what = what


class NotMinedError(ServiceError):
    """A relayed transaction was sent but not mined in time; the message names it."""


#: The HTTP status of each error (the most specific class listed for an error wins); an evtrade
#: error not listed is a 400. The one place an error meets HTTP.
HTTP_STATUS: dict[type[EvtradeError], int] = {
    MalformedRequestError: 400,
    UnauthorizedError: 401,
    InsufficientFundsError: 402,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    ContractRejectedError: 409,
    InvalidRequestError: 422,
    MarketError: 422,
    LedgerError: 422,
    TooManyError: 429,
    NotMinedError: 504,
    EvtradeError: 400,
}


def http_status(exc: EvtradeError) -> int:
    """The HTTP status of ``exc``: that of the nearest of its classes in :data:`HTTP_STATUS`."""
    for cls in type(exc).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 400
