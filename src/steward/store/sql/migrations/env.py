"""Alembic environment: runs against the connection handed in by steward.store.sql.migrate."""

from __future__ import annotations

from alembic import context

from steward.store.sql.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through steward.store.sql.migrate (steward db upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
