"""Figures for one tenant's dashboards, read straight from the tables that hold them."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._schema import agent_outcomes, review_items, runs

OPEN = ("open", "claimed", "info_requested")
ESCALATING = ("escalation", "agent")
CONFIDENCE_BINS = 10


@dataclass(frozen=True, slots=True)
class JourneyRates:
    journey: str
    runs: int
    escalated: int

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.runs if self.runs else 0.0


@dataclass(frozen=True, slots=True)
class AgentFigures:
    agent: str
    version: int
    answers: int
    reviewed: int
    overridden: int
    confidence: tuple[int, ...]  # counts per tenth, 0.0-0.1 … 0.9-1.0
    bands: dict[str, int]

    @property
    def override_rate(self) -> float:
        return self.overridden / self.reviewed if self.reviewed else 0.0


@dataclass(frozen=True, slots=True)
class QueueFigures:
    queue: str
    open: int
    overdue: int


@dataclass
class Dashboard:
    """What the console's dashboards draw."""

    buckets: list[float] = field(default_factory=list)
    outcomes: dict[str, list[int]] = field(default_factory=dict)
    journeys: list[JourneyRates] = field(default_factory=list)
    agents: list[AgentFigures] = field(default_factory=list)
    queues: list[QueueFigures] = field(default_factory=list)


def _outcome(status: str, outcome: str | None) -> str:
    if status == "completed":
        return outcome or "completed"
    return status


def dashboard(
    connection: Connection, tenant: str, *, now: float, since: float, buckets: int = 12
) -> Dashboard:
    """Runs by outcome per time bucket since ``since``, escalation rates per journey, agent
    confidence and overrides per version, and review queues with their SLA breaches."""
    found = Dashboard()
    width = max((now - since) / buckets, 1.0)
    found.buckets = [since + i * width for i in range(buckets)]
    rows = connection.execute(
        sa.select(runs.c.created_at, runs.c.status, runs.c.outcome).where(
            runs.c.tenant_id == tenant, runs.c.created_at >= since
        )
    ).all()
    series: dict[str, list[int]] = defaultdict(lambda: [0] * buckets)
    for row in rows:
        index = min(int((float(row.created_at) - since) // width), buckets - 1)
        series[_outcome(str(row.status), row.outcome)][index] += 1
    found.outcomes = dict(sorted(series.items()))

    per_journey: dict[str, int] = dict(
        connection.execute(
            sa.select(runs.c.journey_name, sa.func.count())
            .where(runs.c.tenant_id == tenant)
            .group_by(runs.c.journey_name)
        ).all()
    )
    escalated_runs = (
        sa.select(runs.c.journey_name, sa.func.count(sa.distinct(review_items.c.run_id)))
        .select_from(
            review_items.join(
                runs,
                sa.and_(
                    runs.c.tenant_id == review_items.c.tenant_id,
                    runs.c.run_id == review_items.c.run_id,
                ),
            )
        )
        .where(review_items.c.tenant_id == tenant, review_items.c.kind.in_(ESCALATING))
        .group_by(runs.c.journey_name)
    )
    escalated: dict[str, int] = dict(connection.execute(escalated_runs).all())
    found.journeys = [
        JourneyRates(name, int(count), int(escalated.get(name, 0)))
        for name, count in sorted(per_journey.items())
    ]

    a = agent_outcomes
    confidence: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0] * CONFIDENCE_BINS)
    bands: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    reviewed: Counter[tuple[str, int]] = Counter()
    overridden: Counter[tuple[str, int]] = Counter()
    for row in connection.execute(
        sa.select(a.c.agent, a.c.version, a.c.band, a.c.confidence, a.c.review_outcome).where(
            a.c.tenant_id == tenant, a.c.arm != "shadow"
        )
    ):
        key = (str(row.agent), int(row.version))
        value, band, review = float(row.confidence), str(row.band), row.review_outcome
        confidence[key][min(int(value * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)] += 1
        bands[key][band] += 1
        if review is not None:
            reviewed[key] += 1
            if review != "accepted":  # edited, rejected or overridden by a person
                overridden[key] += 1
    found.agents = [
        AgentFigures(
            agent=key[0],
            version=key[1],
            answers=sum(counts),
            reviewed=reviewed[key],
            overridden=overridden[key],
            confidence=tuple(counts),
            bands=dict(bands[key]),
        )
        for key, counts in sorted(confidence.items())
    ]

    r = review_items
    depth: dict[str, int] = dict(
        connection.execute(
            sa.select(r.c.queue, sa.func.count())
            .where(r.c.tenant_id == tenant, r.c.status.in_(OPEN))
            .group_by(r.c.queue)
        ).all()
    )
    overdue: dict[str, int] = dict(
        connection.execute(
            sa.select(r.c.queue, sa.func.count())
            .where(
                r.c.tenant_id == tenant,
                r.c.status.in_(OPEN),
                r.c.due_at.is_not(None),
                r.c.due_at < now,
            )
            .group_by(r.c.queue)
        ).all()
    )
    found.queues = [
        QueueFigures(queue, int(count), int(overdue.get(queue, 0)))
        for queue, count in sorted(depth.items())
    ]
    return found
