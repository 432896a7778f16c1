"""Inbound events: one row per (tenant, source, id), de-duplicating deliveries and recording
what each event did (started a run, signalled, parked, ignored, refused)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.storage._records import json_text
from accord.storage._schema import inbound_events

InboundStatus = Literal["started", "signalled", "parked", "ignored", "refused"]
InboundChannel = Literal["http", "nats", "cli"]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """What happened to one inbound event, as first recorded."""

    tenant_id: str
    source: str
    event_id: str
    type: str
    channel: str
    status: InboundStatus
    detail: dict[str, Any]
    received_at: float


def _record(row: RowMapping) -> InboundRecord:
    return InboundRecord(
        tenant_id=row["tenant_id"],
        source=row["source"],
        event_id=row["event_id"],
        type=row["type"],
        channel=row["channel"],
        status=row["status"],
        detail=json.loads(row["detail"]),
        received_at=row["received_at"],
    )


def get_inbound(
    connection: Connection, tenant: str, source: str, event_id: str
) -> InboundRecord | None:
    row = (
        connection.execute(
            sa.select(inbound_events).where(
                inbound_events.c.tenant_id == tenant,
                inbound_events.c.source == source,
                inbound_events.c.event_id == event_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _record(row)


def insert_inbound(connection: Connection, record: InboundRecord) -> None:
    """Record an event. A second event with the same (tenant, source, id) raises
    ``IntegrityError``: that is how duplicates are told apart, inside the effect's transaction."""
    connection.execute(
        inbound_events.insert().values(
            tenant_id=record.tenant_id,
            source=record.source,
            event_id=record.event_id,
            type=record.type,
            channel=record.channel,
            status=record.status,
            detail=json_text(record.detail),
            received_at=record.received_at,
        )
    )


def discard_refused(connection: Connection, tenant: str, source: str, event_id: str) -> None:
    """Forget that an event was refused, so that a corrected delivery of it may act."""
    connection.execute(
        inbound_events.delete().where(
            inbound_events.c.tenant_id == tenant,
            inbound_events.c.source == source,
            inbound_events.c.event_id == event_id,
            inbound_events.c.status == "refused",
        )
    )


def update_detail(
    connection: Connection, tenant: str, source: str, event_id: str, detail: dict[str, Any]
) -> None:
    connection.execute(
        inbound_events.update()
        .where(
            inbound_events.c.tenant_id == tenant,
            inbound_events.c.source == source,
            inbound_events.c.event_id == event_id,
        )
        .values(detail=json_text(detail))
    )


def list_inbound(
    connection: Connection,
    tenant: str,
    *,
    status: InboundStatus | None = None,
    limit: int = 50,
) -> list[InboundRecord]:
    """The tenant's inbound events, newest first."""
    query = sa.select(inbound_events).where(inbound_events.c.tenant_id == tenant)
    if status is not None:
        query = query.where(inbound_events.c.status == status)
    query = query.order_by(
        inbound_events.c.received_at.desc(), inbound_events.c.source, inbound_events.c.event_id
    ).limit(limit)
    return [_record(r) for r in connection.execute(query).mappings()]
