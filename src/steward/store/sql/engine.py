"""Engine construction per dialect: SQLite in WAL with foreign keys; PostgreSQL via psycopg 3."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from steward.errors import InvalidInput
from steward.store.sql._driver import BEGIN, take_pending_begin


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


# A pooled PostgreSQL connection idle for longer than this is pinged before use (see
# `_ping_when_idle`). A restart or failover takes longer than this, so a connection that was
# busy when the database went away has been idle for longer by the time it is back.
PING_AFTER_IDLE_SECONDS = 1.0


def build_engine(url: str, *, pool_size: int = 5) -> Engine:
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return _postgres_engine(url, pool_size)
    raise InvalidInput(
        f"Unsupported database {backend!r} in STEWARD_DATABASE_URL: use sqlite:///PATH "
        "or postgresql://USER@HOST/DB.",
        field="database.url",
    )


def _postgres_engine(url: str, pool_size: int) -> Engine:
    # LIFO: under light load the same few connections stay in use (and need no ping), while the
    # rest idle until they are pinged or recycled.
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_use_lifo=True, **_JSON_CODEC
    )
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    _send_deferred_begin(engine)
    return engine


def driver_connect_args(engine: Engine) -> dict[str, Any]:
    """The keyword arguments the engine connects its driver with (host, user, password,
    options such as a test's search_path, and on PostgreSQL ``context``: its adapters, JSON
    written by pydantic-core), for a connection made outside its pool."""
    _, params = engine.dialect.create_connect_args(engine.url)
    return dict(params)


def _send_deferred_begin(engine: Engine) -> None:
    """A write's BEGIN left for its first statement (`deferred_begin`) goes out before a statement
    SQLAlchemy runs, when that one comes first."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(connection: Any, cursor: Any, *_: Any) -> None:
        if take_pending_begin(connection):
            cursor.connection.execute(BEGIN)


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it has been idle for ``idle_seconds``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip on every
    request (~0.1 ms of a ~3 ms write here), to catch what happens to idle connections (a
    database restart or failover, an idle timeout, a dropped network path). A connection
    returned moments ago is not checked; should it have died since, its first statement fails
    (503 ``unavailable``) and SQLAlchemy discards every connection of the pool opened before
    the failure, so the next request reconnects.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or returned moments ago
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool discards this connection and checks out another (a new one).
                raise exc.DisconnectionError(str(error)) from error
            raise


# How long a SQLite writer waits for another one to commit before it gives up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def is_sqlite_file(url: str) -> bool:
    """A SQLite database in a file, which several connections (and engines) can share."""
    parsed = make_url(normalize_url(url))
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


def build_nowait_sqlite_engine(url: str) -> Engine:
    """An engine over the same SQLite file whose writer never waits to start: its one
    connection's ``BEGIN IMMEDIATE`` fails at once (SQLITE_BUSY) when another connection holds
    the write lock, instead of after the busy timeout, and checking that connection out while
    it is in use fails at once too (``pool_timeout=0``). Once the lock is taken, the
    transaction's statements wait as any others would (for the moments a checkpoint holds the
    WAL's index, say)."""
    return _sqlite_engine(
        normalize_url(url), begin_waits=False,
        pool={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0},
    )  # fmt: skip


def _sqlite_engine(
    url: str, *, begin_waits: bool = True, pool: dict[str, Any] | None = None
) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        **(pool or {}),
        **_JSON_CODEC,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, issue BEGIN, so writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE: a writer takes the write lock at the start, so two writers queue
        # instead of deadlocking when both upgrade from a read lock.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if begin_waits:
            connection.exec_driver_sql(f"BEGIN {mode}")
            return
        driver = connection.connection.driver_connection  # sqlite3's, ~1 µs a statement
        driver.execute("PRAGMA busy_timeout=0")
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        finally:
            driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")

    return engine
