"""metric segments: lz4 compression on PostgreSQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 11:00:00.000000

A batch's segment of a metric (its steps, values and timestamps, ~24 bytes a point as written)
is compressed by PostgreSQL when the row is over ~2 KB, with pglz unless a column says
otherwise. For a batch of 1,000 points that took ~0.4 ms of the backend's CPU, about half of
all it did for the batch. With lz4 the backend's CPU per batch went from 0.83-0.98 to
0.41-0.44 ms, and a batch through the server from 2.53-2.87 to 2.06-2.21 ms (three runs each,
alternating), for 14.1 bytes a point stored against pglz's 12.8 (25.4 uncompressed; 1,200
batches). lz4 needs PostgreSQL 14 built with it (Debian's and the official images are);
elsewhere, and on SQLite (which compresses nothing), nothing changes. Values written before
stay as they were written; both read alike.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.engine import Connection

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = ("steps", "values", "timestamps")


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("default")


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if not _has_lz4(bind):
        return
    for column in _COLUMNS:
        op.execute(
            f'ALTER TABLE run_metric_segments ALTER COLUMN "{column}" SET COMPRESSION {method}'
        )


def _has_lz4(bind: Connection) -> bool:
    """PostgreSQL 14 or later, built with lz4 (it then lists it among its TOAST methods)."""
    if bind.dialect.name != "postgresql" or (bind.dialect.server_version_info or ()) < (14,):
        return False
    methods = bind.exec_driver_sql(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
    ).scalar()
    return "lz4" in (methods or [])
