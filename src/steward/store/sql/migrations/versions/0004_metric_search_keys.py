"""version metrics carry their version's listing order (model name, version number)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BACKFILL = """
UPDATE version_metrics SET
    model_name = (
        SELECT models.name FROM model_versions JOIN models ON models.id = model_versions.model_id
        WHERE model_versions.id = version_metrics.version_id
    ),
    version = (
        SELECT model_versions.version FROM model_versions
        WHERE model_versions.id = version_metrics.version_id
    )
"""


def upgrade() -> None:
    with op.batch_alter_table("version_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
    op.execute(_BACKFILL)
    with op.batch_alter_table("version_metrics", schema=None) as batch_op:
        batch_op.alter_column("model_name", existing_type=sa.String(length=128), nullable=False)
        batch_op.alter_column("version", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index("ix_version_metrics_key_value")
        batch_op.create_index(
            "ix_version_metrics_search",
            ["key", "value", "model_name", "version", "version_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("version_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_version_metrics_search")
        batch_op.create_index("ix_version_metrics_key_value", ["key", "value"], unique=False)
        batch_op.drop_column("version")
        batch_op.drop_column("model_name")
