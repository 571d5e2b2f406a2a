"""A running Runtime follows the ledger: a deployment change made through DeploymentService is
swapped in, on every backend; on PostgreSQL at once through LISTEN/NOTIFY, and by the poll when
the listening connection is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import make_services
from tests.store.test_deployment_feed import release

from steward.domain.deployments import FallbackKind
from steward.schemas.serving import DeploymentSpec
from steward.schemas.tracking import RunCreate
from steward.serving.follow import FeedChanges, LedgerFollower
from steward.serving.runtime import Runtime
from steward.wiring import Services


def spec(**routing: Any) -> DeploymentSpec:
    return DeploymentSpec.model_validate({"model": "m", "champion": 1, **routing})


@asynccontextmanager
async def following(services: Services, poll_seconds: float) -> AsyncIterator[Runtime]:
    runtime = Runtime(services.store, services.artifacts, names=("d",))
    await runtime.start(poll_seconds=poll_seconds)
    try:
        yield runtime
    finally:
        await runtime.close()


async def in_thread(call: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, call, *args)


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    started = time.perf_counter()
    while not check():
        assert time.perf_counter() - started < timeout, "timed out"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def revision(runtime: Runtime) -> int:
    return runtime.served["d"].deployment.revision


def follower(runtime: Runtime) -> LedgerFollower:
    assert runtime.follower is not None
    return runtime.follower


def test_a_change_reaches_a_following_runtime(services: Services) -> None:
    release(services, "m", [False, False])
    services.deployments.deploy("ana", "d", spec())

    async def run() -> None:
        async with following(services, poll_seconds=0.2) as runtime:
            assert revision(runtime) == 1
            canary = spec(canary=2, canary_share=0.5)
            await in_thread(services.deployments.deploy, "ana", "d", canary)
            await until(lambda: revision(runtime) == 2, timeout=10)
            assert set(runtime.served["d"].versions) == {1, 2}
            await in_thread(services.deployments.rollback, "ana", "d")
            await until(lambda: revision(runtime) == 3, timeout=10)
            assert set(runtime.served["d"].versions) == {1}

    asyncio.run(run())


def test_only_followed_events_refresh(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    release(services, "m", [False, False])
    services.deployments.deploy("ana", "d", spec())
    services.deployments.deploy("ana", "other", spec())

    async def run() -> list[FeedChanges]:
        async with following(services, poll_seconds=0.02) as runtime:
            refreshes: list[FeedChanges] = []
            react = follower(runtime).react

            async def counted(changes: FeedChanges) -> None:
                if changes != FeedChanges():
                    refreshes.append(changes)
                await react(changes)

            calls: list[int] = []
            real = runtime.refresh

            async def refresh(recheck: frozenset[str] = frozenset()) -> list[str]:
                calls.append(1)
                return await real(recheck)

            monkeypatch.setattr(follower(runtime), "react", counted)
            monkeypatch.setattr(runtime, "refresh", refresh)
            await in_thread(services.tracking.create_run, "ana", RunCreate(name="noise"))
            # a deployment this runtime does not serve is read, and not refreshed for
            await in_thread(services.deployments.deploy, "ana", "other", spec(timeout_ms=9))
            await asyncio.sleep(0.3)  # ~15 ticks
            assert calls == []
            await in_thread(services.deployments.deploy, "ana", "d", spec(timeout_ms=9))
            await until(lambda: revision(runtime) == 2, timeout=10)
            assert calls == [1]
            return refreshes

    seen = asyncio.run(run())
    assert seen == [FeedChanges(deployments=frozenset({"other"})), FeedChanges(frozenset({"d"}))]


def test_a_promotion_moves_the_previous_fallback(services: Services) -> None:
    release(services, "m", [False, False, False], production=1)
    services.gates.promote("ana", "models:/m/2", "production")  # v1: the previous version
    services.deployments.deploy("ana", "d", spec(champion=2, fallbacks=[{"kind": "previous"}]))

    async def run() -> None:
        async with following(services, poll_seconds=0.05) as runtime:
            served = runtime.served["d"]
            assert served.previous == 1
            assert [s.kind for s in served.deployment.fallbacks] == [FallbackKind.PREVIOUS]
            # v3 to production: v2 is deprecated, and the model's newest other released version
            # (the one a fresh server would pick) is now v3; the revision does not change
            await in_thread(services.gates.promote, "ana", "models:/m/3", "production")
            await until(lambda: runtime.served["d"].previous == 3, timeout=10)
            assert revision(runtime) == 1
            assert set(runtime.served["d"].versions) == {2, 3}

    asyncio.run(run())


# -- PostgreSQL: LISTEN/NOTIFY ------------------------------------------------------------------


@pytest.fixture
def pg_services(postgres_url: str, tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path / "home", postgres_url)
    yield services
    services.close()


def terminate(services: Services, pid: int) -> None:
    with services.store.engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")


@pytest.mark.postgres
def test_notify_swaps_well_under_the_poll_interval(pg_services: Services) -> None:
    services = pg_services
    release(services, "m", [False, False])
    services.deployments.deploy("ana", "d", spec())

    async def run() -> list[float]:
        # a 30 s poll: only the notification can explain a swap within a second or two
        async with following(services, poll_seconds=30) as runtime:
            await until(lambda: follower(runtime).listening, timeout=10)
            waits = []
            for share in (0.5, 0.25, 0.1):
                change = spec(canary=2, canary_share=share)
                before = revision(runtime)
                started = time.perf_counter()
                await in_thread(services.deployments.deploy, "ana", "d", change)
                await until(lambda b=before: revision(runtime) == b + 1, timeout=5)
                waits.append(time.perf_counter() - started)
            return waits

    waits = asyncio.run(run())
    assert max(waits) < 2.0, waits


@pytest.mark.postgres
def test_a_dropped_listen_connection_falls_back_to_polling(pg_services: Services) -> None:
    services = pg_services
    release(services, "m", [False, False])
    services.deployments.deploy("ana", "d", spec())

    async def run() -> None:
        async with following(services, poll_seconds=0.3) as runtime:
            feed = follower(runtime)
            await until(lambda: feed.listening, timeout=10)
            feed.backoff = (60.0, 60.0)  # no reconnection during this test
            pid = getattr(feed.listener, "backend_pid", None)
            assert pid is not None
            await in_thread(terminate, services, pid)
            await until(lambda: not feed.listening, timeout=10)
            await in_thread(services.deployments.deploy, "ana", "d", spec(timeout_ms=7))
            await until(lambda: revision(runtime) == 2, timeout=5)  # by the poll
            assert not feed.listening

    asyncio.run(run())


@pytest.mark.postgres
def test_the_listener_reconnects(pg_services: Services) -> None:
    services = pg_services
    release(services, "m", [False, False])
    services.deployments.deploy("ana", "d", spec())

    async def run() -> None:
        async with following(services, poll_seconds=30) as runtime:
            feed = follower(runtime)
            feed.backoff = (0.05, 0.05)
            await until(lambda: feed.listening, timeout=10)
            first = getattr(feed.listener, "backend_pid", None)
            assert first is not None
            await in_thread(terminate, services, first)
            await until(
                lambda: feed.listening and getattr(feed.listener, "backend_pid", None) != first,
                timeout=10,
            )
            await in_thread(services.deployments.deploy, "ana", "d", spec(timeout_ms=7))
            await until(lambda: revision(runtime) == 2, timeout=5)

    asyncio.run(run())


@pytest.mark.postgres
def test_a_listener_that_cannot_connect_leaves_the_poll(
    pg_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that refuses the LISTEN connection never stops the follower: the poll swaps
    the change in."""
    services = pg_services
    release(services, "m", [False, False])
    services.deployments.deploy("ana", "d", spec())
    real = services.store.feed_listener

    async def refused() -> None:
        raise psycopg.OperationalError("connection refused")

    def broken() -> Any:
        made = real()
        assert made is not None
        monkeypatch.setattr(made, "connect", refused)
        return made

    monkeypatch.setattr(services.store, "feed_listener", broken)

    async def run() -> None:
        async with following(services, poll_seconds=0.2) as runtime:
            await in_thread(services.deployments.deploy, "ana", "d", spec(timeout_ms=7))
            await until(lambda: revision(runtime) == 2, timeout=5)
            assert not follower(runtime).listening

    asyncio.run(run())
