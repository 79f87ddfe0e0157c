"""Full-text search of post text: an FTS5 index on SQLite, a GIN index on PostgreSQL.

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


def upgrade() -> None:
    # Indexes the posts already archived too (FTS5 'rebuild'; PostgreSQL builds the index).
    create_search_index(op.get_bind())


def downgrade() -> None:
    drop_search_index(op.get_bind())
