"""Workers: claim due runs under a lease, advance them, and group-commit their transitions.

A worker holds up to ``batch_size`` runs. Each round it computes one transition for every held
run and commits them all in one database transaction, each fenced by its own lease token. A
write whose lease is gone is rejected by the database; the worker rolls back, drops that run
and commits the rest. Runs that end or start waiting are released; runs with more ready work
stay held for the next round.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from accord.audit import Entry, Ledger, entries
from accord.core import digest
from accord.gateway import SnapshotBatch
from accord.journeys import CompiledJourney
from accord.runtime._advance import Advance
from accord.runtime._state import RunState
from accord.storage import (
    CommitResult,
    HistoryEvent,
    NewDecision,
    RunRecord,
    TransitionWrite,
    transitions,
)

if TYPE_CHECKING:
    from accord.runtime._runtime import Runtime

log = logging.getLogger("accord.worker")

REVIEW_SWEEP_INTERVAL = 5.0
"""Seconds between a running worker's checks for overdue review items."""

FaultHook = Callable[[str], None]
"""Called at named points (``claimed``, ``executed``, ``mid_commit``, ``committed``) so that
tests can crash a worker exactly there. Production workers have none."""


@dataclass(slots=True)
class _Held:
    record: RunRecord
    state: RunState
    journey: CompiledJourney


@dataclass(slots=True)
class WorkerStats:
    claimed: int = 0
    transitions: int = 0
    commits: int = 0
    lease_lost: int = 0
    conflicts: int = 0
    internal_errors: int = 0
    database_errors: int = 0
    lost_runs: list[str] = field(default_factory=list)


class _Rejected(Exception):
    def __init__(self, results: list[CommitResult]) -> None:
        super().__init__("some transitions lost their lease")
        self.results = results


