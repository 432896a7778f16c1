"""What the watch measures, per journey and per decision point, from plain facts about runs.

A window holds the runs started in it and everything they did. From those facts
:func:`measure` computes, per journey: the share of runs that failed, that were handed to a
person (an ``escalate`` block or an agent's escalate band), that a gateway refusal stopped or
diverted, and the durations of the completed ones; per agent block: the mix of bands and the
share of escalations among its outputs, and the share of its reviewed outputs people changed
(edited, rejected or overrode); per ``decide`` block the rules that decided, and per
``choice`` block the branch taken. A block's figures also count what is still pending: runs
still going that have not reached the block, and outputs still waiting for their review; the
tests take those at their least alarming. Nothing here reads the database.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median
from typing import Literal

MetricName = Literal[
    "failure_rate",
    "escalation_rate",
    "refusal_rate",
    "run_duration",
    "override_rate",
    "agent_escalation_rate",
    "band_mix",
    "decision_outcomes",
    "branches",
]
Shape = Literal["rate", "mix", "sample"]
JOURNEY = "*"
"""The decision point of a journey-wide metric."""

FAILED = ("failed", "compensated")
CHANGED = ("edited", "rejected", "overridden")
"""Review outcomes that say a person did not take an agent's output as it was."""


@dataclass(frozen=True, slots=True)
class MetricInfo:
    shape: Shape
    description: str
    unit: str
    """What the counts count: runs, outputs, reviewed outputs, visits."""


METRICS: dict[MetricName, MetricInfo] = {
    "failure_rate": MetricInfo("rate", "runs that failed", "runs"),
    "escalation_rate": MetricInfo("rate", "runs handed to a person", "runs"),
    "refusal_rate": MetricInfo("rate", "runs a gateway refusal stopped or diverted", "runs"),
    "run_duration": MetricInfo("sample", "seconds from start to completion", "completed runs"),
    "override_rate": MetricInfo(
        "rate", "reviewed outputs people edited, rejected or overrode", "reviewed outputs"
    ),
    "agent_escalation_rate": MetricInfo("rate", "outputs in the escalate band", "outputs"),
    "band_mix": MetricInfo("mix", "outputs per band (auto, confirm, escalate)", "outputs"),
    "decision_outcomes": MetricInfo("mix", "visits per matched rule", "visits"),
    "branches": MetricInfo("mix", "visits per branch taken", "visits"),
}


@dataclass(frozen=True, slots=True, order=True)
class MetricKey:
    """One metric of one journey (``point`` is :data:`JOURNEY`) or of one of its blocks."""

    journey: str
    point: str
    metric: MetricName

    @property
    def label(self) -> str:
        where = self.journey if self.point == JOURNEY else f"{self.journey}/{self.point}"
        return f"{where} {self.metric}"

    def to_json(self) -> dict[str, str]:
        return {"journey": self.journey, "point": self.point, "metric": self.metric}


@dataclass(frozen=True, slots=True)
class Rate:
    events: int
    total: int
    pending: int = 0
    """Observations not known yet: runs still going that have not reached the block, or
    outputs of such runs still waiting for their review. The tests take each at its least
    alarming (:func:`accord.watch._detect.bounded`)."""

    @property
    def value(self) -> float:
        return self.events / self.total if self.total else 0.0

    @property
    def count(self) -> int:
        return self.total

    def to_json(self) -> dict[str, float | int]:
        found: dict[str, float | int] = {
            "events": self.events,
            "total": self.total,
            "rate": round(self.value, 6),
        }
        if self.pending:
            found["pending"] = self.pending
        return found


@dataclass(frozen=True, slots=True)
class Mix:
    counts: tuple[tuple[str, int], ...]
    """(category, count), by category."""
    pending: int = 0
    """Runs still going that have not reached the block yet: their visits are not known."""

    @property
    def count(self) -> int:
        return sum(n for _, n in self.counts)

    def share(self, category: str) -> float:
        total = self.count
        return dict(self.counts).get(category, 0) / total if total else 0.0

    def to_json(self) -> dict[str, object]:
        found: dict[str, object] = {"counts": dict(self.counts), "total": self.count}
        if self.pending:
            found["pending"] = self.pending
        return found


@dataclass(frozen=True, slots=True)
class Sample:
    values: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return float(median(self.values)) if self.values else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {"count": self.count, "median": round(self.median, 6)}


Figure = Rate | Mix | Sample


