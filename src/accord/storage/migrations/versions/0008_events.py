"""events: outbox ordering, subject and trace context; per-sink deliveries and leases; inbound
event de-duplication; the run's trace context

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("subject_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("traceparent", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_tenant_id_created_at"), ["tenant_id", "created_at"], unique=False
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sa.String(length=64), nullable=True))
    op.create_table(
        "event_deliveries",
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sink", "event_id", name=op.f("pk_event_deliveries")),
    )
    op.create_index(op.f("ix_event_deliveries_sink_status"), "event_deliveries", ["sink", "status"])
    op.create_table(
        "event_sinks",
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("fence", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("sink", name=op.f("pk_event_sinks")),
    )
    op.create_table(
        "inbound_events",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=256), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "event_id", name=op.f("pk_inbound_events")),
    )
    op.create_index(
        op.f("ix_inbound_events_tenant_id_received_at"),
        "inbound_events",
        ["tenant_id", "received_at"],
    )


def downgrade() -> None:
    for table in ("inbound_events", "event_sinks", "event_deliveries"):
        op.drop_table(table)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_tenant_id_created_at"))
        batch_op.drop_column("traceparent")
        batch_op.drop_column("subject_id")
        batch_op.drop_column("position")
