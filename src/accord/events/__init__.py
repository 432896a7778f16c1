"""Events: CloudEvents out through the transactional outbox (NATS JetStream, webhooks), and in
as triggers that start or signal runs."""

from __future__ import annotations

from accord.events._catalog import EVENT_TYPES, EventType, event_type, matches
from accord.events._config import WebhookEndpoint
from accord.events._dispatcher import Dispatcher, DispatchStats, RetryPolicy
from accord.events._envelope import binary, source_of, structured, to_cloudevent
from accord.events._inbound import (
    BATCH,
    STRUCTURED,
    InboundEvent,
    content_mode,
    decode_message,
    read_event,
)
from accord.events._nats import NatsSink
from accord.events._nats_triggers import ConsumerOptions, run_consumer
from accord.events._signing import new_secret, sign, webhook_headers, webhook_key
from accord.events._sink import DeliveryFailed, Sink
from accord.events._triggers import IngestOutcome, TriggerIngest
from accord.events._webhooks import WebhookSink

__all__ = [
    "BATCH",
    "EVENT_TYPES",
    "STRUCTURED",
    "ConsumerOptions",
    "DeliveryFailed",
    "DispatchStats",
    "Dispatcher",
    "EventType",
    "InboundEvent",
    "IngestOutcome",
    "NatsSink",
    "RetryPolicy",
    "Sink",
    "TriggerIngest",
    "WebhookEndpoint",
    "WebhookSink",
    "binary",
    "content_mode",
    "decode_message",
    "event_type",
    "matches",
    "new_secret",
    "read_event",
    "run_consumer",
    "sign",
    "source_of",
    "structured",
    "to_cloudevent",
    "webhook_headers",
    "webhook_key",
]
