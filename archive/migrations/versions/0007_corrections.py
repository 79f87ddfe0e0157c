"""Corrections people make to a post's sentiment label or topic.

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
        "corrections",
        sa.Column("post_id", sa.String(200), primary_key=True),
        sa.Column("field", sa.String(20), primary_key=True),
        sa.Column("value", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("model_value", sa.Text, nullable=False),
        sa.Column("corrected_by", sa.String(200), nullable=False),
        sa.Column("corrected_at", sa.Double, nullable=False),
        sa.Column("revisions", sa.Integer, nullable=False),
    )
    op.create_index("ix_corrections_corrected_at", "corrections", ["corrected_at"])
    op.create_index("ix_corrections_field_value", "corrections", ["field", "value"])


def downgrade() -> None:
    op.drop_table("corrections")
