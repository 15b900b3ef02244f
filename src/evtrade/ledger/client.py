"""The ledger client: deploy the contracts and call every operation with typed arguments.

Amounts cross this API in the project's units (kWh, tokens per kWh, degrees) and are converted
to the contracts' fixed point by :mod:`evtrade.settlement.units`; what comes back from the chain is
decoded from events into the settlement layer's views (:mod:`evtrade.settlement.views`).
:class:`Ledger` is the adapter behind :class:`evtrade.settlement.port.LedgerPort`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from evtrade.errors import LedgerError
from evtrade.ledger.artifacts import CONTRACTS, load_artifact
from evtrade.ledger.chain import Chain, read_json
from evtrade.ledger.sealing import commitment, new_salt, seal, unseal
from evtrade.model import Buyer, Seller
from evtrade.settlement import units
from evtrade.settlement.port import LedgerPort
from evtrade.settlement.views import (
    ReplyView,
    RequestView,
    RevealReport,
    RoundParams,
    RoundView,
    SealedBid,
    SkippedBid,
    TradeView,
)

#: Ether (wei) an account is funded with for its gas when registered: a vehicle 10 ETH, an RSU
#: (and the deploying authority) 100 ETH; topped up again when it falls below half.
VEHICLE_GAS_WEI = 10**19
RSU_GAS_WEI = 10**20

#: Gas limits, measured use times about 1.5 (docs/ledger.md); settle adds per-trade and per-bid gas.
GAS = {
    "deploy": 6_000_000,
    "register_vehicle": 200_000,
    "revoke_vehicle": 60_000,
    "register_rsu": 250_000,
    "revoke_rsu": 80_000,
    "vote_rsu": 250_000,
    "mint": 120_000,
    "approve": 80_000,
    "open_round": 400_000,
    "post_request": 700_000,
    "post_reply": 1_000_000,
    "reveal": 250_000,
    "accept": 500_000,
    "claim_refund": 250_000,
    "claim_deposit": 200_000,
    "withdraw": 120_000,
}
_SETTLE_BASE = 250_000
_SETTLE_PER_TRADE = 30_000
_SETTLE_PER_BID = 60_000
#: Batch reveal: gas for the call and for each revealed bid; bids per transaction.
_REVEAL_BASE = 120_000
_REVEAL_PER_BID = 130_000
REVEAL_CHUNK = 128
#: Why the contract's batch reveal skipped a bid (Market.vy's SKIP_* codes).
_SKIP_REASONS = {
    1: "unknown bid",
    3: "already revealed",
    4: "value does not match the commitment",
    5: "value outside the declared range",
}
_SETTLE_SELECTOR = function_signature_to_4byte_selector(
    "settle(uint256,(uint256,uint256,uint256)[])"
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the three contracts live on a chain."""

    chain_id: int
    registry: str
    token: str
    market: str
    block: int

    def save(self, path: Path) -> None:
        """Write the deployment as JSON."""
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment written by :meth:`save`."""
        data = read_json(path)
        try:
            return cls(
                chain_id=int(data["chain_id"]),
                registry=to_checksum_address(data["registry"]),
                token=to_checksum_address(data["token"]),
                market=to_checksum_address(data["market"]),
                block=int(data["block"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise LedgerError(f"{path}: not a deployment file ({exc})") from exc


def plate_hash(plate: str) -> bytes:
    """keccak256 of a licence plate, normalised (upper case, no spaces)."""
    normal = "".join(plate.split()).upper()
    if not normal:
        raise LedgerError("field 'plate' must not be empty")
    return keccak(normal.encode())


def public_key(account: LocalAccount) -> bytes:
    """The 64-byte public key of a local account (RSUs register it for sealed bids)."""
    return bytes(Account._keys.PrivateKey(account.key).public_key.to_bytes())


class Ledger:
    """Typed access to the registry, token and market contracts on one chain."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        if deployment.chain_id != chain.chain_id:
            raise LedgerError(
                f"deployment is for chain {deployment.chain_id}, the node is chain {chain.chain_id}"
            )
        self.chain = chain
        self.deployment = deployment
        addresses = [
            to_checksum_address(a)
            for a in (deployment.registry, deployment.token, deployment.market)
        ]
        self.registry, self.token, self.market = (
            chain.contract(a, load_artifact(name).abi)
            for name, a in zip(CONTRACTS, addresses, strict=True)
        )
        for name, address in zip(CONTRACTS, addresses, strict=True):
            if not chain.has_code(address):
                raise LedgerError(f"no {name} contract at {address} on this chain")

    def new_account(self) -> LocalAccount:
        """A fresh account with a random key (a vehicle's identity)."""
        account: LocalAccount = Account.create()
        return account

    # -- deployment -----------------------------------------------------------------------------

    @classmethod
    def deploy(cls, chain: Chain, authority: LocalAccount) -> Ledger:
        """Deploy registry, token and market; ``authority`` becomes the certificate authority."""
        if chain.ether_balance(authority.address) == 0:
            chain.fund(authority.address, RSU_GAS_WEI)
        start = chain.block_number()
        registry = cls._deploy_one(chain, authority, "Registry", ())
        token = cls._deploy_one(chain, authority, "Token", ("EV energy token", "EVT"))
        market = cls._deploy_one(chain, authority, "Market", (registry, token))
        deployment = Deployment(chain.chain_id, registry, token, market, start)
        return cls(chain, deployment)

    @staticmethod
    def _deploy_one(chain: Chain, account: LocalAccount, name: str, args: Sequence[Any]) -> str:
        artifact = load_artifact(name)
        code = chain.deploy_code(artifact.abi, artifact.bytecode, args)
        sent = chain.send_data(account, None, HexBytes(code), GAS["deploy"], what=f"deploy {name}")
        receipt = chain.wait(sent)
        address = receipt["contractAddress"]
        if address is None:
            raise LedgerError(f"deploy {name}: no contract address in the receipt")
        return str(address)

    def _do(
        self,
        account: LocalAccount,
        contract: Contract,
        name: str,
        *args: Any,
        gas: int | None = None,
    ) -> TxReceipt:
        fn = contract.get_function_by_name(name)(*args)
        return self.chain.transact(account, fn, gas or GAS[name], what=name)

    def _view(self, contract: Contract, name: str, *args: Any) -> Any:
        return contract.get_function_by_name(name)(*args).call()

    # -- identities -----------------------------------------------------------------------------

    def register_vehicle(
        self,
        authority: LocalAccount,
        vehicle: str,
        plate: str,
        expiry: int,
        *,
        gas_wei: int = VEHICLE_GAS_WEI,
    ) -> TxReceipt:
        """The authority certifies a vehicle until ``expiry`` (unix time); funds its gas."""
        receipt = self._do(
            authority, self.registry, "register_vehicle", vehicle, plate_hash(plate), expiry
        )
        self.top_up_gas(vehicle, gas_wei)
        return receipt

    def top_up_gas(self, address: str, gas_wei: int) -> None:
        """Fund ``gas_wei`` of ether to an account whose balance fell below half of it (0: none)."""
        if gas_wei and self.chain.ether_balance(address) < gas_wei // 2:
            self.chain.fund(address, gas_wei)

    def revoke_vehicle(self, authority: LocalAccount, vehicle: str) -> TxReceipt:
        """The authority revokes a vehicle's certificate."""
        return self._do(authority, self.registry, "revoke_vehicle", vehicle)

    def register_rsu(
        self, authority: LocalAccount, rsu: LocalAccount, *, gas_wei: int = RSU_GAS_WEI
    ) -> TxReceipt:
        """The authority adds an RSU (with its public key, for sealed bids)."""
        receipt = self._do(authority, self.registry, "register_rsu", rsu.address, public_key(rsu))
        self.top_up_gas(rsu.address, gas_wei)
        return receipt

    def revoke_rsu(self, authority: LocalAccount, rsu: str) -> TxReceipt:
        """The authority removes an RSU."""
        return self._do(authority, self.registry, "revoke_rsu", rsu)

    def vote_rsu(
        self, voter: LocalAccount, candidate: str, add: bool, pubkey: bytes = b""
    ) -> TxReceipt:
        """A current RSU votes to add (with the candidate's public key) or remove an RSU."""
        return self._do(voter, self.registry, "vote_rsu", candidate, add, pubkey)

    def is_valid_vehicle(self, address: str) -> bool:
        """Registered, not revoked, not expired."""
        return bool(self._view(self.registry, "is_valid_vehicle", address))

    def is_rsu(self, address: str) -> bool:
        """A current RSU."""
        return bool(self._view(self.registry, "is_rsu", address))

    def rsu_pubkey(self, address: str) -> bytes:
        """The public key an RSU registered."""
        return bytes(self._view(self.registry, "rsu_pubkey", address))

    # -- tokens and energy ----------------------------------------------------------------------

    def mint(self, authority: LocalAccount, to: str, tokens: float) -> TxReceipt:
        """The authority credits a top-up of ``tokens``."""
        return self._do(
            authority, self.token, "mint", to, units.to_fixed("tokens", tokens, units.TOKEN_SCALE)
        )

    def balance(self, address: str) -> int:
        """Token balance B_q in base units (1e-18 token)."""
        return int(self._view(self.token, "balanceOf", address))

    def energy(self, address: str) -> tuple[int, int]:
        """Energy bought and sold so far (E_q), in energy units."""
        return (
            int(self._view(self.market, "energy_bought", address)),
            int(self._view(self.market, "energy_sold", address)),
        )

    def credit(self, address: str) -> int:
        """Payments credited to a seller and not yet withdrawn."""
        return int(self._view(self.market, "credit", address))

    # -- rounds ---------------------------------------------------------------------------------

    def open_round(self, rsu: LocalAccount, params: RoundParams) -> int:
        """An RSU opens a round; returns its id."""
        distance = params.max_distance_km
        receipt = self._do(
            rsu,
            self.market,
            "open_round",
            params.t_limit,
            params.t_reveal,
            params.t_settle,
            units.to_fixed("v_floor", params.v_floor, units.PRICE_SCALE),
            units.to_fixed("c_ceiling", params.c_ceiling, units.PRICE_SCALE),
            units.to_fixed("l1", params.l1, units.LOSS_SCALE),
            units.to_fixed("l2", params.l2, units.LOSS_SCALE),
            0 if distance is None else units.to_fixed("max_distance_km", distance, 1000),
            units.to_fixed("deposit", params.deposit, units.TOKEN_SCALE),
        )
        (event,) = self.market.events.RoundOpened().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["round_id"])

    def approve_escrow(self, buyer: LocalAccount, tokens_base_units: int) -> TxReceipt:
        """Let the market contract take ``tokens_base_units`` into escrow."""
        return self._do(buyer, self.token, "approve", self.market.address, tokens_base_units)

    def post_request(
        self, account: LocalAccount, round_id: int, buyer: Buyer, *, rsu_pubkey: bytes | None = None
    ) -> SealedBid:
        """A buyer posts its request: public bounds, a commitment to v_i, and v_i sealed to the RSU.

        Approves the escrow (max(v_max * b_max, deposit), :meth:`request_lock`) first when the
        allowance is short.
        """
        v = units.to_fixed("v", buyer.v, units.PRICE_SCALE)
        v_max = units.to_fixed("v_max", buyer.v_max, units.PRICE_SCALE)
        b_max = units.to_fixed("b_max", buyer.b_max, units.ENERGY_SCALE)
        v_min = units.to_fixed("v_min", buyer.v_min, units.PRICE_SCALE)
        need, _ = self.request_lock(round_id, b_max, v_min, v_max)
        self._ensure_allowance(account, need)
        salt = new_salt()
        sealed = seal(rsu_pubkey, v, salt) if rsu_pubkey else b""
        receipt = self._do(
            account,
            self.market,
            "post_request",
            round_id,
            units.to_fixed("b_min", buyer.b_min, units.ENERGY_SCALE),
            b_max,
            v_min,
            v_max,
            units.to_fixed("w", buyer.w, units.W_SCALE),
            *_location(buyer.lat, buyer.lon),
            commitment(self.market.address, round_id, account.address, v, salt),
            sealed,
        )
        (event,) = self.market.events.RequestPosted().process_receipt(receipt, errors=DISCARD)
        return SealedBid(round_id, True, int(event["args"]["index"]), account.address, v, salt)

    def post_reply(
        self,
        account: LocalAccount,
        round_id: int,
        seller: Seller,
        *,
        rsu_pubkey: bytes | None = None,
    ) -> SealedBid:
        """A seller posts its reply: public bounds and energy, a commitment to c_j, c_j sealed.

        The reply reserves the seller's spare energy for this round and deposits tokens
        (:meth:`reply_deposit`); the deposit is approved first when the allowance is short.
        """
        c = units.to_fixed("c", seller.c, units.PRICE_SCALE)
        c_min = units.to_fixed("c_min", seller.c_min, units.PRICE_SCALE)
        c_max = units.to_fixed("c_max", seller.c_max, units.PRICE_SCALE)
        s_t = units.to_fixed("s_t", seller.s_t, units.ENERGY_SCALE)
        s_r = units.to_fixed("s_r", seller.s_r, units.ENERGY_SCALE)
        _, deposit = self.reply_deposit(round_id, account.address, c_min, c_max, s_t, s_r)
        self._ensure_allowance(account, deposit)
        salt = new_salt()
        sealed = seal(rsu_pubkey, c, salt) if rsu_pubkey else b""
        receipt = self._do(
            account,
            self.market,
            "post_reply",
            round_id,
            c_min,
            c_max,
            s_t,
            s_r,
            units.to_fixed("rho", seller.rho, units.RHO_SCALE),
            *_location(seller.lat, seller.lon),
            commitment(self.market.address, round_id, account.address, c, salt),
            sealed,
        )
        (event,) = self.market.events.ReplyPosted().process_receipt(receipt, errors=DISCARD)
        return SealedBid(round_id, False, int(event["args"]["index"]), account.address, c, salt)

    def reveal(self, account: LocalAccount, bid: SealedBid) -> TxReceipt:
        """The bidder reveals its own value after the bid window."""
        return self._do(
            account,
            self.market,
            "reveal",
            bid.round_id,
            bid.is_buyer,
            bid.index,
            bid.value,
            bid.salt,
        )

    def reveal_for(self, rsu: LocalAccount, bid: SealedBid) -> TxReceipt:
        """The RSU reveals a bidder's value (the commitment still binds it)."""
        return self._do(
            rsu,
            self.market,
            "reveal_for",
            bid.round_id,
            bid.is_buyer,
            bid.index,
            bid.value,
            bid.salt,
            gas=GAS["reveal"],
        )

    def reveal_sealed(self, rsu: LocalAccount, round_id: int) -> RevealReport:
        """The RSU opens every sealed, unrevealed bid of a round and reveals them in one batch.

        One ``reveal_for_many`` transaction per :data:`REVEAL_CHUNK` bids (one for any round of
        up to 64 bids per side), so the number of bids never decides who is revealed. Bids it
        could not reveal are reported: no sealed value, a ciphertext that does not open (found
        here), a value that does not match its commitment or its range (skipped by the
        contract, which reveals the others); those bids stay excluded.
        """
        view = self.round_view(round_id)
        skipped: list[SkippedBid] = []
        entries: list[tuple[bool, int, int, bytes]] = []
        owners: dict[tuple[bool, int], str] = {}
        bids: list[tuple[bool, int, str, bytes]] = [
            (True, q.index, q.buyer, q.sealed) for q in view.requests if q.value is None
        ] + [(False, p.index, p.seller, p.sealed) for p in view.replies if p.value is None]
        for is_buyer, index, bidder, sealed in bids:
            if not sealed:
                skipped.append(
                    SkippedBid(is_buyer, index, bidder, "no sealed value; the bidder must reveal")
                )
                continue
            try:
                value, salt = unseal(rsu.key, sealed)
            except LedgerError as exc:
                skipped.append(SkippedBid(is_buyer, index, bidder, str(exc)))
                continue
            entries.append((is_buyer, index, value, salt))
            owners[(is_buyer, index)] = bidder
        revealed: list[str] = []
        sent = 0
        for start in range(0, len(entries), REVEAL_CHUNK):
            chunk = entries[start : start + REVEAL_CHUNK]
            receipt = self._do(
                rsu,
                self.market,
                "reveal_for_many",
                round_id,
                chunk,
                gas=_REVEAL_BASE + _REVEAL_PER_BID * len(chunk),
            )
            sent += 1
            revealed += [
                str(e["args"]["bidder"])
                for e in self.market.events.Revealed().process_receipt(receipt, errors=DISCARD)
            ]
            for e in self.market.events.RevealSkipped().process_receipt(receipt, errors=DISCARD):
                a = e["args"]
                key = (bool(a["is_buyer"]), int(a["index"]))
                reason = _SKIP_REASONS.get(int(a["reason"]), f"reason {a['reason']}")
                skipped.append(SkippedBid(key[0], key[1], owners.get(key, a["bidder"]), reason))
        return RevealReport(tuple(revealed), tuple(skipped), sent)

    def settle(
        self, rsu: LocalAccount, round_id: int, trades: Sequence[tuple[int, int, int]]
    ) -> TxReceipt:
        """The RSU settles a round with (request index, reply index, energy units) triples."""
        sent = self.send_settle(rsu, round_id, trades)
        return self.chain.wait(sent)

    def send_settle(
        self,
        rsu: LocalAccount,
        round_id: int,
        trades: Sequence[tuple[int, int, int]],
        *,
        preflight: bool = True,
    ) -> Any:
        """:meth:`settle` without waiting for the block (for pipelining many rounds)."""
        data, gas = self.settle_calldata(round_id, trades)
        return self.send_settle_data(rsu, data, gas, preflight=preflight)

    def settle_calldata(
        self, round_id: int, trades: Sequence[tuple[int, int, int]]
    ) -> tuple[bytes, int]:
        """The ``settle`` calldata and its gas limit, encoded with eth-abi.

        web3's contract layer formats arguments element by element (0.6 s for 500 trades).
        """
        if len(trades) > 1024:
            raise LedgerError(
                f"field 'trades': at most 1024 trades per settlement, got {len(trades)}"
            )
        payload = [(int(i), int(j), int(e)) for i, j, e in trades]
        touched = len({t[0] for t in payload}) + len({t[1] for t in payload})
        gas = _SETTLE_BASE + _SETTLE_PER_TRADE * len(payload) + _SETTLE_PER_BID * touched
        data = _SETTLE_SELECTOR + encode(
            ["uint256", "(uint256,uint256,uint256)[]"], [round_id, payload]
        )
        return data, gas

    def send_settle_data(
        self, rsu: LocalAccount, data: bytes, gas: int, *, preflight: bool = True
    ) -> Any:
        """Send pre-encoded ``settle`` calldata (:meth:`settle_calldata`) without waiting."""
        return self.chain.send_data(
            rsu, self.market.address, data, gas, what="settle", preflight=preflight
        )

    def accept(
        self, account: LocalAccount, round_id: int, seller_index: int, energy_kwh: float
    ) -> TxReceipt:
        """The single buyer of a round accepts one seller's offer."""
        energy = units.to_fixed("energy", energy_kwh, units.ENERGY_SCALE)
        return self._do(account, self.market, "accept", round_id, seller_index, energy)

    def claim_refund(self, account: LocalAccount, round_id: int, index: int) -> TxReceipt:
        """A buyer takes back the unspent part of its escrow (less its deposit if unrevealed)."""
        return self._do(account, self.market, "claim_refund", round_id, index)

    def claim_deposit(self, account: LocalAccount, round_id: int, index: int) -> TxReceipt:
        """Close an unrevealed reply's deposit: back to credit if the round is void, else burned."""
        return self._do(account, self.market, "claim_deposit", round_id, index)

    # -- deposits and reservations --------------------------------------------------------------

    def _ensure_allowance(self, account: LocalAccount, need: int) -> None:
        if need <= 0:
            return
        allowance = int(self._view(self.token, "allowance", account.address, self.market.address))
        if allowance < need:
            self.approve_escrow(account, need)

    def request_lock(self, round_id: int, b_max: int, v_min: int, v_max: int) -> tuple[int, int]:
        """What a request takes (fixed-point arguments): ``(escrow, deposit)``, in base units.

        The escrow is max(ceil(v_max * b_max), deposit) and includes the deposit.
        """
        escrow, deposit = self._view(self.market, "request_lock", round_id, b_max, v_min, v_max)
        return int(escrow), int(deposit)

    def reply_deposit(
        self, round_id: int, seller: str, c_min: int, c_max: int, s_t: int, s_r: int
    ) -> tuple[int, int]:
        """What a reply would reserve and take now: ``(spare energy units, deposit base units)``.

        ``spare`` is 0 (and the reply would be refused) when the seller's open replies already
        reserve all that ``s_t - s_r`` declares.
        """
        spare, deposit = self._view(
            self.market, "reply_deposit", round_id, seller, c_min, c_max, s_t, s_r
        )
        return int(spare), int(deposit)

    def reply_deposit_for(self, round_id: int, seller: str, offer: Seller) -> int:
        """The deposit (base units) a reply of ``offer`` would take now (0 if it would fail)."""
        return self.reply_deposit(
            round_id,
            seller,
            units.to_fixed("c_min", offer.c_min, units.PRICE_SCALE),
            units.to_fixed("c_max", offer.c_max, units.PRICE_SCALE),
            units.to_fixed("s_t", offer.s_t, units.ENERGY_SCALE),
            units.to_fixed("s_r", offer.s_r, units.ENERGY_SCALE),
        )[1]

    def reserved_energy(self, seller: str) -> int:
        """Energy units the seller's open replies reserve (released when their rounds end)."""
        return int(self._view(self.market, "reserved_energy", seller))

    def round_void(self, round_id: int) -> bool:
        """True when the round's RSU was removed before settling it (every bid recovers)."""
        return bool(self._view(self.market, "round_void", round_id))

    def burned(self) -> int:
        """Forfeited deposits burned so far (base units)."""
        return int(self._view(self.market, "burned"))

    def withdraw(self, account: LocalAccount) -> TxReceipt:
        """A seller pulls its credited payments."""
        return self._do(account, self.market, "withdraw")

    # -- reading rounds back --------------------------------------------------------------------

    def round_count(self) -> int:
        """Rounds opened so far."""
        return int(self._view(self.market, "round_count"))

    def round_view(self, round_id: int) -> RoundView:
        """Rebuild a round from the chain's events (the chain is the source of truth)."""
        if not 0 <= round_id < self.round_count():
            raise LedgerError(f"field 'round_id': no round {round_id} on this market")
        logs = self._round_logs(round_id)
        (opened,) = logs["RoundOpened"]
        revealed = {(log["args"]["bidder"]): int(log["args"]["value"]) for log in logs["Revealed"]}
        requests = tuple(
            RequestView(
                index=int(a["index"]),
                buyer=a["buyer"],
                b_min=a["b_min"],
                b_max=a["b_max"],
                v_min=a["v_min"],
                v_max=a["v_max"],
                w=a["w"],
                lat=a["lat"],
                lon=a["lon"],
                commitment=bytes(a["commitment"]),
                escrow=a["escrow"],
                sealed=bytes(a["sealed"]),
                value=revealed.get(a["buyer"]),
                deposit=a["deposit"],
            )
            for a in (log["args"] for log in logs["RequestPosted"])
        )
        replies = tuple(
            ReplyView(
                index=int(a["index"]),
                seller=a["seller"],
                c_min=a["c_min"],
                c_max=a["c_max"],
                s_t=a["s_t"],
                s_r=a["s_t"] - a["spare"],
                rho=a["rho"],
                lat=a["lat"],
                lon=a["lon"],
                commitment=bytes(a["commitment"]),
                sealed=bytes(a["sealed"]),
                value=revealed.get(a["seller"]),
                spare=a["spare"],
                declared_s_r=a["s_r"],
                deposit=a["deposit"],
            )
            for a in (log["args"] for log in logs["ReplyPosted"])
        )
        trades = tuple(
            TradeView(
                buyer=log["args"]["buyer"],
                seller=log["args"]["seller"],
                energy=log["args"]["energy"],
                buyer_price=log["args"]["buyer_price"],
                seller_price=log["args"]["seller_price"],
                price=log["args"]["price"],
                payment=log["args"]["payment"],
                block=int(log["blockNumber"]),
                tx_hash=log["transactionHash"].to_0x_hex(),
            )
            for log in logs["TradeSettled"]
        )
        settled = bool(logs["RoundSettled"])
        a = opened["args"]
        return RoundView(
            round_id=round_id,
            rsu=a["rsu"],
            deadline=a["deadline"],
            reveal_deadline=a["reveal_deadline"],
            settle_deadline=a["settle_deadline"],
            v_floor=a["v_floor"],
            c_ceiling=a["c_ceiling"],
            l1=a["l1"],
            l2=a["l2"],
            max_distance_m=a["max_distance_m"],
            requests=requests,
            replies=replies,
            trades=trades,
            settled=settled,
            deposit=a["deposit"],
        )

    _ROUND_EVENTS = (
        "RoundOpened",
        "RequestPosted",
        "ReplyPosted",
        "Revealed",
        "TradeSettled",
        "RoundSettled",
    )

    def _round_logs(self, round_id: int) -> dict[str, list[Any]]:
        """Every event of one round, decoded, in one ``eth_getLogs`` over the round's blocks.

        The round records its first and settlement blocks, so the query never scans the whole
        history (eth-tester walks every block of the range it is given).
        """
        record = self._view(self.market, "rounds", round_id)
        opened_block, settled_block = int(record[-2]), int(record[-1])
        events = {name: getattr(self.market.events, name)() for name in self._ROUND_EVENTS}
        by_topic = {bytes(HexBytes(e.topic)): e for e in events.values()}
        raw = self.chain.logs(
            {
                "address": self.market.address,
                "fromBlock": opened_block,
                "toBlock": settled_block if settled_block else "latest",
                "topics": [None, "0x" + round_id.to_bytes(32, "big").hex()],
            }
        )
        out: dict[str, list[Any]] = {name: [] for name in self._ROUND_EVENTS}
        for log in raw:
            event = by_topic.get(bytes(log["topics"][0]))
            if event is not None:
                out[event.event_name].append(event.process_log(log))
        return out


def _location(lat: float | None, lon: float | None) -> tuple[int, int]:
    if lat is None or lon is None:
        return 0, 0
    return (
        units.to_fixed("lat", lat, units.DEGREE_SCALE, signed=True),
        units.to_fixed("lon", lon, units.DEGREE_SCALE, signed=True),
    )


if TYPE_CHECKING:  # mypy checks that the adapter implements the settlement layer's port

    def _implements_port(ledger: Ledger) -> LedgerPort[LocalAccount]:
        return ledger


__all__ = [
    "GAS",
    "Deployment",
    "Ledger",
    "plate_hash",
    "public_key",
]
