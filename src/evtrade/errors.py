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
    ├── LedgerError            (RuntimeError) ledger: contracts, chain or client failed
    │   └── ContractRejectedError (ValueError) ledger: a contract refused a call
    └── (service errors)                      service: a refused request or setting
"""

from __future__ import annotations

__all__ = [
    "ContractRejectedError",
    "EvtradeError",
    "JsonInputError",
    "LedgerError",
    "MarketError",
    "MechanismError",
    "SolverError",
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
