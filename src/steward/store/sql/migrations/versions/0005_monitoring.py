"""monitoring: monitor specs, monitor windows, alerts and incidents

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.store.sql.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Written out rather than imported from tables.py: a migration keeps what it created even if
# the tables change later.
_ALERT_FIRING = sa.text("state = 'firing'")
_INCIDENT_ACTIVE = sa.text("state <> 'resolved'")


def upgrade() -> None:
    # a version's reference profile, built at registration from its reference sample
    op.add_column("model_versions", sa.Column("reference_profile", sa.JSON(), nullable=True))
    _create_monitors()
    _create_monitor_windows()
    _create_alerts()
    _create_incidents()


def _create_monitors() -> None:
    op.create_table(
        "monitors",
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment"],
            ["deployments.name"],
            name=op.f("fk_monitors_deployment_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment", name=op.f("pk_monitors")),
    )


def _create_monitor_windows() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("start", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("end", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("computed_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_windows")),
    )
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_windows_deployment_end", ["deployment", "end"])


def _create_alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("rule_name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=False),
        sa.Column("window_id", sa.String(length=36), nullable=False),
        sa.Column("fired_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", steward.store.sql.tables.UTCDateTime(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_deployment_state", ["deployment", "state"])
        batch_op.create_index(batch_op.f("ix_alerts_incident_id"), ["incident_id"])
        batch_op.create_index(
            "uq_alerts_firing_rule",
            ["deployment", "rule_name"],
            unique=True,
            sqlite_where=_ALERT_FIRING,
            postgresql_where=_ALERT_FIRING,
        )


def _create_incidents() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=256), nullable=False),
        sa.Column("opened_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("opened_by", sa.String(length=256), nullable=False),
        sa.Column("mitigated_at", steward.store.sql.tables.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", steward.store.sql.tables.UTCDateTime(), nullable=True),
        sa.Column("updated_at", steward.store.sql.tables.UTCDateTime(), nullable=False),
        sa.Column("postmortem", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_model_state", ["model_name", "state"])
        batch_op.create_index(
            "uq_incidents_active_model",
            ["model_name"],
            unique=True,
            sqlite_where=_INCIDENT_ACTIVE,
            postgresql_where=_INCIDENT_ACTIVE,
        )


def downgrade() -> None:
    # Dropping a table drops its indexes with it, on both backends.
    for table in ("incidents", "alerts", "monitor_windows", "monitors"):
        op.drop_table(table)
    with op.batch_alter_table("model_versions") as batch:  # SQLite rebuilds the table
        batch.drop_column("reference_profile")
