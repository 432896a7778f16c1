"""Consent grants, consent events and lawful bases, always within one tenant.

The consent ledger (``accord.consent``) decides what is valid; this module only reads and writes
rows. Grants and bases for one subject are read by a single statement so that a snapshot is
consistent even under PostgreSQL's READ COMMITTED isolation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage._records import json_text
from accord.storage._schema import consent_events, consent_grants, lawful_bases


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A consent grant as stored."""

    grant_id: str
    tenant_id: str
    subject_id: str
    purpose: str
    categories: tuple[str, ...]
    channel: str
    notice_version: str
    granted_at: float
    expires_at: float | None
    withdrawn_at: float | None
    receipt: dict[str, Any]
    recorded_at: float

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> GrantRecord:
        return cls(
            grant_id=row["grant_id"],
            tenant_id=row["tenant_id"],
            subject_id=row["subject_id"],
            purpose=row["purpose"],
            categories=tuple(json.loads(row["categories"])),
            channel=row["channel"],
            notice_version=row["notice_version"],
            granted_at=row["granted_at"],
            expires_at=row["expires_at"],
            withdrawn_at=row["withdrawn_at"],
            receipt=json.loads(row["receipt"]),
            recorded_at=row["recorded_at"],
        )


@dataclass(frozen=True, slots=True)
class ConsentEventRecord:
    """One entry of the append-only consent history."""

    event_id: str
    tenant_id: str
    subject_id: str | None
    grant_id: str | None
    kind: str
    at: float
    actor: str
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: RowMapping) -> ConsentEventRecord:
        return cls(
            event_id=row["event_id"],
            tenant_id=row["tenant_id"],
            subject_id=row["subject_id"],
            grant_id=row["grant_id"],
            kind=row["kind"],
            at=row["at"],
            actor=row["actor"],
            detail=json.loads(row["detail"]),
        )


