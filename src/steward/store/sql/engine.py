"""Engine construction per dialect: SQLite in WAL with foreign keys; PostgreSQL via psycopg 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from steward.errors import InvalidInput


def normalize_url(url: str) -> str:
    """Map bare ``postgresql://`` to psycopg 3, the driver Steward depends on."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _dumps(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


# JSON columns (lineage, signatures, event payloads) are parsed by pydantic-core: the stdlib
# decoder was most of a search's time on versions with a full environment (measured).
_JSON_CODEC: dict[str, Any] = {
    "json_serializer": _dumps,
    "json_deserializer": pydantic_core.from_json,
}


def build_engine(url: str, *, pool_size: int = 5) -> Engine:
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **_JSON_CODEC
        )
    raise InvalidInput(
        f"Unsupported database {backend!r} in STEWARD_DATABASE_URL: use sqlite:///PATH "
        "or postgresql://USER@HOST/DB.",
        field="database.url",
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, **_JSON_CODEC
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, issue BEGIN, so writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE: a writer takes the write lock at the start, so two writers queue
        # instead of deadlocking when both upgrade from a read lock.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
