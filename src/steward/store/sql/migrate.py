"""Schema migrations with Alembic, one tree for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from steward.errors import Unavailable

_SCRIPTS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migration tree has no head")
    return head


def current_revision(engine: Engine) -> str | None:
    with _reachable(engine), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, lambda config: command.downgrade(config, revision))


def _run(engine: Engine, action: object) -> None:
    config = alembic_config()
    with _reachable(engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config)  # type: ignore[operator]


@contextmanager
def _reachable(engine: Engine) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        raise Unavailable(
            f"Cannot reach the metadata database {engine.url.render_as_string()}: {exc.orig}. "
            "Check STEWARD_DATABASE_URL and that the database is running."
        ) from exc


def ensure_current(engine: Engine) -> None:
    """Bring the schema to head if it is behind (embedded mode does this on first use)."""
    if current_revision(engine) != head_revision():
        upgrade(engine)
