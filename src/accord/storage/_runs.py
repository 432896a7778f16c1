"""Runs, history, timers, signals, waits and outbox: every query names its tenant.

Workers claim runs across tenants (``claim_runs``) and commit transitions fenced by their lease
(``commit_transitions``); everything else takes a ``tenant`` argument and never sees another
tenant's rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage import _postgres
from accord.storage._schema import outbox, runs, signals, timers, transitions, waits

RunStatus = Literal["ready", "waiting", "completed", "failed", "cancelled"]
TERMINAL: tuple[str, ...] = ("completed", "failed", "cancelled")
ACTIVE: tuple[str, ...] = ("ready", "waiting")
SignalKind = Literal["event", "decision", "cancel", "child"]


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
    event_id: str
    type: str
    payload: dict[str, Any]


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


_INSERT_RUN = runs.insert()
_INSERT_HISTORY = transitions.insert()
_INSERT_OUTBOX = outbox.insert()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def insert_run(connection: Connection, run: NewRun, outbox_events: Sequence[NewEvent]) -> None:
    """Insert a new run ready to be claimed, with its first history entry and events."""
    connection.execute(
        _INSERT_RUN,
        {
            "run_id": run.run_id,
            "tenant_id": run.tenant_id,
            "journey_name": run.journey_name,
            "journey_version": run.journey_version,
            "subject_id": run.subject_id,
            "status": "ready",
            "outcome": None,
            "error": None,
            "input": _dumps(run.input),
            "state": run.state,
            "seq": 1,
            "inbox_version": 0,
            "wake_at": run.at,
            "lease_owner": None,
            "lease_token": 0,
            "lease_expires_at": None,
            "idempotency_key": run.idempotency_key,
            "request_digest": run.request_digest,
            "parent_run_id": run.parent_run_id,
            "parent_token": run.parent_token,
            "created_at": run.at,
            "updated_at": run.at,
            "ended_at": None,
        },
    )
    _insert_history(connection, run.tenant_id, run.run_id, 1, [run.started], run.at, None, 0)
    insert_outbox(connection, run.tenant_id, run.run_id, 1, outbox_events, run.at)


def _insert_history(
    connection: Connection,
    tenant: str,
    run_id: str,
    first_seq: int,
    events: Sequence[HistoryEvent],
    at: float,
    worker: str | None,
    lease_token: int,
) -> None:
    if not events:
        return
    connection.execute(
        _INSERT_HISTORY,
        [
            {
                "run_id": run_id,
                "seq": first_seq + i,
                "tenant_id": tenant,
                "at": at,
                "kind": e.kind,
                "block": e.block,
                "visit": e.visit,
                "attempt": e.attempt,
                "detail": _dumps(e.detail),
                "worker": worker,
                "lease_token": lease_token,
            }
            for i, e in enumerate(events)
        ],
    )


def insert_outbox(
    connection: Connection,
    tenant: str,
    run_id: str | None,
    run_seq: int | None,
    events: Sequence[NewEvent],
    at: float,
) -> None:
    if not events:
        return
    connection.execute(
        _INSERT_OUTBOX,
        [
            {
                "event_id": e.event_id,
                "tenant_id": tenant,
                "run_id": run_id,
                "run_seq": run_seq,
                "type": e.type,
                "payload": _dumps(e.payload),
                "created_at": at,
            }
            for e in events
        ],
    )


def get_run(connection: Connection, tenant: TenantId, run_id: str) -> RunRecord | None:
    row = (
        connection.execute(
            sa.select(runs).where(runs.c.tenant_id == tenant, runs.c.run_id == run_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def find_run_by_key(connection: Connection, tenant: TenantId, key: str) -> RunRecord | None:
    row = (
        connection.execute(
            sa.select(runs).where(runs.c.tenant_id == tenant, runs.c.idempotency_key == key)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def list_runs(
    connection: Connection,
    tenant: TenantId,
    *,
    journey: str | None = None,
    status: str | None = None,
    subject: str | None = None,
    limit: int = 50,
    before: tuple[float, str] | None = None,
) -> list[RunRecord]:
    """Runs newest first; ``before`` is the (created_at, run_id) cursor of the last page."""
    query = sa.select(runs).where(runs.c.tenant_id == tenant)
    if journey:
        query = query.where(runs.c.journey_name == journey)
    if status:
        query = query.where(runs.c.status == status)
    if subject:
        query = query.where(runs.c.subject_id == subject)
    if before is not None:
        query = query.where(
            sa.or_(
                runs.c.created_at < before[0],
                sa.and_(runs.c.created_at == before[0], runs.c.run_id < before[1]),
            )
        )
    query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
    return [RunRecord.from_row(r) for r in connection.execute(query).mappings()]


def next_wake_at(connection: Connection, tenant: TenantId) -> float | None:
    """When the tenant's earliest active run is next due (now, for ready runs)."""
    query = sa.select(sa.func.min(runs.c.wake_at)).where(
        runs.c.tenant_id == tenant, runs.c.status.in_(ACTIVE)
    )
    value = connection.execute(query).scalar()
    return None if value is None else float(value)


