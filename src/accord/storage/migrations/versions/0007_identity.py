"""identity: canonical subjects, source records and their blocking keys, possible links, merges,
match models, the context store and retention rules

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "context_items",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=128), nullable=True),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("anonymised_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "item_id", name=op.f("pk_context_items")),
    )
    op.create_index(
        op.f("ix_context_items_tenant_id_category_recorded_at"),
        "context_items",
        ["tenant_id", "category", "recorded_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_context_items_tenant_id_subject_id_kind"),
        "context_items",
        ["tenant_id", "subject_id", "kind"],
        unique=False,
    )
    op.create_table(
        "identity_candidates",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("other_subject_id", sa.String(length=128), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "candidate_id", name=op.f("pk_identity_candidates")),
    )
    op.create_index(
        op.f("ix_identity_candidates_tenant_id_other_subject_id"),
        "identity_candidates",
        ["tenant_id", "other_subject_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_identity_candidates_tenant_id_status"),
        "identity_candidates",
        ["tenant_id", "status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_identity_candidates_tenant_id_subject_id"),
        "identity_candidates",
        ["tenant_id", "subject_id"],
        unique=False,
    )
    op.create_table(
        "identity_keys",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "key", "source", "record_id", name=op.f("pk_identity_keys")
        ),
    )
    op.create_index(
        op.f("ix_identity_keys_tenant_id_source_record_id"),
        "identity_keys",
        ["tenant_id", "source", "record_id"],
        unique=False,
    )
    op.create_table(
        "identity_merges",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("merge_id", sa.String(length=64), nullable=False),
        sa.Column("into_subject", sa.String(length=128), nullable=False),
        sa.Column("from_subject", sa.String(length=128), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("candidate_id", sa.String(length=64), nullable=True),
        sa.Column("merged_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("merged_at", sa.Float(), nullable=False),
        sa.Column("undone_by", sa.String(length=128), nullable=True),
        sa.Column("undone_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "merge_id", name=op.f("pk_identity_merges")),
    )
    op.create_index(
        op.f("ix_identity_merges_tenant_id_from_subject"),
        "identity_merges",
        ["tenant_id", "from_subject"],
        unique=False,
    )
    op.create_index(
        op.f("ix_identity_merges_tenant_id_into_subject"),
        "identity_merges",
        ["tenant_id", "into_subject"],
        unique=False,
    )
    op.create_table(
        "identity_models",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_identity_models")),
    )
    op.create_table(
        "identity_records",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("link", sa.String(length=16), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("ingested_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "source", "record_id", name=op.f("pk_identity_records")
        ),
    )
    op.create_index(
        op.f("ix_identity_records_tenant_id_subject_id"),
        "identity_records",
        ["tenant_id", "subject_id"],
        unique=False,
    )
    op.create_table(
        "identity_subjects",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "subject_id", name=op.f("pk_identity_subjects")),
    )
    op.create_table(
        "retention_rules",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=128), nullable=False),
        sa.Column("period_seconds", sa.Float(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "category", "purpose", name=op.f("pk_retention_rules")
        ),
    )


def downgrade() -> None:
    for table in (
        "retention_rules",
        "identity_subjects",
        "identity_records",
        "identity_models",
        "identity_merges",
        "identity_keys",
        "identity_candidates",
        "context_items",
    ):
        op.drop_table(table)
