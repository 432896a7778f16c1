"""The database handle: engine, transactions, database time, migrations and wake-ups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from accord.errors import ConfigurationError
from accord.storage import _postgres, _sqlite

Backend = Literal["sqlite", "postgresql"]

_MIGRATIONS = Path(__file__).parent / "migrations"


class Waker(Protocol):
    """Lets idle workers sleep until a run may have become ready."""

    def notify(self) -> None: ...

    def wait(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class Database:
    """One database, SQLite or PostgreSQL, behind the same interface.

    Args:
        url: an SQLAlchemy URL, e.g. ``sqlite:///accord.db`` or ``postgresql://host/db``.
        sqlite_synchronous: SQLite's ``synchronous`` pragma; ``FULL`` keeps every commit durable.
        busy_timeout_ms: how long a SQLite writer waits for the write lock.
    """

    def __init__(
        self, url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 30_000
    ) -> None:
        self.url = url
        if url.startswith("sqlite"):
            if url in ("sqlite://", "sqlite:///:memory:"):
                raise ConfigurationError(
                    "in-memory SQLite cannot be shared by workers",
                    hint="use a file URL such as sqlite:///accord.db",
                )
            if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
                raise ConfigurationError(
                    f"unknown SQLite synchronous mode {sqlite_synchronous!r}",
                    hint="use FULL (default), EXTRA, NORMAL or OFF",
                )
            self.backend: Backend = "sqlite"
            self.engine: Engine = _sqlite.create_engine(
                url, synchronous=sqlite_synchronous.upper(), busy_timeout_ms=busy_timeout_ms
            )
            self._now_sql = _sqlite.DB_NOW
        elif url.startswith(("postgresql", "postgres")):
            self.backend = "postgresql"
            self.engine = _postgres.create_engine(url)
            self._now_sql = _postgres.DB_NOW
        else:
            raise ConfigurationError(
                f"unsupported database URL {url!r}",
                hint="use sqlite:///path/to/accord.db or postgresql://user@host/dbname",
            )
        self._local_waker = _sqlite.LocalWaker()
        self._db_now = sa.literal_column(self._now_sql, sa.Float)

    def db_now(self) -> sa.ColumnElement[float]:
        """The database's clock, in epoch seconds. Leases are judged by it alone."""
        return self._db_now

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A read-write transaction; SQLite takes the write lock at ``BEGIN``."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction with a consistent snapshot."""
        with self.engine.connect() as plain:
            connection = plain.execution_options(accord_read_only=True)
            with connection.begin():
                yield connection

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """A connection for one read statement, which sees one consistent state by itself.

        PostgreSQL runs it outside a transaction (one round trip instead of three); SQLite reads
        in a read transaction, which costs nothing over a wire.
        """
        if self.backend == "postgresql":
            with self.engine.connect() as plain:
                yield plain.execution_options(isolation_level="AUTOCOMMIT")
        else:
            with self.read() as connection:
                yield connection

    def notify_ready(self, connection: Connection) -> None:
        """Announce, on commit, that some run became ready."""
        if self.backend == "postgresql":
            _postgres.notify(connection)
        self._local_waker.notify()

    def waker(self) -> Waker:
        """A waker for one worker loop (PostgreSQL: its own LISTEN connection)."""
        if self.backend == "postgresql":
            return _postgres.ListenWaker(self.url)
        return self._local_waker

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to call from many processes)."""
        from alembic import command  # noqa: PLC0415 - alembic is only needed here
        from alembic.config import Config  # noqa: PLC0415

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as connection:
            if self.backend == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7251946027)")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()
