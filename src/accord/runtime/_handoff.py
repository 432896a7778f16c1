"""Building the handoff packet of a review item from what a run knows at the moment it pauses.

The packet shows the reviewer only the subject's data their purpose allows: every field a
capability returns carries a data category, and a field is shown when the subject's lawful
basis for the reviewing block's purpose covers its category (and, if the block narrows
``reads``, when the block reads it). Everything else is named in ``withheld``, without a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from accord.connectors import CapabilityRegistry
from accord.consent import ConsentSnapshot
from accord.errors import ExpressionError
from accord.journeys import (
    ApproveBlock,
    CompiledJourney,
    DecideBlock,
    EscalateBlock,
    TaskBlock,
)
from accord.reviews import (
    Attempt,
    Evidence,
    HandoffPacket,
    PolicyContext,
    ProposedCall,
    Recommendation,
    ReviewKind,
    RunRef,
    Source,
    SubjectSummary,
    Verified,
)
from accord.runtime._state import derived_id
from accord.storage import DecisionRecord, NewDecision


def review_item_id(run_id: str, path: str, visit: int, serial: int) -> str:
    key = f"{run_id}/{path}/{visit}/{serial}"
    return derived_id("rev", key)


@dataclass(frozen=True)
class PacketFacts:
    """What the run knows when it pauses for a person."""

    journey: CompiledJourney
    capabilities: CapabilityRegistry
    run_id: str
    subject_id: str | None
    block: str
    path: str
    visit: int
    steps: Mapping[str, Any]
    errors: Mapping[str, Any]
    decisions: Sequence[DecisionRecord | NewDecision]
    consent: ConsentSnapshot | None
    now: float


def journey_source(journey: CompiledJourney) -> Source:
    return Source(kind="journey", id=journey.name, version=str(journey.version))


def recommendation_from(
    mapped: Mapping[str, Any] | None, journey: CompiledJourney, block: str, default: str
) -> Recommendation:
    """A block's ``recommend`` mapping as a typed recommendation (the journey's own if none)."""
    data = dict(mapped or {})
    data.setdefault("decision", default)
    data.setdefault("source", journey_source(journey).model_dump())
    try:
        return Recommendation.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}" for e in exc.errors()
        )
        raise ExpressionError(
            f"block {block!r}: the recommendation is invalid: {problems}",
            hint="recommend maps decision, value, confidence (0 to 1), band, rationale and "
            "source {kind, id, version}",
        ) from exc


def build_packet(
    facts: PacketFacts,
    *,
    item_id: str,
    kind: ReviewKind,
    title: str,
    reason: str,
    purpose: str | None,
    reads: Iterable[str],
    recommendation: Recommendation,
    policy: PolicyContext | None = None,
    proposed: ProposedCall | None = None,
    decisions: Sequence[str],
    routes: Sequence[str],
    edit_schema: dict[str, Any] | None,
) -> HandoffPacket:
    return HandoffPacket(
        item_id=item_id,
        kind=kind,
        title=title,
        reason=reason,
        run=RunRef(
            run_id=facts.run_id,
            journey=facts.journey.name,
            version=facts.journey.version,
            block=facts.path,
            visit=facts.visit,
        ),
        subject=_subject_summary(facts, purpose, set(reads)),
        verified=[
            Verified(
                block=d.block or "",
                capability=d.capability,
                system=d.capability.split(".", 1)[0],
                decision_id=d.decision_id,
                at=d.at,
            )
            for d in facts.decisions
            if d.outcome == "executed"
        ],
        attempted=_attempts(facts),
        remaining=_remaining(facts.journey, facts.block),
        recommendation=recommendation,
        policy=policy or PolicyContext(),
        proposed=proposed,
        decisions=list(decisions),
        routes=list(routes),
        edit_schema=edit_schema,
        evidence=[
            *(Evidence(kind="gateway.decision", ref=d.decision_id) for d in facts.decisions),
            Evidence(kind="run.transition", ref=facts.run_id),
        ],
    )


def _subject_summary(facts: PacketFacts, purpose: str | None, reads: set[str]) -> SubjectSummary:
    categories: dict[str, str] = {}
    for step, output in facts.steps.items():
        capability = _capability_of(facts, step)
        if capability is None or not isinstance(output, dict):
            continue
        for name in output:
            category = capability.fields.get(name)
            if category is not None:
                categories[f"{step}.{name}"] = category
    allowed = _allowed(facts, purpose, set(categories.values()), reads)
    fields: dict[str, dict[str, Any]] = {}
    withheld: list[str] = []
    shown: set[str] = set()
    for step, output in facts.steps.items():
        node = facts.journey.nodes.get(step)
        block = node.block if node is not None else None
        if isinstance(block, TaskBlock) and isinstance(output, dict):
            kept = {}
            for name, value in output.items():
                category = categories.get(f"{step}.{name}")
                if category is None or category in allowed:
                    kept[name] = value
                    if category is not None:
                        shown.add(category)
                else:
                    withheld.append(f"{step}.{name}")
            fields[step] = kept
        elif isinstance(block, DecideBlock | ApproveBlock | EscalateBlock) and isinstance(
            output, dict
        ):
            fields[step] = dict(output)
        else:
            withheld.append(step)
    return SubjectSummary(
        subject_id=facts.subject_id,
        purpose=purpose,
        fields=fields,
        categories=sorted(shown),
        withheld=sorted(withheld),
    )


def _allowed(
    facts: PacketFacts, purpose: str | None, wanted: set[str], reads: set[str]
) -> set[str]:
    """The categories the reviewing purpose may see of this subject now."""
    if not wanted or facts.consent is None or not purpose:
        return set()
    check = facts.consent.check(purpose, tuple(sorted(wanted)), at=facts.now)
    allowed = wanted - set(check.missing)
    if check.allowed_categories is not None:
        allowed &= set(check.allowed_categories)
    if reads:
        allowed &= reads
    return allowed


def _capability_of(facts: PacketFacts, step: str) -> Any:
    node = facts.journey.nodes.get(step)
    if node is None or not isinstance(node.block, TaskBlock):
        return None
    return facts.capabilities.find(node.block.capability)


def _attempts(facts: PacketFacts) -> list[Attempt]:
    found = []
    explained = set()
    for d in facts.decisions:
        if d.outcome == "executed":
            continue
        record = d.record
        message = record.get("message") or (record.get("error") or {}).get("message")
        found.append(
            Attempt(
                block=d.block,
                what=d.capability,
                outcome=d.outcome,
                reason=d.reason,
                message=message,
                decision_id=d.decision_id,
            )
        )
        explained.add(d.decision_id)
    for block, error in facts.errors.items():
        if not isinstance(error, dict) or error.get("decision") in explained:
            continue
        found.append(
            Attempt(
                block=block,
                what=str(error.get("type") or "block"),
                outcome="failed",
                reason=error.get("reason"),
                message=error.get("message"),
                decision_id=error.get("decision"),
            )
        )
    return found


def _remaining(journey: CompiledJourney, start: str) -> list[str]:
    """The blocks control can still reach from ``start``, nearest first."""
    seen: list[str] = []
    frontier = list(_successors(journey, start))
    while frontier:
        current = frontier.pop(0)
        if current in seen or current == start or current not in journey.nodes:
            continue
        seen.append(current)
        frontier.extend(_successors(journey, current))
    return seen


def _successors(journey: CompiledJourney, block_id: str) -> list[str]:
    block: Any = journey.nodes[block_id].block
    out = [block.next, block.on_error]
    out.extend(getattr(block, "on", {}).values())
    out.extend(getattr(block, "on_refusal", {}).values())
    out.append(getattr(block, "on_timeout", None))
    out.extend(c.next for c in getattr(block, "choices", ()))
    default = getattr(block, "default", None)
    if isinstance(default, str):
        out.append(default)
    return [t for t in out if isinstance(t, str)]
