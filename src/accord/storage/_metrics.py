"""Operational figures read at scrape time: queue depths, SLA breaches, dead letters, the
outbox's backlog and age, runs by status and the leases workers hold. One short read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._records import OPEN_REVIEW
from accord.storage._schema import dead_letters, event_deliveries, outbox, review_items, runs


@dataclass(frozen=True, slots=True)
class Figures:
    """What the database says right now (``now`` is the database clock)."""

    review_depth: list[tuple[str, str, int]]
    review_overdue: list[tuple[str, str, int]]
    dead_letters: list[tuple[str, int]]
    outbox_pending: int
    outbox_oldest: float | None
    events_dead: list[tuple[str, int]]
    runs_by_status: list[tuple[str, str, int]]
    leases: list[tuple[str, int]]
    now: float


def read_figures(connection: Connection, *, now: float, db_now: sa.ColumnElement[float]) -> Figures:
    """Every figure, across tenants (the metrics endpoint is an operator's view).

    SLAs and the outbox's age are judged by ``now`` (the clock that set them); leases by the
    database clock, as workers judge them.
    """
    r = review_items
    depth = connection.execute(
        sa.select(r.c.tenant_id, r.c.queue, sa.func.count())
        .where(r.c.status.in_(OPEN_REVIEW))
        .group_by(r.c.tenant_id, r.c.queue)
    ).all()
    overdue = connection.execute(
        sa.select(r.c.tenant_id, r.c.queue, sa.func.count())
        .where(r.c.status.in_(OPEN_REVIEW), r.c.due_at.is_not(None), r.c.due_at < now)
        .group_by(r.c.tenant_id, r.c.queue)
    ).all()
    d = dead_letters
    letters = connection.execute(
        sa.select(d.c.tenant_id, sa.func.count())
        .where(d.c.status == "pending")
        .group_by(d.c.tenant_id)
    ).all()
    backlog: tuple[Any, ...] = tuple(
        connection.execute(
            sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(
                outbox.c.dispatched_at.is_(None)
            )
        ).one()
    )
    pending, oldest = backlog
    e = event_deliveries
    dead_events = connection.execute(
        sa.select(e.c.sink, sa.func.count()).where(e.c.status == "dead").group_by(e.c.sink)
    ).all()
    statuses = connection.execute(
        sa.select(runs.c.tenant_id, runs.c.status, sa.func.count()).group_by(
            runs.c.tenant_id, runs.c.status
        )
    ).all()
    leases = connection.execute(
        sa.select(runs.c.lease_owner, sa.func.count())
        .where(runs.c.lease_owner.is_not(None), runs.c.lease_expires_at > db_now)
        .group_by(runs.c.lease_owner)
    ).all()
    return Figures(
        review_depth=[(str(t), str(q), int(n)) for t, q, n in _rows(depth)],
        review_overdue=[(str(t), str(q), int(n)) for t, q, n in _rows(overdue)],
        dead_letters=[(str(t), int(n)) for t, n in _rows(letters)],
        outbox_pending=int(pending or 0),
        outbox_oldest=None if oldest is None else float(oldest),
        events_dead=[(str(s), int(n)) for s, n in _rows(dead_events)],
        runs_by_status=[(str(t), str(s), int(n)) for t, s, n in _rows(statuses)],
        leases=[(str(o), int(n)) for o, n in _rows(leases)],
        now=now,
    )


def _rows(rows: Sequence[sa.Row[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in rows]
