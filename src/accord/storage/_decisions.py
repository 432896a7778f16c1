"""Gateway decision records: one row per gateway pass, written with the change it explains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._records import DecisionRecord, NewDecision, json_text
from accord.storage._schema import decisions

_INSERT = decisions.insert()


def decision_rows(tenant: str, rows: Sequence[NewDecision]) -> list[dict[str, Any]]:
    """Row parameters for :func:`insert_rows`."""
    return [
        {
            "decision_id": d.decision_id,
            "tenant_id": tenant,
            "run_id": d.run_id,
            "block": d.block,
            "visit": d.visit,
            "attempt": d.attempt,
            "subject_id": d.subject_id,
            "capability": d.capability,
            "purpose": d.purpose,
            "outcome": d.outcome,
            "reason": d.reason,
            "at": d.at,
            "record": json_text(d.record),
        }
        for d in rows
    ]


def insert_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert decision records in the caller's transaction (one statement for all of them)."""
    if rows:
        connection.execute(_INSERT, rows)


def insert_decisions(connection: Connection, tenant: str, rows: Sequence[NewDecision]) -> None:
    """Insert one tenant's decision records in the caller's transaction."""
    insert_rows(connection, decision_rows(tenant, rows))


def for_run(connection: Connection, tenant: str, run_id: str) -> list[DecisionRecord]:
    """A run's decisions in the order they were taken."""
    rows = connection.execute(
        sa.select(decisions)
        .where(decisions.c.tenant_id == tenant, decisions.c.run_id == run_id)
        .order_by(decisions.c.at, decisions.c.decision_id)
    ).mappings()
    return [DecisionRecord.from_row(r) for r in rows]
