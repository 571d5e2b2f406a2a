"""Verified tokens are trusted for a few seconds without the store; revocation and expiry still
hold: at once through the same service, within the cache time through another one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import make_services
from tests.store.conftest import on_a_loop

from steward.auth import service as auth_service
from steward.auth.service import TokenService
from steward.domain.clock import utcnow
from steward.domain.enums import Role
from steward.errors import Unauthenticated
from steward.schemas.auth import TokenCreate, TokenCreated
from steward.store.base import ReadWouldWait
from steward.wiring import Services


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    """Counts the store's read transactions (the cost the cache saves)."""

    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        read = services.store.read

        def counted() -> object:
            self.count += 1
            return read()

        monkeypatch.setattr(services.store, "read", counted)


def _token(services: Services, **kwargs: object) -> TokenCreated:
    return services.tokens.create_token("admin", TokenCreate(name="t", role=Role.VIEWER, **kwargs))


def test_a_verified_token_is_not_read_again_until_the_cache_time_passes(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    tokens = TokenService(services.store, cache_seconds=5.0, clock=clock)
    created = _token(services)
    reads = CountingReads(services, monkeypatch)
    assert tokens.authenticate_cached(created.secret) is None  # never seen: ask the store
    assert tokens.authenticate(created.secret).id == created.token.id
    for _ in range(3):
        cached = tokens.authenticate_cached(created.secret)
        assert cached is not None
        assert cached.id == created.token.id
        tokens.authenticate(created.secret)
    assert reads.count == 1
    clock.now += 5.0
    assert tokens.authenticate_cached(created.secret) is None
    tokens.authenticate(created.secret)
    assert reads.count == 2


def test_the_cache_holds_hashes_not_secrets(services: Services) -> None:
    created = _token(services)
    services.tokens.authenticate(created.secret)
    assert created.secret not in repr(services.tokens._verified)
    assert auth_service.hash_secret(created.secret) in services.tokens._verified


def test_a_revocation_through_the_same_service_applies_at_once(services: Services) -> None:
    created = _token(services)
    services.tokens.authenticate(created.secret)
    services.tokens.revoke_token("admin", created.token.id)
    assert services.tokens.authenticate_cached(created.secret) is None
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        services.tokens.authenticate(created.secret)


def test_a_revocation_on_another_server_applies_within_the_cache_time(
    services_factory: Callable[[], Services],
) -> None:
    # Two server processes over one database: each has its own service and cache.
    here, there = services_factory(), services_factory()
    clock = FakeClock()
    tokens = TokenService(here.store, cache_seconds=5.0, clock=clock)
    created = _token(here)
    tokens.authenticate(created.secret)
    there.tokens.revoke_token("admin", created.token.id)
    clock.now += 4.9
    assert tokens.authenticate(created.secret).id == created.token.id  # still trusted
    clock.now += 0.1
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        tokens.authenticate(created.secret)
    assert tokens.authenticate_cached(created.secret) is None  # a refusal is not cached


def test_expiry_is_checked_on_every_use_of_a_cached_token(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = _token(services, expires_in_days=1)
    services.tokens.authenticate(created.secret)
    assert services.tokens.authenticate_cached(created.secret) is not None
    later = utcnow() + timedelta(days=1, seconds=1)
    monkeypatch.setattr(auth_service, "utcnow", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        services.tokens.authenticate_cached(created.secret)
    with pytest.raises(Unauthenticated, match="expired"):
        services.tokens.authenticate(created.secret)


def test_the_cache_is_bounded(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_service, "_CACHE_SIZE", 3)
    secrets = [_token(services).secret for _ in range(5)]
    for secret in secrets:
        services.tokens.authenticate(secret)
        assert len(services.tokens._verified) <= 3
    assert services.tokens.authenticate_cached(secrets[-1]) is not None


def test_a_read_that_raced_a_revocation_is_not_cached(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = _token(services)
    tokens = services.tokens
    read = services.store.read

    @contextmanager
    def read_then_revoke() -> Iterator[object]:
        # The token is read as valid, then revoked here before that read's result is cached.
        with read() as rx:
            yield rx
        tokens.revoke_token("admin", created.token.id)

    monkeypatch.setattr(services.store, "read", read_then_revoke)
    assert tokens.authenticate(created.secret).id == created.token.id  # read before the revoke
    monkeypatch.undo()
    assert tokens.authenticate_cached(created.secret) is None
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        tokens.authenticate(created.secret)


def test_a_token_read_on_the_event_loop_is_the_one_a_worker_reads(
    postgres_services: Services,
) -> None:
    """On PostgreSQL the server's loop reads a token over its own connections: the same token,
    cached the same way, refused the same way."""
    services = postgres_services
    lasting = _token(services, expires_in_days=30)
    forever = services.tokens.create_token("admin", TokenCreate(name="f", role=Role.ADMIN))
    expired = _token(services, expires_in_days=1e-9)
    revoked = _token(services)
    services.tokens.revoke_token("admin", revoked.token.id)
    on_loop = TokenService(services.store)

    def read(secret: str) -> Callable[[], Awaitable[object]]:
        return lambda: on_loop.authenticate_on_loop(secret)

    for created in (lasting, forever):
        token = on_a_loop(services, read(created.secret))
        assert token == services.tokens.authenticate(created.secret)
        assert on_loop.authenticate_cached(created.secret) == token
    for refused, reason in ((expired, "expired"), (revoked, "unknown or revoked")):
        with pytest.raises(Unauthenticated, match=reason):
            on_a_loop(services, read(refused.secret))
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        on_a_loop(services, read("stw_" + "0" * 43))
    with pytest.raises(Unauthenticated, match="needs an API token"):
        on_a_loop(services, read(""))


def test_on_sqlite_a_token_is_not_read_on_the_event_loop(sqlite_url: str, tmp_path: Path) -> None:
    services = make_services(tmp_path / "home", sqlite_url)
    try:
        created = _token(services)
        with pytest.raises(ReadWouldWait):
            on_a_loop(services, lambda: services.tokens.authenticate_on_loop(created.secret))
        assert services.tokens.authenticate_cached(created.secret) is None
    finally:
        services.close()


def test_a_loop_without_connections_reads_no_token(postgres_services: Services) -> None:
    created = _token(postgres_services)
    with pytest.raises(ReadWouldWait):  # `asyncio.run`'s loop opened none
        asyncio.run(postgres_services.tokens.authenticate_on_loop(created.secret))
    assert postgres_services.tokens.authenticate_cached(created.secret) is None
