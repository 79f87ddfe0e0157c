"""The archive: scored posts and dead letters.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("hashtags", sa.Text, nullable=False),
        sa.Column("mentions", sa.Text, nullable=False),
        sa.Column("urls", sa.Text, nullable=False),
        sa.Column("emoji", sa.Text, nullable=False),
        sa.Column("author_followers", sa.BigInteger),
        sa.Column("lang", sa.String(20)),
        sa.Column("source", sa.String(100)),
        sa.Column("observed_engagement", sa.Text),
        sa.Column("sentiment_compound", sa.Double, nullable=False),
        sa.Column("sentiment_pos", sa.Double, nullable=False),
        sa.Column("sentiment_neu", sa.Double, nullable=False),
        sa.Column("sentiment_neg", sa.Double, nullable=False),
        sa.Column("sentiment_label", sa.String(20), nullable=False),
        sa.Column("cluster_id", sa.Integer, nullable=False),
        sa.Column("cluster_label", sa.Text, nullable=False),
        sa.Column("engagement_predicted", sa.Double, nullable=False),
        sa.Column("engagement_band", sa.String(20), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.Column("scored_at", sa.Double, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("first_seen_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_posts_created_at", "posts", ["created_at"])
    op.create_index("ix_posts_first_seen_at", "posts", ["first_seen_at"])
    op.create_index("ix_posts_author", "posts", ["author"])
    op.create_index("ix_posts_cluster_created", "posts", ["cluster_id", "created_at"])
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary),
        sa.Column("key", sa.LargeBinary),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("position", sa.Text, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("first_seen_at", sa.Double, nullable=False),
    )
    op.create_index("ix_dead_letters_first_seen_at", "dead_letters", ["first_seen_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("posts")
