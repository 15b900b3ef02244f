"""Settlement: the use cases between the market and the ledger.

- :mod:`~evtrade.settlement.views`: the domain's view of a round on a ledger (what an RSU
  declares, what the chain recorded) and its conversion to the market model;
- :mod:`~evtrade.settlement.units`: the contracts' fixed point and Theorem 1 exactly as they
  compute it;
- :mod:`~evtrade.settlement.port`: what the use cases need from a ledger (``LedgerPort``), which
  :class:`evtrade.ledger.client.Ledger` implements;
- use cases: :mod:`~evtrade.settlement.planning` (P1 volumes rounded to settleable units),
  :mod:`~evtrade.settlement.offers` (a round's priced pairs for a buyer choosing),
  :mod:`~evtrade.settlement.rounds` (settling a round, running a market as one round),
  :mod:`~evtrade.settlement.audit` (anyone checking an RSU's settlement).

Nothing here imports the ledger adapter, the service or the CLI.
"""
