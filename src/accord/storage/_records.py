"""The rows and writes the storage layer trades in: plain frozen dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import RowMapping

from accord.storage._agents import NewAgentOutcome

_COMPACT = json.JSONEncoder(separators=(",", ":"))


def json_text(value: Any) -> str:
    """Compact JSON, as stored in text columns."""
    return _COMPACT.encode(value)


RunStatus = Literal["ready", "waiting", "completed", "failed", "cancelled", "compensated"]
TERMINAL: tuple[str, ...] = ("completed", "failed", "cancelled", "compensated")
ACTIVE: tuple[str, ...] = ("ready", "waiting")
SignalKind = Literal["event", "decision", "cancel", "child", "dead_letter"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored."""

    run_id: str
    tenant_id: str
    journey_name: str
    journey_version: int
    subject_id: str | None
    status: str
    outcome: str | None
    error: dict[str, Any] | None
    input: dict[str, Any]
    state: str
    seq: int
    inbox_version: int
    wake_at: float | None
    lease_owner: str | None
    lease_token: int
    lease_expires_at: float | None
    idempotency_key: str | None
    request_digest: str
    parent_run_id: str | None
    parent_token: str | None
    created_at: float
    updated_at: float
    ended_at: float | None
    traceparent: str | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> RunRecord:
        return cls(
            run_id=row["run_id"],
            tenant_id=row["tenant_id"],
            journey_name=row["journey_name"],
            journey_version=row["journey_version"],
            subject_id=row["subject_id"],
            status=row["status"],
            outcome=row["outcome"],
            error=json.loads(row["error"]) if row["error"] else None,
            input=json.loads(row["input"]),
            state=row["state"],
            seq=row["seq"],
            inbox_version=row["inbox_version"],
            wake_at=row["wake_at"],
            lease_owner=row["lease_owner"],
            lease_token=row["lease_token"],
            lease_expires_at=row["lease_expires_at"],
            idempotency_key=row["idempotency_key"],
            request_digest=row["request_digest"],
            parent_run_id=row["parent_run_id"],
            parent_token=row["parent_token"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            ended_at=row["ended_at"],
            traceparent=row.get("traceparent"),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event in a run's history. ``seq`` is gap-free from 1."""

    run_id: str
    seq: int
    at: float
    kind: str
    block: str | None
    visit: int | None
    attempt: int | None
    detail: dict[str, Any]
    worker: str | None


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """An event a transition appends to history (its ``seq`` is assigned at commit)."""

    kind: str
    block: str | None = None
    visit: int | None = None
    attempt: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewRun:
    run_id: str
    tenant_id: str
    journey_name: str
    journey_version: int
    subject_id: str | None
    input: dict[str, Any]
    state: str
    idempotency_key: str | None
    request_digest: str
    parent_run_id: str | None
    parent_token: str | None
    at: float
    started: HistoryEvent
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class NewTimer:
    timer_id: str
    token: str
    purpose: str
    fire_at: float


@dataclass(frozen=True, slots=True)
class NewWait:
    token: str
    name: str
    correlation_key: str | None


@dataclass(frozen=True, slots=True)
class NewDecision:
    """A gateway decision record, committed with the transition whose call it explains."""

    decision_id: str
    capability: str
    outcome: str
    reason: str | None
    at: float
    record: dict[str, Any]
    run_id: str | None = None
    block: str | None = None
    visit: int | None = None
    attempt: int | None = None
    subject_id: str | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A stored gateway decision."""

    decision_id: str
    tenant_id: str
    run_id: str | None
    block: str | None
    visit: int | None
    attempt: int | None
    subject_id: str | None
    capability: str
    purpose: str | None
    outcome: str
    reason: str | None
    at: float
    record: dict[str, Any]

    @classmethod
    def from_row(cls, row: RowMapping) -> DecisionRecord:
        return cls(
            decision_id=row["decision_id"],
            tenant_id=row["tenant_id"],
            run_id=row["run_id"],
            block=row["block"],
            visit=row["visit"],
            attempt=row["attempt"],
            subject_id=row["subject_id"],
            capability=row["capability"],
            purpose=row["purpose"],
            outcome=row["outcome"],
            reason=row["reason"],
            at=row["at"],
            record=json.loads(row["record"]),
        )


@dataclass(frozen=True, slots=True)
class NewSignal:
    """A signal to deliver to another run in the same transaction (child/parent, cancel)."""

    signal_id: str
    tenant_id: str
    run_id: str
    kind: SignalKind
    name: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A domain event for the outbox; it commits with the change it announces."""

    event_id: str
    type: str
    payload: dict[str, Any]
    subject_id: str | None = None


ReviewStatus = Literal["open", "claimed", "info_requested", "decided", "cancelled"]
OPEN_REVIEW: tuple[str, ...] = ("open", "claimed", "info_requested")


@dataclass(frozen=True, slots=True)
class NewReviewItem:
    """A review item a transition opens: a person's task with its handoff packet."""

    item_id: str
    token: str
    block: str
    visit: int
    kind: str
    queue: str
    roles: tuple[str, ...]
    makers: tuple[str, ...]
    priority: int
    due_at: float | None
    packet: dict[str, Any]
    source: str


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """A call that exhausted its retries (or whose outcome is unknown), parked for a person."""

    letter_id: str
    token: str
    block: str
    visit: int
    capability: str
    reason: str
    error: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A stored dead letter."""

    tenant_id: str
    letter_id: str
    run_id: str
    token: str
    block: str
    visit: int
    capability: str
    subject_id: str | None
    reason: str
    error: dict[str, Any]
    attempts: int
    status: str
    created_at: float
    resolved_at: float | None
    resolved_by: str | None
    note: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> DeadLetterRecord:
        return cls(**{**dict(row), "error": json.loads(row["error"])})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class NewConfirmation:
    """A confirmation a transition asks the subject for."""

    confirmation_id: str
    block: str
    visit: int
    channels: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True, slots=True)
class ReviewItemRecord:
    """A stored review item."""

    tenant_id: str
    item_id: str
    run_id: str
    token: str
    block: str
    visit: int
    kind: str
    subject_id: str | None
    queue: str
    roles: tuple[str, ...]
    makers: tuple[str, ...]
    priority: int
    status: ReviewStatus
    owner: str | None
    claimed_at: float | None
    created_at: float
    due_at: float | None
    escalations: int
    packet: dict[str, Any]
    packet_version: int
    source: str
    decision: dict[str, Any] | None
    decision_digest: str | None
    outcome: str | None
    decided_by: str | None
    decided_at: float | None
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> ReviewItemRecord:
        return cls(
            tenant_id=row["tenant_id"],
            item_id=row["item_id"],
            run_id=row["run_id"],
            token=row["token"],
            block=row["block"],
            visit=row["visit"],
            kind=row["kind"],
            subject_id=row["subject_id"],
            queue=row["queue"],
            roles=tuple(json.loads(row["roles"])),
            makers=tuple(json.loads(row["makers"])),
            priority=row["priority"],
            status=row["status"],
            owner=row["owner"],
            claimed_at=row["claimed_at"],
            created_at=row["created_at"],
            due_at=row["due_at"],
            escalations=row["escalations"],
            packet=json.loads(row["packet"]),
            packet_version=row["packet_version"],
            source=row["source"],
            decision=json.loads(row["decision"]) if row["decision"] else None,
            decision_digest=row["decision_digest"],
            outcome=row["outcome"],
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class SignalRecord:
    signal_id: str
    run_id: str | None
    kind: str
    name: str
    correlation_key: str | None
    payload: dict[str, Any]
    received_at: float


@dataclass(slots=True)
class TransitionWrite:
    """Everything one committed transition changes, fenced by the lease it was computed under."""

    run_id: str
    tenant_id: str
    expected_seq: int
    lease_token: int
    inbox_seen: int
    status: RunStatus
    state: str
    wake_at: float | None
    at: float
    release: bool
    events: list[HistoryEvent]
    outcome: str | None = None
    error: dict[str, Any] | None = None
    timers_add: list[NewTimer] = field(default_factory=list)
    timers_delete: list[str] = field(default_factory=list)
    waits_add: list[NewWait] = field(default_factory=list)
    waits_delete: list[str] = field(default_factory=list)
    signals_consumed: list[str] = field(default_factory=list)
    outbox: list[NewEvent] = field(default_factory=list)
    new_runs: list[NewRun] = field(default_factory=list)
    new_signals: list[NewSignal] = field(default_factory=list)
    decisions: list[NewDecision] = field(default_factory=list)
    subject_id: str | None = None
    traceparent: str | None = None
    reviews_add: list[NewReviewItem] = field(default_factory=list)
    reviews_close: list[str] = field(default_factory=list)
    confirmations_add: list[NewConfirmation] = field(default_factory=list)
    confirmations_close: list[str] = field(default_factory=list)
    dead_letters_add: list[NewDeadLetter] = field(default_factory=list)
    intents_close: list[str] = field(default_factory=list)
    agent_outcomes_add: list[NewAgentOutcome] = field(default_factory=list)
    agent_reviews: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """How one write fared. Not committed: its lease was gone, or (``conflict``) a signal it
    consumed was taken by another transition first."""

    run_id: str
    committed: bool
    status: str | None = None
    inbox_version: int | None = None
    seq: int | None = None
    conflict: bool = False
