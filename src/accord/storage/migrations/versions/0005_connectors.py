"""connectors: the dead-letter queue and the intents of calls that are not idempotent

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("letter_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("block", sa.String(length=256), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("capability", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "letter_id", name=op.f("pk_dead_letters")),
    )
    for columns in (["tenant_id", "status", "created_at"], ["tenant_id", "run_id"]):
        op.create_index(
            op.f("ix_dead_letters_" + "_".join(columns)), "dead_letters", columns, unique=False
        )
    op.create_table(
        "call_intents",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=400), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("capability", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "idempotency_key", name=op.f("pk_call_intents")),
    )
    op.create_index(
        op.f("ix_call_intents_tenant_id_run_id"), "call_intents", ["tenant_id", "run_id"]
    )


def downgrade() -> None:
    op.drop_table("call_intents")
    op.drop_table("dead_letters")
