"""The consent ledger: grants, withdrawals, receipts, configured bases and their history.

Every change writes its row and its ``consent_events`` entry in one transaction, and every query
is scoped to one tenant.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accord.audit import Ledger, entries
from accord.consent._basis import BasisCheck, ConsentSnapshot, PurposeBasis, validate_basis
from accord.consent._grants import ConsentEvent, Grant
from accord.consent._receipts import DEMO_CONTROLLER, Controller, build_receipt, iso_time
from accord.consent._vocabulary import validate_categories, validate_purpose
from accord.core import Clock, IdGenerator, TenantId
from accord.errors import ConcurrencyError, InputError
from accord.storage import Database, NewEvent
from accord.storage import runs as stored_runs
from accord.storage._consent import (
    BasisRecord,
    ConsentEventRecord,
    GrantRecord,
    delete_basis,
    get_basis,
    get_grant,
    insert_events,
    insert_grant,
    list_bases,
    save_basis,
    set_withdrawn,
    subject_events,
    subject_grants,
    subject_grants_and_bases,
    tenant_events_after,
)

# Column sizes of the consent tables.
_SUBJECT_MAX = 128
_CHANNEL_MAX = 32
_NOTICE_MAX = 64
_ACTOR_MAX = 128
_LANGUAGE_MAX = 35
_REASON_MAX = 2000
_DESCRIPTION_MAX = 4000

_SHOW_HINT = "list the subject's grants with `accord consent show SUBJECT`"


_PUBLISHED: dict[str, tuple[str, ...]] = {
    "granted": ("purpose", "categories", "channel", "granted_at", "expires_at"),
    "withdrawn": ("purpose", "withdrawn_at", "reason"),
}
"""Consent events that leave as domain events, with the detail fields they carry."""


class ConsentLedger:
    """Records consent and the other lawful bases, and answers what they allowed when.

    Args:
        db: the database.
        clock: the time of every change and the default time of every question.
        ids: grant and event ids.
        ledger: where every change is also recorded, in the same transaction.
        controller: the organisation named on receipts (default: the demo enterprise).
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        ids: IdGenerator,
        ledger: Ledger,
        controller: Controller | None = None,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.clock = clock
        self.ids = ids
        self.controller = controller or DEMO_CONTROLLER

    def grant(
        self,
        tenant: TenantId,
        subject_id: str,
        *,
        purpose: str,
        categories: Collection[str],
        channel: str = "web",
        notice_version: str = "1",
        expires_at: float | None = None,
        granted_at: float | None = None,
        actor: str = "system",
        language: str = "en",
    ) -> Grant:
        """Record the subject's consent to ``purpose`` for ``categories`` and issue its receipt.

        Args:
            purpose: a ``dpv:`` purpose or a custom term.
            categories: ``pd:`` categories or custom terms; at least one.
            channel: where consent was collected.
            notice_version: the privacy notice the subject was shown.
            expires_at: when consent lapses by itself (after ``granted_at``); None for never.
            granted_at: when consent takes effect (default: now).
            actor: who recorded it.
            language: the language of the consent dialogue (BCP 47).

        Raises:
            InputError: an unknown term, an empty subject or category list, a field too long,
                or an expiry not after the grant. Nothing is written.
        """
        _require_text(subject_id, "subject_id", _SUBJECT_MAX)
        purpose = validate_purpose(purpose)
        terms = validate_categories(categories)
        if not terms:
            raise InputError(
                f"consent for {purpose} names no data categories",
                hint="pass the categories the customer agreed to, e.g. ['pd:EmailAddress']",
            )
        _require_text(channel, "channel", _CHANNEL_MAX)
        _require_text(notice_version, "notice_version", _NOTICE_MAX)
        _require_text(actor, "actor", _ACTOR_MAX)
        _require_text(language, "language", _LANGUAGE_MAX)
        now = self.clock.now()
        start = now if granted_at is None else _finite(granted_at, "granted_at")
        if expires_at is not None and _finite(expires_at, "expires_at") <= start:
            raise InputError(
                f"consent would expire ({iso_time(expires_at)}) before it is granted "
                f"({iso_time(start)})",
                hint="give an expiry after the grant time, or none for consent until withdrawn",
            )
        grant_id = self.ids.new_id("grant")
        receipt = build_receipt(
            grant_id=grant_id,
            subject_id=subject_id,
            purpose=purpose,
            categories=terms,
            channel=channel,
            notice_version=notice_version,
            granted_at=start,
            expires_at=expires_at,
            controller=self.controller,
            language=language,
        )
        record = GrantRecord(
            grant_id=grant_id,
            tenant_id=tenant,
            subject_id=subject_id,
            purpose=purpose,
            categories=terms,
            channel=channel,
            notice_version=notice_version,
            granted_at=start,
            expires_at=expires_at,
            withdrawn_at=None,
            receipt=receipt,
            recorded_at=now,
        )
        event = self._event(
            tenant,
            "granted",
            now,
            actor,
            subject_id=subject_id,
            grant_id=grant_id,
            detail={
                "purpose": purpose,
                "categories": list(terms),
                "channel": channel,
                "notice_version": notice_version,
                "granted_at": start,
                "expires_at": expires_at,
            },
        )
        with self.db.transaction() as connection:
            insert_grant(connection, record)
            self._record(connection, [event])
        return _grant(record)

    def withdraw(
        self,
        tenant: TenantId,
        grant_id: str,
        *,
        actor: str,
        reason: str = "",
        at: float | None = None,
    ) -> Grant:
        """Withdraw one grant. It stops allowing anything from ``at`` (default: now).

        Args:
            at: when the subject withdrew, if earlier than now (e.g. by telephone); never later.

        Raises:
            InputError: the grant is unknown in this tenant or already withdrawn, or ``at`` is in
                the future or before the grant. Nothing is written.
        """
        _require_text(actor, "actor", _ACTOR_MAX)
        _check_reason(reason)
        now = self.clock.now()
        effective = now if at is None else _finite(at, "at")
        if effective > now:
            raise InputError(
                f"a withdrawal cannot take effect in the future ({iso_time(effective)})",
                hint="to end consent at a later time, grant it again with an expiry",
            )
        with self.db.transaction() as connection:
            record = get_grant(connection, tenant, grant_id, for_update=True)
            if record is None:
                raise InputError(
                    f"no consent grant {grant_id!r} in tenant {tenant!r}", hint=_SHOW_HINT
                )
            if at is not None and effective < record.granted_at:
                raise InputError(
                    f"withdrawal time {iso_time(effective)} is before grant {grant_id!r} took "
                    f"effect ({iso_time(record.granted_at)})",
                    hint="omit the time to withdraw now",
                )
            return self._withdraw(connection, record, effective, now, actor, reason)

    def withdraw_purpose(
        self, tenant: TenantId, subject_id: str, purpose: str, *, actor: str, reason: str = ""
    ) -> list[Grant]:
        """Withdraw, now, every grant of the subject for ``purpose`` that is active or not yet
        started. Returns the grants withdrawn (none when there were none)."""
        _require_text(subject_id, "subject_id", _SUBJECT_MAX)
        purpose = validate_purpose(purpose)
        _require_text(actor, "actor", _ACTOR_MAX)
        _check_reason(reason)
        now = self.clock.now()
        withdrawn: list[Grant] = []
        with self.db.transaction() as connection:
            records = subject_grants(
                connection, tenant, subject_id, purpose=purpose, for_update=True
            )
            for record in records:
                if record.withdrawn_at is None and (
                    record.expires_at is None or record.expires_at > now
                ):
                    withdrawn.append(self._withdraw(connection, record, now, now, actor, reason))
        return withdrawn

    def grants(self, tenant: TenantId, subject_id: str, *, at: float | None = None) -> list[Grant]:
        """The subject's grants, oldest first.

        Args:
            at: show the grants as the ledger stood at that time: grants recorded later are
                absent, and withdrawals recorded later are not shown (``withdrawn_at`` is None).
        """
        with self.db.read() as connection:
            if at is None:
                return [_grant(r) for r in subject_grants(connection, tenant, subject_id)]
            return _grants_as_of(connection, tenant, subject_id, at)

    def bases(self, tenant: TenantId) -> list[PurposeBasis]:
        """The tenant's configured bases other than consent, by purpose."""
        with self.db.read() as connection:
            return [_purpose_basis(r) for r in list_bases(connection, tenant)]

    def snapshot(
        self,
        tenant: TenantId,
        subject_id: str,
        *,
        connection: Connection | None = None,
        as_of: float | None = None,
    ) -> ConsentSnapshot:
        """Everything needed to check the subject's lawful bases, read in one go.

        Args:
            connection: read inside the caller's transaction; without it, in a read transaction
                of its own.
            as_of: reconstruct the ledger as it stood at that time (grants and withdrawals
                recorded later left out, bases as configured then). Without it, one statement
                reads the subject's grants and the tenant's bases.
        """
        with _reading(self.db, connection) as reader:
            if as_of is None:
                grant_records, basis_records = subject_grants_and_bases(reader, tenant, subject_id)
                return ConsentSnapshot(
                    tenant,
                    subject_id,
                    tuple(_grant(r) for r in grant_records),
                    tuple(_purpose_basis(r) for r in basis_records),
                )
            grants = _grants_as_of(reader, tenant, subject_id, as_of)
            bases = _bases_as_of(reader, tenant, as_of)
            return ConsentSnapshot(tenant, subject_id, tuple(grants), tuple(bases), as_of)

    def check(
        self,
        tenant: TenantId,
        subject_id: str,
        purpose: str,
        categories: Collection[str],
        *,
        at: float | None = None,
    ) -> BasisCheck:
        """What was allowed at ``at`` (default: now)?

        With ``at``, the answer is the one the ledger gave at that time: grants, withdrawals and
        basis changes recorded later are left out.
        """
        if at is None:
            return self.snapshot(tenant, subject_id).check(purpose, categories, at=self.clock.now())
        return self.snapshot(tenant, subject_id, as_of=at).check(purpose, categories, at=at)

    def receipt(self, tenant: TenantId, grant_id: str) -> dict[str, Any]:
        """The consent receipt issued for a grant.

        Raises:
            InputError: no such grant in this tenant.
        """
        with self.db.read() as connection:
            record = get_grant(connection, tenant, grant_id)
        if record is None:
            raise InputError(f"no consent grant {grant_id!r} in tenant {tenant!r}", hint=_SHOW_HINT)
        return record.receipt

    def history(self, tenant: TenantId, subject_id: str) -> list[ConsentEvent]:
        """The subject's consent events in the order they were recorded."""
        with self.db.read() as connection:
            records = subject_events(connection, tenant, subject_id)
        return [_consent_event(r) for r in records]

    def set_basis(
        self,
        tenant: TenantId,
        purpose: str,
        basis: str,
        *,
        categories: Collection[str] | None = None,
        description: str = "",
        actor: str,
    ) -> PurposeBasis:
        """Configure the lawful basis of a purpose; ``basis="consent"`` removes the configured
        one, so the purpose needs each subject's consent again.

        Args:
            categories: the categories the basis covers; None for any.
            description: why the basis applies, for auditors.

        Raises:
            InputError: an unknown purpose, basis or category, or categories given with
                ``consent``. Nothing is written.
        """
        purpose = validate_purpose(purpose)
        lawful = validate_basis(basis)
        terms: tuple[str, ...] | None = None
        if categories is not None:
            if lawful == "consent":
                raise InputError(
                    "categories cannot be configured for the consent basis",
                    hint="each grant names the categories the customer agreed to; omit them",
                )
            terms = validate_categories(categories)
            if not terms:
                raise InputError(
                    f"no categories given for {lawful} on {purpose}",
                    hint="name the categories the basis covers, or omit them to cover any",
                )
        _require_text(actor, "actor", _ACTOR_MAX)
        if len(description) > _DESCRIPTION_MAX:
            raise InputError(f"description is longer than {_DESCRIPTION_MAX} characters")
        now = self.clock.now()
        result = PurposeBasis(purpose, lawful, terms, description)
        try:
            with self.db.transaction() as connection:
                current = get_basis(connection, tenant, purpose, for_update=True)
                previous = None if current is None else _basis_state(current)
                if previous == _state_of(result) or (current is None and lawful == "consent"):
                    return result
                if lawful == "consent":
                    delete_basis(connection, tenant, purpose)
                else:
                    save_basis(
                        connection,
                        BasisRecord(tenant, purpose, lawful, terms, description, now, actor),
                        exists=current is not None,
                    )
                detail = {"purpose": purpose, **_state_of(result), "previous": previous}
                self._record(
                    connection, [self._event(tenant, "basis_set", now, actor, detail=detail)]
                )
        except IntegrityError as exc:
            raise ConcurrencyError(
                f"the basis of {purpose} was configured by someone else at the same time",
                hint="look at `accord consent bases` and try again",
            ) from exc
        return result

    def _record(self, connection: Connection, events: Sequence[ConsentEventRecord]) -> None:
        """Store consent events and their ledger entries in the caller's transaction."""
        insert_events(connection, events)
        for e in events:
            if e.kind in _PUBLISHED:
                stored_runs.insert_outbox(
                    connection,
                    e.tenant_id,
                    None,
                    None,
                    [
                        NewEvent(
                            self.ids.new_id("evt"),
                            f"consent.{e.kind}",
                            {
                                "grant_id": e.grant_id,
                                "subject_id": e.subject_id,
                                "actor": e.actor,
                                **{k: e.detail.get(k) for k in _PUBLISHED[e.kind]},
                            },
                            subject_id=e.subject_id,
                        )
                    ],
                    e.at,
                )
        for tenant in sorted({e.tenant_id for e in events}):
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.consent_change(
                        event_id=e.event_id,
                        subject_id=e.subject_id,
                        grant_id=e.grant_id,
                        kind=e.kind,
                        at=e.at,
                        actor=e.actor,
                        detail=e.detail,
                    )
                    for e in events
                    if e.tenant_id == tenant
                ],
            )

    def _withdraw(
        self,
        connection: Connection,
        record: GrantRecord,
        effective: float,
        now: float,
        actor: str,
        reason: str,
    ) -> Grant:
        tenant = TenantId(record.tenant_id)
        if record.withdrawn_at is not None or not set_withdrawn(
            connection, tenant, record.grant_id, effective
        ):
            raise InputError(
                f"consent grant {record.grant_id!r} was already withdrawn"
                + (
                    f" at {iso_time(record.withdrawn_at)}"
                    if record.withdrawn_at is not None
                    else ""
                ),
                hint="nothing to do; record a new grant if the customer consents again",
            )
        event = self._event(
            tenant,
            "withdrawn",
            now,
            actor,
            subject_id=record.subject_id,
            grant_id=record.grant_id,
            detail={"purpose": record.purpose, "withdrawn_at": effective, "reason": reason},
        )
        self._record(connection, [event])
        return _grant(record, withdrawn_at=effective)

    def _event(
        self,
        tenant: TenantId,
        kind: str,
        at: float,
        actor: str,
        *,
        subject_id: str | None = None,
        grant_id: str | None = None,
        detail: dict[str, Any],
    ) -> ConsentEventRecord:
        return ConsentEventRecord(
            event_id=self.ids.new_id("cev"),
            tenant_id=tenant,
            subject_id=subject_id,
            grant_id=grant_id,
            kind=kind,
            at=at,
            actor=actor,
            detail=detail,
        )


