"""The NATS JetStream trigger consumer: CloudEvents from a stream start and signal runs.

A durable pull consumer reads the trigger stream. Each message is a CloudEvent in structured
mode (``content-type: application/cloudevents+json``) or binary mode (``ce-*`` headers), per
the CloudEvents NATS binding. A message is acknowledged once ingested (its outcome recorded,
de-duplicated by source and id, so a redelivery does nothing twice); a message that is no
CloudEvent is recorded as refused and terminated, never redelivered; a transient failure (the
database unreachable) is negatively acknowledged with a delay, to be tried again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy.exc import SQLAlchemyError

from accord.errors import AccordError, EventInvalid
from accord.events._inbound import decode_message
from accord.events._triggers import IngestOutcome, TriggerIngest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """Where the trigger consumer reads, and whose events they are.

    Args:
        url: the NATS server (``nats://host:4222``).
        stream: the JetStream stream holding trigger events.
        durable: the durable consumer's name; several processes with the same name share it.
        subjects: subjects of the stream to consume (all when empty).
        tenant: the tenant the events belong to.
        batch: messages fetched per request.
        retry_delay: seconds before a message whose ingest failed transiently is redelivered.
    """

    url: str
    stream: str
    durable: str
    tenant: str
    subjects: tuple[str, ...] = ()
    batch: int = 16
    retry_delay: float = 5.0
    ack_wait: float = 60.0


def run_consumer(
    ingest: TriggerIngest,
    options: ConsumerOptions,
    stop: threading.Event,
    *,
    ready: threading.Event | None = None,
) -> None:
    """Consume trigger events until ``stop`` is set (blocking; runs its own event loop).

    ``ready`` is set once the durable consumer exists and the first fetch is under way.
    """
    asyncio.run(_consume(ingest, options, stop, ready))


async def _consume(
    ingest: TriggerIngest,
    options: ConsumerOptions,
    stop: threading.Event,
    ready: threading.Event | None,
) -> None:
    connection = await nats.connect(options.url, name=f"accord-{options.durable}")
    try:
        js = connection.jetstream()
        await _ensure_consumer(js, options)
        subscription = await js.pull_subscribe_bind(durable=options.durable, stream=options.stream)
        if ready is not None:
            ready.set()
        while not stop.is_set():
            try:
                messages = await subscription.fetch(options.batch, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for message in messages:
                await handle_message(ingest, options, message)
    finally:
        await connection.close()


async def _ensure_consumer(js: nats.js.JetStreamContext, options: ConsumerOptions) -> None:
    config = ConsumerConfig(
        durable_name=options.durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=options.ack_wait,
        filter_subjects=list(options.subjects) or None,
    )
    try:
        await js.consumer_info(options.stream, options.durable)
    except NotFoundError:
        await js.add_consumer(options.stream, config)


async def handle_message(
    ingest: TriggerIngest, options: ConsumerOptions, message: Msg
) -> list[IngestOutcome]:
    """Ingest one message's events and settle it: ack, term (unreadable) or nak (transient)."""
    headers = dict(message.headers or {})
    try:
        events = decode_message(_with_default_type(headers, message.data), message.data)
    except EventInvalid as exc:
        refused = await asyncio.to_thread(
            ingest.refuse,
            options.tenant,
            source=f"nats:{options.stream}",
            event_id=_message_id(message, headers),
            type=headers.get("ce-type", "unknown")[:256],
            channel="nats",
            error=exc.message,
        )
        log.warning(
            "refused a message on %s that is no CloudEvent: %s", message.subject, exc.message
        )
        await message.term()
        return [refused]
    outcomes = []
    try:
        for event in events:
            outcomes.append(
                await asyncio.to_thread(ingest.ingest, options.tenant, event, channel="nats")
            )
    except (SQLAlchemyError, AccordError) as exc:
        log.warning(
            "ingesting a trigger event from %s failed (%s); retrying in %.0fs",
            message.subject,
            exc,
            options.retry_delay,
        )
        await message.nak(delay=options.retry_delay)
        return outcomes
    await message.ack()
    return outcomes


def _with_default_type(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """Structured mode needs its content-type; a NATS publisher may leave it out."""
    lowered = {k.lower() for k in headers}
    if "content-type" in lowered or "ce-specversion" in lowered:
        return headers
    if body.lstrip()[:1] == b"{":
        return {**headers, "content-type": "application/cloudevents+json"}
    return headers


def _message_id(message: Msg, headers: dict[str, str]) -> str:
    explicit = headers.get("Nats-Msg-Id") or headers.get("ce-id")
    if explicit:
        return explicit[:256]
    try:
        return f"seq-{message.metadata.sequence.stream}"
    except (ValueError, AttributeError):
        return f"subject-{message.subject}"