def history(connection: Connection, tenant: TenantId, run_id: str) -> list[HistoryEntry]:
    query = (
        sa.select(transitions)
        .where(transitions.c.tenant_id == tenant, transitions.c.run_id == run_id)
        .order_by(transitions.c.seq)
    )
    return [
        HistoryEntry(
            run_id=r["run_id"],
            seq=r["seq"],
            at=r["at"],
            kind=r["kind"],
            block=r["block"],
            visit=r["visit"],
            attempt=r["attempt"],
            detail=json.loads(r["detail"]),
            worker=r["worker"],
        )
        for r in connection.execute(query).mappings()
    ]


def timers_of(connection: Connection, tenant: TenantId, run_id: str) -> list[NewTimer]:
    query = (
        sa.select(timers)
        .where(timers.c.tenant_id == tenant, timers.c.run_id == run_id)
        .order_by(timers.c.fire_at)
    )
    return [
        NewTimer(r["timer_id"], r["token"], r["purpose"], r["fire_at"])
        for r in connection.execute(query).mappings()
    ]


def pending_signals(connection: Connection, tenant: str, run_id: str) -> list[SignalRecord]:
    """Signals addressed to the run and not yet consumed, oldest first."""
    query = (
        sa.select(signals)
        .where(
            signals.c.tenant_id == tenant,
            signals.c.run_id == run_id,
            signals.c.consumed_seq.is_(None),
        )
        .order_by(signals.c.received_at, signals.c.signal_id)
    )
    return [_signal(r) for r in connection.execute(query).mappings()]


def parked_signals(
    connection: Connection, tenant: str, name: str, correlation_key: str
) -> list[SignalRecord]:
    """Events that arrived for a correlation key before any run waited for them."""
    query = (
        sa.select(signals)
        .where(
            signals.c.tenant_id == tenant,
            signals.c.run_id.is_(None),
            signals.c.kind == "event",
            signals.c.name == name,
            signals.c.correlation_key == correlation_key,
            signals.c.consumed_seq.is_(None),
        )
        .order_by(signals.c.received_at, signals.c.signal_id)
    )
    return [_signal(r) for r in connection.execute(query).mappings()]


def _signal(row: RowMapping) -> SignalRecord:
    return SignalRecord(
        signal_id=row["signal_id"],
        run_id=row["run_id"],
        kind=row["kind"],
        name=row["name"],
        correlation_key=row["correlation_key"],
        payload=json.loads(row["payload"]),
        received_at=row["received_at"],
    )


def waiting_runs(
    connection: Connection, tenant: TenantId, name: str, correlation_key: str
) -> list[str]:
    query = sa.select(waits.c.run_id).where(
        waits.c.tenant_id == tenant,
        waits.c.name == name,
        waits.c.correlation_key == correlation_key,
    )
    return list(connection.execute(query).scalars())


def insert_signal(
    connection: Connection,
    *,
    signal_id: str,
    tenant: str,
    run_id: str | None,
    kind: SignalKind,
    name: str,
    payload: dict[str, Any],
    correlation_key: str | None,
    at: float,
) -> None:
    """Store a signal; if it names a run, bump that run's inbox and make it ready."""
    connection.execute(
        signals.insert().values(
            signal_id=signal_id,
            tenant_id=tenant,
            run_id=run_id,
            kind=kind,
            name=name,
            correlation_key=correlation_key,
            payload=_dumps(payload),
            received_at=at,
        )
    )
    if run_id is not None:
        wake_run(connection, tenant, run_id, at)


