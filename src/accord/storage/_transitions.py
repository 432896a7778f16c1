"""Leases and transitions: workers claim due runs and commit fenced transitions.

Workers claim runs across tenants (``claim_runs``) and commit transitions fenced by their lease
(``commit_transitions``); every write names its run's tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._agents import insert_outcomes, set_review_outcomes
from accord.storage._dead_letters import delete_intents, insert_letters
from accord.storage._decisions import decision_rows, insert_rows
from accord.storage._records import (
    ACTIVE,
    TERMINAL,
    CommitResult,
    RunRecord,
    TransitionWrite,
    json_text,
)
from accord.storage._reviews import (
    close_confirmations,
    close_items,
    insert_confirmations,
    insert_items,
)
from accord.storage._runs import INSERT_HISTORY, history_rows, insert_outbox, insert_run
from accord.storage._schema import runs, timers, waits
from accord.storage._signals import (
    claim_parked,
    consume,
    correlation_lock_key,
    insert_signal,
    lock_correlation,
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
    rows: list[dict[str, Any]] = []
    _lock_correlations(connection, writes)
    for w in writes:
        result = _update_run(connection, w, owner, lease_seconds, db_now, fencing)
        if result.committed and w.signals_consumed and not consume(connection, w, result):
            result = CommitResult(w.run_id, committed=False, conflict=True)
        results.append(result)
        if not result.committed:
            continue
        first_seq = (result.seq or 0) - len(w.events) + 1
        rows.extend(
            history_rows(w.tenant_id, w.run_id, first_seq, w.events, w.at, owner, w.lease_token)
        )
    if any(not r.committed for r in results):
        return results
    if rows:
        connection.execute(INSERT_HISTORY, rows)
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
        "new_error": json_text(w.error) if w.error is not None else None,
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
        insert_outbox(
            connection,
            w.tenant_id,
            w.run_id,
            result.seq,
            w.outbox,
            w.at,
            subject_id=w.subject_id,
            traceparent=w.traceparent,
        )
        close_items(connection, w.tenant_id, w.reviews_close, w.at)
        insert_items(connection, w.tenant_id, w.run_id, w.subject_id, w.reviews_add, w.at)
        close_confirmations(connection, w.tenant_id, w.confirmations_close, w.at)
        insert_confirmations(
            connection, w.tenant_id, w.run_id, w.subject_id, w.confirmations_add, w.at
        )
        insert_letters(connection, w.tenant_id, w.run_id, w.subject_id, w.dead_letters_add, w.at)
        delete_intents(connection, w.tenant_id, w.intents_close)
        insert_outcomes(connection, w.tenant_id, w.run_id, w.agent_outcomes_add, w.at)
        set_review_outcomes(connection, w.tenant_id, w.agent_reviews)
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
    insert_rows(
        connection, [row for w in writes for row in decision_rows(w.tenant_id, w.decisions)]
    )
    if timer_rows:
        connection.execute(timers.insert(), timer_rows)
    if wait_rows:
        connection.execute(waits.insert(), wait_rows)
    for w in writes:
        for x in w.waits_add:
            if x.correlation_key is not None:
                claim_parked(connection, w, x)
