"""Writes that never wait (`SqlMetadataStore.without_waiting`): what a server's event loop runs.

On a SQLite file a write in the block takes the write lock only when it is free; when another
connection holds it, the write is refused at once with `WriteWouldWait` and nothing of it is
kept. On PostgreSQL a write in the block is built but not sent: one that ends in one statement
is held for the event loop to commit (`commit_held`), anything that would need the network
sooner is refused with nothing sent, and so is a held write whose prediction the database
refuses.
"""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from tests.store.conftest import dangling_alias, ledger_events, on_a_loop

from steward.errors import StewardError
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.schemas.tracking import RunCreate
from steward.store.base import WriteWouldWait
from steward.store.sql._loop_connections import HeldWrite
from steward.store.sql._one_statement import OneStatement
from steward.store.sql.store import SqlMetadataStore
from steward.wiring import Services


def _register(services: Services) -> int:
    ref = services.registry.upload_artifact(pickle.dumps({"w": 1}))
    body = VersionCreate(flavor="python", files={"model.pkl": ref}, metrics={"auc": 0.9})
    return services.registry.create_version("tester", "m", body).version


@contextmanager
def _write_lock_held(services: Services) -> Iterator[Callable[[], None]]:
    """Another connection to the same SQLite file holding its write lock; gives the function
    that releases it (also called at the end)."""
    database = services.store.engine.url.database
    assert database
    other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        if other.in_transaction:
            other.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()
        other.close()


def test_a_write_that_need_not_wait_commits_as_any_other(sqlite_services: Services) -> None:
    services = sqlite_services
    services.registry.create_model("tester", ModelCreate(name="m"))
    with services.store.without_waiting() as never_waits:
        version = _register(services)
        moved = services.registry.set_alias("tester", "m", "champion", version)
        assert services.store.held() is None  # committed already
    assert never_waits is True
    assert services.registry.get_version("models:/m@champion").version == moved.version == 1
    assert services.audit.verify().ok


def test_a_write_refused_for_a_held_lock_keeps_nothing_and_waits_for_nothing(
    sqlite_services: Services,
) -> None:
    services = sqlite_services
    services.registry.create_model("tester", ModelCreate(name="m"))
    events = services.audit.verify().events_checked
    with _write_lock_held(services), services.store.without_waiting():
        started = time.monotonic()
        with pytest.raises(WriteWouldWait):
            _register(services)
        with pytest.raises(WriteWouldWait):
            services.registry.set_alias("tester", "m", "champion", 1)
        waited = time.monotonic() - started
    assert waited < 1.0  # not the 30 s busy timeout
    assert services.registry.list_versions(model="m").items == []
    assert services.audit.verify().events_checked == events
    # once the lock is free, the same calls go through, in the block and outside it
    with services.store.without_waiting():
        assert _register(services) == 1
    assert _register(services) == 2
    assert services.audit.verify().ok


def test_outside_the_block_a_write_waits_for_the_lock(sqlite_services: Services) -> None:
    services = sqlite_services
    services.registry.create_model("tester", ModelCreate(name="m"))
    with _write_lock_held(services) as release:
        timer = threading.Timer(0.3, release)
        timer.start()
        started = time.monotonic()
        assert _register(services) == 1  # waited for the other connection, then committed
        timer.join()
        assert time.monotonic() - started >= 0.25


def test_the_block_is_this_threads_own(sqlite_services: Services) -> None:
    """A worker thread's writes meanwhile wait as usual (the mode is a context variable)."""
    services = sqlite_services
    services.registry.create_model("tester", ModelCreate(name="m"))
    found: list[object] = []
    with _write_lock_held(services) as release, services.store.without_waiting():
        worker = threading.Thread(target=lambda: found.append(_register(services)))
        worker.start()
        time.sleep(0.2)
        assert found == []  # waiting for the lock, not refused
        release()
        worker.join(10)
    assert found == [1]


def test_an_in_memory_database_cannot_avoid_waiting() -> None:
    store = SqlMetadataStore("sqlite:///:memory:")
    with store.without_waiting() as never_waits:
        assert never_waits is False
    store.dispose()


# -- PostgreSQL: held writes ---------------------------------------------------------------------


def _versions(services: Services) -> list[int]:
    return sorted(v.version for v in services.registry.list_versions(model="m").items)


def _held_registration(services: Services) -> tuple[int, HeldWrite]:
    with services.store.without_waiting() as never_waits:
        assert never_waits is True
        version = _register(services)
        held = services.store.held()
    assert held is not None
    return version, held


