"""The one market data model shared by the CLI, the service, the simulations and the ledger."""

from evtrade.model.files import load_market, market_from_dict, market_to_dict
from evtrade.model.participants import Auctioneer, Buyer, Market, Seller

__all__ = [
    "Auctioneer",
    "Buyer",
    "Market",
    "Seller",
    "load_market",
    "market_from_dict",
    "market_to_dict",
]