def snapshots_from(
    tenant: TenantId,
    subject_ids: Collection[str],
    grants: Mapping[str, Sequence[GrantRecord]],
    bases: Sequence[BasisRecord],
) -> dict[str, ConsentSnapshot]:
    """Snapshots of ``subject_ids`` from stored grants (by subject) and the tenant's bases."""
    purposes = tuple(_purpose_basis(r) for r in bases)
    return {
        subject_id: ConsentSnapshot(
            tenant, subject_id, tuple(_grant(r) for r in grants.get(subject_id, ())), purposes
        )
        for subject_id in subject_ids
    }


@contextmanager
def _reading(db: Database, connection: Connection | None) -> Iterator[Connection]:
    if connection is not None:
        yield connection
        return
    with db.read() as own:
        yield own


def _grants_as_of(
    connection: Connection, tenant: TenantId, subject_id: str, at: float
) -> list[Grant]:
    records = subject_grants(connection, tenant, subject_id, recorded_until=at)
    known = {
        e.grant_id
        for e in subject_events(connection, tenant, subject_id, kind="withdrawn", until=at)
    }
    grants = []
    for record in records:
        withdrawn = record.withdrawn_at
        if withdrawn is not None and (record.grant_id not in known or withdrawn > at):
            withdrawn = None
        grants.append(_grant(record, withdrawn_at=withdrawn))
    return grants


