"""channels and conversations: confirmation notices by e-mail and SMS, and support
conversations with their sealed messages

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_notices",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("confirmation_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "confirmation_id", "channel", name=op.f("pk_portal_notices")
        ),
    )
    op.create_table(
        "conversations",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "conversation_id", name=op.f("pk_conversations")),
    )
    op.create_index(
        op.f("ix_conversations_tenant_id_subject_id"),
        "conversations",
        ["tenant_id", "subject_id"],
    )
    op.create_table(
        "conversation_messages",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("message_key", sa.String(length=200), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "conversation_id", "seq", name=op.f("pk_conversation_messages")
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "conversation_id",
            "message_key",
            name=op.f("uq_conversation_messages_tenant_id_conversation_id_message_key"),
        ),
    )


def downgrade() -> None:
    op.drop_table("conversation_messages")
    op.drop_index(op.f("ix_conversations_tenant_id_subject_id"), table_name="conversations")
    op.drop_table("conversations")
    op.drop_table("portal_notices")
