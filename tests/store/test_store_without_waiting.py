"""Writes that never wait (`SqlMetadataStore.without_waiting`): what a server's event loop runs.

On a SQLite file a write in the block takes the write lock only when it is free; when another
connection holds it, the write is refused at once with `WriteWouldWait` and nothing of it is
kept. Elsewhere (PostgreSQL) the block says it cannot, and writes behave as always.
"""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from steward.schemas.registry import ModelCreate, VersionCreate
from steward.store.base import WriteWouldWait
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


def test_a_write_that_need_not_wait_commits_as_any_other(services: Services) -> None:
    services.registry.create_model("tester", ModelCreate(name="m"))
    with services.store.without_waiting() as never_waits:
        version = _register(services)
        moved = services.registry.set_alias("tester", "m", "champion", version)
    assert never_waits is (services.store.dialect == "sqlite")
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
