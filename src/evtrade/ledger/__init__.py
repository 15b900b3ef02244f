"""The ledger adapter: the contracts on a chain, behind the settlement layer's port.

``contracts/`` (Vyper: ``Registry``, ``Token``, ``Market``) and their shipped ``artifacts/``
(:mod:`~evtrade.ledger.artifacts`); :mod:`~evtrade.ledger.client` (``Ledger``: deploy and every
contract call, typed; implements :class:`evtrade.settlement.port.LedgerPort`);
:mod:`~evtrade.ledger.chain` (the embedded py-evm chain of :mod:`~evtrade.ledger.embedded`, or any
JSON-RPC node); :mod:`~evtrade.ledger.sealing` (commitments, bids sealed to the RSU);
:mod:`~evtrade.ledger.operators` (a development deployment's keys and contracts).
"""
