"""experiments: designs, sticky assignments and outcomes

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_experiments")),
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "experiment", "subject_id", name=op.f("pk_experiment_assignments")
        ),
    )
    op.create_table(
        "experiment_observations",
        sa.Column("observation_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("observation_id", name=op.f("pk_experiment_observations")),
        sa.UniqueConstraint(
            "tenant_id",
            "experiment",
            "subject_id",
            "metric",
            name="uq_experiment_observations_unit",
        ),
    )
    op.create_index(
        op.f("ix_experiment_observations_tenant_id_experiment_observation_id"),
        "experiment_observations",
        ["tenant_id", "experiment", "observation_id"],
    )


def downgrade() -> None:
    op.drop_table("experiment_observations")
    op.drop_table("experiment_assignments")
    op.drop_table("experiments")