def wake_run(connection: Connection, tenant: str, run_id: str, at: float) -> None:
    waiting = runs.c.status == "waiting"
    connection.execute(
        runs.update()
        .where(
            runs.c.tenant_id == tenant,
            runs.c.run_id == run_id,
            runs.c.status.in_(ACTIVE),
        )
        .values(
            inbox_version=runs.c.inbox_version + 1,
            status=sa.case((waiting, "ready"), else_=runs.c.status),
            wake_at=sa.case((waiting, at), else_=runs.c.wake_at),
        )
    )


def claim_runs(
    connection: Connection,
    *,
    owner: str,
    limit: int,
    now: float,
    lease_seconds: float,
    db_now: sa.ColumnElement[float],
    skip_locked: bool,
    fencing: bool = True,
) -> list[RunRecord]:
    """Lease up to ``limit`` due runs to ``owner``, bumping each run's lease token.

    A run is due when it is ready or its earliest timer has fired (``wake_at <= now``), and is
    free when it has no unexpired lease by the database's clock.
    """
    statement = _claim_statement(fencing=fencing, skip_locked=skip_locked, db_now=db_now)
    params = {"claim_owner": owner, "claim_limit": limit, "due_at": now, "lease": lease_seconds}
    return [RunRecord.from_row(r) for r in connection.execute(statement, params).mappings()]


_CLAIM_CACHE: dict[tuple[bool, bool, str], sa.Update] = {}


def _claim_statement(
    *, fencing: bool, skip_locked: bool, db_now: sa.ColumnElement[float]
) -> sa.Update:
    """The claim UPDATE, built once per shape so SQLAlchemy compiles it once."""
    key = (fencing, skip_locked, str(db_now))
    cached = _CLAIM_CACHE.get(key)
    if cached is not None:
        return cached
    due = sa.and_(
        runs.c.status.in_(ACTIVE), runs.c.wake_at <= sa.bindparam("due_at", type_=sa.Float)
    )
    if fencing:
        due = sa.and_(
            due, sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at < db_now)
        )
    candidates = (
        sa.select(runs.c.run_id)
        .where(due)
        .order_by(runs.c.wake_at)
        .limit(sa.bindparam("claim_limit", type_=sa.Integer))
    )
    if skip_locked:
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        runs.update()
        .where(runs.c.run_id.in_(candidates.scalar_subquery()))
        .values(
            lease_owner=sa.bindparam("claim_owner", type_=sa.String),
            lease_token=runs.c.lease_token + 1,
            lease_expires_at=db_now + sa.bindparam("lease", type_=sa.Float),
        )
        .returning(*runs.c)
    )
    _CLAIM_CACHE[key] = statement
    return statement


def extend_leases(
    connection: Connection,
    owner: str,
    run_ids: Sequence[str],
    *,
    lease_seconds: float,
    db_now: sa.ColumnElement[float],
) -> None:
    """Renew the still-valid leases ``owner`` holds on runs it did not advance this round."""
    if not run_ids:
        return
    connection.execute(
        runs.update()
        .where(
            runs.c.run_id.in_(list(run_ids)),
            runs.c.lease_owner == owner,
            runs.c.lease_expires_at > db_now,
        )
        .values(lease_expires_at=db_now + lease_seconds)
    )


