"""PostgreSQL specifics: psycopg 3 engine, database time, and ``LISTEN/NOTIFY`` wake-ups.

Claims use ``FOR UPDATE SKIP LOCKED`` (see ``_transitions.claim_runs``), so any number of
workers on any number of machines can share one database without coordinating among themselves.
"""

from __future__ import annotations

import threading

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

DB_NOW = "extract(epoch from clock_timestamp())::double precision"
CHANNEL = "accord_runs"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and select the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The URL in the form libpq accepts, for the dedicated LISTEN connection."""
    return "postgresql://" + normalise_url(url)[len("postgresql+psycopg://") :]


def create_engine(url: str) -> Engine:
    # No pre-ping: it costs a round trip per transaction. A connection found dead is invalidated
    # by SQLAlchemy when it fails, and workers retry the round from committed state.
    return sa.create_engine(normalise_url(url), pool_size=8, max_overflow=8)


def advisory_xact_lock(connection: Connection, key: str) -> None:
    """Hold a transaction-scoped lock named by ``key`` until commit or rollback."""
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def notify(connection: Connection) -> None:
    """Queue a wake-up; PostgreSQL delivers it when the surrounding transaction commits."""
    connection.exec_driver_sql(f"NOTIFY {CHANNEL}")


class ListenWaker:
    """Blocks a worker until another session commits a ``NOTIFY`` on the runs channel."""

    def __init__(self, url: str) -> None:
        self._url = libpq_url(url)
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _listen(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._url, autocommit=True)
            self._connection.execute(f"LISTEN {CHANNEL}")
        return self._connection

    def notify(self) -> None:
        """In-process wake-ups travel through the database like any other."""

    def wait(self, timeout: float) -> bool:
        if self._closed:
            return False
        with self._lock:
            try:
                connection = self._listen()
                for _ in connection.notifies(timeout=timeout, stop_after=1):
                    return True
            except psycopg.OperationalError:
                self._connection = None
        return False

    def close(self) -> None:
        self._closed = True
        if self._connection is not None:
            self._connection.close()
