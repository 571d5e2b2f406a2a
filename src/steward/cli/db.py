"""``steward db upgrade``: bring the configured database's schema to the latest migration."""

from __future__ import annotations

import typer

from steward.cli._output import success
from steward.cli._state import state

app = typer.Typer(help="The metadata database.")


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply every pending Alembic migration (on STEWARD_DATABASE_URL, or STEWARD_HOME)."""
    from steward.store.sql.migrate import current_revision, head_revision
    from steward.store.sql.migrate import upgrade as run_upgrade
    from steward.store.sql.store import SqlMetadataStore

    store = SqlMetadataStore.from_settings(state(ctx).settings)
    try:
        before = current_revision(store.engine)
        head = head_revision()
        if before == head:
            success(f"The database is up to date (revision {head}).")
            return
        run_upgrade(store.engine)
        success(f"Upgraded the database from {before or 'empty'} to {head}.")
    finally:
        store.dispose()
