"""Case reconstruction: a run's timeline rebuilt from its ledger entries alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accord.audit._ledger import Ledger, LedgerEntry
from accord.audit._shredding import Erased
from accord.errors import RunNotFound
from accord.storage import HistoryEntry

_ENDINGS = {
    "run.completed": "completed",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
    "run.compensated": "compensated",
}
_ERASED_DETAIL: dict[str, Any] = {"erased": True}


@dataclass(frozen=True, slots=True)
class ReplayedDecision:
    """A gateway decision as the ledger recorded it."""

    index: int
    decision_id: str
    at: float
    block: str | None
    capability: str
    outcome: str
    reason: str | None
    record: dict[str, Any]


@dataclass(slots=True)
class ReplayedRun:
    """Everything the ledger says about one run, in order.

    ``status`` is ``completed``, ``failed``, ``cancelled`` or ``compensated`` once the run
    ended, else ``active``; ``erased`` says the subject was erased, so personal details read
    ``{"erased": true}``.
    """

    run_id: str
    tenant_id: str
    journey: str | None = None
    version: int | None = None
    subject_id: str | None = None
    input: dict[str, Any] | None = None
    status: str = "active"
    outcome: str | None = None
    error: Any = None
    history: list[HistoryEntry] = field(default_factory=list)
    decisions: list[ReplayedDecision] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    erased: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant": self.tenant_id,
            "journey": self.journey,
            "version": self.version,
            "subject": self.subject_id,
            "input": self.input,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "erased": self.erased,
            "history": [
                {
                    "seq": h.seq,
                    "at": h.at,
                    "kind": h.kind,
                    "block": h.block,
                    "visit": h.visit,
                    "attempt": h.attempt,
                    "detail": h.detail,
                    "worker": h.worker,
                }
                for h in self.history
            ],
            "decisions": [
                {
                    "ledger_index": d.index,
                    "decision_id": d.decision_id,
                    "at": d.at,
                    "block": d.block,
                    "capability": d.capability,
                    "outcome": d.outcome,
                    "reason": d.reason,
                }
                for d in self.decisions
            ],
            "ledger_entries": [e.index for e in self.entries],
        }


def replay_run(ledger: Ledger, tenant: str, run_id: str) -> ReplayedRun:
    """Rebuild a run from the ledger.

    Raises:
        RunNotFound: the ledger holds nothing about the run in this tenant.
    """
    found = ledger.entries(tenant, run_id=run_id)
    if not found:
        raise RunNotFound(
            f"the ledger of tenant {tenant!r} holds no entries for run {run_id!r}",
            hint="check the run id with 'accord run list'",
        )
    run = ReplayedRun(run_id, tenant, entries=found)
    for entry in found:
        personal = entry.personal
        if isinstance(personal, Erased):
            run.erased = True
        if entry.kind == "run.transition":
            _transition(run, entry, personal)
        elif entry.kind == "gateway.decision":
            body = entry.body
            run.decisions.append(
                ReplayedDecision(
                    entry.index,
                    body["decision_id"],
                    entry.at,
                    body.get("block"),
                    body["capability"],
                    body["outcome"],
                    body.get("reason"),
                    personal if isinstance(personal, dict) else dict(_ERASED_DETAIL),
                )
            )
    run.history.sort(key=lambda h: h.seq)
    return run


def _transition(run: ReplayedRun, entry: LedgerEntry, personal: Any) -> None:
    body = entry.body
    if isinstance(personal, dict):
        detail: dict[str, Any] = personal.get("detail") or {}
    else:
        detail = dict(_ERASED_DETAIL)
    event = body["event"]
    run.history.append(
        HistoryEntry(
            run_id=run.run_id,
            seq=body["seq"],
            at=entry.at,
            kind=event,
            block=body.get("block"),
            visit=body.get("visit"),
            attempt=body.get("attempt"),
            detail=detail,
            worker=body.get("worker"),
        )
    )
    if event == "run.started":
        run.subject_id = entry.subject_id
        run.journey = body.get("journey")
        run.version = body.get("version")
        if isinstance(personal, dict):
            run.input = personal.get("input")
    ending = _ENDINGS.get(event)
    if ending is not None:
        run.status = ending
        run.outcome = body.get("outcome")
        if isinstance(personal, dict):
            run.error = detail.get("error")
        else:
            run.error = dict(_ERASED_DETAIL) if body.get("failed") else None
