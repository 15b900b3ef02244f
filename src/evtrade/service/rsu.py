"""The roadside unit: its use cases wired together, built from settings by :func:`build_rsu`.

The use cases live in their own modules, each raising the domain errors of
:mod:`evtrade.errors` (never an HTTP status):

* :mod:`.vehicles` registration, public and private views, the faucet and the authority's mint;
* :mod:`.wallets` the built-in wallet's passwords and the signed requests (EIP-191);
* :mod:`.trading` rounds, requests, replies, accepting an offer, collecting refunds;
* :mod:`.relay` transactions vehicles signed themselves;
* :mod:`.explorer` the chain and its latest blocks, for the dashboard;
* :mod:`.dsm` the driver's DSM page: a day's charge planned, committed and billed on chain;
* :mod:`.clock` the round index and the clock that reveals and settles (:mod:`.views` for the
  rounds' view models).

:class:`Rsu` holds them (the routes of :mod:`evtrade.service.api` call them) and offers the
operations in-process callers use most. The use cases see the ledger through the settlement port
(:class:`~evtrade.settlement.port.LedgerPort`, :class:`.context.RsuContext`); the contracts on a
chain (:class:`~evtrade.ledger.client.Ledger`) are plugged in here, and only here.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from evtrade.errors import LedgerError, SettingsError
from evtrade.ledger.chain import Chain, open_chain
from evtrade.ledger.client import Deployment, Ledger
from evtrade.ledger.keystore import load_keystore, password
from evtrade.ledger.operators import load_operators, open_ledger
from evtrade.model import safejson
from evtrade.service import faults
from evtrade.service.clock import RoundClock
from evtrade.service.consortium import Consortium
from evtrade.service.context import RsuContext
from evtrade.service.dsm import Dsm
from evtrade.service.explorer import Explorer
from evtrade.service.history import ChainHistory
from evtrade.service.relay import Relay
from evtrade.service.security import BidRate
from evtrade.service.settings import Settings
from evtrade.service.store import Store
from evtrade.service.trading import Trading
from evtrade.service.vehicles import Vehicles
from evtrade.service.wallets import Wallets
from evtrade.settlement.rounds import Operators

#: The environment variable holding the password of the RSU's keystore (consortium mode).
RSU_KEY_PASSWORD = "EVTRADE_RSU_KEY_PASSWORD"


class Rsu:
    """The roadside unit: auctioneer, relay and index of one market contract.

    ``chain`` and ``ledger`` are the adapters behind ``ctx`` (the relay and the explorer use the
    chain's transactions and blocks, the in-process callers the ledger's every call).
    """

    def __init__(self, ctx: RsuContext, chain: Chain, ledger: Ledger) -> None:
        self.ctx = ctx
        self.chain = chain
        self.ledger = ledger
        self.wallets = Wallets(ctx.store)
        self.clock = RoundClock(ctx)
        self.vehicles = Vehicles(ctx, self.wallets)
        self.trading = Trading(ctx, self.wallets, self.vehicles, self.clock)
        self.relay = Relay(ctx, chain, (ledger.market.address, ledger.token.address))
        self.explorer = Explorer(ctx, chain, ledger.deployment)
        self.consortium = Consortium(ctx, chain, ledger, self.wallets)
        if ctx.settings.deployment is not None:  # a vehicle joins with the plate it was certified
            self.vehicles.certified_plate = self.consortium.certified_plate
            self.vehicles.chain_history = ChainHistory(ledger, self.explorer.block_times).entries
        self.dsm = Dsm(ctx, self.wallets, chain, ledger.registry.address, ledger.token.address)
        # The operations in-process callers (tests, tools) use most, straight from the use cases.
        self.open_round = self.trading.open_round
        self.post_reply = self.trading.post_reply
        self.tick = self.clock.tick
        self.round_failures = self.clock.round_failures
        self.next_block_time = ctx.next_block_time

    # -- what it runs on ------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def operators(self) -> Operators[LocalAccount]:
        return self.ctx.operators

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def version(self) -> int:
        """Counts changes the pages show (the live stream, ``/api/events``, follows it)."""
        return self.ctx.version

    # -- the operations in-process callers use most -----------------------------------------------

    def register_vehicle(
        self, name: str, plate: str, password: str | None, lat: float | None, lon: float | None
    ) -> str:
        """A vehicle with a built-in wallet (:meth:`.vehicles.Vehicles.register`); its address."""
        return str(self.vehicles.register(name, plate, password, lat, lon)["address"])

    def close(self) -> None:
        self.chain.close()
        self.ctx.store.close()


def _consortium(settings: Settings) -> tuple[Chain, Ledger, Operators[LocalAccount]]:
    """Consortium mode (docs/consortium.md): the shared chain and the authority's deployment,
    this RSU's key from its keystore. The RSU holds no authority key: the use cases that would
    act as the authority refuse in this mode (``settings.deployment`` is set), so the operators'
    authority slot holds the RSU's own account and is never used to sign as the authority."""
    assert settings.deployment is not None and settings.rsu_key is not None  # Settings checks
    try:
        rsu = load_keystore(settings.rsu_key, password(RSU_KEY_PASSWORD, what="RSU's keystore"))
    except LedgerError as exc:
        raise SettingsError(f"setting 'rsu_key': {exc}") from None
    chain = open_chain(chain_url=settings.chain_url)
    try:
        ledger = Ledger(chain, Deployment.load(settings.deployment))
        if not ledger.is_rsu(rsu.address):
            raise SettingsError(
                f"setting 'rsu_key': {rsu.address} is not an RSU of the registry "
                f"{ledger.registry.address} (`evtrade authority register-rsu`, or a vote)"
            )
    except BaseException:
        chain.close()
        raise
    return chain, ledger, Operators(authority=rsu, rsu=rsu)


def check_consortium(settings: Settings) -> None:
    """What :func:`build_rsu` would refuse in consortium mode (a key that does not open, an
    account that is not an RSU, no contracts at the deployment), as a domain error, before the
    service starts listening."""
    chain, _, _ = _consortium(settings)
    chain.close()


def build_rsu(settings: Settings) -> Rsu:
    """The RSU of ``settings``: its chain, ledger, operators' keys and index, opened; the round
    index rebuilt from the chain.

    Development mode (no ``deployment``): the service deploys its own contracts on first use and
    is the authority. Consortium mode: :func:`_consortium`."""
    if settings.deployment is not None:
        chain, ledger, operators = _consortium(settings)
    else:
        chain = open_chain(data_dir=settings.data_dir / "chain", chain_url=settings.chain_url)
        ledger = open_ledger(chain, settings.data_dir)
        operators = load_operators(settings.data_dir)
    ctx = RsuContext(
        settings=settings,
        chain=chain,
        ledger=ledger,
        operators=operators,
        store=Store(settings.data_dir / "service.sqlite"),
        bid_rate=BidRate(settings.bids_per_minute),
    )
    # py-evm raised the recursion limit on import; C code recursing on a request's data must
    # raise RecursionError, not overflow the C stack (docs/security.md).
    safejson.restore_recursion_limit()
    faults.install(chain)  # test hook: a no-op unless EVTRADE_TEST_FAULT is set
    rsu = Rsu(ctx, chain, ledger)
    rsu.clock.rebuild_index()
    return rsu
