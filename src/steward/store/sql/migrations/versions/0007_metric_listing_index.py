"""version metrics: an index in listing order, for filters that many versions pass

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_version_metrics_listing",
        "version_metrics",
        ["key", "model_name", sa.text("version DESC"), "value", "version_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_version_metrics_listing", table_name="version_metrics")
