"""Prometheus metrics, one registry per Accord instance (two instances never share series).

The families here are observed where things happen (gateway, runtime, agents, dispatcher).
Figures that live in the database (queue depths, dead letters, outbox lag, leases) are read
when scraped, by a collector the service layer registers with :meth:`Metrics.register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class Metrics:
    """The metric families of one instance, in their own registry."""

    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.gateway_decision_seconds = Histogram(
            "accord_gateway_decision_seconds",
            "Time from a call entering the gateway to its decision (and execution), by "
            "capability and outcome",
            ["capability", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gateway_refusals = Counter(
            "accord_gateway_refusals",
            "Calls the gateway refused, by capability and reason",
            ["capability", "reason"],
            registry=r,
        )
        self.runs_started = Counter(
            "accord_runs_started", "Runs started, by journey", ["journey"], registry=r
        )
        self.runs_finished = Counter(
            "accord_runs_finished",
            "Runs that ended, by journey, status (completed, failed, cancelled, compensated) "
            "and outcome; counted by the worker that computed the end",
            ["journey", "status", "outcome"],
            registry=r,
        )
        self.escalations = Counter(
            "accord_escalations",
            "Cases handed to a person, by journey and queue; divide by accord_runs_started "
            "for the escalation rate",
            ["journey", "queue"],
            registry=r,
        )
        self.block_seconds = Histogram(
            "accord_block_seconds",
            "Time a worker spends on one block visit, by journey and block kind",
            ["journey", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.agent_confidence = Histogram(
            "accord_agent_confidence",
            "Confidence of agent outputs, by agent and version",
            ["agent", "version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.agent_bands = Counter(
            "accord_agent_bands",
            "Agent outputs by band (auto, confirm, escalate), by agent and version",
            ["agent", "version", "band"],
            registry=r,
        )
        self.events_delivered = Counter(
            "accord_events_delivered",
            "Outbound event deliveries, by sink and result (delivered, retry, dead)",
            ["sink", "result"],
            registry=r,
        )
        self.events_received = Counter(
            "accord_events_received",
            "Inbound events, by channel and result (started, signalled, parked, duplicate, "
            "ignored, refused)",
            ["channel", "result"],
            registry=r,
        )

    def register(self, collector: Collector) -> None:
        """Add a collector read at scrape time (e.g. figures kept in the database)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
