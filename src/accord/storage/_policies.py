"""Deployed policy bundles per tenant. A version, once stored, is never changed."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.storage._schema import policy_bundles


@dataclass(frozen=True, slots=True)
class PolicyBundleRecord:
    """One stored bundle version: the Cedar policies and schema exactly as deployed."""

    tenant_id: str
    version: int
    digest: str
    policies: str
    schema: str
    source_name: str
    deployed_at: float
    deployed_by: str

    @classmethod
    def from_row(cls, row: RowMapping) -> PolicyBundleRecord:
        return cls(**{k: row[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class PolicyBundleVersion:
    """What a listing shows of a version, without its texts."""

    tenant_id: str
    version: int
    digest: str
    source_name: str
    deployed_at: float
    deployed_by: str


_VERSION_COLUMNS = [policy_bundles.c[name] for name in PolicyBundleVersion.__slots__]


def latest_version(connection: Connection, tenant: str) -> int:
    """The newest version deployed for ``tenant``, or 0 when it has none.

    One indexed aggregate, cheap enough to run inside every gateway transaction.
    """
    query = sa.select(sa.func.max(policy_bundles.c.version)).where(
        policy_bundles.c.tenant_id == tenant
    )
    value = connection.execute(query).scalar()
    return 0 if value is None else int(value)


def get_version(connection: Connection, tenant: str, version: int) -> PolicyBundleRecord | None:
    row = (
        connection.execute(
            sa.select(policy_bundles).where(
                policy_bundles.c.tenant_id == tenant, policy_bundles.c.version == version
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else PolicyBundleRecord.from_row(row)


def latest(connection: Connection, tenant: str) -> PolicyBundleRecord | None:
    row = (
        connection.execute(
            sa.select(policy_bundles)
            .where(policy_bundles.c.tenant_id == tenant)
            .order_by(policy_bundles.c.version.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else PolicyBundleRecord.from_row(row)


def list_versions(connection: Connection, tenant: str) -> list[PolicyBundleVersion]:
    """Every version of ``tenant``, newest first."""
    query = (
        sa.select(*_VERSION_COLUMNS)
        .where(policy_bundles.c.tenant_id == tenant)
        .order_by(policy_bundles.c.version.desc())
    )
    return [
        PolicyBundleVersion(**{k: row[k] for k in PolicyBundleVersion.__slots__})
        for row in connection.execute(query).mappings()
    ]


def insert_version(connection: Connection, record: PolicyBundleRecord) -> None:
    """Store a new version; a concurrent insert of the same version raises ``IntegrityError``."""
    connection.execute(
        policy_bundles.insert().values(
            {k: getattr(record, k) for k in PolicyBundleRecord.__slots__}
        )
    )