def _bases_as_of(connection: Connection, tenant: TenantId, at: float) -> list[PurposeBasis]:
    # Start from the bases as they are and undo, newest first, the changes recorded after ``at``.
    # Each change event keeps the state it replaced, so rows that predate the events survive.
    state: dict[str, dict[str, Any] | None] = {
        r.purpose: _basis_state(r) for r in list_bases(connection, tenant)
    }
    for event in reversed(tenant_events_after(connection, tenant, "basis_set", at)):
        state[event.detail["purpose"]] = event.detail.get("previous")
    bases = []
    for purpose in sorted(state):
        value = state[purpose]
        if value is None or value["basis"] == "consent":
            continue
        categories = value["categories"]
        bases.append(
            PurposeBasis(
                purpose,
                value["basis"],
                None if categories is None else tuple(categories),
                value["description"],
            )
        )
    return bases


def _basis_state(record: BasisRecord) -> dict[str, Any]:
    return {
        "basis": record.basis,
        "categories": None if record.categories is None else list(record.categories),
        "description": record.description,
    }


def _state_of(basis: PurposeBasis) -> dict[str, Any]:
    return {
        "basis": basis.basis,
        "categories": None if basis.categories is None else list(basis.categories),
        "description": basis.description,
    }


def _grant(record: GrantRecord, **changes: Any) -> Grant:
    values: dict[str, Any] = {
        "grant_id": record.grant_id,
        "tenant_id": record.tenant_id,
        "subject_id": record.subject_id,
        "purpose": record.purpose,
        "categories": record.categories,
        "channel": record.channel,
        "notice_version": record.notice_version,
        "granted_at": record.granted_at,
        "expires_at": record.expires_at,
        "withdrawn_at": record.withdrawn_at,
        "receipt": record.receipt,
    }
    values.update(changes)
    return Grant(**values)


def _purpose_basis(record: BasisRecord) -> PurposeBasis:
    return PurposeBasis(record.purpose, record.basis, record.categories, record.description)


def _consent_event(record: ConsentEventRecord) -> ConsentEvent:
    return ConsentEvent(
        event_id=record.event_id,
        tenant_id=record.tenant_id,
        subject_id=record.subject_id,
        grant_id=record.grant_id,
        kind=record.kind,
        at=record.at,
        actor=record.actor,
        detail=record.detail,
    )


def _require_text(value: object, name: str, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise InputError(
            f"{name} {value[:40]!r}... is {len(value)} characters long",
            hint=f"{name} has at most {limit} characters",
        )


def _check_reason(reason: str) -> None:
    if len(reason) > _REASON_MAX:
        raise InputError(f"reason is longer than {_REASON_MAX} characters", hint="shorten it")


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name} must be a time in epoch seconds, got {value!r}")
    return float(value)
