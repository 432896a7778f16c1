"""agents: deployed agent versions, trained models, the answer cache, rollouts and outcomes

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_versions",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("deployed_at", sa.Float(), nullable=False),
        sa.Column("deployed_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", "version", name=op.f("pk_agent_versions")),
    )
    op.create_table(
        "agent_models",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "digest", name=op.f("pk_agent_models")),
    )
    op.create_table(
        "agent_cache",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("cache_key", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "cache_key", name=op.f("pk_agent_cache")),
    )
    op.create_index(
        op.f("ix_agent_cache_tenant_id_expires_at"), "agent_cache", ["tenant_id", "expires_at"]
    )
    op.create_index(
        op.f("ix_agent_cache_tenant_id_subject_id"), "agent_cache", ["tenant_id", "subject_id"]
    )
    op.create_table(
        "agent_rollouts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("rollout_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("primary_version", sa.Integer(), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("min_samples", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "rollout_id", name=op.f("pk_agent_rollouts")),
    )
    op.create_index(
        op.f("ix_agent_rollouts_tenant_id_agent_status"),
        "agent_rollouts",
        ["tenant_id", "agent", "status"],
    )
    op.create_table(
        "agent_outcomes",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("outcome_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("block", sa.String(length=256), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("rollout_id", sa.String(length=64), nullable=True),
        sa.Column("band", sa.String(length=16), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("output_digest", sa.String(length=80), nullable=False),
        sa.Column("agrees", sa.Boolean(), nullable=True),
        sa.Column("review_outcome", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "outcome_id", name=op.f("pk_agent_outcomes")),
    )
    for columns in (
        ["tenant_id", "agent", "version"],
        ["tenant_id", "rollout_id"],
        ["tenant_id", "run_id"],
    ):
        op.create_index(op.f("ix_agent_outcomes_" + "_".join(columns)), "agent_outcomes", columns)


def downgrade() -> None:
    for table in (
        "agent_outcomes",
        "agent_rollouts",
        "agent_cache",
        "agent_models",
        "agent_versions",
    ):
        op.drop_table(table)
