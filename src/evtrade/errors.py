"""Exception hierarchy: one root, one branch per subsystem."""

from __future__ import annotations


class EvtradeError(Exception):
    """Root of every error raised on purpose by evtrade."""


class MarketError(EvtradeError, ValueError):
    """A market (file or in-memory) is malformed.

    The message names the participant and the field, e.g.
    ``buyer 'B3': field 'b_max' (4.0) must be >= b_min (6.0)``.
    """


class MechanismError(EvtradeError, ValueError):
    """A mechanism was called with arguments it cannot use (unknown name, missing price)."""


class SolverError(EvtradeError, RuntimeError):
    """A solver failed to reach the requested accuracy."""


class LedgerError(EvtradeError, RuntimeError):
    """The ledger (contracts, chain back end or client) could not do what was asked."""


class ContractRejectedError(LedgerError, ValueError):
    """A contract refused a call; the message is the contract's reason, e.g.
    ``market: bid window closed``. Nothing was written to the chain."""
