"""watch: proposed changes for degraded journeys and decision points

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_proposals",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("proposal_id", sa.String(length=64), nullable=False),
        sa.Column("journey", sa.String(length=128), nullable=False),
        sa.Column("point", sa.String(length=256), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=64), nullable=True),
        sa.Column("finding", sa.Text(), nullable=False),
        sa.Column("candidate", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("applied", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "proposal_id", name=op.f("pk_watch_proposals")),
        sa.UniqueConstraint(
            "tenant_id", "open_key", name=op.f("uq_watch_proposals_tenant_id_open_key")
        ),
    )
    op.create_index(
        op.f("ix_watch_proposals_tenant_id_status_created_at"),
        "watch_proposals",
        ["tenant_id", "status", "created_at"],
    )
    op.create_index(
        op.f("ix_watch_proposals_tenant_id_journey_point_metric"),
        "watch_proposals",
        ["tenant_id", "journey", "point", "metric"],
    )


def downgrade() -> None:
    op.drop_table("watch_proposals")
