"""governance: consent, lawful bases, policy bundles, flags and gateway decisions

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("grant_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_events_tenant_id_subject_id_at"),
            ["tenant_id", "subject_id", "at"],
            unique=False,
        )

    op.create_table(
        "consent_grants",
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=128), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("notice_version", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("withdrawn_at", sa.Float(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_consent_grants")),
    )
    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_grants_tenant_id_subject_id_purpose"),
            ["tenant_id", "subject_id", "purpose"],
            unique=False,
        )

    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("block", sa.String(length=256), nullable=True),
        sa.Column("visit", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("capability", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_decisions_tenant_id_subject_id_at"),
            ["tenant_id", "subject_id", "at"],
            unique=False,
        )

    op.create_table(
        "flag_changes",
        sa.Column("change_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("previous", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_flag_changes")),
    )
    with op.batch_alter_table("flag_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flag_changes_tenant_id_key"), ["tenant_id", "key"], unique=False
        )

    op.create_table(
        "flags",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_flags")),
    )
    op.create_table(
        "lawful_bases",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=128), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("categories", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "purpose", name=op.f("pk_lawful_bases")),
    )
    op.create_table(
        "policy_bundles",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("policies", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=False),
        sa.Column("source_name", sa.String(length=512), nullable=False),
        sa.Column("deployed_at", sa.Float(), nullable=False),
        sa.Column("deployed_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_policy_bundles")),
    )
    with op.batch_alter_table("policy_bundles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_bundles_tenant_id_digest"), ["tenant_id", "digest"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("policy_bundles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_bundles_tenant_id_digest"))

    op.drop_table("policy_bundles")
    op.drop_table("lawful_bases")
    op.drop_table("flags")
    with op.batch_alter_table("flag_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flag_changes_tenant_id_key"))

    op.drop_table("flag_changes")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_tenant_id_subject_id_at"))
        batch_op.drop_index(batch_op.f("ix_decisions_run_id"))

    op.drop_table("decisions")
    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_grants_tenant_id_subject_id_purpose"))

    op.drop_table("consent_grants")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_tenant_id_subject_id_at"))

    op.drop_table("consent_events")
