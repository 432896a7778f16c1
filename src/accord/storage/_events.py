"""The outbox as the dispatcher and operators see it: pending events per sink, delivery
state, sink leases, and the tenant's event log.

An event is pending for a sink until the sink has a final delivery row for it (``delivered``,
``skipped`` or ``dead``); ``outbox.dispatched_at`` is set once every configured sink has one,
so the pending query never walks the delivered past.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.storage._schema import event_deliveries, event_sinks, outbox

DeliveryStatus = Literal["pending", "delivered", "skipped", "dead"]
FINAL: tuple[str, ...] = ("delivered", "skipped", "dead")


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One stored domain event."""

    event_id: str
    tenant_id: str
    type: str
    payload: dict[str, Any]
    created_at: float
    run_id: str | None
    run_seq: int | None
    position: int
    subject_id: str | None
    traceparent: str | None
    dispatched_at: float | None

    @property
    def ordering_key(self) -> str:
        """Events with one key are delivered in order: a run's events, else the event alone."""
        return self.run_id or self.event_id


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where one event stands with one sink."""

    sink: str
    event_id: str
    tenant_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event a sink still has to take, with its earlier attempts (if any)."""

    event: OutboxEvent
    attempts: int
    next_attempt_at: float | None


def _event(row: RowMapping) -> OutboxEvent:
    return OutboxEvent(
        event_id=row["event_id"],
        tenant_id=row["tenant_id"],
        type=row["type"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        run_id=row["run_id"],
        run_seq=row["run_seq"],
        position=row["position"],
        subject_id=row["subject_id"],
        traceparent=row["traceparent"],
        dispatched_at=row["dispatched_at"],
    )


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        sink=row["sink"],
        event_id=row["event_id"],
        tenant_id=row["tenant_id"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
    )


_ORDER = (
    outbox.c.created_at,
    sa.func.coalesce(outbox.c.run_seq, 0),
    outbox.c.position,
    outbox.c.event_id,
)


def pending(connection: Connection, sink: str, *, limit: int) -> list[PendingEvent]:
    """The oldest events ``sink`` has not finished with, in delivery order."""
    d = event_deliveries
    query = (
        sa.select(outbox, d.c.attempts, d.c.next_attempt_at, d.c.status.label("d_status"))
        .select_from(
            outbox.outerjoin(d, sa.and_(d.c.event_id == outbox.c.event_id, d.c.sink == sink))
        )
        .where(
            outbox.c.dispatched_at.is_(None),
            sa.or_(d.c.status.is_(None), d.c.status.not_in(FINAL)),
        )
        .order_by(*_ORDER)
        .limit(limit)
    )
    return [
        PendingEvent(_event(r), r["attempts"] or 0, r["next_attempt_at"])
        for r in connection.execute(query).mappings()
    ]


def record_deliveries(connection: Connection, sink: str, results: Sequence[Delivery]) -> None:
    """Store each event's new state with ``sink`` (replacing the one before)."""
    if not results:
        return
    ids = [r.event_id for r in results]
    connection.execute(
        event_deliveries.delete().where(
            event_deliveries.c.sink == sink, event_deliveries.c.event_id.in_(ids)
        )
    )
    connection.execute(
        event_deliveries.insert(),
        [
            {
                "sink": sink,
                "event_id": r.event_id,
                "tenant_id": r.tenant_id,
                "status": r.status,
                "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at,
                "last_error": r.last_error,
                "updated_at": r.updated_at,
            }
            for r in results
        ],
    )


def mark_dispatched(
    connection: Connection, event_ids: Sequence[str], sinks: Sequence[str], at: float
) -> int:
    """Set ``dispatched_at`` on those events every one of ``sinks`` has finished with."""
    if not event_ids or not sinks:
        return 0
    d = event_deliveries
    done: Iterable[str] = connection.execute(
        sa.select(d.c.event_id)
        .where(d.c.event_id.in_(event_ids), d.c.sink.in_(sinks), d.c.status.in_(FINAL))
        .group_by(d.c.event_id)
        .having(sa.func.count() == len(set(sinks)))
    ).scalars()
    finished = list(done)
    if finished:
        connection.execute(
            outbox.update().where(outbox.c.event_id.in_(finished)).values(dispatched_at=at)
        )
    return len(finished)


def ensure_sink(connection: Connection, sink: str) -> None:
    """Create the lease row of ``sink`` (in a transaction of its own: a racing creator's
    duplicate key aborts it, and the caller ignores :class:`IntegrityError`)."""
    exists = connection.execute(
        sa.select(event_sinks.c.sink).where(event_sinks.c.sink == sink)
    ).first()
    if exists is None:
        connection.execute(event_sinks.insert().values(sink=sink, fence=0))


def acquire_sink(
    connection: Connection,
    sink: str,
    holder: str,
    *,
    seconds: float,
    db_now: sa.ColumnElement[float],
) -> int | None:
    """Take or renew the lease on ``sink`` (one dispatcher per sink keeps each run's events in
    order); its fence, or None while another holder's lease runs."""
    s = event_sinks
    renewed = connection.execute(
        s.update()
        .where(
            s.c.sink == sink,
            sa.or_(
                s.c.holder == holder,
                s.c.holder.is_(None),
                s.c.lease_expires_at.is_(None),
                s.c.lease_expires_at < db_now,
            ),
        )
        .values(
            holder=holder,
            lease_expires_at=db_now + seconds,
            fence=sa.case((s.c.holder == holder, s.c.fence), else_=s.c.fence + 1),
        )
    )
    if (renewed.rowcount or 0) != 1:
        return None
    fence: int = connection.execute(sa.select(s.c.fence).where(s.c.sink == sink)).scalar_one()
    return fence


def holds_sink(connection: Connection, sink: str, holder: str, fence: int) -> bool:
    """Whether ``holder`` still holds ``sink`` under ``fence`` (checked before recording)."""
    s = event_sinks
    found = connection.execute(
        sa.select(s.c.holder, s.c.fence).where(s.c.sink == sink).with_for_update()
    ).first()
    return found is not None and found.holder == holder and found.fence == fence


def release_sink(connection: Connection, sink: str, holder: str) -> None:
    s = event_sinks
    connection.execute(
        s.update()
        .where(s.c.sink == sink, s.c.holder == holder)
        .values(holder=None, lease_expires_at=None)
    )


def list_events(
    connection: Connection,
    tenant: str,
    *,
    types: Sequence[str] = (),
    run_id: str | None = None,
    after: tuple[float, str] | None = None,
    limit: int = 50,
    newest: bool = False,
) -> list[OutboxEvent]:
    """The tenant's events, oldest first (``newest=True``: the last ``limit``, still in order).

    ``types`` are exact type names; ``after`` is the (created_at, event_id) of the last event
    already seen, for following the log.
    """
    query = sa.select(outbox).where(outbox.c.tenant_id == tenant)
    if types:
        query = query.where(outbox.c.type.in_(list(types)))
    if run_id is not None:
        query = query.where(outbox.c.run_id == run_id)
    if after is not None:
        query = query.where(
            sa.or_(
                outbox.c.created_at > after[0],
                sa.and_(outbox.c.created_at == after[0], outbox.c.event_id > after[1]),
            )
        )
    if newest:
        rows = connection.execute(
            query.order_by(*(c.desc() for c in _ORDER)).limit(limit)
        ).mappings()
        return [_event(r) for r in reversed(list(rows))]
    rows = connection.execute(query.order_by(*_ORDER).limit(limit)).mappings()
    return [_event(r) for r in rows]


def get_event(connection: Connection, tenant: str, event_id: str) -> OutboxEvent | None:
    row = (
        connection.execute(
            sa.select(outbox).where(outbox.c.tenant_id == tenant, outbox.c.event_id == event_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else _event(row)


def deliveries(connection: Connection, tenant: str, event_ids: Sequence[str]) -> list[Delivery]:
    """Every sink's state for these events of the tenant."""
    if not event_ids:
        return []
    d = event_deliveries
    rows = connection.execute(
        sa.select(d)
        .where(d.c.tenant_id == tenant, d.c.event_id.in_(list(event_ids)))
        .order_by(d.c.event_id, d.c.sink)
    ).mappings()
    return [_delivery(r) for r in rows]


def dead_deliveries(
    connection: Connection, tenant: str, *, sink: str | None = None, limit: int = 100
) -> list[Delivery]:
    """Deliveries that gave up, oldest first."""
    d = event_deliveries
    query = sa.select(d).where(d.c.tenant_id == tenant, d.c.status == "dead")
    if sink is not None:
        query = query.where(d.c.sink == sink)
    rows = connection.execute(query.order_by(d.c.updated_at, d.c.event_id).limit(limit))
    return [_delivery(r) for r in rows.mappings()]


def redeliver(
    connection: Connection, tenant: str, event_ids: Sequence[str], *, sink: str | None = None
) -> int:
    """Forget the delivery state of these events (for one sink or all), so they go again."""
    if not event_ids:
        return 0
    d = event_deliveries
    delete = d.delete().where(d.c.tenant_id == tenant, d.c.event_id.in_(list(event_ids)))
    if sink is not None:
        delete = delete.where(d.c.sink == sink)
    connection.execute(delete)
    reopened = connection.execute(
        outbox.update()
        .where(outbox.c.tenant_id == tenant, outbox.c.event_id.in_(list(event_ids)))
        .values(dispatched_at=None)
    )
    return int(reopened.rowcount or 0)