class Worker:
    """Executes runs. Use :meth:`run_until_idle` embedded, or :meth:`run` as a process."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        name: str | None = None,
        batch_size: int = 16,
        poll_interval: float = 0.5,
        claim_interval: float = 0.05,
        fault: FaultHook | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.claim_interval = claim_interval
        self.stats = WorkerStats()
        self._held: dict[str, _Held] = {}
        self._fault = fault
        self._last_claim = 0.0
        self._swept_at = -REVIEW_SWEEP_INTERVAL
        self._stop = threading.Event()

    def _hit(self, point: str) -> None:
        if self._fault is not None:
            self._fault(point)

    def claim(self) -> int:
        """Lease more due runs, up to the batch size."""
        room = self.batch_size - len(self._held)
        if room <= 0:
            return 0
        rt = self.runtime
        self._last_claim = time.monotonic()
        with rt.db.transaction() as connection:
            claimed = transitions.claim_runs(
                connection,
                owner=self.name,
                limit=room,
                now=rt.clock.now(),
                lease_seconds=rt.lease_seconds,
                db_now=rt.db.db_now(),
                skip_locked=rt.db.backend == "postgresql",
                fencing=rt.fencing,
            )
        broken: list[TransitionWrite] = []
        for record in claimed:
            try:
                journey = rt.catalog.get(
                    record.tenant_id, record.journey_name, record.journey_version
                )
                state = RunState.loads(record.state)
            except Exception as exc:
                self.stats.internal_errors += 1
                log.exception("cannot load run %s; it is failed", record.run_id)
                broken.append(rt.internal_failure(record, exc, now=rt.clock.now()))
                continue
            self._held[record.run_id] = _Held(record, state, journey)
        if broken:
            self._commit_rounds(broken, [])
        self.stats.claimed += len(claimed)
        if claimed:
            self._hit("claimed")
        return len(claimed)

    def step(self) -> int:
        """One round: claim if there is room, advance every held run, commit. Returns commits."""
        if not self._held or (
            len(self._held) < self.batch_size
            and time.monotonic() - self._last_claim >= self.claim_interval
        ):
            self.claim()
        if not self._held:
            return 0
        writes: list[TransitionWrite] = []
        idle: list[str] = []
        now = self.runtime.clock.now()
        started = time.monotonic()
        budget = self.runtime.lease_seconds / 2
        snapshots = self.runtime.gateway.batch(
            [(h.record.tenant_id, h.record.subject_id) for h in self._held.values()],
            max_age=self.runtime.deps.commit_window,
            clock=time.monotonic,
        )
        for run_id, held in list(self._held.items()):
            if writes and time.monotonic() - started > budget:
                break
            write = self._advance(held, now, snapshots)
            del self._held[run_id]
            self._held[run_id] = held
            if write is None:
                idle.append(run_id)
            else:
                writes.append(write)
        if idle:
            with self.runtime.db.transaction() as connection:
                transitions.release_runs(connection, self.name, idle)
            for run_id in idle:
                self._held.pop(run_id, None)
        self._hit("executed")
        return self._commit(writes)

    def _advance(
        self, held: _Held, now: float, snapshots: SnapshotBatch | None = None
    ) -> TransitionWrite | None:
        rt = self.runtime
        try:
            return Advance(
                held.record, held.journey, held.state, now=now, deps=rt.deps, snapshots=snapshots
            ).compute()
        except DBAPIError:
            # the gateway reads consent, policy and flags while advancing: a lost connection
            # there rolls the round back like one at commit, and never fails the run
            raise
        except Exception as exc:
            self.stats.internal_errors += 1
            log.exception("internal error advancing run %s", held.record.run_id)
            try:
                held.state = RunState.loads(held.record.state)
                return Advance(
                    held.record, held.journey, held.state, now=now, deps=rt.deps
                ).fail_internal(exc)
            except Exception:
                log.exception("cannot end run %s cleanly", held.record.run_id)
                return rt.internal_failure(held.record, exc, now=now)

    def _commit(self, writes: list[TransitionWrite]) -> int:
        conflicted: list[str] = []
        try:
            return self._commit_rounds(writes, conflicted)
        finally:
            if conflicted:
                with self.runtime.db.transaction() as connection:
                    transitions.release_runs(connection, self.name, conflicted)

    def _commit_rounds(self, writes: list[TransitionWrite], conflicted: list[str]) -> int:
        rt = self.runtime
        while writes:
            try:
                with rt.db.transaction() as connection:
                    results = transitions.commit_transitions(
                        connection,
                        writes,
                        owner=self.name,
                        lease_seconds=rt.lease_seconds,
                        db_now=rt.db.db_now(),
                        fencing=rt.fencing,
                    )
                    if any(not r.committed for r in results):
                        raise _Rejected(results)
                    _record(rt.ledger, connection, writes, results, self.name)
                    advanced = {w.run_id for w in writes}
                    transitions.extend_leases(
                        connection,
                        self.name,
                        [run_id for run_id in self._held if run_id not in advanced],
                        lease_seconds=rt.lease_seconds,
                        db_now=rt.db.db_now(),
                    )
                    if any(w.new_signals or w.new_runs for w in writes):
                        rt.db.notify_ready(connection)
                    self._hit("mid_commit")
            except _Rejected as rejected:
                lost = {r.run_id for r in rejected.results if not r.committed}
                for result in rejected.results:
                    if result.committed:
                        continue
                    self._held.pop(result.run_id, None)
                    if result.conflict:
                        self.stats.conflicts += 1
                        conflicted.append(result.run_id)
                        log.info("run %s lost a signal race; it is recomputed", result.run_id)
                    else:
                        self.stats.lease_lost += 1
                        self.stats.lost_runs.append(result.run_id)
                        log.warning(
                            "lease lost for run %s; its transition was discarded", result.run_id
                        )
                writes = [w for w in writes if w.run_id not in lost]
                continue
            self._hit("committed")
            self.stats.commits += 1
            self.stats.transitions += len(writes)
            self._after_commit(writes, results)
            return len(writes)
        return 0

    def _after_commit(self, writes: list[TransitionWrite], results: list[CommitResult]) -> None:
        for write, result in zip(writes, results, strict=True):
            held = self._held.get(write.run_id)
            if held is None:
                continue
            if write.release or result.status != "ready":
                del self._held[write.run_id]
                continue
            held.record = replace(
                held.record,
                state=write.state,
                seq=result.seq or held.record.seq,
                inbox_version=result.inbox_version or 0,
                status="ready",
            )

    def run_until_idle(self, *, max_seconds: float | None = None) -> WorkerStats:
        """Work until no run is due now (embedded mode); timers in the future are left alone."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                self.step()
                if not self._held and self.claim() == 0:
                    break
        finally:
            self.release_all()
        self.runtime.ledger.issue_due_heads()
        if self.runtime.reviews is not None:
            self.runtime.reviews.sweep()
        if self.runtime.agents is not None:
            self.runtime.agents.catalog.check_rollouts()
            self.runtime.agents.catalog.purge_cache()
        return self.stats

    def run(self, *, stop: threading.Event | None = None) -> WorkerStats:
        """Work until ``stop`` is set (or :meth:`stop` is called), sleeping when idle."""
        stop = stop or self._stop
        waker = self.runtime.db.waker()
        try:
            while not stop.is_set():
                try:
                    if self.step() == 0 and not self._held:
                        waker.wait(self.poll_interval)
                    self.runtime.ledger.issue_due_heads()
                    self._sweep_reviews()
                except DBAPIError as exc:
                    self._recover(exc)
                    waker.wait(self.poll_interval)
        finally:
            self.release_all()
            waker.close()
        return self.stats

    def _sweep_reviews(self) -> None:
        """Keep review SLAs, at most once per ``REVIEW_SWEEP_INTERVAL`` seconds."""
        reviews = self.runtime.reviews
        now = time.monotonic()
        if reviews is None or now - self._swept_at < REVIEW_SWEEP_INTERVAL:
            return
        self._swept_at = now
        reviews.sweep()
        if self.runtime.agents is not None:
            self.runtime.agents.catalog.check_rollouts()
            self.runtime.agents.catalog.purge_cache()

    def _recover(self, exc: DBAPIError) -> None:
        """A database error (lost connection, deadlock) rolled the round back: forget the runs
        held in memory, whose state may be ahead of the database, and give their leases back so
        they are claimed again from what was committed."""
        self.stats.database_errors += 1
        log.warning("database error, retrying from committed state: %s", exc.orig or exc)
        held = list(self._held)
        self._held.clear()
        try:
            with self.runtime.db.transaction() as connection:
                transitions.release_runs(connection, self.name, held)
        except DBAPIError:
            log.warning("could not release %d leases; they expire on their own", len(held))

    def stop(self) -> None:
        self._stop.set()

    def release_all(self) -> None:
        if not self._held:
            return
        with self.runtime.db.transaction() as connection:
            transitions.release_runs(connection, self.name, list(self._held))
        self._held.clear()


