"""Tracked topics: named keyword and hashtag sets, shared by every node.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked_topics",
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("keywords", sa.Text, nullable=False),
        sa.Column("hashtags", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tracked_topics")
