"""Vehicles a newcomer can act as in the web app after ``make demo``.

``evtrade demo`` runs its round with vehicles that exist only on chain (their keys die with the
run). So that the web app on the demo's chain (``make serve``) can be clicked through at once, the
demo also registers a buyer and two sellers through the service's own path
(:meth:`evtrade.service.vehicles.Vehicles.register`: built-in wallets under one printed password)
near the demo's market (Jinhua, :data:`evtrade.model.defaults.JINHUA`), and the authority mints
each a top-up (:meth:`~evtrade.service.vehicles.Vehicles.mint`, a request signed with the
authority's key), so a request or a reply can be posted without the faucet.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from eth_account.messages import encode_defunct

from evtrade.model.defaults import JINHUA
from evtrade.service.rsu import build_rsu
from evtrade.service.settings import Settings
from evtrade.service.wallets import mint_message

#: The demo vehicles' wallet password (printed by ``evtrade demo``; a demo, not a secret).
DEMO_PASSWORD = "evtrade-demo"
#: Tokens the authority mints to each demo vehicle.
DEMO_TOKENS = 100.0


@dataclass(frozen=True, slots=True)
class DemoVehicle:
    """One demo vehicle: its name, plate, the page it is meant for, and its place."""

    name: str
    plate: str
    role: str
    lat: float
    lon: float


#: A buyer and two sellers a few hundred metres from the centre of the demo's market.
DEMO_VEHICLES = (
    DemoVehicle("Ada", "DEMO-1", "buyer", JINHUA[0] + 0.004, JINHUA[1] - 0.003),
    DemoVehicle("Ben", "DEMO-2", "seller", JINHUA[0] - 0.002, JINHUA[1] + 0.004),
    DemoVehicle("Cleo", "DEMO-3", "seller", JINHUA[0] + 0.001, JINHUA[1] + 0.006),
)


@dataclass(frozen=True, slots=True)
class Registered:
    """A demo vehicle as registered: its account, and whether this call registered it."""

    vehicle: DemoVehicle
    address: str
    new: bool


def add_demo_vehicles(settings: Settings) -> list[Registered]:
    """Register :data:`DEMO_VEHICLES` with the service of ``settings`` (its chain and index)
    and mint each :data:`DEMO_TOKENS`; a vehicle already there (a second ``evtrade demo`` on the
    same data) is left as it is."""
    rsu = build_rsu(settings)
    try:
        known = {row.plate: row.address for row in rsu.store.vehicles()}
        out = []
        for v in DEMO_VEHICLES:
            if v.plate in known:
                out.append(Registered(v, known[v.plate], new=False))
                continue
            address = rsu.register_vehicle(v.name, v.plate, DEMO_PASSWORD, v.lat, v.lon)
            timestamp, nonce = int(time.time()), secrets.randbits(48)
            text = mint_message(address, DEMO_TOKENS, timestamp, nonce)
            signed = rsu.operators.authority.sign_message(encode_defunct(text=text))
            rsu.vehicles.mint(
                address,
                DEMO_TOKENS,
                signature=signed.signature.to_0x_hex(),
                timestamp=timestamp,
                nonce=nonce,
            )
            out.append(Registered(v, address, new=True))
        return out
    finally:
        rsu.close()
