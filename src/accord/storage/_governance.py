"""What the gateway reads at the start of a worker round, in one statement.

The subjects' consent grants and home regions, their tenant's lawful bases, its newest policy
bundle version and its flag version come back as the rows of one ``UNION ALL``, so that a round
costs one round trip and needs no explicit transaction: a single statement sees one consistent
state on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core import TenantId
from accord.storage._consent import (
    SNAPSHOT_PARTS,
    BasisRecord,
    GrantRecord,
    snapshot_records,
    typed_null,
)
from accord.storage._schema import flags, identity_subjects, policy_bundles

_TEXT = sa.Text()
_FLOAT = sa.Float()

# The versions ride in the float columns of a row of their own (source 'versions').
_VERSIONS = sa.select(
    sa.literal("versions", _TEXT),
    typed_null(_TEXT),
    typed_null(_TEXT),
    typed_null(_TEXT),
    typed_null(_TEXT),
    typed_null(_TEXT),
    typed_null(_TEXT),
    sa.cast(
        sa.select(sa.func.coalesce(sa.func.max(policy_bundles.c.version), 0))
        .where(policy_bundles.c.tenant_id == sa.bindparam("tenant"))
        .scalar_subquery(),
        _FLOAT,
    ),
    sa.cast(
        sa.select(sa.func.coalesce(sa.func.max(flags.c.version), 0))
        .where(flags.c.tenant_id == sa.bindparam("tenant"))
        .scalar_subquery(),
        _FLOAT,
    ),
    typed_null(_FLOAT),
    typed_null(_TEXT),
    typed_null(_FLOAT),
    typed_null(_TEXT),
    typed_null(_TEXT),
    typed_null(_TEXT),
)
# Each subject's home region rides in the purpose column of a row of its own (source 'region').
_REGIONS = sa.select(
    sa.literal("region", _TEXT),
    identity_subjects.c.subject_id,
    typed_null(_TEXT),
    identity_subjects.c.region,
    *(typed_null(_TEXT) for _ in range(3)),
    *(typed_null(_FLOAT) for _ in range(3)),
    typed_null(_TEXT),
    typed_null(_FLOAT),
    *(typed_null(_TEXT) for _ in range(3)),
).where(
    identity_subjects.c.tenant_id == sa.bindparam("tenant"),
    identity_subjects.c.subject_id.in_(sa.bindparam("subjects", expanding=True)),
    identity_subjects.c.region.is_not(None),
)
_SNAPSHOT = sa.union_all(*SNAPSHOT_PARTS, _VERSIONS, _REGIONS)


@dataclass(frozen=True, slots=True)
class GovernanceRead:
    """One tenant's part of a round's snapshot."""

    grants: dict[str, list[GrantRecord]]
    bases: list[BasisRecord]
    policy_version: int
    flag_version: int
    regions: dict[str, str]


def read(connection: Connection, tenant: TenantId, subject_ids: Sequence[str]) -> GovernanceRead:
    """The subjects' grants and home regions, the tenant's bases and its policy and flag
    versions."""
    rows = list(
        connection.execute(_SNAPSHOT, {"tenant": tenant, "subjects": list(subject_ids)}).mappings()
    )
    grants, bases = snapshot_records(tenant, rows)
    versions = next(r for r in rows if r["source"] == "versions")
    regions = {r["subject_id"]: r["purpose"] for r in rows if r["source"] == "region"}
    return GovernanceRead(
        grants, bases, int(versions["granted_at"]), int(versions["expires_at"]), regions
    )
