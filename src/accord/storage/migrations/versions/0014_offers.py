"""offers: deployed offer catalogues and the recorded outcome of each choice

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offer_catalogues",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("deployed_by", sa.String(length=128), nullable=False),
        sa.Column("deployed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", "version", name=op.f("pk_offer_catalogues")),
    )
    op.create_table(
        "offer_outcomes",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("choice_id", sa.String(length=400), nullable=False),
        sa.Column("catalogue", sa.String(length=128), nullable=False),
        sa.Column("offer", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "choice_id", name=op.f("pk_offer_outcomes")),
    )
    op.create_index(
        op.f("ix_offer_outcomes_tenant_id_catalogue_offer"),
        "offer_outcomes",
        ["tenant_id", "catalogue", "offer"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_offer_outcomes_tenant_id_catalogue_offer"), table_name="offer_outcomes")
    op.drop_table("offer_outcomes")
    op.drop_table("offer_catalogues")