@dataclass(frozen=True, slots=True)
class RunFact:
    """One run started in the window, with what it met on its way."""

    run_id: str
    journey: str
    version: int
    status: str
    created_at: float
    ended_at: float | None
    escalated: bool = False
    refused: bool = False
    failed_capabilities: tuple[str, ...] = ()
    """Capabilities whose calls failed in this run (gateway decisions ``failed``)."""
    refusals: tuple[str, ...] = ()
    """``capability: reason`` of each refused gateway decision of this run."""


@dataclass(frozen=True, slots=True)
class AgentFact:
    """One agent output (a primary's or a canary candidate's; shadows are left out)."""

    run_id: str
    journey: str
    block: str
    agent: str
    version: int
    arm: str
    rollout_id: str | None
    band: str
    review_outcome: str | None


@dataclass(frozen=True, slots=True)
class RouteFact:
    """One visit of a ``decide`` or ``choice`` block, and what it decided."""

    run_id: str
    journey: str
    block: str
    kind: Literal["decide", "choice"]
    outcome: str


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the runs started in one window did, as far as the watch cares."""

    start: float
    end: float
    runs: tuple[RunFact, ...] = ()
    agents: tuple[AgentFact, ...] = ()
    routes: tuple[RouteFact, ...] = ()


def measure(facts: Facts) -> dict[MetricKey, Figure]:
    """Every metric the facts allow, by key."""
    found: dict[MetricKey, Figure] = {}
    per_journey: dict[str, list[RunFact]] = defaultdict(list)
    going: dict[str, set[str]] = defaultdict(set)
    """The runs still going, per journey."""
    for run in facts.runs:
        per_journey[run.journey].append(run)
        if run.ended_at is None:
            going[run.journey].add(run.run_id)
    for journey, runs in per_journey.items():
        total = len(runs)

        def key(metric: MetricName, journey: str = journey) -> MetricKey:
            return MetricKey(journey, JOURNEY, metric)

        found[key("failure_rate")] = Rate(sum(r.status in FAILED for r in runs), total)
        found[key("escalation_rate")] = Rate(sum(r.escalated for r in runs), total)
        found[key("refusal_rate")] = Rate(sum(r.refused for r in runs), total)
        found[key("run_duration")] = Sample(
            tuple(
                sorted(
                    r.ended_at - r.created_at
                    for r in runs
                    if r.status == "completed" and r.ended_at is not None
                )
            )
        )
    per_block: dict[tuple[str, str], list[AgentFact]] = defaultdict(list)
    for output in facts.agents:
        per_block[(output.journey, output.block)].append(output)
    for (journey, block), outputs in per_block.items():
        # runs still going that have not reached the block: what they will do is not known
        unreached = len(going[journey] - {o.run_id for o in outputs})
        reviewed = [o for o in outputs if o.review_outcome is not None]
        waiting = sum(
            o.review_outcome is None and o.band != "auto" and o.run_id in going[journey]
            for o in outputs
        )
        found[MetricKey(journey, block, "override_rate")] = Rate(
            sum(o.review_outcome in CHANGED for o in reviewed), len(reviewed), unreached + waiting
        )
        found[MetricKey(journey, block, "agent_escalation_rate")] = Rate(
            sum(o.band == "escalate" for o in outputs), len(outputs), unreached
        )
        found[MetricKey(journey, block, "band_mix")] = mix(
            (o.band for o in outputs), pending=unreached
        )
    per_route: dict[tuple[str, str, str], list[RouteFact]] = defaultdict(list)
    for route in facts.routes:
        per_route[(route.journey, route.block, route.kind)].append(route)
    for (journey, block, kind), visits in per_route.items():
        metric: MetricName = "decision_outcomes" if kind == "decide" else "branches"
        unreached = len(going[journey] - {v.run_id for v in visits})
        found[MetricKey(journey, block, metric)] = mix(
            (v.outcome for v in visits), pending=unreached
        )
    return found


def mix(categories: Iterable[str], *, pending: int = 0) -> Mix:
    return Mix(tuple(sorted(Counter(categories).items())), pending)


__all__ = [
    "CHANGED",
    "FAILED",
    "JOURNEY",
    "METRICS",
    "AgentFact",
    "Facts",
    "Figure",
    "MetricInfo",
    "MetricKey",
    "MetricName",
    "Mix",
    "Rate",
    "RouteFact",
    "RunFact",
    "Sample",
    "measure",
    "mix",
]
