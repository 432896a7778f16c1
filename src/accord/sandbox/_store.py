"""One sandbox service's SQLite database: pragmas, transactions and the tables every service has.

A service owns one file. Handlers run in uvicorn's thread pool, so the single connection is shared
behind a lock and every unit of work is one ``BEGIN IMMEDIATE`` transaction: an effect, its effect
log entry and its stored idempotent response commit together or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Seeder = Callable[[sqlite3.Connection], None]

_COMMON_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    operation TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    status INTEGER,
    body TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (operation, key)
);
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    idempotency_key TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_by_operation ON effects (operation, seq);
"""


class Store:
    """A service's database file, created and seeded on first open and reused afterwards.

    Args:
        path: the SQLite file.
        schema: the service's own ``CREATE TABLE IF NOT EXISTS`` statements.
        seed: fills the service's tables; runs once per file, in the transaction that marks the
            file seeded, so an interrupted first start seeds again on the next.
    """

    def __init__(self, path: Path, *, schema: str, seed: Seeder) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = NORMAL")
        self._connection.execute("PRAGMA foreign_keys = ON")
        self._connection.executescript(_COMMON_SCHEMA + schema)
        with self.transaction() as tx:
            seeded = tx.execute("SELECT 1 FROM sandbox_meta WHERE name = 'seeded'").fetchone()
            if seeded is None:
                seed(tx)
                tx.execute("INSERT INTO sandbox_meta (name, value) VALUES ('seeded', '1')")
            # A request in flight when the process stopped never committed its effect: the key
            # is free again.
            tx.execute("DELETE FROM idempotency WHERE state = 'in_flight'")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One serialised transaction: commits when the block ends, rolls back if it raises."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (the file stays)."""
        with self._lock:
            self._connection.close()
