"""The service's off-chain state in embedded SQLite: vehicles, their wallets, and the round index.

The chain stays the source of truth: the ``rounds`` table is an index rebuilt from chain events at
start-up (:meth:`Store.replace_rounds`), so a restarted service shows the same history. Wallets
(encrypted keystores of the vehicles that chose the built-in wallet) live only here.
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
"""


@dataclass(frozen=True, slots=True)
class VehicleRow:
    address: str
    name: str
    plate: str
    keystore: dict[str, Any] | None
    lat: float | None
    lon: float | None


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

    def close(self) -> None:
        with self._lock:
            self._conn.close()
