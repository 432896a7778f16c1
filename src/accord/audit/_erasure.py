"""Erasure and legal holds.

Erasing a subject, in one transaction that holds the tenant's ledger lock (so no append can be
sealing under the key meanwhile): refuse while a legal hold stands (recording the refusal) or
while the subject has runs in flight; destroy the subject's data key; replace the personal data
the runtime tables keep about the subject's runs; record the erasure in the ledger. The ledger
entries themselves stay as they are, so the ledger still verifies, but their sealed parts can
no longer be opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.audit import _entries
from accord.audit._ledger import Ledger
from accord.core import TenantId
from accord.errors import InputError, LegalHold, SubjectErased
from accord.storage import identity as stored_identity
from accord.storage import ledger as stored

_MAX_SUBJECT = 128
_MAX_ACTOR = 128
_MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did."""

    subject_id: str
    at: float
    runs_scrubbed: int
    ledger_index: int


@dataclass(frozen=True, slots=True)
class Hold:
    subject_id: str
    reason: str
    placed_by: str
    placed_at: float


def _check(subject_id: str, actor: str, reason: str) -> None:
    if not 0 < len(subject_id) <= _MAX_SUBJECT:
        raise InputError(f"a subject id has 1 to {_MAX_SUBJECT} characters")
    if not actor or len(actor) > _MAX_ACTOR:
        raise InputError(f"name who acts (1 to {_MAX_ACTOR} characters)", hint="CLI: --by NAME")
    if not reason.strip() or len(reason) > _MAX_REASON:
        raise InputError(
            f"give a reason (1 to {_MAX_REASON} characters); it is recorded in the ledger",
            hint="e.g. --reason 'erasure request 2026-118 (GDPR Art. 17)'",
        )


def erase_subject(
    ledger: Ledger,
    tenant: str,
    subject_id: str,
    *,
    actor: str,
    reason: str,
    empty_state: str,
) -> Erasure:
    """Crypto-shred a subject.

    Raises:
        LegalHold: the subject is under legal hold; the refused attempt is recorded.
        SubjectErased: the subject was erased before.
        InputError: the subject has runs in flight (cancel them first), or the actor or reason
            is missing. Nothing was changed.
    """
    _check(subject_id, actor, reason)
    now = ledger.clock.now()
    hold: stored.HoldRow | None = None
    with ledger.db.transaction() as connection:
        state = stored.lock_state(connection, tenant)
        hold = stored.get_hold(connection, tenant, subject_id)
        if hold is not None:
            ledger.append_locked(
                connection,
                tenant,
                state,
                [
                    _entries.subject_event(
                        "subject.erasure_refused",
                        subject_id=subject_id,
                        actor=actor,
                        at=now,
                        body={"reason": reason, "hold_placed_by": hold.placed_by},
                    )
                ],
            )
    if hold is not None:
        raise LegalHold(
            f"subject {subject_id!r} is under legal hold since {hold.placed_by} placed it "
            f"({hold.reason}); erasure refused and the refusal recorded",
            hint=f"release the hold first: accord subject release {subject_id} --by ... "
            "--reason ...",
        )
    with ledger.db.transaction() as connection:
        state = stored.lock_state(connection, tenant)
        key = stored.subject_key_rows(connection, tenant, [subject_id]).get(subject_id)
        if key is not None and key.wrapped_key is None:
            raise SubjectErased(
                f"subject {subject_id!r} was already erased",
                hint="nothing is left to erase; 'accord subject show' shows when",
            )
        active = stored.active_runs_of(connection, tenant, subject_id)
        if active:
            raise InputError(
                f"subject {subject_id!r} has {len(active)} run(s) in flight "
                f"({', '.join(active[:5])}); erasure would break them",
                hint="cancel them first: accord run cancel RUN_ID --reason ...",
            )
        if key is None:
            stored.insert_subject_keys(
                connection,
                [
                    {
                        "tenant_id": tenant,
                        "subject_id": subject_id,
                        "wrapped_key": None,
                        "master_key_id": ledger.keyring.master_id,
                        "created_at": now,
                        "erased_at": now,
                    }
                ],
            )
        else:
            stored.destroy_subject_key(connection, tenant, subject_id, now)
        scrubbed = stored.scrub_subject(connection, tenant, subject_id, empty_state=empty_state)
        forgotten = stored_identity.forget_subject(connection, TenantId(tenant), subject_id, at=now)
        stored.forget_choices(connection, tenant, subject_id)
        (index,) = ledger.append_locked(
            connection,
            tenant,
            state,
            [
                _entries.subject_event(
                    "subject.erased",
                    subject_id=subject_id,
                    actor=actor,
                    at=now,
                    body={
                        "reason": reason,
                        "runs_scrubbed": scrubbed,
                        "identity_rows_deleted": forgotten,
                    },
                )
            ],
        )
    ledger.vault.forget(tenant, subject_id)
    return Erasure(subject_id, now, scrubbed, index)


def place_hold(ledger: Ledger, tenant: str, subject_id: str, *, actor: str, reason: str) -> Hold:
    """Put a subject under legal hold (erasure is refused until it is released).

    Raises:
        InputError: the subject is already under hold, or actor or reason is missing.
    """
    _check(subject_id, actor, reason)
    now = ledger.clock.now()
    with ledger.db.transaction() as connection:
        state = stored.lock_state(connection, tenant)
        existing = stored.get_hold(connection, tenant, subject_id)
        if existing is not None:
            raise InputError(
                f"subject {subject_id!r} is already under legal hold (placed by "
                f"{existing.placed_by}: {existing.reason})",
                hint="one hold per subject; release it to change the reason",
            )
        hold = stored.HoldRow(subject_id, reason, actor, now)
        stored.place_hold(connection, tenant, hold)
        ledger.append_locked(
            connection,
            tenant,
            state,
            [
                _entries.subject_event(
                    "subject.hold",
                    subject_id=subject_id,
                    actor=actor,
                    at=now,
                    body={"reason": reason},
                )
            ],
        )
    return Hold(subject_id, reason, actor, now)


def release_hold(ledger: Ledger, tenant: str, subject_id: str, *, actor: str, reason: str) -> None:
    """Release a subject's legal hold.

    Raises:
        InputError: the subject has no hold, or actor or reason is missing.
    """
    _check(subject_id, actor, reason)
    now = ledger.clock.now()
    with ledger.db.transaction() as connection:
        state = stored.lock_state(connection, tenant)
        if stored.get_hold(connection, tenant, subject_id) is None:
            raise InputError(
                f"subject {subject_id!r} is not under legal hold",
                hint="'accord subject show SUBJECT' shows its state",
            )
        stored.release_hold(connection, tenant, subject_id)
        ledger.append_locked(
            connection,
            tenant,
            state,
            [
                _entries.subject_event(
                    "subject.hold_released",
                    subject_id=subject_id,
                    actor=actor,
                    at=now,
                    body={"reason": reason},
                )
            ],
        )
