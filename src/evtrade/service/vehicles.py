"""Vehicles: registration, their public and private views, and top-ups (faucet and authority)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_utils.address import to_checksum_address

from evtrade.errors import ConflictError, ForbiddenError, InvalidRequestError, UnauthorizedError
from evtrade.ledger.client import plate_hash
from evtrade.service.context import RsuContext
from evtrade.service.history import merge, record
from evtrade.service.store import TxEntry, VehicleRow
from evtrade.service.wallets import Wallets, details_message, mint_message, top_up_message
from evtrade.settlement import units
from evtrade.settlement.rounds import VEHICLE_CERTIFICATE_SECONDS


class Vehicles:
    """Registering vehicles and showing them; the development faucet and the authority's mint."""

    def __init__(self, ctx: RsuContext, wallets: Wallets) -> None:
        self.ctx = ctx
        self.wallets = wallets
        self._registering: set[str] = set()  # plates and addresses being registered
        # Consortium mode: whether the registry certified this plate to this address (wired by
        # build_rsu from :class:`~evtrade.service.consortium.Consortium`).
        self.certified_plate: Callable[[str, str], bool] | None = None
        # Consortium mode: the vehicle's market events on the chain, at every RSU (wired by
        # build_rsu from :class:`~evtrade.service.history.ChainHistory`).
        self.chain_history: Callable[[str], list[dict[str, Any]]] | None = None

    def register(
        self,
        name: str,
        plate: str,
        password: str | None,
        lat: float | None,
        lon: float | None,
        *,
        own_address: str | None = None,
        signature: str | None = None,
    ) -> dict[str, Any]:
        """The authority certifies a new vehicle; its own view (:meth:`private_info`).

        With a password the key is created in the built-in wallet; with ``own_address`` the
        vehicle keeps its key and ``signature`` (EIP-191 over
        :func:`~evtrade.service.wallets.registration_message`) proves it holds it. Plate and
        address are unique: checked again under the lock, so of concurrent registrations of one
        plate or one address exactly one succeeds (:class:`~evtrade.errors.ConflictError` for
        the others).
        """
        ctx = self.ctx
        normal = "".join(plate.split()).upper()
        if ctx.store.plate_taken(normal):  # early, before any key work
            raise ConflictError(f"field 'plate': {normal} is already registered")
        keystore: dict[str, Any] | None = None
        if own_address is not None and signature is not None:
            address: str = to_checksum_address(own_address)
            if not self.wallets.proves_own_key(address, normal, signature):
                raise UnauthorizedError("field 'signature': not signed by the key of 'address'")
            if ctx.settings.deployment is not None:
                return self._join(name, normal, address, lat, lon)
        elif ctx.settings.deployment is not None:
            raise ForbiddenError(
                "this RSU is one of a consortium: the authority certifies vehicles (`evtrade "
                "authority register-vehicle`); join with your own key (address + signature)"
            )
        elif password is not None:
            address, keystore = self.wallets.new_keystore(password)
        else:
            raise InvalidRequestError("give a password (built-in wallet) or address + signature")
        with ctx.lock:  # check and reserve; the transactions wait for their block unlocked
            if ctx.store.plate_taken(normal) or normal in self._registering:
                raise ConflictError(f"field 'plate': {normal} is already registered")
            if (
                ctx.store.address_taken(address)
                or address in self._registering
                or ctx.ledger.is_valid_vehicle(address)
            ):
                raise ConflictError(f"field 'address': {address} is already registered")
            self._registering.update((normal, address))
        try:
            expiry = ctx.chain.timestamp() + VEHICLE_CERTIFICATE_SECONDS
            entry = TxEntry(address, "register", "registered and certified by the authority")
            record(
                ctx.store,
                entry,
                lambda: ctx.ledger.register_vehicle(
                    ctx.operators.authority, address, normal, expiry
                ),
            )
            with ctx.lock:
                if not ctx.store.add_vehicle(VehicleRow(address, name, normal, keystore, lat, lon)):
                    raise ConflictError("field 'plate': already registered")  # unreachable
                ctx.changed()
        finally:
            with ctx.lock:
                self._registering.difference_update((normal, address))
        return self.private_info(address)

    def _join(
        self, name: str, plate: str, address: str, lat: float | None, lon: float | None
    ) -> dict[str, Any]:
        """Consortium mode (docs/consortium.md): a vehicle the authority certified once joins
        this RSU with its own key; no transaction, its balance and history are on the chain."""
        ctx = self.ctx
        if not ctx.ledger.is_valid_vehicle(address):
            raise ForbiddenError(
                f"field 'address': {address} is not certified (`evtrade authority "
                "register-vehicle`), or its certificate was revoked or expired"
            )
        if self.certified_plate is not None and not self.certified_plate(address, plate):
            raise ForbiddenError(
                f"field 'plate': {plate} is not the plate the authority certified for {address}"
            )
        with ctx.lock:
            if ctx.store.address_taken(address):
                raise ConflictError(f"field 'address': {address} is already registered")
            if not ctx.store.add_vehicle(VehicleRow(address, name, plate, None, lat, lon)):
                raise ConflictError(f"field 'plate': {plate} is already registered")
            ctx.changed()
        return self.private_info(address)

    def listing(self) -> list[dict[str, Any]]:
        """Registered vehicles: address and plate hash, what the chain's registry shows."""
        return [
            {"address": v.address, "plate_hash": "0x" + plate_hash(v.plate).hex()}
            for v in self.ctx.store.vehicles()
        ]

    def public_info(self, address: str) -> dict[str, Any]:
        """What the chain already makes public about a vehicle: no name, plate or location."""
        ctx = self.ctx
        row = self.wallets.vehicle(address)
        with ctx.lock:
            bought, sold = ctx.ledger.energy(row.address)
            return {
                "address": row.address,
                "plate_hash": "0x" + plate_hash(row.plate).hex(),
                "valid": ctx.ledger.is_valid_vehicle(row.address),
                "balance": units.to_tokens(ctx.ledger.balance(row.address)),
                "credit": units.to_tokens(ctx.ledger.credit(row.address)),
                "energy_bought": units.to_kwh(bought),
                "energy_sold": units.to_kwh(sold),
            }

    def history(self, address: str) -> list[dict[str, Any]]:
        """The vehicle's transactions the service sent, newest first, with their status on chain
        (pending, confirmed, failed): what the chain shows, so public as the chain is. In a
        consortium its market events at the other RSUs are merged in, so the history follows it."""
        row = self.wallets.vehicle(address)
        recorded = self.ctx.store.history(row.address)
        if self.chain_history is None:
            return recorded
        return merge(recorded, self.chain_history(row.address))

    def private_info(self, address: str) -> dict[str, Any]:
        """The vehicle's own view (after it authenticated): the public one, plus its name, plate,
        location, kind of key and what the development faucet has left for it."""
        row = self.wallets.vehicle(address)
        info = self.public_info(address)
        cap = self.ctx.settings.faucet_tokens
        info.update(
            name=row.name,
            plate=row.plate,
            lat=row.lat,
            lon=row.lon,
            wallet=row.keystore is not None,
            faucet_left=max(0.0, cap - self.ctx.store.faucet_given(row.address)),
        )
        return info

    def details(
        self,
        address: str,
        *,
        password: str | None = None,
        signature: str | None = None,
        timestamp: int | None = None,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """A vehicle reads its own details, with its wallet password or a signed request."""
        row = self.wallets.vehicle(address)
        self.wallets.authenticate(
            row,
            password,
            lambda t, n: details_message(row.address, t, n),
            signature,
            timestamp,
            nonce,
        )
        return self.private_info(address)

    def top_up(
        self,
        address: str,
        tokens: float,
        *,
        password: str | None = None,
        signature: str | None = None,
        timestamp: int | None = None,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """The development faucet: a vehicle mints itself a top-up, within its cap.

        Off unless the setting ``faucet_tokens`` is above 0: minting is the authority's act
        (:meth:`mint`). Asked for with the wallet password or a signed request.
        """
        ctx = self.ctx
        cap = ctx.settings.faucet_tokens
        if cap <= 0:
            raise ForbiddenError(
                "minting is the authority's act: the development faucet is off "
                "(setting faucet_tokens); ask the authority for a top-up"
            )
        row = self.wallets.vehicle(address)
        if tokens > cap - ctx.store.faucet_given(row.address):  # early, before any key work
            raise ForbiddenError(self._faucet_left(row.address, cap))
        self.wallets.authenticate(
            row,
            password,
            lambda t, n: top_up_message(row.address, tokens, t, n),
            signature,
            timestamp,
            nonce,
        )
        with ctx.lock:  # count it against the cap first; the mint waits for its block unlocked
            if tokens > cap - ctx.store.faucet_given(row.address):
                raise ForbiddenError(self._faucet_left(row.address, cap))
            ctx.store.faucet_add(row.address, tokens)
        entry = TxEntry(row.address, "top-up", f"top-up of {tokens:g} tokens (faucet)", tokens)
        try:
            record(
                ctx.store,
                entry,
                lambda: ctx.ledger.mint(ctx.operators.authority, row.address, tokens),
            )
        except BaseException:
            with ctx.lock:
                ctx.store.faucet_add(row.address, -tokens)
            raise
        ctx.changed()
        return self.private_info(address)

    def _faucet_left(self, address: str, cap: float) -> str:
        left = max(0.0, cap - self.ctx.store.faucet_given(address))
        return (
            f"field 'tokens': the development faucet gives each vehicle {cap:g} tokens in all;"
            f" {left:g} left for this one"
        )

    def mint(
        self, address: str, tokens: float, *, signature: str, timestamp: int, nonce: int
    ) -> dict[str, Any]:
        """The authority mints a top-up: a request signed with the authority's key, used once."""
        ctx = self.ctx
        if ctx.settings.deployment is not None:
            raise ForbiddenError(
                "this RSU is one of a consortium and holds no authority key: `evtrade authority"
                " mint`"
            )
        row = self.wallets.vehicle(address)
        authority = ctx.operators.authority.address
        self.wallets.check_signed(
            authority,
            lambda t, n: mint_message(row.address, tokens, t, n),
            signature,
            timestamp,
            nonce,
            who="the authority's key",
        )
        # The mint waits for its block without the service lock, as the faucet's does.
        entry = TxEntry(row.address, "top-up", f"top-up of {tokens:g} tokens (authority)", tokens)
        record(
            ctx.store, entry, lambda: ctx.ledger.mint(ctx.operators.authority, row.address, tokens)
        )
        with ctx.lock:
            ctx.changed()
        return self.public_info(address)