@pytest.mark.postgres
def test_postgres_holds_a_one_statement_write_until_the_loop_commits_it(
    two_servers: tuple[Services, Services],
) -> None:
    first, _ = two_servers
    assert _register(first) == 1  # the model's number and the ledger's tip, learned
    events = ledger_events(first)

    async def scenario() -> None:
        version, held = _held_registration(first)
        assert version == 2
        assert (_versions(first), ledger_events(first)) == ([1], events)  # nothing sent yet
        await first.store.commit_held(held)
        assert (_versions(first), ledger_events(first)) == ([1, 2], events + 1)
        assert first.registry.get_version("models:/m/2").metrics == {"auc": 0.9}
        version, held = _held_registration(first)  # what it committed, it predicts
        await first.store.commit_held(held)
        assert (version, _versions(first)) == (3, [1, 2, 3])

    on_a_loop(first, scenario)


@pytest.mark.postgres
def test_postgres_holds_nothing_where_no_loop_opened_its_connections(
    two_servers: tuple[Services, Services],
) -> None:
    first, _ = two_servers
    _register(first)
    with first.store.without_waiting() as never_waits:  # no running loop
        assert never_waits is False
        assert _register(first) == 2  # written at once, as any other write
        assert first.store.held() is None

    async def on_a_loop_of_its_own() -> None:  # a loop that opened nothing
        with first.store.without_waiting() as never_waits:
            assert never_waits is False

    asyncio.run(on_a_loop_of_its_own())
    assert _versions(first) == [1, 2]


@pytest.mark.postgres
def test_postgres_refuses_in_the_block_what_would_need_the_network_first(
    two_servers: tuple[Services, Services],
) -> None:
    first, _ = two_servers
    events = ledger_events(first)

    async def nothing_known_yet() -> None:
        with first.store.without_waiting():
            with pytest.raises(WriteWouldWait):
                _register(first)  # neither the number nor the tip known: both must be read
            with pytest.raises(WriteWouldWait):
                first.registry.get_model("m")  # a read
            assert first.store.held() is None

    on_a_loop(first, nothing_known_yet)
    assert (_versions(first), ledger_events(first)) == ([], events)
    assert _register(first) == 1  # outside the block, read and written as always

    async def one_write_held() -> None:
        with first.store.without_waiting():
            assert _register(first) == 2
            with pytest.raises(WriteWouldWait):
                _register(first)  # a second write: it could read what the first has not sent
            with pytest.raises(WriteWouldWait):
                first.registry.set_alias("tester", "m", "champion", 1)  # reads the alias first

    on_a_loop(first, one_write_held)
    assert _versions(first) == [1]


@pytest.mark.postgres
@pytest.mark.parametrize("moved", ["model's number", "ledger's tip"])
def test_a_held_write_built_on_a_stale_prediction_writes_nothing(
    two_servers: tuple[Services, Services], moved: str
) -> None:
    first, second = two_servers
    _register(first)

    async def scenario() -> None:
        _, held = _held_registration(first)
        if moved == "model's number":
            _register(second)  # takes v2, and moves the tip
        else:
            second.tracking.create_run("tester", RunCreate(name="elsewhere"))  # the tip only
        events = ledger_events(first)
        with pytest.raises(WriteWouldWait):
            await first.store.commit_held(held)
        assert ledger_events(first) == events

    on_a_loop(first, scenario)
    assert _register(first) == len(_versions(first))  # run again outside: read, then written
    assert _versions(first) == list(range(1, len(_versions(first)) + 1))


@pytest.mark.postgres
def test_a_held_write_the_database_refuses_is_a_typed_error_and_leaves_nothing(
    two_servers: tuple[Services, Services],
) -> None:
    first, _ = two_servers
    _register(first)
    events = ledger_events(first)
    dangling, rows = dangling_alias()

    async def scenario() -> None:
        with first.store.without_waiting():
            with first.store.write("tester") as tx:
                tx.execute_later([(dangling, rows)])
                tx.record("alias.set", "model", "m", {"alias": "x"})
            held = first.store.held()
        assert held is not None
        with pytest.raises(StewardError, match="refused the change"):
            await first.store.commit_held(held)

    on_a_loop(first, scenario)
    assert ledger_events(first) == events
    assert _register(first) == 2  # predictions untouched by a refused row: still one statement


def test_a_held_write_with_no_connection_to_go_to_is_left_for_a_worker_soon() -> None:
    """A database that cannot be reached (down, or every connection busy): the held write is
    refused as one that would wait, within the half second it may wait for a connection, so the
    call runs in a worker, which reports the database as unavailable at once."""
    store = SqlMetadataStore("postgresql://steward@127.0.0.1:9/nothing-listens-here")
    writer: Any = None  # never sent: no writer is needed
    unsent = HeldWrite(OneStatement("SELECT 1", {}), writer)

    async def commit() -> float:
        await store.open_for_loop()
        started = time.monotonic()
        try:
            with pytest.raises(WriteWouldWait):
                await store.commit_held(unsent)
            return time.monotonic() - started
        finally:
            await store.close_for_loop()

    assert asyncio.run(commit()) < 2.0
    store.dispose()
