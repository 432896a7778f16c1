"""The webhook sink: each event is POSTed in CloudEvents structured mode, signed per the
Standard Webhooks specification.

``webhook-id`` is the event id, the same on every retry, so a receiver that keeps the ids it
has seen takes each event once. A 2xx answer delivers; ``410 Gone`` dead-letters at once (the
receiver asked for no more); anything else, or no answer, is retried with backoff.
"""

from __future__ import annotations

import httpx

from accord.core import Clock, SystemClock
from accord.events._catalog import matches
from accord.events._config import WebhookEndpoint
from accord.events._envelope import structured
from accord.events._signing import webhook_headers, webhook_key
from accord.events._sink import DeliveryFailed
from accord.storage._events import OutboxEvent

USER_AGENT = "accord-webhooks/1"


class WebhookSink:
    """One subscription: its endpoint, its secret, the events it asked for."""

    def __init__(
        self,
        name: str,
        endpoint: WebhookEndpoint,
        *,
        origin: str,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = f"webhook:{name}"
        self.endpoint = endpoint
        self.origin = origin
        # receivers judge webhook-timestamp against their own clocks: always the real time
        self.clock = clock or SystemClock()
        self._key = webhook_key(endpoint.secret.get_secret_value())
        self._client = httpx.Client(
            timeout=endpoint.timeout_seconds,
            transport=transport,
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
        )

    def wants(self, event: OutboxEvent) -> bool:
        if self.endpoint.tenants and event.tenant_id not in self.endpoint.tenants:
            return False
        return matches(self.endpoint.types, event.type)

    def send(self, event: OutboxEvent) -> None:
        headers, body = structured(event, origin=self.origin)
        headers |= webhook_headers(self._key, event.event_id, int(self.clock.now()), body)
        if event.traceparent:
            headers["traceparent"] = event.traceparent
        try:
            response = self._client.post(self.endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"POST {self.endpoint.url} failed: {exc!r}") from exc
        if response.is_success:
            return
        reason = f"POST {self.endpoint.url} answered {response.status_code}"
        raise DeliveryFailed(reason, permanent=response.status_code == 410)

    def close(self) -> None:
        self._client.close()
