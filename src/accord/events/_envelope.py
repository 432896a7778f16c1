"""Outbox rows as CloudEvents 1.0 (built and serialised with the ``cloudevents`` SDK).

Attributes: ``id`` is the outbox event id (stable across redeliveries, so receivers and
JetStream de-duplicate on it); ``source`` names the deployment and tenant; ``type`` is
``accord.<name>``; ``subject`` the run (``runs/<id>``) or the thing the event is about;
``dataschema`` the versioned schema. Extensions: ``traceparent`` (the distributed tracing
extension), ``partitionkey`` (the ordering key: a run's events share one), ``sequence`` (the
run's transition and the event's place in it, zero-padded so it sorts), ``accordtenant`` and,
for events about a subject, ``accordsubject``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from accord.events._catalog import TYPE_PREFIX, event_type
from accord.storage._events import OutboxEvent

CONTENT_TYPE = JSONFormat.CONTENT_TYPE
_FORMAT = JSONFormat()


def source_of(origin: str, tenant: str) -> str:
    """The CloudEvents ``source`` of a tenant's events on this deployment."""
    return f"urn:accord:{origin}:{tenant}"


def _subject(event: OutboxEvent) -> str | None:
    if event.run_id is not None:
        return f"runs/{event.run_id}"
    for key, prefix in (
        ("item", "reviews"),
        ("grant_id", "consents"),
        ("rollout_id", "rollouts"),
        ("key", "flags"),
    ):
        value = event.payload.get(key)
        if isinstance(value, str):
            return f"{prefix}/{value}"
    if event.type == "policy.deployed":
        return f"policies/v{event.payload.get('version')}"
    return None


def to_cloudevent(event: OutboxEvent, *, origin: str) -> CloudEvent:
    """The CloudEvent of a stored event."""
    attributes: dict[str, Any] = {
        "id": event.event_id,
        "source": source_of(origin, event.tenant_id),
        "type": TYPE_PREFIX + event.type,
        "specversion": "1.0",
        "time": datetime.fromtimestamp(event.created_at, UTC),
        "datacontenttype": "application/json",
        "partitionkey": event.ordering_key,
        "accordtenant": event.tenant_id,
    }
    known = event_type(event.type)
    if known is not None:
        attributes["dataschema"] = known.schema_url
    subject = _subject(event)
    if subject is not None:
        attributes["subject"] = subject
    if event.run_seq is not None:
        attributes["sequence"] = f"{event.run_seq:010d}.{event.position:04d}"
    if event.traceparent:
        attributes["traceparent"] = event.traceparent
    if event.subject_id:
        attributes["accordsubject"] = event.subject_id
    return CloudEvent(attributes, dict(event.payload))


def structured(event: OutboxEvent, *, origin: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of the event in structured mode (``application/cloudevents+json``)."""
    message = ce_http.to_structured(to_cloudevent(event, origin=origin), _FORMAT)
    return dict(message.headers), message.body


def binary(event: OutboxEvent, *, origin: str) -> tuple[dict[str, str], bytes]:
    """Headers (``ce-*``) and body (the data alone) of the event in binary mode."""
    message = ce_http.to_binary(to_cloudevent(event, origin=origin), _FORMAT)
    return dict(message.headers), message.body