def _record(
    ledger: Ledger,
    connection: Connection,
    writes: Sequence[TransitionWrite],
    results: Sequence[CommitResult],
    worker: str,
) -> None:
    """Ledger entries for committed transitions, in their transaction: one per history event
    (the child runs' first ones included) and per gateway decision and connector call."""
    by_tenant: dict[str, list[Entry]] = {}
    for w, result in zip(writes, results, strict=True):
        found = by_tenant.setdefault(w.tenant_id, [])
        first_seq = (result.seq or 0) - len(w.events) + 1
        # a decision goes just before the first event of its block visit, so the ledger tells
        # the transition in the order it happened
        pending = list(w.decisions)
        for offset, event in enumerate(w.events):
            due = [d for d in pending if _explains(d, event)]
            for decision in due:
                pending.remove(decision)
                found.extend(entries.gateway_decision(decision))
            found.append(
                entries.run_transition(
                    run_id=w.run_id,
                    subject_id=w.subject_id,
                    seq=first_seq + offset,
                    event=event,
                    at=w.at,
                    worker=worker,
                )
            )
            if event.kind in _COMPENSATION_OUTCOMES:
                found.append(_compensation(w, event))
            elif event.kind in ("agent.output", "agent.shadow"):
                found.append(_agent_output(w, event))
            elif event.kind == "agent.assigned":
                found.append(_agent_assigned(w, event))
        for child in w.new_runs:
            found.append(
                entries.run_transition(
                    run_id=child.run_id,
                    subject_id=child.subject_id,
                    seq=1,
                    event=child.started,
                    at=child.at,
                    worker=None,
                    run_input=child.input,
                )
            )
        for decision in pending:
            found.extend(entries.gateway_decision(decision))
        for item in w.reviews_add:
            found.append(
                entries.review_event(
                    "review.opened",
                    item_id=item.item_id,
                    run_id=w.run_id,
                    subject_id=w.subject_id,
                    at=w.at,
                    body={
                        "block": item.block,
                        "visit": item.visit,
                        "kind": item.kind,
                        "queue": item.queue,
                        "roles": list(item.roles),
                        "makers": list(item.makers),
                        "priority": item.priority,
                        "due_at": item.due_at,
                        "source": item.source,
                        "packet_version": item.packet.get("version", 1),
                        "packet_digest": digest(item.packet),
                    },
                    personal={"packet": item.packet},
                )
            )
    # tenants in one order, so that workers take the per-tenant ledger locks alike
    for tenant in sorted(by_tenant):
        ledger.append(connection, tenant, by_tenant[tenant])


