"""What the dispatcher delivers to: a sink takes one event at a time, in order, or says why
it could not."""

from __future__ import annotations

from typing import Protocol

from accord.storage._events import OutboxEvent


class DeliveryFailed(Exception):
    """A sink could not take an event. ``permanent`` failures are dead-lettered at once; the
    others are retried with backoff until the attempts run out."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sink(Protocol):
    """A destination for outbound events."""

    @property
    def name(self) -> str:
        """Unique among the sinks of a deployment; keys its delivery state and lease."""
        ...

    def wants(self, event: OutboxEvent) -> bool:
        """Whether this sink takes this event at all (others are recorded as skipped)."""
        ...

    def send(self, event: OutboxEvent) -> None:
        """Deliver one event; return only once the destination has accepted it.

        Raises:
            DeliveryFailed: it was not accepted.
        """
        ...

    def close(self) -> None: ...
