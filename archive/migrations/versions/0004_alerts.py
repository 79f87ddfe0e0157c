"""Alerts, their acknowledgements and resolutions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("first_window", sa.Double, nullable=False),
        sa.Column("window_start", sa.Double, nullable=False),
        sa.Column("window_end", sa.Double, nullable=False),
        sa.Column("observed", sa.Double, nullable=False),
        sa.Column("expected", sa.Double, nullable=False),
        sa.Column("score", sa.Double, nullable=False),
        sa.Column("p_value", sa.Double, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("samples", sa.Text, nullable=False),
        sa.Column("sample_ids", sa.Text, nullable=False),
        sa.Column("explore_url", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("provisional", sa.Integer, nullable=False),
        sa.Column("resolved_at", sa.Double),
        sa.Column("revision", sa.Double, nullable=False),
        sa.Column("acknowledged_at", sa.Double),
        sa.Column("acknowledged_by", sa.String(200)),
        sa.Column("first_seen_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_alerts_first_window", "alerts", ["first_window", "id"])
    op.create_index("ix_alerts_kind_first_window", "alerts", ["kind", "first_window"])
    op.create_index("ix_alerts_subject", "alerts", ["subject"])
    op.create_index("ix_alerts_first_seen_at", "alerts", ["first_seen_at"])


def downgrade() -> None:
    op.drop_table("alerts")
