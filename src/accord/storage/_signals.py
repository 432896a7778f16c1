"""Signals, waits and parked events: the inboxes of runs.

A signal names its run, or only an event name and correlation key; such an event is parked
until a run waits for that key. ``signal()`` and the commit that registers a correlated wait
take the same lock (PostgreSQL advisory lock; SQLite transactions are serial), so an event
can never slip between them.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage import _postgres
from accord.storage._records import (
    ACTIVE,
    CommitResult,
    NewWait,
    SignalKind,
    SignalRecord,
    TransitionWrite,
    json_text,
)
from accord.storage._schema import runs, signals, waits


def pending_signals(connection: Connection, tenant: str, run_id: str) -> list[SignalRecord]:
    """Signals addressed to the run and not yet consumed, oldest first."""
    query = (
        sa.select(signals)
        .where(
            signals.c.tenant_id == tenant,
            signals.c.run_id == run_id,
            signals.c.consumed_seq.is_(None),
        )
        .order_by(signals.c.received_at, signals.c.signal_id)
    )
    return [_signal(r) for r in connection.execute(query).mappings()]


def parked_signals(
    connection: Connection, tenant: str, name: str, correlation_key: str
) -> list[SignalRecord]:
    """Events that arrived for a correlation key before any run waited for them."""
    query = (
        sa.select(signals)
        .where(
            signals.c.tenant_id == tenant,
            signals.c.run_id.is_(None),
            signals.c.kind == "event",
            signals.c.name == name,
            signals.c.correlation_key == correlation_key,
            signals.c.consumed_seq.is_(None),
        )
        .order_by(signals.c.received_at, signals.c.signal_id)
    )
    return [_signal(r) for r in connection.execute(query).mappings()]


def _signal(row: RowMapping) -> SignalRecord:
    return SignalRecord(
        signal_id=row["signal_id"],
        run_id=row["run_id"],
        kind=row["kind"],
        name=row["name"],
        correlation_key=row["correlation_key"],
        payload=json.loads(row["payload"]),
        received_at=row["received_at"],
    )


def waiting_runs(
    connection: Connection, tenant: TenantId, name: str, correlation_key: str
) -> list[str]:
    query = sa.select(waits.c.run_id).where(
        waits.c.tenant_id == tenant,
        waits.c.name == name,
        waits.c.correlation_key == correlation_key,
    )
    return list(connection.execute(query).scalars())


def insert_signal(
    connection: Connection,
    *,
    signal_id: str,
    tenant: str,
    run_id: str | None,
    kind: SignalKind,
    name: str,
    payload: dict[str, Any],
    correlation_key: str | None,
    at: float,
) -> None:
    """Store a signal; if it names a run, bump that run's inbox and make it ready."""
    connection.execute(
        signals.insert().values(
            signal_id=signal_id,
            tenant_id=tenant,
            run_id=run_id,
            kind=kind,
            name=name,
            correlation_key=correlation_key,
            payload=json_text(payload),
            received_at=at,
        )
    )
    if run_id is not None:
        wake_run(connection, tenant, run_id, at)


def wake_run(connection: Connection, tenant: str, run_id: str, at: float) -> None:
    waiting = runs.c.status == "waiting"
    connection.execute(
        runs.update()
        .where(
            runs.c.tenant_id == tenant,
            runs.c.run_id == run_id,
            runs.c.status.in_(ACTIVE),
        )
        .values(
            inbox_version=runs.c.inbox_version + 1,
            status=sa.case((waiting, "ready"), else_=runs.c.status),
            wake_at=sa.case((waiting, at), else_=runs.c.wake_at),
        )
    )


def correlation_lock_key(tenant: str, name: str, correlation_key: str) -> str:
    return f"{tenant}\x1f{name}\x1f{correlation_key}"


def lock_correlation(connection: Connection, key: str) -> None:
    if connection.dialect.name == "postgresql":
        _postgres.advisory_xact_lock(connection, key)


def consume(connection: Connection, w: TransitionWrite, result: CommitResult) -> bool:
    """Mark the write's signals consumed; False if any was consumed by someone else first."""
    outcome = connection.execute(
        signals.update()
        .where(
            signals.c.tenant_id == w.tenant_id,
            signals.c.signal_id.in_(w.signals_consumed),
            signals.c.consumed_seq.is_(None),
            sa.or_(signals.c.run_id.is_(None), signals.c.run_id == w.run_id),
        )
        .values(consumed_seq=result.seq, consumed_at=w.at, run_id=w.run_id)
    )
    return outcome.rowcount == len(set(w.signals_consumed))


def claim_parked(connection: Connection, w: TransitionWrite, wait: NewWait) -> None:
    """Hand the run an event that was parked for its key while this transition was computed."""
    parked = connection.execute(
        sa.select(signals.c.signal_id)
        .where(
            signals.c.tenant_id == w.tenant_id,
            signals.c.run_id.is_(None),
            signals.c.kind == "event",
            signals.c.name == wait.name,
            signals.c.correlation_key == wait.correlation_key,
            signals.c.consumed_seq.is_(None),
        )
        .order_by(signals.c.received_at, signals.c.signal_id)
        .limit(1)
    ).scalar()
    if parked is not None:
        connection.execute(
            signals.update().where(signals.c.signal_id == parked).values(run_id=w.run_id)
        )
        wake_run(connection, w.tenant_id, w.run_id, w.at)


def run_signals(connection: Connection, tenant: str, run_id: str) -> list[SignalRecord]:
    """Every signal addressed to the run, consumed or not, oldest first (what a replay feeds
    a shadow of the run)."""
    query = (
        sa.select(signals)
        .where(signals.c.tenant_id == tenant, signals.c.run_id == run_id)
        .order_by(signals.c.received_at, signals.c.signal_id)
    )
    return [_signal(r) for r in connection.execute(query).mappings()]
