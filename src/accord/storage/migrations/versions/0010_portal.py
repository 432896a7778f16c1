"""portal: one-time sign-in challenges of customers (hashed code and link nonce)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_challenges",
        sa.Column("challenge_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("challenge_id", name=op.f("pk_portal_challenges")),
    )
    op.create_index(
        op.f("ix_portal_challenges_tenant_id_expires_at"),
        "portal_challenges",
        ["tenant_id", "expires_at"],
    )


def downgrade() -> None:
    op.drop_table("portal_challenges")
