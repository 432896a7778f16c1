"""The recorded runs a replay re-runs: read once from the production database, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.core import TenantId
from accord.storage import (
    Database,
    DecisionRecord,
    HistoryEntry,
    RunRecord,
    SignalRecord,
    ledger,
    runs,
    signals,
)
from accord.storage import decisions as stored_decisions

_PAGE = 200


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """One recorded run with everything a shadow of it is fed from and compared with."""

    record: RunRecord
    history: tuple[HistoryEntry, ...]
    decisions: tuple[DecisionRecord, ...]
    signals: tuple[SignalRecord, ...]

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def outputs(self) -> dict[tuple[str, int], tuple[str, Any]]:
        """What each task's call returned, by (block path, visit): (capability, output)."""
        found: dict[tuple[str, int], tuple[str, Any]] = {}
        for entry in self.history:
            if entry.kind == "block.completed" and "capability" in entry.detail:
                key = (entry.block or "", entry.visit or 0)
                found[key] = (str(entry.detail["capability"]), entry.detail.get("output"))
        return found

    def source_outputs(self) -> dict[tuple[str, int, str], tuple[str, Any]]:
        """What each source of an offer block returned, by (block path, visit, source):
        (capability, output)."""
        found: dict[tuple[str, int, str], tuple[str, Any]] = {}
        for entry in self.history:
            sources = entry.detail.get("sources") if entry.kind == "offer.chosen" else None
            if not isinstance(sources, dict):
                continue
            for name, read in sources.items():
                if isinstance(read, dict) and "capability" in read:
                    key = (entry.block or "", entry.visit or 0, str(name))
                    found[key] = (str(read["capability"]), read.get("output"))
        return found

    def failures(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The last failure of each call that never succeeded, by (block path, visit)."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for decision in self.decisions:
            if decision.outcome == "failed" and decision.block is not None:
                error = decision.record.get("error")
                found[(decision.block, decision.visit or 0)] = (
                    error if isinstance(error, dict) else {"message": str(error)}
                )
        return found


@dataclass(frozen=True, slots=True)
class Selection:
    """The recorded runs of a window: those to replay, and the erased ones skipped."""

    runs: tuple[RecordedRun, ...]
    erased: tuple[str, ...]


def select_runs(
    db: Database,
    tenant: TenantId,
    journey: str,
    *,
    since: float,
    until: float | None,
    limit: int,
) -> Selection:
    """The runs of ``journey`` started in [since, until), oldest first, at most ``limit``
    (the newest ones when more started), with their history, decisions and signals.

    Runs of erased subjects are counted, never read further: their data is gone on purpose.
    Sub-journey runs are replayed with their parent, not on their own.
    """
    chosen: list[RunRecord] = []
    cursor: tuple[float, str] | None = None
    with db.read() as connection:
        while len(chosen) < limit:
            page = runs.list_runs(connection, tenant, journey=journey, limit=_PAGE, before=cursor)
            for record in page:
                if record.created_at < since:
                    break
                if (until is None or record.created_at < until) and record.parent_run_id is None:
                    chosen.append(record)
            if len(page) < _PAGE or page[-1].created_at < since:
                break
            cursor = (page[-1].created_at, page[-1].run_id)
        chosen = chosen[:limit]
        subjects = sorted({r.subject_id for r in chosen if r.subject_id is not None})
        keys = ledger.subject_key_rows(connection, tenant, subjects) if subjects else {}
        erased_subjects = {s for s, key in keys.items() if key.wrapped_key is None}
        kept: list[RecordedRun] = []
        erased: list[str] = []
        for record in reversed(chosen):
            if record.subject_id in erased_subjects:
                erased.append(record.run_id)
                continue
            kept.append(
                RecordedRun(
                    record,
                    tuple(runs.history(connection, tenant, record.run_id)),
                    tuple(stored_decisions.for_run(connection, tenant, record.run_id)),
                    tuple(signals.run_signals(connection, tenant, record.run_id)),
                )
            )
    return Selection(tuple(kept), tuple(erased))
