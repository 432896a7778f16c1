"""Decisions on review items: the five kinds, their checks, and what they come to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import jsonschema

from accord.errors import InputError
from accord.reviews._packet import HandoffPacket
from accord.storage import ReviewItemRecord

Decision = Literal["approve", "edit", "reject", "override", "request_info"]
DECISIONS: tuple[str, ...] = get_args(Decision)
Outcome = Literal["accepted", "edited", "rejected", "overridden"]
OUTCOMES: dict[str, Outcome] = {
    "approve": "accepted",
    "edit": "edited",
    "reject": "rejected",
    "override": "overridden",
}
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What a decision did. ``replayed``: the same decision had been taken already."""

    item_id: str
    run_id: str
    decision: str
    outcome: str | None
    status: str
    by: str
    at: float
    signal_id: str | None
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "run_id": self.run_id,
            "decision": self.decision,
            "outcome": self.outcome,
            "status": self.status,
            "by": self.by,
            "at": self.at,
            "signal_id": self.signal_id,
            "replayed": self.replayed,
        }


@dataclass(frozen=True, slots=True)
class Feedback:
    """How people received one recommender version's recommendations."""

    source: str
    decided: int
    accepted: int
    edited: int
    rejected: int
    overridden: int

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.decided if self.decided else 0.0

    @property
    def override_rate(self) -> float:
        return self.overridden / self.decided if self.decided else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "decided": self.decided,
            "accepted": self.accepted,
            "edited": self.edited,
            "rejected": self.rejected,
            "overridden": self.overridden,
            "acceptance_rate": round(self.acceptance_rate, 4),
            "override_rate": round(self.override_rate, 4),
        }


def decision_request(
    packet: HandoffPacket,
    decision: str,
    reason: str | None,
    value: Any,
    outcome: str | None,
    question: str | None,
) -> dict[str, Any]:
    """The decision as stored and compared, after checking it is well formed."""
    if decision not in DECISIONS:
        raise InputError(
            f"{decision!r} is not a decision",
            hint=f"decide one of: {', '.join(DECISIONS)}",
        )
    if decision not in packet.decisions:
        raise InputError(
            f"item {packet.item_id} does not take {decision!r}",
            hint=f"it takes: {', '.join(packet.decisions)}",
        )
    if reason is not None and len(reason) > MAX_REASON:
        raise InputError(f"a reason is at most {MAX_REASON} characters, not {len(reason)}")
    request: dict[str, Any] = {"decision": decision, "reason": reason or None}
    if decision == "override":
        require_reason(reason, "an override")
        choices = sorted({"approve", "reject", *packet.routes} - {"override", "request_info"})
        if outcome not in choices:
            raise InputError(
                f"an override needs an outcome: one of {', '.join(choices)}"
                + (f", not {outcome!r}" if outcome else ""),
                hint="e.g. --outcome approve --reason '...'",
            )
        request["outcome"] = outcome
    elif outcome is not None:
        raise InputError("only an override takes an outcome", hint="leave --outcome out")
    if decision == "edit" or (decision == "override" and value is not None):
        if packet.edit_schema is None:
            raise InputError(
                f"item {packet.item_id} takes no edited value: its block declares no edit_schema",
                hint="approve, reject or override it instead",
            )
        if value is None:
            raise InputError("an edit needs the edited value", hint="--value '{...}'")
        validate_edit(packet.edit_schema, value)
        request["value"] = value
    elif value is not None:
        raise InputError(f"{decision!r} takes no value", hint="only edit and override do")
    if decision == "request_info":
        if not question or not question.strip():
            raise InputError(
                "request_info needs the question to ask", hint="--question 'which order?'"
            )
        request["question"] = question
    elif question is not None:
        raise InputError("only request_info takes a question")
    return request


def validate_edit(schema: dict[str, Any], value: Any) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if problems:
        listed = "; ".join(
            f"{'.'.join(str(p) for p in e.absolute_path) or '(value)'}: {e.message}"
            for e in problems[:5]
        )
        raise InputError(
            f"the edited value breaks the contract: {listed}",
            hint="'accord review show ITEM' shows the edit schema",
        )


def require_reason(reason: str | None, what: str) -> None:
    if not reason or not reason.strip():
        raise InputError(f"{what} needs a reason", hint="--reason 'why'")


def result_of(item: ReviewItemRecord, *, replayed: bool) -> DecisionResult:
    decision = item.decision or {}
    return DecisionResult(
        item.item_id,
        item.run_id,
        str(
            decision.get("decision") or ("request_info" if item.status == "info_requested" else "")
        ),
        item.outcome,
        item.status,
        str(item.decided_by or item.owner or ""),
        float(item.decided_at or item.updated_at),
        cast("str | None", decision.get("signal_id")),
        replayed=replayed,
    )


__all__ = [
    "DECISIONS",
    "OUTCOMES",
    "Decision",
    "DecisionResult",
    "Feedback",
    "Outcome",
    "decision_request",
    "require_reason",
    "result_of",
    "validate_edit",
]
