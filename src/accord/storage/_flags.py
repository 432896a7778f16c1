"""Flags of each tenant and the log of their changes.

Every write gives the flag the tenant's next ``version`` (the highest version among the tenant's
flags, plus one), so ``version(connection, tenant)`` answers "has any flag of this tenant
changed?" with one cheap query. Writers of one tenant are serialised (PostgreSQL advisory lock;
SQLite transactions are serial), so no two writes share a version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage import _postgres
from accord.storage._records import json_text
from accord.storage._schema import flag_changes, flags

FlagValue = bool | int
"""What a flag holds: a boolean (kill switches, shadow mode) or an integer (rollouts)."""


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A flag as stored: its current value and the write that set it."""

    tenant_id: str
    key: str
    value: FlagValue
    version: int
    reason: str
    updated_at: float
    updated_by: str

    @classmethod
    def from_row(cls, row: RowMapping) -> FlagRecord:
        return cls(
            tenant_id=row["tenant_id"],
            key=row["key"],
            value=json.loads(row["value"]),
            version=row["version"],
            reason=row["reason"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One write of a flag: the value it set, the value before (None if new), who and why."""

    change_id: str
    tenant_id: str
    key: str
    value: FlagValue
    previous: FlagValue | None
    reason: str
    at: float
    actor: str

    @classmethod
    def from_row(cls, row: RowMapping) -> FlagChange:
        previous = row["previous"]
        return cls(
            change_id=row["change_id"],
            tenant_id=row["tenant_id"],
            key=row["key"],
            value=json.loads(row["value"]),
            previous=None if previous is None else json.loads(previous),
            reason=row["reason"],
            at=row["at"],
            actor=row["actor"],
        )


_VERSION = sa.select(sa.func.coalesce(sa.func.max(flags.c.version), 0)).where(
    flags.c.tenant_id == sa.bindparam("tenant")
)
_GET = sa.select(flags).where(
    flags.c.tenant_id == sa.bindparam("tenant"), flags.c.key == sa.bindparam("key")
)
_LIST = sa.select(flags).where(flags.c.tenant_id == sa.bindparam("tenant")).order_by(flags.c.key)


def version(connection: Connection, tenant: TenantId) -> int:
    """The tenant's flag version: 0 before any flag is set, higher after every change."""
    return int(connection.execute(_VERSION, {"tenant": tenant}).scalar_one())


def get(connection: Connection, tenant: TenantId, key: str) -> FlagRecord | None:
    row = connection.execute(_GET, {"tenant": tenant, "key": key}).mappings().first()
    return None if row is None else FlagRecord.from_row(row)


def list_flags(connection: Connection, tenant: TenantId) -> list[FlagRecord]:
    """All flags of the tenant, by key."""
    return [
        FlagRecord.from_row(r) for r in connection.execute(_LIST, {"tenant": tenant}).mappings()
    ]


def history(connection: Connection, tenant: TenantId, key: str | None = None) -> list[FlagChange]:
    """The tenant's flag changes (of one key, if given), oldest first."""
    query = sa.select(flag_changes).where(flag_changes.c.tenant_id == tenant)
    if key is not None:
        query = query.where(flag_changes.c.key == key)
    query = query.order_by(flag_changes.c.at, flag_changes.c.change_id)
    return [FlagChange.from_row(r) for r in connection.execute(query).mappings()]


def write(
    connection: Connection,
    tenant: TenantId,
    key: str,
    value: FlagValue,
    *,
    change_id: str,
    at: float,
    actor: str,
    reason: str,
) -> tuple[FlagRecord, FlagChange]:
    """Set a flag and log the change, in the caller's transaction; returns both rows."""
    if connection.dialect.name == "postgresql":
        _postgres.advisory_xact_lock(connection, f"accord.flags\x1f{tenant}")
    before = get(connection, tenant, key)
    record = FlagRecord(
        tenant_id=tenant,
        key=key,
        value=value,
        version=version(connection, tenant) + 1,
        reason=reason,
        updated_at=at,
        updated_by=actor,
    )
    row = {
        "value": json_text(value),
        "version": record.version,
        "reason": reason,
        "updated_at": at,
        "updated_by": actor,
    }
    if before is None:
        connection.execute(flags.insert().values(tenant_id=tenant, key=key, **row))
    else:
        connection.execute(
            flags.update().where(flags.c.tenant_id == tenant, flags.c.key == key).values(**row)
        )
    change = FlagChange(
        change_id=change_id,
        tenant_id=tenant,
        key=key,
        value=value,
        previous=None if before is None else before.value,
        reason=reason,
        at=at,
        actor=actor,
    )
    connection.execute(
        flag_changes.insert().values(
            change_id=change_id,
            tenant_id=tenant,
            key=key,
            value=row["value"],
            previous=None if before is None else json_text(before.value),
            reason=reason,
            at=at,
            actor=actor,
        )
    )
    return record, change
