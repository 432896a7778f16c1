"""The scrape-time collector: figures kept in the database and the breakers of this process,
as Prometheus gauges beside the families observed in process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from accord.storage import Database
from accord.storage._metrics import read_figures

_BREAKER = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}


class DatabaseCollector(Collector):
    """Reads the figures when Prometheus scrapes (one short read transaction)."""

    def __init__(
        self,
        db: Database,
        breakers: Callable[[], list[dict[str, Any]]],
        *,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.breakers = breakers
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self.db.read() as connection:
            figures = read_figures(connection, now=self.clock(), db_now=self.db.db_now())
        depth = GaugeMetricFamily(
            "accord_review_queue_depth",
            "Open review items (open, claimed, waiting for information), by tenant and queue",
            labels=["tenant", "queue"],
        )
        for tenant, queue, count in figures.review_depth:
            depth.add_metric([tenant, queue], count)
        yield depth
        overdue = GaugeMetricFamily(
            "accord_review_sla_breached",
            "Open review items past their SLA, by tenant and queue",
            labels=["tenant", "queue"],
        )
        for tenant, queue, count in figures.review_overdue:
            overdue.add_metric([tenant, queue], count)
        yield overdue
        letters = GaugeMetricFamily(
            "accord_dead_letters", "Calls waiting in the dead-letter queue", labels=["tenant"]
        )
        for tenant, count in figures.dead_letters:
            letters.add_metric([tenant], count)
        yield letters
        yield GaugeMetricFamily(
            "accord_outbox_pending",
            "Events some sink has not finished with",
            value=figures.outbox_pending,
        )
        lag = 0.0 if figures.outbox_oldest is None else figures.now - figures.outbox_oldest
        yield GaugeMetricFamily(
            "accord_outbox_lag_seconds",
            "Age of the oldest event some sink has not finished with",
            value=max(0.0, lag),
        )
        dead = GaugeMetricFamily(
            "accord_events_dead", "Events dead-lettered, by sink", labels=["sink"]
        )
        for sink, count in figures.events_dead:
            dead.add_metric([sink], count)
        yield dead
        statuses = GaugeMetricFamily(
            "accord_runs", "Runs by tenant and status", labels=["tenant", "status"]
        )
        for tenant, status, count in figures.runs_by_status:
            statuses.add_metric([tenant, status], count)
        yield statuses
        leases = GaugeMetricFamily(
            "accord_worker_leases", "Runs each worker holds a live lease on", labels=["worker"]
        )
        for owner, count in figures.leases:
            leases.add_metric([owner], count)
        yield leases
        breakers = GaugeMetricFamily(
            "accord_breaker_state",
            "Circuit breaker of each endpoint this process called: 0 closed, 1 half-open, 2 open",
            labels=["endpoint"],
        )
        for endpoint in self.breakers():
            state = endpoint.get("breaker")
            if state is not None:
                breakers.add_metric([str(endpoint["endpoint"])], _BREAKER.get(str(state), 2.0))
        yield breakers
