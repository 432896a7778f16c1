"""Runs and their history: insert, read and list, always within one tenant."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core import TenantId
from accord.storage._records import (
    ACTIVE,
    HistoryEntry,
    HistoryEvent,
    NewEvent,
    NewRun,
    NewTimer,
    RunRecord,
    json_text,
)
from accord.storage._schema import outbox, runs, timers, transitions

_INSERT_RUN = runs.insert()
INSERT_HISTORY = transitions.insert()
_INSERT_OUTBOX = outbox.insert()


def insert_run(connection: Connection, run: NewRun, outbox_events: Sequence[NewEvent]) -> None:
    """Insert a new run ready to be claimed, with its first history entry and events."""
    connection.execute(
        _INSERT_RUN,
        {
            "run_id": run.run_id,
            "tenant_id": run.tenant_id,
            "journey_name": run.journey_name,
            "journey_version": run.journey_version,
            "subject_id": run.subject_id,
            "status": "ready",
            "outcome": None,
            "error": None,
            "input": json_text(run.input),
            "state": run.state,
            "seq": 1,
            "inbox_version": 0,
            "wake_at": run.at,
            "lease_owner": None,
            "lease_token": 0,
            "lease_expires_at": None,
            "idempotency_key": run.idempotency_key,
            "request_digest": run.request_digest,
            "parent_run_id": run.parent_run_id,
            "parent_token": run.parent_token,
            "created_at": run.at,
            "updated_at": run.at,
            "ended_at": None,
            "traceparent": run.traceparent,
        },
    )
    connection.execute(
        INSERT_HISTORY,
        history_rows(run.tenant_id, run.run_id, 1, [run.started], run.at, None, 0),
    )
    insert_outbox(
        connection,
        run.tenant_id,
        run.run_id,
        1,
        outbox_events,
        run.at,
        subject_id=run.subject_id,
        traceparent=run.traceparent,
    )


def history_rows(
    tenant: str,
    run_id: str,
    first_seq: int,
    events: Sequence[HistoryEvent],
    at: float,
    worker: str | None,
    lease_token: int,
) -> list[dict[str, Any]]:
    """Rows of the transitions table for ``events``, numbered from ``first_seq``."""
    return [
        {
            "run_id": run_id,
            "seq": first_seq + i,
            "tenant_id": tenant,
            "at": at,
            "kind": e.kind,
            "block": e.block,
            "visit": e.visit,
            "attempt": e.attempt,
            "detail": json_text(e.detail),
            "worker": worker,
            "lease_token": lease_token,
        }
        for i, e in enumerate(events)
    ]


def derived_event_id(*parts: str) -> str:
    """An event id fixed by what it announces (for changes that have an id of their own)."""
    return "evt_" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def insert_outbox(
    connection: Connection,
    tenant: str,
    run_id: str | None,
    run_seq: int | None,
    events: Sequence[NewEvent],
    at: float,
    *,
    subject_id: str | None = None,
    traceparent: str | None = None,
) -> None:
    """Write ``events`` to the outbox in the caller's transaction, numbered in order.

    ``subject_id`` and ``traceparent`` apply to events that name no subject of their own.
    """
    if not events:
        return
    connection.execute(
        _INSERT_OUTBOX,
        [
            {
                "event_id": e.event_id,
                "tenant_id": tenant,
                "run_id": run_id,
                "run_seq": run_seq,
                "type": e.type,
                "payload": json_text(e.payload),
                "created_at": at,
                "position": i,
                "subject_id": e.subject_id or subject_id,
                "traceparent": traceparent,
            }
            for i, e in enumerate(events)
        ],
    )


def get_run(connection: Connection, tenant: TenantId, run_id: str) -> RunRecord | None:
    row = (
        connection.execute(
            sa.select(runs).where(runs.c.tenant_id == tenant, runs.c.run_id == run_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def find_run_by_key(connection: Connection, tenant: TenantId, key: str) -> RunRecord | None:
    row = (
        connection.execute(
            sa.select(runs).where(runs.c.tenant_id == tenant, runs.c.idempotency_key == key)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def list_runs(
    connection: Connection,
    tenant: TenantId,
    *,
    journey: str | None = None,
    status: str | None = None,
    subject: str | None = None,
    limit: int = 50,
    before: tuple[float, str] | None = None,
) -> list[RunRecord]:
    """Runs newest first; ``before`` is the (created_at, run_id) cursor of the last page."""
    query = sa.select(runs).where(runs.c.tenant_id == tenant)
    if journey:
        query = query.where(runs.c.journey_name == journey)
    if status:
        query = query.where(runs.c.status == status)
    if subject:
        query = query.where(runs.c.subject_id == subject)
    if before is not None:
        query = query.where(
            sa.or_(
                runs.c.created_at < before[0],
                sa.and_(runs.c.created_at == before[0], runs.c.run_id < before[1]),
            )
        )
    query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
    return [RunRecord.from_row(r) for r in connection.execute(query).mappings()]


def next_wake_at(connection: Connection, tenant: TenantId) -> float | None:
    """When the tenant's earliest active run is next due (now, for ready runs)."""
    query = sa.select(sa.func.min(runs.c.wake_at)).where(
        runs.c.tenant_id == tenant, runs.c.status.in_(ACTIVE)
    )
    value = connection.execute(query).scalar()
    return None if value is None else float(value)


def history(connection: Connection, tenant: TenantId, run_id: str) -> list[HistoryEntry]:
    query = (
        sa.select(transitions)
        .where(transitions.c.tenant_id == tenant, transitions.c.run_id == run_id)
        .order_by(transitions.c.seq)
    )
    return [
        HistoryEntry(
            run_id=r["run_id"],
            seq=r["seq"],
            at=r["at"],
            kind=r["kind"],
            block=r["block"],
            visit=r["visit"],
            attempt=r["attempt"],
            detail=json.loads(r["detail"]),
            worker=r["worker"],
        )
        for r in connection.execute(query).mappings()
    ]


def timers_of(connection: Connection, tenant: TenantId, run_id: str) -> list[NewTimer]:
    query = (
        sa.select(timers)
        .where(timers.c.tenant_id == tenant, timers.c.run_id == run_id)
        .order_by(timers.c.fire_at)
    )
    return [
        NewTimer(r["timer_id"], r["token"], r["purpose"], r["fire_at"])
        for r in connection.execute(query).mappings()
    ]


def wake_held(connection: Connection, tenant: str, at: float) -> int:
    """Make every run holding for a kill switch due at ``at``, so it asks the gateway again."""
    held = sa.select(timers.c.run_id).where(
        timers.c.tenant_id == tenant, timers.c.purpose == "hold"
    )
    result = connection.execute(
        runs.update()
        .where(
            runs.c.tenant_id == tenant,
            runs.c.status == "waiting",
            runs.c.run_id.in_(held),
        )
        .values(wake_at=at)
    )
    return result.rowcount
