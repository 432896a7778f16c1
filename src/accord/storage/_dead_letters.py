"""The dead-letter queue and the intents of calls that are not idempotent.

A dead letter is written by the transition that parks its call and resolved (retried or
discarded) under a conditional update, so two operators cannot both resolve one letter. An intent
is written, in its own committed transaction, just before a call that a repeat could duplicate;
the transition that learns the call's outcome deletes it. An intent still present when its block
runs again means a worker died mid-call: the outcome has to be reconciled, not guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._records import DeadLetterRecord, NewDeadLetter, json_text
from accord.storage._schema import call_intents, dead_letters


def insert_letters(
    connection: Connection,
    tenant: str,
    run_id: str,
    subject_id: str | None,
    letters: Sequence[NewDeadLetter],
    at: float,
) -> None:
    if not letters:
        return
    connection.execute(
        dead_letters.insert(),
        [
            {
                "tenant_id": tenant,
                "letter_id": letter.letter_id,
                "run_id": run_id,
                "token": letter.token,
                "block": letter.block,
                "visit": letter.visit,
                "capability": letter.capability,
                "subject_id": subject_id,
                "reason": letter.reason,
                "error": json_text(letter.error),
                "attempts": letter.attempts,
                "status": "pending",
                "created_at": at,
            }
            for letter in letters
        ],
    )


def get_letter(connection: Connection, tenant: str, letter_id: str) -> DeadLetterRecord | None:
    row = (
        connection.execute(
            dead_letters.select().where(
                dead_letters.c.tenant_id == tenant, dead_letters.c.letter_id == letter_id
            )
        )
        .mappings()
        .first()
    )
    return DeadLetterRecord.from_row(row) if row is not None else None


def list_letters(
    connection: Connection,
    tenant: str,
    *,
    status: str | None = None,
    run_id: str | None = None,
    capability: str | None = None,
    limit: int = 100,
) -> list[DeadLetterRecord]:
    query = dead_letters.select().where(dead_letters.c.tenant_id == tenant)
    if status is not None:
        query = query.where(dead_letters.c.status == status)
    if run_id is not None:
        query = query.where(dead_letters.c.run_id == run_id)
    if capability is not None:
        query = query.where(dead_letters.c.capability == capability)
    query = query.order_by(dead_letters.c.created_at, dead_letters.c.letter_id).limit(limit)
    return [DeadLetterRecord.from_row(r) for r in connection.execute(query).mappings()]


def count_pending(connection: Connection, tenant: str) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(dead_letters)
        .where(dead_letters.c.tenant_id == tenant, dead_letters.c.status == "pending")
    )
    return int(connection.execute(query).scalar_one())


def resolve_letter(
    connection: Connection,
    tenant: str,
    letter_id: str,
    *,
    status: str,
    by: str,
    note: str | None,
    at: float,
) -> bool:
    """Move a pending letter to ``status``; False when it was not pending any more."""
    result = connection.execute(
        dead_letters.update()
        .where(
            dead_letters.c.tenant_id == tenant,
            dead_letters.c.letter_id == letter_id,
            dead_letters.c.status == "pending",
        )
        .values(status=status, resolved_by=by, note=note, resolved_at=at)
    )
    return bool(result.rowcount)


def scrub_letters(connection: Connection, tenant: str, run_ids: Sequence[str]) -> None:
    """Forget what the errors of an erased subject's letters said."""
    if run_ids:
        connection.execute(
            dead_letters.update()
            .where(dead_letters.c.tenant_id == tenant, dead_letters.c.run_id.in_(run_ids))
            .values(error=json_text({"erased": True}), note=None)
        )


def put_intent(
    connection: Connection, tenant: str, key: str, *, run_id: str, capability: str, at: float
) -> None:
    """Record that a call under ``key`` is about to be made (kept if it already is)."""
    exists = connection.execute(
        sa.select(call_intents.c.idempotency_key).where(
            call_intents.c.tenant_id == tenant, call_intents.c.idempotency_key == key
        )
    ).first()
    if exists is None:
        connection.execute(
            call_intents.insert().values(
                tenant_id=tenant,
                idempotency_key=key,
                run_id=run_id,
                capability=capability,
                created_at=at,
            )
        )


def has_intent(connection: Connection, tenant: str, key: str) -> bool:
    row = connection.execute(
        sa.select(call_intents.c.idempotency_key).where(
            call_intents.c.tenant_id == tenant, call_intents.c.idempotency_key == key
        )
    ).first()
    return row is not None


def delete_intents(connection: Connection, tenant: str, keys: Sequence[str]) -> None:
    if keys:
        connection.execute(
            call_intents.delete().where(
                call_intents.c.tenant_id == tenant, call_intents.c.idempotency_key.in_(keys)
            )
        )
