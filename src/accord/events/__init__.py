"""Events: CloudEvents out through the transactional outbox (NATS JetStream, webhooks), and in
as triggers that start or signal runs."""

from __future__ import annotations

from accord.events._config import WebhookEndpoint

__all__ = ["WebhookEndpoint"]
