"""evtrade: peer-to-peer electricity trading between electric vehicles.

>>> from evtrade import load_market, clear
>>> result = clear(load_market("examples/small.json"), mechanism="eta")
>>> result.to_dict()["welfare"]  # doctest: +SKIP
"""

from evtrade.errors import (
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
    MechanismError,
    NotFoundError,
    NotMinedError,
    ServiceError,
    SettingsError,
    SignatureError,
    SolverError,
    SweepError,
    ThrottledError,
    TooManyError,
    UnauthorizedError,
)
from evtrade.market import ClearingResult, clear, expected_gains_exact, expected_outcome
from evtrade.model import Auctioneer, Buyer, Market, Seller, load_market, market_from_dict

__all__ = [
    "Auctioneer",
    "Buyer",
    "ClearingResult",
    "ConflictError",
    "ContractRejectedError",
    "EvtradeError",
    "ForbiddenError",
    "InsufficientFundsError",
    "InvalidRequestError",
    "JsonInputError",
    "LedgerError",
    "MalformedRequestError",
    "Market",
    "MarketError",
    "MechanismError",
    "NotFoundError",
    "NotMinedError",
    "Seller",
    "ServiceError",
    "SettingsError",
    "SignatureError",
    "SolverError",
    "SweepError",
    "ThrottledError",
    "TooManyError",
    "UnauthorizedError",
    "clear",
    "expected_gains_exact",
    "expected_outcome",
    "load_market",
    "market_from_dict",
]

__version__ = "0.1.0"
