"""Storage on both databases: migrations match the schema, leases use database time, wake-ups."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from accord.core import TenantId
from accord.storage import Database
from accord.storage import runs as run_store
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


@pytest.mark.postgres
def test_workers_survive_lost_database_connections(postgres_server: str) -> None:
    from accord.connectors import CapabilityRegistry
    from accord.journeys import load_journey_text
    from accord.service import Settings, build
    from tests.capabilities import Calls, register_test_capabilities
    from tests.governance import PERMIT_ALL, deploy_policies

    registry = CapabilityRegistry()
    register_test_capabilities(registry, Calls())
    accord = build(
        Settings(database_url=postgres_server, poll_interval=0.05), capabilities=registry
    )
    deploy_policies(accord, PERMIT_ALL)
    accord.runtime.catalog.deploy(
        "default",
        load_journey_text(
            "journey: reconnect\nblocks:\n"
            "  - {id: a, kind: task, capability: test.echo}\n"
            "  - {id: pause, kind: wait, timer: 0.2}\n"
            "  - {id: b, kind: task, capability: test.echo}\n"
        ),
    )
    worker = accord.runtime.worker(poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop})
    thread.start()
    run_ids = [accord.runtime.start("default", "reconnect").run_id for _ in range(20)]
    killer = Database(postgres_server)
    try:
        for _ in range(3):
            with killer.transaction() as connection:
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            threading.Event().wait(0.3)
        observer = Database(postgres_server)
        for _ in range(200):
            with observer.read() as connection:
                statuses = {
                    record.status
                    for r in run_ids
                    if (record := run_store.get_run(connection, TenantId("default"), r))
                }
            if statuses == {"completed"}:
                break
            threading.Event().wait(0.1)
        observer.dispose()
    finally:
        stop.set()
        thread.join(30)
        killer.dispose()
    assert statuses == {"completed"}
    assert worker.stats.database_errors >= 1
    accord.close()
    checker = Database(postgres_server)
    with checker.read() as connection:
        for run_id in run_ids:
            seqs = [e.seq for e in run_store.history(connection, TenantId("default"), run_id)]
            assert seqs == list(range(1, len(seqs) + 1))
    checker.dispose()
