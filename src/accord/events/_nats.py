"""The NATS JetStream sink: each event is published on ``PREFIX.TENANT.TYPE`` in structured
mode, with ``Nats-Msg-Id`` set to the event id.

JetStream drops a second message with the same id inside the stream's duplicate window, so
an event published again after a dispatcher crash (between the server's acknowledgement and
the commit that records it) is stored once. A publish returns only after the server has
acknowledged it; the acknowledgement says whether it was such a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from accord.events._envelope import structured
from accord.events._sink import DeliveryFailed
from accord.storage._events import OutboxEvent

DUPLICATE_WINDOW_SECONDS = 15 * 60
"""The duplicate window of a stream this sink creates: longer than any restart should take."""

_T = TypeVar("_T")
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """``value`` as one NATS subject token (no dots, wildcards or spaces)."""
    return _TOKEN.sub("_", value) or "_"


class NatsSink:
    """Publishes events to a JetStream stream, creating the stream when it is missing."""

    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        prefix: str,
        origin: str,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self.origin = origin
        self.timeout = timeout
        self.duplicates = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="accord-nats-sink", daemon=True
        )
        self._thread.start()
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    def subject(self, event: OutboxEvent) -> str:
        return f"{self.prefix}.{subject_token(event.tenant_id)}.{event.type}"

    def wants(self, event: OutboxEvent) -> bool:
        return True

    def send(self, event: OutboxEvent) -> None:
        headers, body = structured(event, origin=self.origin)
        headers["Nats-Msg-Id"] = event.event_id
        if event.traceparent:
            headers["traceparent"] = event.traceparent
        try:
            self._run(self._publish(self.subject(event), body, headers))
        except TimeoutError as exc:
            raise DeliveryFailed(f"NATS did not answer within {self.timeout * 4:g} s") from exc

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        js = await self._jetstream()
        try:
            ack = await js.publish(subject, body, headers=headers, timeout=self.timeout)
        except nats.js.errors.NoStreamResponseError as exc:
            raise DeliveryFailed(
                f"no JetStream stream takes subject {subject!r}: check the stream "
                f"{self.stream!r} covers '{self.prefix}.>'"
            ) from exc
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            await self._reset()
            raise DeliveryFailed(f"NATS publish to {subject!r} failed: {exc!r}") from exc
        if ack.duplicate:
            self.duplicates += 1

    async def _jetstream(self) -> JetStreamContext:
        if self._js is not None and self._client is not None and self._client.is_connected:
            return self._js
        try:
            self._client = await nats.connect(
                self.url,
                name="accord-dispatcher",
                connect_timeout=self.timeout,
                max_reconnect_attempts=2,
                allow_reconnect=True,
            )
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise DeliveryFailed(f"cannot connect to NATS at {self.url}: {exc!r}") from exc
        js = self._client.jetstream(timeout=self.timeout)
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.prefix}.>"],
                    duplicate_window=DUPLICATE_WINDOW_SECONDS,
                )
            )
        self._js = js
        return js

    async def _reset(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await client.close()

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=self.timeout * 4)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._reset())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
