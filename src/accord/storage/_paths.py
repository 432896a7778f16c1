"""Ended runs of a journey and the events on their paths, read in bulk within one tenant,
and how many of its runs are still open."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core import TenantId
from accord.storage._records import TERMINAL, HistoryEntry
from accord.storage._schema import runs, transitions

CHUNK = 500
"""Run ids per query of their events."""


@dataclass(frozen=True, slots=True)
class EndedRun:
    run_id: str
    version: int
    subject_id: str | None
    status: str
    outcome: str | None
    created_at: float


def ended_runs(
    connection: Connection,
    tenant: TenantId,
    journey: str,
    *,
    version: int | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int,
) -> tuple[list[EndedRun], bool]:
    """The ended runs of ``journey`` started in [since, until), oldest first: the newest
    ``limit`` of them, and whether more were there."""
    query = sa.select(
        runs.c.run_id,
        runs.c.journey_version,
        runs.c.subject_id,
        runs.c.status,
        runs.c.outcome,
        runs.c.created_at,
    ).where(
        runs.c.tenant_id == tenant,
        runs.c.journey_name == journey,
        runs.c.status.in_(TERMINAL),
    )
    if version is not None:
        query = query.where(runs.c.journey_version == version)
    if since is not None:
        query = query.where(runs.c.created_at >= since)
    if until is not None:
        query = query.where(runs.c.created_at < until)
    query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit + 1)
    found = [
        EndedRun(
            run_id=r.run_id,
            version=int(r.journey_version),
            subject_id=r.subject_id,
            status=str(r.status),
            outcome=r.outcome,
            created_at=float(r.created_at),
        )
        for r in connection.execute(query)
    ]
    more = len(found) > limit
    return list(reversed(found[:limit])), more


def open_runs(
    connection: Connection,
    tenant: TenantId,
    journey: str,
    *,
    version: int | None = None,
    since: float | None = None,
    until: float | None = None,
) -> int:
    """How many runs of ``journey`` started in [since, until) have not ended yet."""
    query = (
        sa.select(sa.func.count())
        .select_from(runs)
        .where(
            runs.c.tenant_id == tenant,
            runs.c.journey_name == journey,
            runs.c.status.not_in(TERMINAL),
        )
    )
    if version is not None:
        query = query.where(runs.c.journey_version == version)
    if since is not None:
        query = query.where(runs.c.created_at >= since)
    if until is not None:
        query = query.where(runs.c.created_at < until)
    return int(connection.execute(query).scalar_one())


def run_events(
    connection: Connection,
    tenant: TenantId,
    run_ids: Sequence[str],
    *,
    kinds: Sequence[str],
    only_if: Mapping[str, str | Sequence[str]] | None = None,
) -> dict[str, list[HistoryEntry]]:
    """The events of ``kinds`` in each run's history, in order.

    ``only_if`` maps a kind to a text, or to several: an event of that kind whose stored
    detail contains none of them comes back with an empty detail (details can be large, and
    of some kinds only a few are needed).
    """
    t = transitions
    detail: sa.ColumnElement[str] = t.c.detail
    for kind, wanted in (only_if or {}).items():
        texts = [wanted] if isinstance(wanted, str) else list(wanted)
        kept = [t.c.detail.like(_containing(text), escape="\\") for text in texts]
        detail = sa.case(
            (sa.and_(t.c.kind == kind, ~sa.or_(*kept)), "{}"),
            else_=detail,
        )
    found: dict[str, list[HistoryEntry]] = {run_id: [] for run_id in run_ids}
    for start in range(0, len(run_ids), CHUNK):
        chunk = list(run_ids[start : start + CHUNK])
        query = (
            sa.select(
                t.c.run_id,
                t.c.seq,
                t.c.at,
                t.c.kind,
                t.c.block,
                t.c.visit,
                t.c.attempt,
                detail.label("detail"),
                t.c.worker,
            )
            .where(t.c.tenant_id == tenant, t.c.run_id.in_(chunk), t.c.kind.in_(list(kinds)))
            .order_by(t.c.run_id, t.c.seq)
        )
        for r in connection.execute(query):
            found[r.run_id].append(
                HistoryEntry(
                    run_id=r.run_id,
                    seq=r.seq,
                    at=r.at,
                    kind=r.kind,
                    block=r.block,
                    visit=r.visit,
                    attempt=r.attempt,
                    detail=json.loads(r.detail),
                    worker=r.worker,
                )
            )
    return found


def _containing(text: str) -> str:
    """A LIKE pattern (escaped with a backslash) matching any text that contains ``text``."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def journey_outcomes(
    connection: Connection, tenant: TenantId, journey: str, *, version: int | None = None
) -> set[tuple[str, str | None]]:
    """Every (status, outcome) the ended runs of ``journey`` (of ``version``) came to."""
    query = (
        sa.select(runs.c.status, runs.c.outcome)
        .where(
            runs.c.tenant_id == tenant,
            runs.c.journey_name == journey,
            runs.c.status.in_(TERMINAL),
        )
        .distinct()
    )
    if version is not None:
        query = query.where(runs.c.journey_version == version)
    return {(str(r.status), r.outcome) for r in connection.execute(query)}
