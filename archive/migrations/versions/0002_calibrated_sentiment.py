"""The calibrated sentiment label and its probability beside VADER's scores.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: posts archived before the calibrated model existed have neither.
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("sentiment_calibrated_label", sa.String(20)))
        batch.add_column(sa.Column("sentiment_calibrated_probability", sa.Double))


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("sentiment_calibrated_probability")
        batch.drop_column("sentiment_calibrated_label")
