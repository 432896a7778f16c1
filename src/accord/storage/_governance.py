"""What the gateway reads at the start of a transition besides the subject's consent."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.storage._schema import flags, policy_bundles

# Built once: both versions in one round trip, so a deploy or a flag change made by any process
# is seen by the next transition that consults the gateway.
_VERSIONS = sa.select(
    sa.select(sa.func.coalesce(sa.func.max(policy_bundles.c.version), 0))
    .where(policy_bundles.c.tenant_id == sa.bindparam("tenant"))
    .scalar_subquery(),
    sa.select(sa.func.coalesce(sa.func.max(flags.c.version), 0))
    .where(flags.c.tenant_id == sa.bindparam("tenant"))
    .scalar_subquery(),
)


def versions(connection: Connection, tenant: str) -> tuple[int, int]:
    """The tenant's newest policy bundle version and flag version (0 when there are none)."""
    row = connection.execute(_VERSIONS, {"tenant": tenant}).one()
    return int(row[0]), int(row[1])