_COMPENSATION_OUTCOMES: dict[str, Literal["compensated", "escalated"]] = {
    "compensation.completed": "compensated",
    "compensation.failed": "escalated",
}


def _compensation(w: TransitionWrite, event: HistoryEvent) -> Entry:
    """The ledger's own record of a compensating call, beside the history event it tells."""
    return entries.compensation(
        run_id=w.run_id,
        subject_id=w.subject_id,
        block=event.block or "",
        capability=str(event.detail.get("capability")),
        decision_id=event.detail.get("decision"),
        outcome=_COMPENSATION_OUTCOMES[event.kind],
        at=w.at,
        detail={"error": event.detail["error"]} if "error" in event.detail else None,
    )


_AGENT_FACTS = (
    "arm",
    "rollout",
    "valid",
    "reason",
    "problems",
    "provider",
    "input_tokens",
    "output_tokens",
    "cost",
    "cached",
    "input_digest",
    "withheld",
    "redacted",
    "agrees",
)


def _agent_output(w: TransitionWrite, event: HistoryEvent) -> Entry:
    """The ledger's record of an agent's answer: its band and cost, the prompt sealed."""
    detail = event.detail
    facts = {k: detail[k] for k in _AGENT_FACTS if k in detail}
    facts["tool_calls"] = [
        {"name": c.get("name"), "ok": c.get("ok"), "reason": c.get("reason")}
        for c in detail.get("tool_calls") or []
    ]
    return entries.agent_output(
        run_id=w.run_id,
        subject_id=w.subject_id,
        block=event.block or "",
        agent=str(detail.get("agent")),
        version=int(detail.get("version") or 0),
        model=str(detail.get("model")),
        prompt_digest=str(detail.get("prompt_digest")),
        confidence=float(detail.get("confidence") or 0.0),
        band=detail.get("band", "escalate"),
        output_digest=str(detail.get("output_digest")),
        output=detail.get("output"),
        at=w.at,
        detail=facts,
        prompt=detail.get("prompt"),
    )


def _agent_assigned(w: TransitionWrite, event: HistoryEvent) -> Entry:
    detail = event.detail
    return entries.agent_assigned(
        run_id=w.run_id,
        subject_id=w.subject_id,
        block=event.block or "",
        rollout_id=str(detail.get("rollout")),
        agent=str(detail.get("agent")),
        arm=str(detail.get("arm")),
        version=int(detail.get("version") or 0),
        bucket=int(detail.get("bucket") or 0),
        percent=float(detail.get("percent") or 0.0),
        at=w.at,
    )


def _explains(decision: NewDecision, event: HistoryEvent) -> bool:
    if event.detail.get("decision") == decision.decision_id:
        return True
    return decision.block == event.block and decision.visit == event.visit
