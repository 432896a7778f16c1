"""The outbox dispatcher: delivers every committed event to every sink, at least once, in
order per run.

For each sink, one dispatcher at a time holds a lease (the ``event_sinks`` row, judged by the
database clock and fenced), reads the oldest events the sink has not finished with, and sends
them one by one. A failed event is retried with exponential backoff and, once its attempts
are spent, dead-lettered (``accord events redeliver`` sends it again); while an event waits
for its retry, the later events of the same run wait behind it. States are recorded every
few events: a crash loses at most that many acknowledgements, and those events go again
(NATS de-duplicates them by ``Nats-Msg-Id``, webhook receivers by ``webhook-id``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError

from accord.core import Clock
from accord.events._sink import DeliveryFailed, Sink
from accord.storage import Database
from accord.storage import events as stored
from accord.storage._events import Delivery, PendingEvent
from accord.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently an event is tried."""

    attempts: int = 8
    backoff: float = 1.0
    max_backoff: float = 300.0

    def delay(self, event_id: str, attempt: int) -> float:
        """Seconds before try ``attempt + 1``: doubling, capped, with a jitter fixed by the
        event id (so retries of many events spread out, reproducibly)."""
        base = min(self.max_backoff, self.backoff * 2.0 ** max(0, attempt - 1))
        spread = hashlib.sha256(f"{event_id}/{attempt}".encode()).digest()[0] / 255
        return base * (0.5 + 0.5 * spread)


@dataclass
class DispatchStats:
    """What one pass (or a whole run) did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0

    def add(self, other: DispatchStats) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.skipped += other.skipped

    @property
    def moved(self) -> int:
        return self.delivered + self.retried + self.dead + self.skipped


class Dispatcher:
    """Delivers the outbox to ``sinks``."""

    def __init__(
        self,
        db: Database,
        sinks: Sequence[Sink],
        *,
        clock: Clock,
        retry: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        holder: str | None = None,
        batch: int = 200,
        record_every: int = 20,
        lease_seconds: float = 30.0,
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        self.db = db
        self.sinks = list(sinks)
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.metrics = metrics
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = batch
        self.record_every = record_every
        self.lease_seconds = lease_seconds

    def dispatch_once(self) -> DispatchStats:
        """One pass over every sink this dispatcher can lease."""
        stats = DispatchStats()
        for sink in self.sinks:
            stats.add(self._dispatch(sink))
        return stats

    def run(self, stop: threading.Event, *, poll_interval: float = 0.5) -> DispatchStats:
        """Dispatch until ``stop`` is set, pausing only when a pass moved nothing."""
        total = DispatchStats()
        try:
            while not stop.is_set():
                try:
                    stats = self.dispatch_once()
                except DBAPIError:
                    # a database outage must not end the dispatcher: the outbox keeps
                    # every event, and the next pass picks up where this one stopped
                    log.exception("event dispatch pass failed; retrying")
                    stop.wait(poll_interval * 4)
                    continue
                total.add(stats)
                if stats.moved == 0:
                    stop.wait(poll_interval)
        finally:
            self.release()
        return total

    def release(self) -> None:
        """Give up every sink lease (on a clean stop, so another dispatcher need not wait)."""
        with self.db.transaction() as connection:
            for sink in self.sinks:
                stored.release_sink(connection, sink.name, self.holder)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def _lease(self, sink: Sink) -> int | None:
        try:
            with self.db.transaction() as connection:
                stored.ensure_sink(connection, sink.name)
        except IntegrityError:
            pass
        with self.db.transaction() as connection:
            return stored.acquire_sink(
                connection,
                sink.name,
                self.holder,
                seconds=self.lease_seconds,
                db_now=self.db.db_now(),
            )

    def _dispatch(self, sink: Sink) -> DispatchStats:
        stats = DispatchStats()
        fence = self._lease(sink)
        if fence is None:
            return stats
        with self.db.read() as connection:
            pending = stored.pending(connection, sink.name, limit=self.batch)
        blocked: set[str] = set()
        results: list[Delivery] = []
        for item in pending:
            key = item.event.ordering_key
            if key in blocked:
                continue
            now = self.clock.now()
            if item.next_attempt_at is not None and item.next_attempt_at > now:
                blocked.add(key)
                continue
            result = self._attempt(sink, item, now)
            self._count(sink, result, stats)
            if result.status == "pending":
                blocked.add(key)
            results.append(result)
            if len(results) >= self.record_every:
                if not self._record(sink, fence, results):
                    return stats
                results = []
        self._record(sink, fence, results)
        return stats

    def _attempt(self, sink: Sink, item: PendingEvent, now: float) -> Delivery:
        event = item.event

        def state(
            status: stored.DeliveryStatus,
            attempts: int = item.attempts,
            *,
            error: str | None = None,
            retry_at: float | None = None,
        ) -> Delivery:
            return Delivery(
                sink=sink.name,
                event_id=event.event_id,
                tenant_id=event.tenant_id,
                status=status,
                attempts=attempts,
                next_attempt_at=retry_at,
                last_error=error,
                updated_at=now,
            )

        if not sink.wants(event):
            return state("skipped")
        attempts = item.attempts + 1
        try:
            sink.send(event)
        except DeliveryFailed as failure:
            error = str(failure)[:2000]
            if failure.permanent or attempts >= self.retry.attempts:
                log.warning(
                    "event %s (%s) dead-lettered for sink %s after %d attempts: %s",
                    event.event_id,
                    event.type,
                    sink.name,
                    attempts,
                    error,
                )
                return state("dead", attempts, error=error)
            delay = self.retry.delay(event.event_id, attempts)
            return state("pending", attempts, error=error, retry_at=now + delay)
        return state("delivered", attempts)

    def _count(self, sink: Sink, result: Delivery, stats: DispatchStats) -> None:
        outcome = {"pending": "retry"}.get(result.status, result.status)
        if result.status == "delivered":
            stats.delivered += 1
        elif result.status == "pending":
            stats.retried += 1
        elif result.status == "dead":
            stats.dead += 1
        else:
            stats.skipped += 1
        if self.metrics is not None:
            self.metrics.events_delivered.labels(sink=sink.name, result=outcome).inc()

    def _record(self, sink: Sink, fence: int, results: list[Delivery]) -> bool:
        """Store the results unless the lease was lost meanwhile (the new holder sends those
        events again). Whether the lease still held."""
        if not results:
            return True
        with self.db.transaction() as connection:
            if not stored.holds_sink(connection, sink.name, self.holder, fence):
                log.warning("lost the lease on sink %s; another dispatcher took it", sink.name)
                return False
            stored.record_deliveries(connection, sink.name, results)
            finished = [r.event_id for r in results if r.status in stored.FINAL]
            stored.mark_dispatched(
                connection, finished, [s.name for s in self.sinks], self.clock.now()
            )
        return True
