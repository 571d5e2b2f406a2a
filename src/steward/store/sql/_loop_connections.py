"""An event loop's own PostgreSQL connections: writes held for it to commit, reads it awaits.

The API server runs a PostgreSQL write in a worker thread, because every round trip waits on
the network. For a registration that hand-off was a fifth of its cost: through the server on a
2-core host, handing the call to a worker and back cost ~0.4 ms of CPU and as much time, of
~2.1 ms in all (measured against the same call run on the event loop). A write that ends in
one statement (`_one_statement`) needs the network once, at its end; everything before is CPU
work. So the event loop runs such a call itself in `SqlMetadataStore.without_waiting`: the
write is built but not sent (`HeldWrite`), and the loop awaits it over an async connection,
serving other requests meanwhile. A write that would send anything sooner (a read, a claim
not predicted) raises `WriteWouldWait` before sending it, and the call goes to a worker as
before.

A search's page is one statement too, and the loop awaits it the same way
(`SqlMetadataStore.list_versions_json_on_loop`): handing a search to a worker and back cost
~0.7 ms of the server's CPU per page of 100 on a 2-core host (3.2 → 2.4 ms, measured,
same query).

The connections come from psycopg's own pool (psycopg_pool), one per event loop, with the
policy of the store's synchronous pool (`engine._ping_when_idle`): a connection idle for longer
than `PING_AFTER_IDLE_SECONDS` is pinged before use, so one a database restart left dead is
replaced instead of failing a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from steward.store.base import ReadWouldWait, WouldWait, WriteWouldWait
from steward.store.sql._driver import wrapped_errors
from steward.store.sql._one_statement import OneStatement
from steward.store.sql.engine import PING_AFTER_IDLE_SECONDS, driver_connect_args

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from steward.store.sql.store import SqlWriteSession

# How long a held write or a read waits for one of the loop's connections before it goes to a
# worker (where a database that is down is reported at once): a commit holds one for ~0.5 ms.
_CONNECTION_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class HeldWrite:
    """A write built to the last byte and not sent: its one statement, and the write it ends
    (what the process learns once it commits)."""

    statement: OneStatement
    writer: SqlWriteSession


class LoopConnections:
    """A pool of async connections per event loop, opened and closed by the loop's owner (the
    API server's lifespan): a loop that did not open one (a test client's loop per request, a
    script's `asyncio.run`) commits no held write and awaits no read, and its calls run in
    workers as before."""

    def __init__(self, engine: Engine, size: int) -> None:
        self.engine = engine
        self.size = size
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncConnectionPool[Any]
        ] = weakref.WeakKeyDictionary()
        self._idle_since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def open_here(self) -> bool:
        """Whether the running event loop (if any) has opened its connections."""
        try:
            return asyncio.get_running_loop() in self._pools
        except RuntimeError:  # no running loop
            return False

    async def open(self) -> None:
        """Open the running loop's connections (the first of them is made in the background)."""
        loop = asyncio.get_running_loop()
        if loop in self._pools:
            return
        # Imported here: only a server on PostgreSQL needs it.
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            # The engine's adapters too: JSON written by pydantic-core, as the store's own
            # statements write it, not by the stdlib's encoder (~0.1 ms of a registration).
            kwargs={**driver_connect_args(self.engine), "autocommit": True},
            min_size=1,
            max_size=self.size,
            open=False,
            check=self._ping_when_idle,
            name="steward-loop",
        )
        self._pools[loop] = pool
        await pool.open()

    async def execute(self, statement: OneStatement) -> None:
        """Run ``statement`` on one of this loop's connections (autocommit: it commits).
        `WriteWouldWait` when no connection came free in time; the database's refusals are
        raised as SQLAlchemy wraps them."""
        async with self._connection(WriteWouldWait, statement.sql, statement.parameters) as c:
            await c.execute(statement.sql, statement.parameters)

    async def fetch(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of the query ``sql`` (autocommit: it sees what was committed before it).
        `ReadWouldWait` when no connection came free in time; errors as `execute`'s."""
        async with self._connection(ReadWouldWait, sql, parameters) as connection:
            cursor = await connection.execute(sql, parameters)
            rows: list[tuple[Any, ...]] = await cursor.fetchall()
            return rows

    @contextlib.asynccontextmanager
    async def _connection(
        self, would_wait: type[WouldWait], sql: str, parameters: dict[str, Any]
    ) -> AsyncIterator[AsyncConnection[Any]]:
        # Imported here: psycopg costs ~0.2 s to import, which SQLite stores never need.
        import psycopg
        from psycopg_pool import PoolTimeout as NoConnection

        pool = self._pools[asyncio.get_running_loop()]
        try:
            checkout = pool.connection(timeout=_CONNECTION_WAIT_SECONDS)
            async with checkout as connection:
                with wrapped_errors(psycopg.Error, sql, parameters):
                    yield connection
                # Noted here, not in the pool's ``reset`` callback: with one, the pool returns
                # every connection through its worker task (36.9 against 13.2 µs a checkout).
                self._idle_since[connection] = time.monotonic()
        except NoConnection as error:
            raise would_wait("no connection of the event loop came free") from error

    async def close(self) -> None:
        """Close the running loop's connections."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    async def _ping_when_idle(self, connection: AsyncConnection[Any]) -> None:
        idle_since = self._idle_since.get(connection)
        if idle_since is None or time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            await connection.execute("")  # raises if it is dead: the pool makes another


__all__ = ["HeldWrite", "LoopConnections"]
