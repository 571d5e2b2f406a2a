"""experiments: metric definitions and experiments

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.store.sql.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Written out rather than imported from tables.py: a migration keeps what it created even if
# the tables change later.
_EXPERIMENT_RUNNING = sa.text("state = 'running'")


def upgrade() -> None:
    _create_metric_definitions()
    _create_experiments()


def _create_metric_definitions() -> None:
    op.create_table(
        "metric_definitions",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_metric_definitions")),
    )


def _create_experiments() -> None:
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("start", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("end", steward.store.sql.tables.UTCDateTime(), nullable=True),
        sa.Column("created_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_experiments")),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index("ix_experiments_deployment_state", ["deployment", "state"])
        batch_op.create_index(
            "uq_experiments_running_deployment",
            ["deployment"],
            unique=True,
            sqlite_where=_EXPERIMENT_RUNNING,
            postgresql_where=_EXPERIMENT_RUNNING,
        )


def downgrade() -> None:
    # Dropping a table drops its indexes with it, on both backends.
    for table in ("experiments", "metric_definitions"):
        op.drop_table(table)