def release_runs(connection: Connection, owner: str, run_ids: Sequence[str]) -> None:
    """Give back leases without changing anything else (a worker shutting down)."""
    if not run_ids:
        return
    connection.execute(
        runs.update()
        .where(runs.c.run_id.in_(list(run_ids)), runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def commit_transitions(
    connection: Connection,
    writes: Sequence[TransitionWrite],
    *,
    owner: str,
    lease_seconds: float,
    db_now: sa.ColumnElement[float],
    fencing: bool = True,
) -> list[CommitResult]:
    """Apply transitions in the caller's transaction, each fenced by its lease.

    A write whose run no longer carries the expected lease token and sequence number, or whose
    lease has expired by the database's clock, changes nothing and comes back uncommitted; the
    caller must then roll back and retry without it (see the runtime's worker).
    """
    results: list[CommitResult] = []
    history_rows: list[dict[str, Any]] = []
    _lock_correlations(connection, writes)
    for w in writes:
        result = _update_run(connection, w, owner, lease_seconds, db_now, fencing)
        if result.committed and w.signals_consumed and not _consume(connection, w, result):
            result = CommitResult(w.run_id, committed=False, conflict=True)
        results.append(result)
        if not result.committed:
            continue
        first_seq = (result.seq or 0) - len(w.events) + 1
        history_rows.extend(
            {
                "run_id": w.run_id,
                "seq": first_seq + i,
                "tenant_id": w.tenant_id,
                "at": w.at,
                "kind": e.kind,
                "block": e.block,
                "visit": e.visit,
                "attempt": e.attempt,
                "detail": _dumps(e.detail),
                "worker": owner,
                "lease_token": w.lease_token,
            }
            for i, e in enumerate(w.events)
        )
    if any(not r.committed for r in results):
        return results
    if history_rows:
        connection.execute(_INSERT_HISTORY, history_rows)
    _apply_side_tables(connection, writes, results)
    return results


def _lock_correlations(connection: Connection, writes: Sequence[TransitionWrite]) -> None:
    """Serialise new correlated waits with ``signal()`` for the same keys (PostgreSQL; SQLite
    transactions are serial already). Keys are locked in order, before any run row."""
    keys = sorted(
        {
            correlation_lock_key(w.tenant_id, x.name, x.correlation_key)
            for w in writes
            for x in w.waits_add
            if x.correlation_key is not None
        }
    )
    for key in keys:
        lock_correlation(connection, key)


def correlation_lock_key(tenant: str, name: str, correlation_key: str) -> str:
    return f"{tenant}\x1f{name}\x1f{correlation_key}"


def lock_correlation(connection: Connection, key: str) -> None:
    if connection.dialect.name == "postgresql":
        _postgres.advisory_xact_lock(connection, key)


def _consume(connection: Connection, w: TransitionWrite, result: CommitResult) -> bool:
    """Mark the write's signals consumed; False if any was consumed by someone else first."""
    outcome = connection.execute(
        signals.update()
        .where(
            signals.c.tenant_id == w.tenant_id,
            signals.c.signal_id.in_(w.signals_consumed),
            signals.c.consumed_seq.is_(None),
            sa.or_(signals.c.run_id.is_(None), signals.c.run_id == w.run_id),
        )
        .values(consumed_seq=result.seq, consumed_at=w.at, run_id=w.run_id)
    )
    return outcome.rowcount == len(set(w.signals_consumed))


_UPDATE_CACHE: dict[tuple[bool, bool, bool, str], sa.Update] = {}


def _update_statement(
    *, fencing: bool, release: bool, terminal: bool, db_now: sa.ColumnElement[float]
) -> sa.Update:
    """The fenced run UPDATE, built once per shape so SQLAlchemy compiles it once."""
    key = (fencing, release, terminal, str(db_now))
    cached = _UPDATE_CACHE.get(key)
    if cached is not None:
        return cached
    flip = sa.and_(
        runs.c.inbox_version != sa.bindparam("inbox_seen", type_=sa.Integer),
        sa.bindparam("waiting", type_=sa.Boolean),
    )
    at = sa.bindparam("at", type_=sa.Float)
    values: dict[str, Any] = {
        "state": sa.bindparam("new_state", type_=sa.Text),
        "status": sa.case((flip, "ready"), else_=sa.bindparam("new_status", type_=sa.String)),
        "wake_at": sa.case((flip, at), else_=sa.bindparam("new_wake_at", type_=sa.Float)),
        "outcome": sa.bindparam("new_outcome", type_=sa.String),
        "error": sa.bindparam("new_error", type_=sa.Text),
        "updated_at": at,
        "seq": runs.c.seq + sa.bindparam("events", type_=sa.Integer),
    }
    if terminal:
        values["ended_at"] = at
    if release:
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    else:
        values["lease_expires_at"] = db_now + sa.bindparam("lease_seconds", type_=sa.Float)
    condition = sa.and_(
        runs.c.run_id == sa.bindparam("id", type_=sa.String),
        runs.c.tenant_id == sa.bindparam("tenant", type_=sa.String),
    )
    if fencing:
        condition = sa.and_(
            condition,
            runs.c.lease_token == sa.bindparam("held_token", type_=sa.BigInteger),
            runs.c.lease_owner == sa.bindparam("owner", type_=sa.String),
            runs.c.lease_expires_at > db_now,
            runs.c.seq == sa.bindparam("expected_seq", type_=sa.Integer),
        )
    statement = (
        runs.update()
        .where(condition)
        .values(values)
        .returning(runs.c.status, runs.c.inbox_version, runs.c.seq)
    )
    _UPDATE_CACHE[key] = statement
    return statement


def _update_run(
    connection: Connection,
    w: TransitionWrite,
    owner: str,
    lease_seconds: float,
    db_now: sa.ColumnElement[float],
    fencing: bool,
) -> CommitResult:
    statement = _update_statement(
        fencing=fencing, release=w.release, terminal=w.status in TERMINAL, db_now=db_now
    )
    params: dict[str, Any] = {
        "inbox_seen": w.inbox_seen,
        "waiting": w.status == "waiting",
        "at": w.at,
        "new_state": w.state,
        "new_status": w.status,
        "new_wake_at": w.wake_at,
        "new_outcome": w.outcome,
        "new_error": _dumps(w.error) if w.error is not None else None,
        "events": len(w.events),
        "id": w.run_id,
        "tenant": w.tenant_id,
    }
    if not w.release:
        params["lease_seconds"] = lease_seconds
    if fencing:
        params.update(held_token=w.lease_token, owner=owner, expected_seq=w.expected_seq)
    row = connection.execute(statement, params).first()
    if row is None:
        return CommitResult(w.run_id, committed=False)
    return CommitResult(w.run_id, True, row[0], row[1], row[2])


def _apply_side_tables(
    connection: Connection, writes: Sequence[TransitionWrite], results: Sequence[CommitResult]
) -> None:
    timer_rows = [
        {
            "timer_id": t.timer_id,
            "tenant_id": w.tenant_id,
            "run_id": w.run_id,
            "token": t.token,
            "purpose": t.purpose,
            "fire_at": t.fire_at,
        }
        for w in writes
        for t in w.timers_add
    ]
    wait_rows = [
        {
            "run_id": w.run_id,
            "token": x.token,
            "tenant_id": w.tenant_id,
            "name": x.name,
            "correlation_key": x.correlation_key,
        }
        for w in writes
        for x in w.waits_add
    ]
    for w, result in zip(writes, results, strict=True):
        if w.timers_delete:
            connection.execute(
                timers.delete().where(
                    timers.c.tenant_id == w.tenant_id, timers.c.timer_id.in_(w.timers_delete)
                )
            )
        if w.waits_delete:
            connection.execute(
                waits.delete().where(
                    waits.c.tenant_id == w.tenant_id,
                    waits.c.run_id == w.run_id,
                    waits.c.token.in_(w.waits_delete),
                )
            )
        insert_outbox(connection, w.tenant_id, w.run_id, result.seq, w.outbox, w.at)
        for new_run in w.new_runs:
            insert_run(connection, new_run, [])
        for s in w.new_signals:
            insert_signal(
                connection,
                signal_id=s.signal_id,
                tenant=s.tenant_id,
                run_id=s.run_id,
                kind=s.kind,
                name=s.name,
                payload=s.payload,
                correlation_key=None,
                at=w.at,
            )
    if timer_rows:
        connection.execute(timers.insert(), timer_rows)
    if wait_rows:
        connection.execute(waits.insert(), wait_rows)
    for w in writes:
        for x in w.waits_add:
            if x.correlation_key is not None:
                _claim_parked(connection, w, x)


def _claim_parked(connection: Connection, w: TransitionWrite, wait: NewWait) -> None:
    """Hand the run an event that was parked for its key while this transition was computed."""
    parked = connection.execute(
        sa.select(signals.c.signal_id)
        .where(
            signals.c.tenant_id == w.tenant_id,
            signals.c.run_id.is_(None),
            signals.c.kind == "event",
            signals.c.name == wait.name,
            signals.c.correlation_key == wait.correlation_key,
            signals.c.consumed_seq.is_(None),
        )
        .order_by(signals.c.received_at, signals.c.signal_id)
        .limit(1)
    ).scalar()
    if parked is not None:
        connection.execute(
            signals.update().where(signals.c.signal_id == parked).values(run_id=w.run_id)
        )
        wake_run(connection, w.tenant_id, w.run_id, w.at)
