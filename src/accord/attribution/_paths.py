"""A run's path as decision points: what was decided at each block, in the order it was decided,
read from the events the runtime recorded in the run's history.

A decision point is a block and the kind of decision taken there. One block can hold two: an
agent block's answer (``agent``) and the person who then reviewed it (``review``). The value at
a point is what was decided, as a short text:

- ``branch``: a ``choice`` block's ``choice.taken``; the block the run went to.
- ``table``: a ``decide`` block's ``decision.made``; the output's scalar fields.
- ``agent``: an ``agent`` block's ``agent.output``; the intent and the band.
- ``review``: a person's ``decision.received`` (approve, escalate, agent, a task's approval);
  the decision, an override with the outcome it chose.
- ``gateway``: ``gateway.refused`` of a task, else its ``block.completed``; ``refused:
  <reason>`` or ``permitted``.
- ``confirmation``: ``confirmation.answered`` or ``confirmation.implicit``; the answer.
- ``experiment``: the ``block.completed`` of an ``experiment.assign`` task; the arm.
- ``offer``: an ``offer`` block's ``offer.chosen``; the offer chosen (``none`` when
  nothing could be offered). A choice that explored was partly random, but its chances are not
  recorded, so it is estimated like any observed decision.

A task block is a ``gateway`` point only when some run of the batch was refused there: a task
every run passes decides nothing. An arm is randomised only while its experiment was running;
once it ended, everyone new gets the shipped arm, which is no experiment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "PATH_EVENT_KINDS",
    "Point",
    "PointKind",
    "RecordedEvent",
    "RecordedRun",
    "RunPath",
    "Step",
    "outcome_of",
    "paths_of",
]

PointKind = Literal[
    "branch", "table", "agent", "review", "gateway", "confirmation", "experiment", "offer"
]

ASSIGN = "experiment.assign"

PATH_EVENT_KINDS: tuple[str, ...] = (
    "choice.taken",
    "decision.made",
    "agent.output",
    "decision.received",
    "gateway.refused",
    "block.completed",
    "confirmation.answered",
    "confirmation.implicit",
    "offer.chosen",
)
"""The history events a path is read from."""

INTENT_FIELDS = ("intent", "action", "label", "category", "decision", "outcome")
"""Where an agent's answer names what it decided, in order of preference."""

MAX_TEXT = 48
PERMITTED = "permitted"


@dataclass(frozen=True, slots=True, order=True)
class Point:
    """A decision point of a journey: a block, and the kind of decision taken there."""

    block: str
    kind: PointKind

    @property
    def label(self) -> str:
        return f"{self.block} ({self.kind})"

    def to_json(self) -> dict[str, str]:
        return {"block_id": self.block, "kind": self.kind, "label": self.label}


@dataclass(frozen=True, slots=True)
class Step:
    """What one run decided at one point.

    Attributes:
        point: where.
        value: what, as a short text.
        randomised: the value was drawn at random for the run's subject (a running
            experiment's arm), so comparing values estimates their effect.
        experiment: the experiment whose arm this is.
    """

    point: Point
    value: str
    randomised: bool = False
    experiment: str | None = None

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {**self.point.to_json(), "value": self.value}
        if self.point.kind == "experiment":
            found.update(randomised=self.randomised, experiment=self.experiment)
        return found


@dataclass(frozen=True, slots=True)
class RunPath:
    """An ended run's decision points in the order they were taken, and how it ended."""

    run_id: str
    version: int
    subject: str | None
    started_at: float
    outcome: str
    steps: tuple[Step, ...]

    def first_steps(self) -> dict[Point, tuple[int, Step]]:
        """Each point's first step on the path, with its position."""
        found: dict[Point, tuple[int, Step]] = {}
        for index, step in enumerate(self.steps):
            found.setdefault(step.point, (index, step))
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "version": self.version,
            "started_at": self.started_at,
            "outcome": self.outcome,
            "steps": [s.to_json() for s in self.steps],
        }


