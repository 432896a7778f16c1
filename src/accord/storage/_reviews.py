"""Review items, queues and staff: the rows behind the review inbox.

Items are written by the transition that opens them and changed by the review service under
conditional updates: a change names the status (and owner) it expects, so two people acting on
one item at once cannot both succeed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._records import (
    OPEN_REVIEW,
    NewConfirmation,
    NewReviewItem,
    ReviewItemRecord,
    json_text,
)
from accord.storage._schema import confirmations, review_items, review_queues, staff


def insert_items(
    connection: Connection,
    tenant: str,
    run_id: str,
    subject_id: str | None,
    items: Sequence[NewReviewItem],
    at: float,
) -> None:
    if not items:
        return
    connection.execute(
        review_items.insert(),
        [
            {
                "tenant_id": tenant,
                "item_id": i.item_id,
                "run_id": run_id,
                "token": i.token,
                "block": i.block,
                "visit": i.visit,
                "kind": i.kind,
                "subject_id": subject_id,
                "queue": i.queue,
                "roles": json_text(list(i.roles)),
                "makers": json_text(list(i.makers)),
                "priority": i.priority,
                "status": "open",
                "owner": None,
                "claimed_at": None,
                "created_at": at,
                "due_at": i.due_at,
                "escalations": 0,
                "packet": json_text(i.packet),
                "packet_version": int(i.packet.get("version", 1)),
                "source": i.source,
                "updated_at": at,
            }
            for i in items
        ],
    )


def close_items(connection: Connection, tenant: str, item_ids: Sequence[str], at: float) -> None:
    """Cancel still-open items whose wait ended without a decision (timeout, run end)."""
    if not item_ids:
        return
    connection.execute(
        review_items.update()
        .where(
            review_items.c.tenant_id == tenant,
            review_items.c.item_id.in_(list(item_ids)),
            review_items.c.status.in_(OPEN_REVIEW),
        )
        .values(status="cancelled", outcome=None, owner=None, updated_at=at)
    )


def get_item(
    connection: Connection, tenant: str, item_id: str, *, for_update: bool = False
) -> ReviewItemRecord | None:
    query = sa.select(review_items).where(
        review_items.c.tenant_id == tenant, review_items.c.item_id == item_id
    )
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    return None if row is None else ReviewItemRecord.from_row(row)


def list_items(
    connection: Connection,
    tenant: str,
    *,
    statuses: Iterable[str] | None = None,
    queues: Iterable[str] | None = None,
    owner: str | None = None,
    run_id: str | None = None,
    limit: int = 100,
) -> list[ReviewItemRecord]:
    """Items, most urgent first: priority, then the earliest due, then the oldest."""
    query = sa.select(review_items).where(review_items.c.tenant_id == tenant)
    if statuses is not None:
        query = query.where(review_items.c.status.in_(list(statuses)))
    if queues is not None:
        query = query.where(review_items.c.queue.in_(list(queues)))
    if owner is not None:
        query = query.where(review_items.c.owner == owner)
    if run_id is not None:
        query = query.where(review_items.c.run_id == run_id)
    query = query.order_by(
        review_items.c.priority.desc(),
        sa.func.coalesce(review_items.c.due_at, 1e18),
        review_items.c.created_at,
        review_items.c.item_id,
    ).limit(limit)
    return [ReviewItemRecord.from_row(r) for r in connection.execute(query).mappings()]


def update_item(
    connection: Connection,
    tenant: str,
    item_id: str,
    *,
    expect_status: Iterable[str],
    expect: Mapping[str, Any] | None = None,
    values: Mapping[str, Any],
) -> bool:
    """Change an item if it still has the expected status and column values; whether it did.

    ``expect`` compares columns for equality (``None``: the column is null).
    """
    condition = sa.and_(
        review_items.c.tenant_id == tenant,
        review_items.c.item_id == item_id,
        review_items.c.status.in_(list(expect_status)),
    )
    for column, value in (expect or {}).items():
        c = review_items.c[column]
        condition = sa.and_(condition, c.is_(None) if value is None else c == value)
    encoded = {
        k: json_text(v) if k in ("packet", "decision", "roles", "makers") else v
        for k, v in values.items()
    }
    result = connection.execute(review_items.update().where(condition).values(encoded))
    return bool(result.rowcount)


def overdue_items(connection: Connection, now: float, *, limit: int) -> list[ReviewItemRecord]:
    """Open items of every tenant whose SLA has run out, the longest overdue first."""
    query = (
        sa.select(review_items)
        .where(review_items.c.status.in_(OPEN_REVIEW), review_items.c.due_at <= now)
        .order_by(review_items.c.due_at)
        .limit(limit)
    )
    return [ReviewItemRecord.from_row(r) for r in connection.execute(query).mappings()]


def outcome_counts(connection: Connection, tenant: str) -> list[tuple[str, str, int]]:
    """(recommendation source, outcome, count) over decided items."""
    query = (
        sa.select(review_items.c.source, review_items.c.outcome, sa.func.count())
        .where(review_items.c.tenant_id == tenant, review_items.c.outcome.is_not(None))
        .group_by(review_items.c.source, review_items.c.outcome)
        .order_by(review_items.c.source, review_items.c.outcome)
    )
    return [(r[0], r[1], int(r[2])) for r in connection.execute(query)]


@dataclass(frozen=True, slots=True)
class QueueRecord:
    name: str
    roles: tuple[str, ...]
    skills: tuple[str, ...]
    sla_seconds: float | None
    escalate_to: str | None
    description: str
    updated_at: float
    updated_by: str


def put_queue(connection: Connection, tenant: str, queue: QueueRecord) -> None:
    values = {
        "roles": json_text(list(queue.roles)),
        "skills": json_text(list(queue.skills)),
        "sla_seconds": queue.sla_seconds,
        "escalate_to": queue.escalate_to,
        "description": queue.description,
        "updated_at": queue.updated_at,
        "updated_by": queue.updated_by,
    }
    updated = connection.execute(
        review_queues.update()
        .where(review_queues.c.tenant_id == tenant, review_queues.c.name == queue.name)
        .values(values)
    )
    if not updated.rowcount:
        connection.execute(
            review_queues.insert().values(tenant_id=tenant, name=queue.name, **values)
        )


def _queue(row: Any) -> QueueRecord:
    return QueueRecord(
        name=row["name"],
        roles=tuple(json.loads(row["roles"])),
        skills=tuple(json.loads(row["skills"])),
        sla_seconds=row["sla_seconds"],
        escalate_to=row["escalate_to"],
        description=row["description"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def get_queue(connection: Connection, tenant: str, name: str) -> QueueRecord | None:
    row = (
        connection.execute(
            sa.select(review_queues).where(
                review_queues.c.tenant_id == tenant, review_queues.c.name == name
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _queue(row)


def list_queues(connection: Connection, tenant: str) -> list[QueueRecord]:
    query = (
        sa.select(review_queues)
        .where(review_queues.c.tenant_id == tenant)
        .order_by(review_queues.c.name)
    )
    return [_queue(r) for r in connection.execute(query).mappings()]


@dataclass(frozen=True, slots=True)
class StaffRecord:
    person_id: str
    name: str
    roles: tuple[str, ...]
    skills: tuple[str, ...]
    active: bool
    updated_at: float
    updated_by: str


def put_staff(connection: Connection, tenant: str, person: StaffRecord) -> None:
    values = {
        "name": person.name,
        "roles": json_text(list(person.roles)),
        "skills": json_text(list(person.skills)),
        "active": person.active,
        "updated_at": person.updated_at,
        "updated_by": person.updated_by,
    }
    updated = connection.execute(
        staff.update()
        .where(staff.c.tenant_id == tenant, staff.c.person_id == person.person_id)
        .values(values)
    )
    if not updated.rowcount:
        connection.execute(
            staff.insert().values(tenant_id=tenant, person_id=person.person_id, **values)
        )


def _staff(row: Any) -> StaffRecord:
    return StaffRecord(
        person_id=row["person_id"],
        name=row["name"],
        roles=tuple(json.loads(row["roles"])),
        skills=tuple(json.loads(row["skills"])),
        active=bool(row["active"]),
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def get_staff(connection: Connection, tenant: str, person_id: str) -> StaffRecord | None:
    row = (
        connection.execute(
            sa.select(staff).where(staff.c.tenant_id == tenant, staff.c.person_id == person_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else _staff(row)


def list_staff(connection: Connection, tenant: str) -> list[StaffRecord]:
    query = sa.select(staff).where(staff.c.tenant_id == tenant).order_by(staff.c.person_id)
    return [_staff(r) for r in connection.execute(query).mappings()]


def insert_confirmations(
    connection: Connection,
    tenant: str,
    run_id: str,
    subject_id: str | None,
    asked: Sequence[NewConfirmation],
    at: float,
) -> None:
    if not asked:
        return
    connection.execute(
        confirmations.insert(),
        [
            {
                "tenant_id": tenant,
                "confirmation_id": c.confirmation_id,
                "run_id": run_id,
                "block": c.block,
                "visit": c.visit,
                "subject_id": subject_id,
                "channels": json_text(list(c.channels)),
                "status": "pending",
                "created_at": at,
                "expires_at": c.expires_at,
            }
            for c in asked
        ],
    )


def close_confirmations(
    connection: Connection, tenant: str, confirmation_ids: Sequence[str], at: float
) -> None:
    """A still-pending confirmation whose wait ended unanswered (expiry, cancellation)."""
    if not confirmation_ids:
        return
    connection.execute(
        confirmations.update()
        .where(
            confirmations.c.tenant_id == tenant,
            confirmations.c.confirmation_id.in_(list(confirmation_ids)),
            confirmations.c.status == "pending",
        )
        .values(status="closed", answered_at=at)
    )


def answer_confirmation(
    connection: Connection,
    tenant: str,
    confirmation_id: str,
    *,
    status: str,
    channel: str,
    at: float,
) -> bool:
    """Use a pending confirmation once; whether this call was the one that used it."""
    result = connection.execute(
        confirmations.update()
        .where(
            confirmations.c.tenant_id == tenant,
            confirmations.c.confirmation_id == confirmation_id,
            confirmations.c.status == "pending",
        )
        .values(status=status, channel=channel, answered_at=at)
    )
    return bool(result.rowcount)


def get_confirmation(
    connection: Connection, tenant: str, confirmation_id: str
) -> dict[str, Any] | None:
    row = (
        connection.execute(
            sa.select(confirmations).where(
                confirmations.c.tenant_id == tenant,
                confirmations.c.confirmation_id == confirmation_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)
