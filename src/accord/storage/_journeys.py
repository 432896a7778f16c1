"""Deployed journey versions. A version, once stored, is never changed."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.core import TenantId
from accord.storage._schema import journeys


@dataclass(frozen=True, slots=True)
class JourneyRecord:
    tenant_id: str
    name: str
    version: int
    digest: str
    source_name: str
    source: str
    model: str
    deployed_at: float
    deployed_by: str

    @classmethod
    def from_row(cls, row: RowMapping) -> JourneyRecord:
        return cls(**{k: row[k] for k in cls.__slots__})


def latest_version(connection: Connection, tenant: TenantId, name: str) -> JourneyRecord | None:
    row = (
        connection.execute(
            sa.select(journeys)
            .where(journeys.c.tenant_id == tenant, journeys.c.name == name)
            .order_by(journeys.c.version.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else JourneyRecord.from_row(row)


def latest_version_number(connection: Connection, tenant: TenantId, name: str) -> int | None:
    query = sa.select(sa.func.max(journeys.c.version)).where(
        journeys.c.tenant_id == tenant, journeys.c.name == name
    )
    return connection.execute(query).scalar()


def latest_versions(connection: Connection, tenant: TenantId) -> dict[str, int]:
    """The newest version number of every journey the tenant has deployed."""
    query = (
        sa.select(journeys.c.name, sa.func.max(journeys.c.version))
        .where(journeys.c.tenant_id == tenant)
        .group_by(journeys.c.name)
    )
    return {row[0]: row[1] for row in connection.execute(query)}


def get_version(
    connection: Connection, tenant: TenantId, name: str, version: int
) -> JourneyRecord | None:
    row = (
        connection.execute(
            sa.select(journeys).where(
                journeys.c.tenant_id == tenant,
                journeys.c.name == name,
                journeys.c.version == version,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else JourneyRecord.from_row(row)


def list_versions(
    connection: Connection, tenant: TenantId, name: str | None = None
) -> list[JourneyRecord]:
    query = sa.select(journeys).where(journeys.c.tenant_id == tenant)
    if name is not None:
        query = query.where(journeys.c.name == name)
    query = query.order_by(journeys.c.name, journeys.c.version)
    return [JourneyRecord.from_row(r) for r in connection.execute(query).mappings()]


def insert_version(connection: Connection, record: JourneyRecord) -> None:
    connection.execute(
        journeys.insert().values({k: getattr(record, k) for k in JourneyRecord.__slots__})
    )
