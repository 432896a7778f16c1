"""Storage on both databases: migrations match the schema, leases use database time, wake-ups."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from accord.storage import Database
from accord.storage._schema import metadata, runs


def test_migrations_produce_exactly_the_declared_schema(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, metadata) == []
    db.migrate()
    db.dispose()


def test_sqlite_is_durable_by_default(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/a.db")
    with db.read() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    db.dispose()


def test_database_time_decides_leases(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    with db.read() as connection:
        now = connection.execute(sa.select(db.db_now())).scalar_one()
    assert isinstance(now, float) and now > 1_700_000_000
    db.dispose()


@pytest.mark.postgres
def test_listen_notify_wakes_a_sleeping_worker(postgres_server: str) -> None:
    db = Database(postgres_server)
    waker = db.waker()
    woke: list[bool] = []
    waker.wait(0.01)
    thread = threading.Thread(target=lambda: woke.append(waker.wait(60)))
    thread.start()
    with db.transaction() as connection:
        connection.execute(sa.select(sa.func.count()).select_from(runs))
        db.notify_ready(connection)
    thread.join(30)
    waker.close()
    db.dispose()
    assert woke == [True]
