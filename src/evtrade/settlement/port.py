"""What the settlement use cases need from a ledger: the port the ledger adapter implements.

The use cases (running a round, settling it at the P1 optimum, the service's trading flow) call
a ledger only through these protocols, so they run against the contracts on a chain
(:class:`evtrade.ledger.client.Ledger`, the adapter) or against any other implementation, e.g.
an in-memory fake in a test. The protocols are generic in the account type ``A``: the adapter
signs with eth-account's ``LocalAccount``; a fake may use anything with an address.

Amounts in arguments are the project's units (kWh, tokens, tokens per kWh, as in
:mod:`evtrade.model`); what comes back (balances, views) is the contracts' fixed point
(:mod:`evtrade.settlement.units`). Refusals raise :class:`~evtrade.errors.LedgerError` or its
subclass :class:`~evtrade.errors.ContractRejectedError` with the contract's reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from evtrade.model import Buyer, Seller
from evtrade.settlement.views import RevealReport, RoundParams, RoundView, SealedBid, Trade

#: A transaction's receipt, as the chain returned it (``blockNumber``, ``transactionHash``,
#: ``gasUsed``, ``status``, ...).
Receipt = Mapping[str, Any]


class Signer(Protocol):
    """An account that signs its own transactions."""

    @property
    def address(self) -> str:
        """The account's address (checksummed hex)."""
        ...


A = TypeVar("A", bound=Signer)


class Clock(Protocol):
    """The chain's clock: the time the contracts' deadlines are compared with."""

    def timestamp(self) -> int:
        """Timestamp of the latest block (unix seconds)."""
        ...

    def wait_until(self, timestamp: int) -> None:
        """Return once the chain's clock has passed ``timestamp``."""
        ...


class LedgerPort(Protocol[A]):
    """Identities, tokens and rounds on a ledger: the calls the use cases make."""

    @property
    def chain(self) -> Clock:
        """The chain's clock."""
        ...

    def new_account(self) -> A:
        """A fresh account of this ledger (a vehicle's identity)."""
        ...

    # -- identities ------------------------------------------------------------------------------

    def register_vehicle(
        self, authority: A, vehicle: str, plate: str, expiry: int, *, gas_wei: int = ...
    ) -> Receipt:
        """The authority certifies a vehicle until ``expiry`` (unix time)."""
        ...

    def register_rsu(self, authority: A, rsu: A, *, gas_wei: int = ...) -> Receipt:
        """The authority adds an RSU (with its public key, for sealed bids)."""
        ...

    def is_valid_vehicle(self, address: str) -> bool:
        """Registered, not revoked, not expired."""
        ...

    def is_rsu(self, address: str) -> bool:
        """A current RSU."""
        ...

    def rsu_pubkey(self, address: str) -> bytes:
        """The public key an RSU registered (bids are sealed to it)."""
        ...

    # -- tokens and energy ------------------------------------------------------------------------

    def mint(self, authority: A, to: str, tokens: float) -> Receipt:
        """The authority credits a top-up of ``tokens``."""
        ...

    def balance(self, address: str) -> int:
        """Token balance in base units."""
        ...

    def credit(self, address: str) -> int:
        """Payments credited to a seller and not yet withdrawn (base units)."""
        ...

    def energy(self, address: str) -> tuple[int, int]:
        """Energy bought and sold so far, in energy units."""
        ...

    def withdraw(self, account: A) -> Receipt:
        """A seller pulls its credited payments."""
        ...

    # -- rounds -----------------------------------------------------------------------------------

    def open_round(self, rsu: A, params: RoundParams) -> int:
        """An RSU opens a round; returns its id."""
        ...

    def round_count(self) -> int:
        """Rounds opened so far."""
        ...

    def round_view(self, round_id: int) -> RoundView:
        """The round as the ledger recorded it."""
        ...

    def post_request(
        self, account: A, round_id: int, buyer: Buyer, *, rsu_pubkey: bytes | None = None
    ) -> SealedBid:
        """A buyer posts its request, its value committed and sealed to the RSU."""
        ...

    def post_reply(
        self, account: A, round_id: int, seller: Seller, *, rsu_pubkey: bytes | None = None
    ) -> SealedBid:
        """A seller posts its reply, its value committed and sealed to the RSU."""
        ...

    def reveal_sealed(self, rsu: A, round_id: int) -> RevealReport:
        """The RSU opens and reveals every sealed, unrevealed bid of a round."""
        ...

    def settle(self, rsu: A, round_id: int, trades: Sequence[Trade]) -> Receipt:
        """The RSU settles a round with (request index, reply index, energy units) triples."""
        ...

    def accept(self, account: A, round_id: int, seller_index: int, energy_kwh: float) -> Receipt:
        """The single buyer of a round accepts one seller's offer."""
        ...

    def claim_refund(self, account: A, round_id: int, index: int) -> Receipt:
        """A buyer takes back the unspent part of its escrow."""
        ...


__all__ = ["A", "Clock", "LedgerPort", "Receipt", "Signer", "Trade"]
