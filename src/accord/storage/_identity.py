"""Canonical subjects, their source records and blocking keys, possible links, merges, match
models, the context store and retention rules.

A source record belongs to exactly one subject at a time; merging and splitting move records
between subjects and leave a merge row behind, so that every merge can be undone. Context items
carry their data category, source system, region and the purpose they were collected for; the
retention job deletes them or anonymises them (the subject is forgotten, the fact kept).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage import _postgres
from accord.storage._schema import (
    context_items,
    identity_candidates,
    identity_keys,
    identity_merges,
    identity_models,
    identity_records,
    identity_subjects,
    retention_rules,
)

SubjectStatus = Literal["active", "merged", "erased"]
LinkKind = Literal["created", "linked", "merged", "split", "moved"]
CandidateStatus = Literal["open", "merged", "kept_apart", "stale"]
ItemKind = Literal["attribute", "signal"]
RetentionAction = Literal["delete", "anonymise"]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SubjectRow:
    subject_id: str
    region: str | None
    status: SubjectStatus
    merged_into: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SourceRecordRow:
    source: str
    record_id: str
    subject_id: str
    fields: dict[str, str]
    region: str | None
    link: LinkKind
    probability: float | None
    ingested_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class CandidateRow:
    candidate_id: str
    source: str
    record_id: str
    subject_id: str
    other_subject_id: str
    probability: float
    weight: float
    evidence: dict[str, Any]
    status: CandidateStatus
    run_id: str | None
    created_at: float
    decided_at: float | None
    decided_by: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class MergeRow:
    merge_id: str
    into_subject: str
    from_subject: str
    records: tuple[tuple[str, str], ...]
    items: tuple[str, ...]
    candidate_id: str | None
    merged_by: str
    reason: str
    merged_at: float
    undone_by: str | None
    undone_at: float | None


@dataclass(frozen=True, slots=True)
class ContextItemRow:
    item_id: str
    subject_id: str | None
    kind: ItemKind
    name: str
    value: Any
    category: str
    source: str
    record_id: str | None
    region: str | None
    purpose: str | None
    recorded_at: float
    anonymised_at: float | None


@dataclass(frozen=True, slots=True)
class RetentionRuleRow:
    category: str
    purpose: str | None
    period_seconds: float
    action: RetentionAction
    updated_by: str
    updated_at: float


# -- serialising changes to who is who


def lock(connection: Connection, tenant: TenantId) -> None:
    """Hold the tenant's identity lock until the transaction ends, so that two processes never
    resolve records or merge subjects at once (a record could otherwise join a subject being
    merged away). SQLite writers are serialised already."""
    if connection.dialect.name == "postgresql":
        _postgres.advisory_xact_lock(connection, f"accord.identity\x1f{tenant}")


# -- subjects


def insert_subject(
    connection: Connection, tenant: TenantId, subject_id: str, *, region: str | None, at: float
) -> None:
    connection.execute(
        identity_subjects.insert().values(
            tenant_id=tenant,
            subject_id=subject_id,
            region=region,
            status="active",
            merged_into=None,
            created_at=at,
            updated_at=at,
        )
    )


def get_subject(connection: Connection, tenant: TenantId, subject_id: str) -> SubjectRow | None:
    row = (
        connection.execute(
            sa.select(identity_subjects).where(
                identity_subjects.c.tenant_id == tenant,
                identity_subjects.c.subject_id == subject_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _subject(row)


def update_subject(
    connection: Connection,
    tenant: TenantId,
    subject_id: str,
    *,
    at: float,
    status: SubjectStatus | None = None,
    merged_into: str | None = None,
    region: str | None = None,
    set_region: bool = False,
) -> None:
    values: dict[str, Any] = {"updated_at": at}
    if status is not None:
        values["status"] = status
        values["merged_into"] = merged_into
    if set_region:
        values["region"] = region
    connection.execute(
        identity_subjects.update()
        .where(
            identity_subjects.c.tenant_id == tenant,
            identity_subjects.c.subject_id == subject_id,
        )
        .values(**values)
    )


# -- source records and blocking keys


def get_record(
    connection: Connection, tenant: TenantId, source: str, record_id: str
) -> SourceRecordRow | None:
    row = (
        connection.execute(
            sa.select(identity_records).where(
                identity_records.c.tenant_id == tenant,
                identity_records.c.source == source,
                identity_records.c.record_id == record_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _record(row)


def records_of(
    connection: Connection, tenant: TenantId, subject_ids: Collection[str]
) -> list[SourceRecordRow]:
    found: list[SourceRecordRow] = []
    ids = sorted(subject_ids)
    for start in range(0, len(ids), _CHUNK):
        query = (
            sa.select(identity_records)
            .where(
                identity_records.c.tenant_id == tenant,
                identity_records.c.subject_id.in_(ids[start : start + _CHUNK]),
            )
            .order_by(identity_records.c.source, identity_records.c.record_id)
        )
        found.extend(_record(r) for r in connection.execute(query).mappings())
    return found


def all_records(connection: Connection, tenant: TenantId) -> list[SourceRecordRow]:
    """Every source record of the tenant (what the match model is estimated from)."""
    query = (
        sa.select(identity_records)
        .where(identity_records.c.tenant_id == tenant)
        .order_by(identity_records.c.source, identity_records.c.record_id)
    )
    return [_record(r) for r in connection.execute(query).mappings()]


def subjects_sharing_keys(
    connection: Connection, tenant: TenantId, keys: Collection[str], *, max_per_key: int
) -> set[str]:
    """The subjects with a record that shares a blocking key with ``keys``; a key shared by
    more than ``max_per_key`` records is too common to block on and is skipped."""
    if not keys:
        return set()
    sizes = connection.execute(
        sa.select(identity_keys.c.key, sa.func.count())
        .where(identity_keys.c.tenant_id == tenant, identity_keys.c.key.in_(sorted(keys)))
        .group_by(identity_keys.c.key)
    )
    usable = sorted(str(row[0]) for row in sizes if int(row[1]) <= max_per_key)
    if not usable:
        return set()
    k, r = identity_keys.c, identity_records.c
    query = (
        sa.select(r.subject_id)
        .join(
            identity_keys,
            sa.and_(k.tenant_id == r.tenant_id, k.source == r.source, k.record_id == r.record_id),
        )
        .where(r.tenant_id == tenant, k.key.in_(usable))
        .distinct()
    )
    return {str(row[0]) for row in connection.execute(query)}


def put_record(
    connection: Connection,
    tenant: TenantId,
    *,
    source: str,
    record_id: str,
    subject_id: str,
    fields: dict[str, str],
    region: str | None,
    link: LinkKind,
    probability: float | None,
    keys: Iterable[str],
    at: float,
    exists: bool,
) -> None:
    """Insert a record (or replace the one with the same source and id) and its keys."""
    values = {
        "subject_id": subject_id,
        "fields": json.dumps(fields, sort_keys=True),
        "region": region,
        "link": link,
        "probability": probability,
        "updated_at": at,
    }
    if exists:
        connection.execute(
            identity_records.update()
            .where(
                identity_records.c.tenant_id == tenant,
                identity_records.c.source == source,
                identity_records.c.record_id == record_id,
            )
            .values(**values)
        )
        connection.execute(
            identity_keys.delete().where(
                identity_keys.c.tenant_id == tenant,
                identity_keys.c.source == source,
                identity_keys.c.record_id == record_id,
            )
        )
    else:
        connection.execute(
            identity_records.insert().values(
                tenant_id=tenant, source=source, record_id=record_id, ingested_at=at, **values
            )
        )
    rows = [
        {"tenant_id": tenant, "key": key, "source": source, "record_id": record_id}
        for key in sorted(set(keys))
    ]
    if rows:
        connection.execute(identity_keys.insert(), rows)


def move_records(
    connection: Connection,
    tenant: TenantId,
    records: Iterable[tuple[str, str]],
    *,
    to_subject: str,
    link: LinkKind,
    at: float,
) -> int:
    moved = 0
    for source, record_id in records:
        moved += connection.execute(
            identity_records.update()
            .where(
                identity_records.c.tenant_id == tenant,
                identity_records.c.source == source,
                identity_records.c.record_id == record_id,
            )
            .values(subject_id=to_subject, link=link, updated_at=at)
        ).rowcount
    return moved


# -- possible links


def insert_candidate(connection: Connection, tenant: TenantId, row: CandidateRow) -> None:
    values = {k: getattr(row, k) for k in row.__slots__}
    values["evidence"] = json.dumps(row.evidence, sort_keys=True)
    connection.execute(identity_candidates.insert().values(tenant_id=tenant, **values))


def get_candidate(
    connection: Connection, tenant: TenantId, candidate_id: str
) -> CandidateRow | None:
    row = (
        connection.execute(
            sa.select(identity_candidates).where(
                identity_candidates.c.tenant_id == tenant,
                identity_candidates.c.candidate_id == candidate_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _candidate(row)


def list_candidates(
    connection: Connection,
    tenant: TenantId,
    *,
    status: CandidateStatus | None = None,
    subject_id: str | None = None,
    without_run: bool = False,
) -> list[CandidateRow]:
    c = identity_candidates.c
    query = sa.select(identity_candidates).where(c.tenant_id == tenant)
    if status is not None:
        query = query.where(c.status == status)
    if subject_id is not None:
        query = query.where(sa.or_(c.subject_id == subject_id, c.other_subject_id == subject_id))
    if without_run:
        query = query.where(c.run_id.is_(None))
    query = query.order_by(c.created_at, c.candidate_id)
    return [_candidate(r) for r in connection.execute(query).mappings()]


def kept_apart(connection: Connection, tenant: TenantId, a: str, b: str) -> bool:
    """Whether a person decided that subjects ``a`` and ``b`` are different people."""
    c = identity_candidates.c
    row = connection.execute(
        sa.select(c.candidate_id)
        .where(
            c.tenant_id == tenant,
            c.status == "kept_apart",
            sa.or_(
                sa.and_(c.subject_id == a, c.other_subject_id == b),
                sa.and_(c.subject_id == b, c.other_subject_id == a),
            ),
        )
        .limit(1)
    ).first()
    return row is not None


def set_candidate_run(
    connection: Connection, tenant: TenantId, candidate_id: str, run_id: str
) -> None:
    connection.execute(
        identity_candidates.update()
        .where(
            identity_candidates.c.tenant_id == tenant,
            identity_candidates.c.candidate_id == candidate_id,
        )
        .values(run_id=run_id)
    )


def decide_candidate(
    connection: Connection,
    tenant: TenantId,
    candidate_id: str,
    *,
    status: CandidateStatus,
    by: str,
    reason: str,
    at: float,
) -> bool:
    """Close an open candidate; False when it was no longer open (someone decided first)."""
    c = identity_candidates.c
    result = connection.execute(
        identity_candidates.update()
        .where(c.tenant_id == tenant, c.candidate_id == candidate_id, c.status == "open")
        .values(status=status, decided_by=by, reason=reason, decided_at=at)
    )
    return result.rowcount == 1


# -- merges


def insert_merge(connection: Connection, tenant: TenantId, row: MergeRow) -> None:
    values = {k: getattr(row, k) for k in row.__slots__ if k != "items"}
    values["records"] = json.dumps(
        {"records": [list(r) for r in row.records], "items": list(row.items)}
    )
    connection.execute(identity_merges.insert().values(tenant_id=tenant, **values))


def merges_of(connection: Connection, tenant: TenantId, subject_id: str) -> list[MergeRow]:
    m = identity_merges.c
    query = (
        sa.select(identity_merges)
        .where(
            m.tenant_id == tenant,
            sa.or_(m.into_subject == subject_id, m.from_subject == subject_id),
        )
        .order_by(m.merged_at, m.merge_id)
    )
    return [_merge(r) for r in connection.execute(query).mappings()]


def get_merge(connection: Connection, tenant: TenantId, merge_id: str) -> MergeRow | None:
    row = (
        connection.execute(
            sa.select(identity_merges).where(
                identity_merges.c.tenant_id == tenant, identity_merges.c.merge_id == merge_id
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _merge(row)


def undo_merge(
    connection: Connection, tenant: TenantId, merge_id: str, *, by: str, at: float
) -> bool:
    m = identity_merges.c
    result = connection.execute(
        identity_merges.update()
        .where(m.tenant_id == tenant, m.merge_id == merge_id, m.undone_at.is_(None))
        .values(undone_by=by, undone_at=at)
    )
    return result.rowcount == 1


# -- match models


def latest_model(connection: Connection, tenant: TenantId) -> tuple[int, str, str] | None:
    """(version, model JSON, method) of the tenant's newest match model."""
    row = connection.execute(
        sa.select(identity_models.c.version, identity_models.c.model, identity_models.c.method)
        .where(identity_models.c.tenant_id == tenant)
        .order_by(identity_models.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.version, row.model, row.method)


def insert_model(
    connection: Connection, tenant: TenantId, *, model: str, method: str, by: str, at: float
) -> int:
    latest = latest_model(connection, tenant)
    version = 1 if latest is None else latest[0] + 1
    connection.execute(
        identity_models.insert().values(
            tenant_id=tenant,
            version=version,
            model=model,
            method=method,
            created_by=by,
            created_at=at,
        )
    )
    return version


# -- the context store


def insert_items(connection: Connection, tenant: TenantId, items: Sequence[ContextItemRow]) -> None:
    if not items:
        return
    connection.execute(
        context_items.insert(),
        [
            {
                "tenant_id": tenant,
                **{k: getattr(item, k) for k in item.__slots__ if k != "value"},
                "value": json.dumps(item.value, sort_keys=True),
            }
            for item in items
        ],
    )


def delete_attributes(
    connection: Connection,
    tenant: TenantId,
    subject_id: str,
    keys: Iterable[tuple[str, str, str | None]],
) -> int:
    """Forget the subject's attributes with these (name, source, record) keys, before their
    new values are written. Returns how many went."""
    x = context_items.c
    deleted = 0
    for name, source, record_id in sorted(set(keys), key=repr):
        deleted += connection.execute(
            context_items.delete().where(
                x.tenant_id == tenant,
                x.subject_id == subject_id,
                x.kind == "attribute",
                x.name == name,
                x.source == source,
                x.record_id.is_(None) if record_id is None else x.record_id == record_id,
            )
        ).rowcount
    return deleted


def items_of(
    connection: Connection,
    tenant: TenantId,
    subject_ids: Collection[str],
    *,
    categories: Collection[str] | None = None,
) -> list[ContextItemRow]:
    x = context_items.c
    query = sa.select(context_items).where(
        x.tenant_id == tenant, x.subject_id.in_(sorted(subject_ids))
    )
    if categories is not None:
        query = query.where(x.category.in_(sorted(categories)))
    query = query.order_by(x.recorded_at.desc(), x.item_id)
    return [_item(r) for r in connection.execute(query).mappings()]


def move_items(
    connection: Connection, tenant: TenantId, item_ids: Collection[str], *, to_subject: str
) -> None:
    ids = sorted(item_ids)
    for start in range(0, len(ids), _CHUNK):
        connection.execute(
            context_items.update()
            .where(
                context_items.c.tenant_id == tenant,
                context_items.c.item_id.in_(ids[start : start + _CHUNK]),
            )
            .values(subject_id=to_subject)
        )


def items_recorded_before(
    connection: Connection,
    tenant: TenantId,
    *,
    category: str,
    purpose: str | None,
    before: float,
    exclude_purposes: Collection[str] = (),
) -> list[ContextItemRow]:
    """Items of ``category`` (collected for ``purpose``; None: any purpose but those in
    ``exclude_purposes``) recorded before ``before`` and not yet anonymised."""
    x = context_items.c
    query = sa.select(context_items).where(
        x.tenant_id == tenant,
        x.category == category,
        x.recorded_at < before,
        x.anonymised_at.is_(None),
    )
    if purpose is not None:
        query = query.where(x.purpose == purpose)
    elif exclude_purposes:
        query = query.where(sa.or_(x.purpose.is_(None), x.purpose.not_in(sorted(exclude_purposes))))
    query = query.order_by(x.recorded_at, x.item_id)
    return [_item(r) for r in connection.execute(query).mappings()]


def delete_items(connection: Connection, tenant: TenantId, item_ids: Collection[str]) -> int:
    ids = sorted(item_ids)
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        deleted += connection.execute(
            context_items.delete().where(
                context_items.c.tenant_id == tenant,
                context_items.c.item_id.in_(ids[start : start + _CHUNK]),
            )
        ).rowcount
    return deleted


def anonymise_items(
    connection: Connection, tenant: TenantId, item_ids: Collection[str], *, at: float
) -> int:
    """Cut the items from their subject and drop their values; the category, kind, name,
    source, region and time stay, for counts and trends."""
    ids = sorted(item_ids)
    changed = 0
    for start in range(0, len(ids), _CHUNK):
        changed += connection.execute(
            context_items.update()
            .where(
                context_items.c.tenant_id == tenant,
                context_items.c.item_id.in_(ids[start : start + _CHUNK]),
            )
            .values(subject_id=None, value=None, anonymised_at=at)
        ).rowcount
    return changed


# -- retention rules


def put_rule(connection: Connection, tenant: TenantId, rule: RetentionRuleRow) -> None:
    key = {"tenant_id": tenant, "category": rule.category, "purpose": rule.purpose or ""}
    values = {
        "period_seconds": rule.period_seconds,
        "action": rule.action,
        "updated_by": rule.updated_by,
        "updated_at": rule.updated_at,
    }
    r = retention_rules.c
    changed = connection.execute(
        retention_rules.update()
        .where(
            r.tenant_id == tenant, r.category == rule.category, r.purpose == (rule.purpose or "")
        )
        .values(**values)
    ).rowcount
    if not changed:
        connection.execute(retention_rules.insert().values(**key, **values))


def delete_rule(
    connection: Connection, tenant: TenantId, category: str, purpose: str | None
) -> bool:
    r = retention_rules.c
    return (
        connection.execute(
            retention_rules.delete().where(
                r.tenant_id == tenant, r.category == category, r.purpose == (purpose or "")
            )
        ).rowcount
        == 1
    )


def list_rules(connection: Connection, tenant: TenantId) -> list[RetentionRuleRow]:
    r = retention_rules.c
    query = sa.select(retention_rules).where(r.tenant_id == tenant).order_by(r.category, r.purpose)
    return [
        RetentionRuleRow(
            category=row["category"],
            purpose=row["purpose"] or None,
            period_seconds=row["period_seconds"],
            action=row["action"],
            updated_by=row["updated_by"],
            updated_at=row["updated_at"],
        )
        for row in connection.execute(query).mappings()
    ]


# -- erasure


def forget_subject(connection: Connection, tenant: TenantId, subject_id: str, *, at: float) -> int:
    """Delete what the identity and context stores hold about a subject (their source records,
    blocking keys and context items); the subject row stays, marked erased. Returns the number
    of rows deleted."""
    deleted = 0
    records = records_of(connection, tenant, [subject_id])
    for record in records:
        deleted += connection.execute(
            identity_keys.delete().where(
                identity_keys.c.tenant_id == tenant,
                identity_keys.c.source == record.source,
                identity_keys.c.record_id == record.record_id,
            )
        ).rowcount
    deleted += connection.execute(
        identity_records.delete().where(
            identity_records.c.tenant_id == tenant, identity_records.c.subject_id == subject_id
        )
    ).rowcount
    deleted += connection.execute(
        context_items.delete().where(
            context_items.c.tenant_id == tenant, context_items.c.subject_id == subject_id
        )
    ).rowcount
    update_subject(connection, tenant, subject_id, at=at, status="erased")
    return deleted


# -- rows


def _subject(row: RowMapping) -> SubjectRow:
    return SubjectRow(**{k: row[k] for k in SubjectRow.__slots__})


def _record(row: RowMapping) -> SourceRecordRow:
    values = {k: row[k] for k in SourceRecordRow.__slots__}
    values["fields"] = json.loads(row["fields"])
    return SourceRecordRow(**values)


def _candidate(row: RowMapping) -> CandidateRow:
    values = {k: row[k] for k in CandidateRow.__slots__}
    values["evidence"] = json.loads(row["evidence"])
    return CandidateRow(**values)


def _merge(row: RowMapping) -> MergeRow:
    values = {k: row[k] for k in MergeRow.__slots__ if k != "items"}
    moved = json.loads(row["records"])
    values["records"] = tuple((s, r) for s, r in moved["records"])
    values["items"] = tuple(moved["items"])
    return MergeRow(**values)


def _item(row: RowMapping) -> ContextItemRow:
    values = {k: row[k] for k in ContextItemRow.__slots__}
    values["value"] = None if row["value"] is None else json.loads(row["value"])
    return ContextItemRow(**values)
