"""What a replay reports: per run, the decisions that would change, with both explanations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ChangeKind = Literal[
    "rules", "choice", "gateway", "agent", "offer", "human", "path", "outcome", "input"
]
RunStatus = Literal["unchanged", "changed", "diverged", "failed"]


@dataclass(frozen=True, slots=True)
class DecisionChange:
    """One decision that would come out differently under the candidate.

    Attributes:
        kind: what decided: a decision table (``rules``), a branch (``choice``), the gateway,
            an agent, a person's wait (``human``); or a consequence: the blocks visited
            (``path``), how the run ends (``outcome``), the recorded input (``input``).
        block: the block (with its map scope), None for the run as a whole.
        visit: the block's visit, when the decision has one.
        before: what was recorded (scrubbed of personal data).
        after: what the candidate decides (scrubbed of personal data).
        recorded: the recorded explanation of the decision, from the production ledger.
        candidate: the candidate's explanation, from the shadow's ledger.
        note: what follows from it, e.g. the path that changes.
    """

    kind: ChangeKind
    block: str | None
    visit: int | None
    before: Any
    after: Any
    recorded: str | None = None
    candidate: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "block": self.block,
            "visit": self.visit,
            "before": self.before,
            "after": self.after,
            "recorded_explanation": self.recorded,
            "candidate_explanation": self.candidate,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class RunReplay:
    """One recorded run replayed against the candidate."""

    run_id: str
    subject: str | None
    status: RunStatus
    recorded_path: tuple[str, ...]
    candidate_path: tuple[str, ...]
    recorded_outcome: str
    candidate_outcome: str
    changes: tuple[DecisionChange, ...] = ()
    divergences: tuple[str, ...] = ()
    waits: tuple[str, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "subject": self.subject,
            "status": self.status,
            "recorded": {"path": list(self.recorded_path), "outcome": self.recorded_outcome},
            "candidate": {"path": list(self.candidate_path), "outcome": self.candidate_outcome},
            "changes": [c.to_json() for c in self.changes],
            "divergences": list(self.divergences),
            "waits": list(self.waits),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Every replayed run of the window, and what was skipped."""

    tenant: str
    journey: str
    candidate: str
    since: float
    until: float | None
    runs: tuple[RunReplay, ...]
    skipped_erased: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def count(self, status: RunStatus) -> int:
        return sum(1 for r in self.runs if r.status == status)

    @property
    def counts(self) -> dict[str, int]:
        """runs replayed, unchanged, changed, diverged, failed, and skipped (erased)."""
        return {
            "replayed": len(self.runs),
            "unchanged": self.count("unchanged"),
            "changed": self.count("changed"),
            "diverged": self.count("diverged"),
            "failed": self.count("failed"),
            "skipped": len(self.skipped_erased),
        }

    @property
    def differs(self) -> bool:
        """Whether any run would change, diverge or could not be replayed (what CI gates on)."""
        counts = self.counts
        return bool(counts["changed"] or counts["diverged"] or counts["failed"])

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "journey": self.journey,
            "candidate": self.candidate,
            "since": self.since,
            "until": self.until,
            "counts": self.counts,
            "skipped": {"erased_subjects": len(self.skipped_erased)},
            "notes": list(self.notes),
            "runs": [r.to_json() for r in self.runs],
        }
