"""SQLite specifics: pragmas, ``BEGIN IMMEDIATE``, database time, and in-process wake-ups."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

DB_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def create_engine(url: str, *, synchronous: str, busy_timeout_ms: int) -> Engine:
    """An engine whose transactions start with ``BEGIN IMMEDIATE`` (or ``BEGIN`` when read-only).

    The driver's own transaction handling is switched off so that SQLAlchemy's ``begin`` event
    decides how each transaction starts: writers take the write lock up front and never fail
    halfway with ``SQLITE_BUSY`` on lock upgrade.
    """
    engine = sa.create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=False)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("accord_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class LocalWaker:
    """Wakes in-process workers when a run becomes ready; other processes poll."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._condition:
            start = self._generation
            self._condition.wait_for(lambda: self._generation != start, timeout=timeout)
            return self._generation != start

    def close(self) -> None:
        """The waker is shared by every worker of the process; it stays open."""
