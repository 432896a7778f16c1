"""reviews: queues, staff, review items and confirmations

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_queues",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("skills", sa.Text(), nullable=False),
        sa.Column("sla_seconds", sa.Float(), nullable=True),
        sa.Column("escalate_to", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_review_queues")),
    )
    op.create_table(
        "staff",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("skills", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "person_id", name=op.f("pk_staff")),
    )
    op.create_table(
        "review_items",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("block", sa.String(length=256), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("makers", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("packet", sa.Text(), nullable=False),
        sa.Column("packet_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("decision_digest", sa.String(length=80), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "item_id", name=op.f("pk_review_items")),
    )
    for columns in (
        ["tenant_id", "status", "queue", "priority"],
        ["tenant_id", "run_id"],
        ["status", "due_at"],
        ["tenant_id", "source", "outcome"],
    ):
        op.create_index(op.f("ix_review_items_" + "_".join(columns)), "review_items", columns)
    op.create_table(
        "confirmations",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("confirmation_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("block", sa.String(length=256), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "confirmation_id", name=op.f("pk_confirmations")),
    )
    op.create_index(
        op.f("ix_confirmations_tenant_id_run_id"), "confirmations", ["tenant_id", "run_id"]
    )


def downgrade() -> None:
    op.drop_table("confirmations")
    op.drop_table("review_items")
    op.drop_table("staff")
    op.drop_table("review_queues")
