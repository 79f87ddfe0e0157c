"""Explore: full-text search of post text (an FTS5 index on SQLite, a GIN index on
PostgreSQL) and an index that covers the charts of a time range.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from archive.search import create_search_index, drop_search_index

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


EXPLORE_COLUMNS = [
    "created_at",
    "sentiment_compound",
    "sentiment_label",
    "cluster_id",
    "hashtags",
]


def upgrade() -> None:
    # Indexes the posts already archived too (FTS5 'rebuild'; PostgreSQL builds the index).
    create_search_index(op.get_bind())
    op.create_index("ix_posts_explore", "posts", EXPLORE_COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_posts_explore", "posts")
    drop_search_index(op.get_bind())
