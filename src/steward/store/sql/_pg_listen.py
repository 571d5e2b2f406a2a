"""PgFeedListener: LISTEN for the feed's notifications on PostgreSQL (see ``_feed``).

A module of its own, imported only when a PostgreSQL store is asked for a listener: psycopg
costs ~0.2 s to import, which an embedded (SQLite) store and every CLI command would pay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import psycopg
from sqlalchemy import Engine

from steward.errors import Unavailable
from steward.store.sql._feed import FEED_CHANNEL
from steward.store.sql.engine import driver_connect_args


class PgFeedListener:
    """LISTEN on the feed's channel over a connection of its own, outside the pool.

    psycopg's async connection waits on the event loop without blocking it. Keepalives make a
    silently dead connection fail within about a minute rather than never; until it does, the
    follower's poll still finds every change.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._notes: AsyncGenerator[psycopg.Notify] | None = None

    @property
    def backend_pid(self) -> int | None:
        """The server process serving the listening connection (None: not connected)."""
        return None if self._connection is None else self._connection.info.backend_pid

    async def connect(self) -> None:
        await self.close()
        try:
            self._connection = await psycopg.AsyncConnection.connect(
                **self._params(), autocommit=True
            )
            await self._connection.execute(f"LISTEN {FEED_CHANNEL}")
        except psycopg.Error as exc:
            await self.close()
            raise Unavailable(f"Cannot listen for deployment changes: {exc}") from exc
        self._notes = self._connection.notifies()

    async def wait(self) -> int:
        if self._notes is None:
            raise Unavailable("The feed listener is not connected.")
        try:
            note = await anext(self._notes)
        except (psycopg.Error, StopAsyncIteration) as exc:
            raise Unavailable(f"The feed listener's connection was lost: {exc}") from exc
        return int(note.payload) if note.payload.isdigit() else 0

    async def close(self) -> None:
        notes, connection = self._notes, self._connection
        self._notes = self._connection = None
        if notes is not None:
            await notes.aclose()
        if connection is not None:
            await connection.close()

    def _params(self) -> dict[str, Any]:
        # The engine's own connection arguments: the same host, user, password and options
        # (a test's search_path) as the store's pooled connections.
        params = driver_connect_args(self.engine)
        params.pop("context", None)  # SQLAlchemy's adapters for its sync connections
        return {
            "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30,
            "keepalives_interval": 10, "keepalives_count": 3, **params,
        }  # fmt: skip