@dataclass(frozen=True, slots=True)
class BasisRecord:
    """A lawful basis other than consent, configured for one purpose of a tenant."""

    tenant_id: str
    purpose: str
    basis: str
    categories: tuple[str, ...] | None
    description: str
    updated_at: float
    updated_by: str

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> BasisRecord:
        categories = row["categories"]
        return cls(
            tenant_id=row["tenant_id"],
            purpose=row["purpose"],
            basis=row["basis"],
            categories=None if categories is None else tuple(json.loads(categories)),
            description=row["description"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )


_INSERT_GRANT = consent_grants.insert()
_INSERT_EVENT = consent_events.insert()
_INSERT_BASIS = lawful_bases.insert()


def insert_grant(connection: Connection, grant: GrantRecord) -> None:
    connection.execute(
        _INSERT_GRANT,
        {
            "grant_id": grant.grant_id,
            "tenant_id": grant.tenant_id,
            "subject_id": grant.subject_id,
            "purpose": grant.purpose,
            "categories": json_text(list(grant.categories)),
            "channel": grant.channel,
            "notice_version": grant.notice_version,
            "granted_at": grant.granted_at,
            "expires_at": grant.expires_at,
            "withdrawn_at": grant.withdrawn_at,
            "receipt": json_text(grant.receipt),
            "recorded_at": grant.recorded_at,
        },
    )


def insert_events(connection: Connection, events: Sequence[ConsentEventRecord]) -> None:
    if not events:
        return
    connection.execute(
        _INSERT_EVENT,
        [
            {
                "event_id": e.event_id,
                "tenant_id": e.tenant_id,
                "subject_id": e.subject_id,
                "grant_id": e.grant_id,
                "kind": e.kind,
                "at": e.at,
                "actor": e.actor,
                "detail": json_text(e.detail),
            }
            for e in events
        ],
    )


def get_grant(
    connection: Connection, tenant: TenantId, grant_id: str, *, for_update: bool = False
) -> GrantRecord | None:
    query = sa.select(consent_grants).where(
        consent_grants.c.tenant_id == tenant, consent_grants.c.grant_id == grant_id
    )
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    return None if row is None else GrantRecord.from_row(row)


def subject_grants(
    connection: Connection,
    tenant: TenantId,
    subject_id: str,
    *,
    purpose: str | None = None,
    recorded_until: float | None = None,
    for_update: bool = False,
) -> list[GrantRecord]:
    """A subject's grants, oldest first; optionally one purpose, or those recorded by a time."""
    query = sa.select(consent_grants).where(
        consent_grants.c.tenant_id == tenant, consent_grants.c.subject_id == subject_id
    )
    if purpose is not None:
        query = query.where(consent_grants.c.purpose == purpose)
    if recorded_until is not None:
        query = query.where(consent_grants.c.recorded_at <= recorded_until)
    query = query.order_by(consent_grants.c.granted_at, consent_grants.c.grant_id)
    if for_update:
        query = query.with_for_update()
    return [GrantRecord.from_row(r) for r in connection.execute(query).mappings()]


def set_withdrawn(connection: Connection, tenant: TenantId, grant_id: str, at: float) -> bool:
    """Mark a grant withdrawn; False when it was withdrawn already (or does not exist)."""
    result = connection.execute(
        consent_grants.update()
        .where(
            consent_grants.c.tenant_id == tenant,
            consent_grants.c.grant_id == grant_id,
            consent_grants.c.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=at)
    )
    return result.rowcount == 1


def subject_events(
    connection: Connection,
    tenant: TenantId,
    subject_id: str,
    *,
    kind: str | None = None,
    until: float | None = None,
) -> list[ConsentEventRecord]:
    """A subject's consent history in the order it was recorded."""
    query = sa.select(consent_events).where(
        consent_events.c.tenant_id == tenant, consent_events.c.subject_id == subject_id
    )
    if kind is not None:
        query = query.where(consent_events.c.kind == kind)
    if until is not None:
        query = query.where(consent_events.c.at <= until)
    query = query.order_by(consent_events.c.at, consent_events.c.event_id)
    return [ConsentEventRecord.from_row(r) for r in connection.execute(query).mappings()]


def tenant_events_after(
    connection: Connection, tenant: TenantId, kind: str, after: float
) -> list[ConsentEventRecord]:
    """Events of one kind that are not about a subject (basis changes), recorded after a time."""
    query = (
        sa.select(consent_events)
        .where(
            consent_events.c.tenant_id == tenant,
            consent_events.c.subject_id.is_(None),
            consent_events.c.kind == kind,
            consent_events.c.at > after,
        )
        .order_by(consent_events.c.at, consent_events.c.event_id)
    )
    return [ConsentEventRecord.from_row(r) for r in connection.execute(query).mappings()]


def get_basis(
    connection: Connection, tenant: TenantId, purpose: str, *, for_update: bool = False
) -> BasisRecord | None:
    query = sa.select(lawful_bases).where(
        lawful_bases.c.tenant_id == tenant, lawful_bases.c.purpose == purpose
    )
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    return None if row is None else BasisRecord.from_row(row)


def list_bases(connection: Connection, tenant: TenantId) -> list[BasisRecord]:
    query = (
        sa.select(lawful_bases)
        .where(lawful_bases.c.tenant_id == tenant)
        .order_by(lawful_bases.c.purpose)
    )
    return [BasisRecord.from_row(r) for r in connection.execute(query).mappings()]


def save_basis(connection: Connection, basis: BasisRecord, *, exists: bool) -> None:
    """Insert or replace the basis of a purpose (``exists`` says which; read it in the same
    transaction with ``get_basis(..., for_update=True)``)."""
    values = {
        "basis": basis.basis,
        "categories": None if basis.categories is None else json_text(list(basis.categories)),
        "description": basis.description,
        "updated_at": basis.updated_at,
        "updated_by": basis.updated_by,
    }
    if exists:
        connection.execute(
            lawful_bases.update()
            .where(
                lawful_bases.c.tenant_id == basis.tenant_id,
                lawful_bases.c.purpose == basis.purpose,
            )
            .values(values)
        )
    else:
        connection.execute(
            _INSERT_BASIS, {"tenant_id": basis.tenant_id, "purpose": basis.purpose, **values}
        )


def delete_basis(connection: Connection, tenant: TenantId, purpose: str) -> None:
    connection.execute(
        lawful_bases.delete().where(
            lawful_bases.c.tenant_id == tenant, lawful_bases.c.purpose == purpose
        )
    )


def typed_null(type_: sa.types.TypeEngine[Any]) -> sa.ColumnElement[Any]:
    return sa.cast(sa.null(), type_)


_TEXT = sa.Text()
_FLOAT = sa.Float()

# One statement for both tables: the grants of subjects and the bases of their tenant, told apart
# by ``source``. Built once; only the parameters change between calls. ``SNAPSHOT_PARTS`` lets
# the gateway add a row of its own to the same statement.
SNAPSHOT_PARTS = (
    sa.select(
        sa.literal("grant", _TEXT).label("source"),
        consent_grants.c.subject_id,
        consent_grants.c.grant_id,
        consent_grants.c.purpose,
        consent_grants.c.categories,
        consent_grants.c.channel,
        consent_grants.c.notice_version,
        consent_grants.c.granted_at,
        consent_grants.c.expires_at,
        consent_grants.c.withdrawn_at,
        consent_grants.c.receipt,
        consent_grants.c.recorded_at,
        typed_null(_TEXT).label("basis"),
        typed_null(_TEXT).label("description"),
        typed_null(_TEXT).label("updated_by"),
    ).where(
        consent_grants.c.tenant_id == sa.bindparam("tenant"),
        consent_grants.c.subject_id.in_(sa.bindparam("subjects", expanding=True)),
    ),
    sa.select(
        sa.literal("basis", _TEXT).label("source"),
        typed_null(_TEXT),
        typed_null(_TEXT),
        lawful_bases.c.purpose,
        lawful_bases.c.categories,
        typed_null(_TEXT),
        typed_null(_TEXT),
        typed_null(_FLOAT),
        typed_null(_FLOAT),
        typed_null(_FLOAT),
        typed_null(_TEXT),
        lawful_bases.c.updated_at,
        lawful_bases.c.basis,
        lawful_bases.c.description,
        lawful_bases.c.updated_by,
    ).where(lawful_bases.c.tenant_id == sa.bindparam("tenant")),
)
_SUBJECT_AND_BASES = sa.union_all(*SNAPSHOT_PARTS)


def subject_grants_and_bases(
    connection: Connection, tenant: TenantId, subject_id: str
) -> tuple[list[GrantRecord], list[BasisRecord]]:
    """Every grant of a subject and every configured basis of its tenant, in one statement.

    Grants come oldest first, bases by purpose.
    """
    rows = connection.execute(_SUBJECT_AND_BASES, {"tenant": tenant, "subjects": [subject_id]})
    grants, bases = snapshot_records(tenant, rows.mappings())
    return grants.get(subject_id, []), bases


def snapshot_records(
    tenant: TenantId, rows: Iterable[RowMapping]
) -> tuple[dict[str, list[GrantRecord]], list[BasisRecord]]:
    """Grants by subject and bases from rows of the snapshot statement (other rows ignored).

    Grants come oldest first, bases by purpose.
    """
    grants: dict[str, list[GrantRecord]] = {}
    bases: list[BasisRecord] = []
    for row in rows:
        if row["source"] == "grant":
            record = GrantRecord.from_row({**row, "tenant_id": tenant})
            grants.setdefault(record.subject_id, []).append(record)
        elif row["source"] == "basis":
            # the union names the basis rows' update time after the grants' column
            bases.append(
                BasisRecord.from_row({**row, "tenant_id": tenant, "updated_at": row["recorded_at"]})
            )
    for records in grants.values():
        records.sort(key=lambda g: (g.granted_at, g.grant_id))
    bases.sort(key=lambda b: b.purpose)
    return grants, bases