class RecordedEvent(Protocol):
    """One event of a run's history (``accord.storage.HistoryEntry`` is one)."""

    @property
    def kind(self) -> str: ...
    @property
    def block(self) -> str | None: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """An ended run as stored: its status and outcome, and the events of its history."""

    run_id: str
    version: int
    subject: str | None
    started_at: float
    status: str
    outcome: str | None
    events: Sequence[RecordedEvent]

    @property
    def erased(self) -> bool:
        """The subject was erased: the history's details are gone on purpose."""
        return any(dict(e.detail) == {"erased": True} for e in self.events)


def outcome_of(status: str, outcome: str | None) -> str:
    """How a run ended, in one word: its ``end`` block's outcome, else its status."""
    return outcome if outcome else status


def paths_of(runs: Iterable[RecordedRun]) -> tuple[list[RunPath], int]:
    """The decision-point paths of ``runs``, and how many runs were left out as erased."""
    kept = []
    erased = 0
    for run in runs:
        if run.erased:
            erased += 1
        else:
            kept.append(run)
    refused = {
        _block(e.block)
        for run in kept
        for e in run.events
        if e.kind == "gateway.refused" and e.block is not None
    }
    paths = [
        RunPath(
            run_id=run.run_id,
            version=run.version,
            subject=run.subject,
            started_at=run.started_at,
            outcome=outcome_of(run.status, run.outcome),
            steps=tuple(_steps(run.events, refused)),
        )
        for run in kept
    ]
    return paths, erased


def _steps(events: Iterable[RecordedEvent], refused: set[str]) -> Iterable[Step]:
    for event in events:
        if event.block is None:
            continue
        block = _block(event.block)
        detail = event.detail
        kind = event.kind
        if kind == "choice.taken":
            yield Step(Point(block, "branch"), _text(detail.get("next")))
        elif kind == "decision.made":
            yield Step(Point(block, "table"), summarise(detail.get("output")))
        elif kind == "agent.output":
            band = _text(detail.get("band"))
            yield Step(Point(block, "agent"), f"{intent(detail.get('output'))} ({band})")
        elif kind == "decision.received":
            yield Step(Point(block, "review"), _decision(detail))
        elif kind == "gateway.refused":
            yield Step(Point(block, "gateway"), f"refused: {_text(detail.get('reason'))}")
        elif kind == "confirmation.answered":
            yield Step(Point(block, "confirmation"), _text(detail.get("answer")))
        elif kind == "confirmation.implicit":
            yield Step(Point(block, "confirmation"), "implicit")
        elif kind == "offer.chosen":
            chosen = detail.get("offer")
            yield Step(Point(block, "offer"), _text(chosen) if chosen else "none")
        elif kind == "block.completed":
            if detail.get("capability") == ASSIGN:
                output = detail.get("output")
                if isinstance(output, Mapping):
                    yield Step(
                        Point(block, "experiment"),
                        _text(output.get("variant")),
                        randomised=output.get("status") == "running",
                        experiment=_text(output.get("experiment")),
                    )
            elif block in refused:
                yield Step(Point(block, "gateway"), PERMITTED)


def _block(path: str) -> str:
    """The block id of an event's block path (``scope/block`` inside a map or parallel)."""
    return path.rsplit("/", 1)[-1]


def _decision(detail: Mapping[str, Any]) -> str:
    decision = _text(detail.get("decision"))
    chosen = detail.get("override_outcome")
    if decision == "override" and chosen:
        return f"override: {_text(chosen)}"
    return decision


def intent(output: Any) -> str:
    """What an agent's answer decided: its intent (or action, label…) field, else a summary."""
    if isinstance(output, Mapping):
        for name in INTENT_FIELDS:
            value = output.get(name)
            if _is_scalar(value) and value is not None:
                return _text(value)
    return summarise(output)


def summarise(value: Any) -> str:
    """A decision's output as a short text: a mapping by its scalar fields (``tier=gold,
    approve=true``, sorted by name), a list by its length, a scalar as itself."""
    if isinstance(value, Mapping):
        fields = [f"{k}={_text(v)}" for k, v in sorted(value.items()) if _is_scalar(v)]
        return _clip(", ".join(fields)) if fields else "(no scalar fields)"
    if isinstance(value, list | tuple):
        return f"({len(value)} results)"
    return _text(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return _clip(str(value))
    return _clip(json.dumps(value, sort_keys=True, default=str))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
