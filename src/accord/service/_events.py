"""Outbound events as the facade offers them: the sinks settings describe, the dispatcher,
and the tenant's event log with each sink's delivery state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accord.core import Clock
from accord.errors import InputError
from accord.events import Dispatcher, NatsSink, RetryPolicy, Sink, WebhookSink, to_cloudevent
from accord.service._settings import Settings
from accord.storage import Database
from accord.storage import events as stored
from accord.storage._events import Delivery, OutboxEvent
from accord.telemetry import Metrics


def configured_sinks(settings: Settings) -> list[Sink]:
    """NATS when ``nats_url`` is set, and one sink per configured webhook."""
    sinks: list[Sink] = []
    if settings.nats_url is not None:
        sinks.append(
            NatsSink(
                settings.nats_url,
                stream=settings.nats_stream,
                prefix=settings.nats_subject_prefix,
                origin=settings.ledger_origin,
            )
        )
    for name, endpoint in sorted(settings.webhooks.items()):
        sinks.append(WebhookSink(name, endpoint, origin=settings.ledger_origin))
    return sinks


def build_dispatcher(
    settings: Settings,
    db: Database,
    clock: Clock,
    metrics: Metrics,
    *,
    sinks: list[Sink] | None = None,
) -> Dispatcher:
    """The dispatcher for the configured sinks (or ``sinks``)."""
    return Dispatcher(
        db,
        configured_sinks(settings) if sinks is None else sinks,
        clock=clock,
        retry=RetryPolicy(
            attempts=settings.event_delivery_attempts,
            backoff=settings.event_backoff_seconds,
            max_backoff=settings.event_backoff_max_seconds,
        ),
        metrics=metrics,
        lease_seconds=settings.lease_seconds,
    )


@dataclass(frozen=True, slots=True)
class EventView:
    """One event as operators see it: the CloudEvent and where it stands with each sink."""

    event: OutboxEvent
    cloudevent: dict[str, Any]
    deliveries: list[Delivery] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.cloudevent,
            "deliveries": [
                {
                    "sink": d.sink,
                    "status": d.status,
                    "attempts": d.attempts,
                    "next_attempt_at": d.next_attempt_at,
                    "last_error": d.last_error,
                }
                for d in self.deliveries
            ],
        }


def cloudevent_json(event: OutboxEvent, origin: str) -> dict[str, Any]:
    """The structured-mode JSON object of an event."""
    ce = to_cloudevent(event, origin=origin)
    attributes = dict(ce.get_attributes())
    time = attributes.get("time")
    if time is not None:
        attributes["time"] = time.isoformat().replace("+00:00", "Z")
    return {**attributes, "data": ce.get_data()}


def list_views(
    db: Database,
    tenant: str,
    origin: str,
    *,
    types: list[str],
    run_id: str | None,
    after: tuple[float, str] | None,
    limit: int,
    newest: bool,
) -> list[EventView]:
    """The tenant's events with their deliveries."""
    if not 1 <= limit <= 1000:
        raise InputError(f"limit must be 1 to 1000, got {limit}")
    with db.read() as connection:
        found = stored.list_events(
            connection, tenant, types=types, run_id=run_id, after=after, limit=limit, newest=newest
        )
        states = stored.deliveries(connection, tenant, [e.event_id for e in found])
    by_event: dict[str, list[Delivery]] = {}
    for d in states:
        by_event.setdefault(d.event_id, []).append(d)
    return [EventView(e, cloudevent_json(e, origin), by_event.get(e.event_id, [])) for e in found]


def get_view(db: Database, tenant: str, origin: str, event_id: str) -> EventView:
    """One event of the tenant with its deliveries.

    Raises:
        InputError: no such event in the tenant.
    """
    with db.read() as connection:
        found = stored.get_event(connection, tenant, event_id)
        if found is None:
            raise InputError(
                f"no event {event_id!r} in tenant {tenant!r}",
                hint="list events with `accord events tail`",
            )
        states = stored.deliveries(connection, tenant, [event_id])
    return EventView(found, cloudevent_json(found, origin), states)


def redeliver(
    db: Database,
    tenant: str,
    *,
    event_ids: list[str],
    dead: bool,
    sink: str | None,
) -> int:
    """Send events again: the named ones, or (``dead=True``) every dead-lettered one."""
    if bool(event_ids) == dead:
        raise InputError(
            "name the events to redeliver, or ask for every dead-lettered one, not both",
            hint="accord events redeliver EVENT_ID ... | accord events redeliver --dead",
        )
    with db.transaction() as connection:
        if dead:
            event_ids = [
                d.event_id
                for d in stored.dead_deliveries(connection, tenant, sink=sink, limit=10_000)
            ]
        else:
            missing = [e for e in event_ids if stored.get_event(connection, tenant, e) is None]
            if missing:
                raise InputError(
                    f"no event {', '.join(missing)} in tenant {tenant!r}; nothing was changed",
                    hint="list events with `accord events tail`",
                )
        return stored.redeliver(connection, tenant, event_ids, sink=sink)
