"""The service's off-chain state in embedded SQLite: vehicles, their wallets, and the round index.

The chain stays the source of truth: the ``rounds`` table is an index rebuilt from chain events at
start-up (:meth:`Store.replace_rounds`), so a restarted service shows the same history. Wallets
(encrypted keystores of the vehicles that chose the built-in wallet) live only here, and so does
each vehicle's history of the transactions the service sent for it (``transactions``: what, the
tokens it moved, its hash, block and status on chain, :mod:`evtrade.service.history`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vehicles (
    address TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plate TEXT NOT NULL,
    keystore TEXT,
    lat REAL,
    lon REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS used_requests (
    digest TEXT PRIMARY KEY,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS used_requests_by_time ON used_requests (timestamp);
CREATE TABLE IF NOT EXISTS faucet (
    address TEXT PRIMARY KEY,
    tokens REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round_id INTEGER PRIMARY KEY,
    view TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    kind TEXT NOT NULL,
    what TEXT NOT NULL,
    tokens REAL,
    round_id INTEGER,
    tx TEXT,
    block INTEGER,
    status TEXT NOT NULL,
    detail TEXT,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_by_address ON transactions (address);
"""


@dataclass(frozen=True, slots=True)
class VehicleRow:
    address: str
    name: str
    plate: str
    keystore: dict[str, Any] | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class TxEntry:
    """One transaction in a vehicle's history: ``tokens`` is what it moved in or out of the
    vehicle's wallet (negative: out; None: nothing), ``status`` pending, confirmed or failed."""

    address: str
    kind: str
    what: str
    tokens: float | None = None
    round_id: int | None = None
    tx: str | None = None
    block: int | None = None
    status: str = "pending"
    detail: str | None = None


class Store:
    """Thread-safe access to ``service.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        # One plate, one vehicle. A database from before this rule may hold duplicates: then
        # the index cannot be built and Rsu's check under its lock is the only one.
        with contextlib.suppress(sqlite3.IntegrityError):
            self._conn.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS vehicles_plate ON vehicles(plate)"
            )
        self._lock = threading.Lock()

    def add_vehicle(self, row: VehicleRow) -> bool:
        """Insert a vehicle; False if its address or plate is already there."""
        with self._lock:
            if self._conn.execute(
                "SELECT 1 FROM vehicles WHERE lower(address) = lower(?) OR plate = ?",
                (row.address, row.plate),
            ).fetchone():
                return False
            try:
                self._insert_vehicle(row)
            except sqlite3.IntegrityError:
                return False
            return True

    def _insert_vehicle(self, row: VehicleRow) -> None:
        self._conn.execute(
            "INSERT INTO vehicles VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.address,
                row.name,
                row.plate,
                json.dumps(row.keystore) if row.keystore else None,
                row.lat,
                row.lon,
                time.time(),
            ),
        )

    def vehicle(self, address: str) -> VehicleRow | None:
        with self._lock:
            r = self._conn.execute(
                "SELECT address, name, plate, keystore, lat, lon FROM vehicles"
                " WHERE lower(address) = lower(?)",
                (address,),
            ).fetchone()
        if r is None:
            return None
        return VehicleRow(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, r[4], r[5])

    def vehicles(self) -> list[VehicleRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT address, name, plate, keystore, lat, lon FROM vehicles ORDER BY created"
            ).fetchall()
        return [
            VehicleRow(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, r[4], r[5])
            for r in rows
        ]

    def plate_taken(self, plate: str) -> bool:
        with self._lock:
            return (
                self._conn.execute("SELECT 1 FROM vehicles WHERE plate = ?", (plate,)).fetchone()
                is not None
            )

    def address_taken(self, address: str) -> bool:
        with self._lock:
            return (
                self._conn.execute(
                    "SELECT 1 FROM vehicles WHERE lower(address) = lower(?)", (address,)
                ).fetchone()
                is not None
            )

    def use_request(self, digest: str, timestamp: int, forget_before: int) -> bool:
        """Record a signed request by the digest of what was signed; False for a replay.

        Rows older than ``forget_before`` are dropped: their timestamps are refused anyway.
        """
        with self._lock:
            self._conn.execute("DELETE FROM used_requests WHERE timestamp < ?", (forget_before,))
            try:
                self._conn.execute("INSERT INTO used_requests VALUES (?, ?)", (digest, timestamp))
            except sqlite3.IntegrityError:
                return False
            return True

    def faucet_given(self, address: str) -> float:
        """Tokens the development faucet has minted to ``address`` so far."""
        with self._lock:
            r = self._conn.execute(
                "SELECT tokens FROM faucet WHERE address = ?", (address.lower(),)
            ).fetchone()
        return float(r[0]) if r else 0.0

    def faucet_add(self, address: str, tokens: float) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO faucet VALUES (?, ?)"
                " ON CONFLICT(address) DO UPDATE SET tokens = tokens + excluded.tokens",
                (address.lower(), tokens),
            )

    def put_round(self, round_id: int, view: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO rounds VALUES (?, ?)", (round_id, json.dumps(view))
            )

    def replace_rounds(self, views: dict[int, dict[str, Any]]) -> None:
        """Rebuild the round index (start-up, from chain events)."""
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute("DELETE FROM rounds")
            self._conn.executemany(
                "INSERT INTO rounds VALUES (?, ?)", [(k, json.dumps(v)) for k, v in views.items()]
            )
            self._conn.execute("COMMIT")

    def rounds(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT view FROM rounds ORDER BY round_id DESC").fetchall()
        return [json.loads(r[0]) for r in rows]

    def round(self, round_id: int) -> dict[str, Any] | None:
        with self._lock:
            r = self._conn.execute(
                "SELECT view FROM rounds WHERE round_id = ?", (round_id,)
            ).fetchone()
        return json.loads(r[0]) if r else None

    def add_tx(self, entry: TxEntry) -> int:
        """Record a transaction the service is about to send for a vehicle; its row id."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO transactions (address, kind, what, tokens, round_id, tx, block,"
                " status, detail, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.address.lower(),
                    entry.kind,
                    entry.what,
                    entry.tokens,
                    entry.round_id,
                    entry.tx,
                    entry.block,
                    entry.status,
                    entry.detail,
                    time.time(),
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_tx(
        self, row: int, status: str, *, tx: str | None, block: int | None, detail: str | None
    ) -> None:
        """A recorded transaction was mined (``confirmed`` or ``failed``) or refused."""
        with self._lock:
            self._conn.execute(
                "UPDATE transactions SET status = ?, tx = ?, block = ?, detail = ? WHERE id = ?",
                (status, tx, block, detail, row),
            )

    def history(self, address: str) -> list[dict[str, Any]]:
        """The vehicle's recorded transactions, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, what, tokens, round_id, tx, block, status, detail, time"
                " FROM transactions WHERE address = ? ORDER BY id DESC",
                (address.lower(),),
            ).fetchall()
        keys = ("kind", "what", "tokens", "round_id", "tx", "block", "status", "detail", "time")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def confirmed(self, kind: str, round_id: int, address: str | None = None) -> bool:
        """True when a ``kind`` transaction of the round (by ``address``, if given) was mined."""
        sql = "SELECT 1 FROM transactions WHERE kind = ? AND round_id = ? AND status = 'confirmed'"
        args: tuple[Any, ...] = (kind, round_id)
        if address is not None:
            sql += " AND address = ?"
            args += (address.lower(),)
        with self._lock:
            return self._conn.execute(sql, args).fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
