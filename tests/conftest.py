"""Shared fixtures: a metadata database on each backend, and services built on it.

SQLite runs always, in ``tmp_path``. PostgreSQL runs when ``STEWARD_TEST_POSTGRES_URL`` names a
server (``postgresql://postgres@127.0.0.1:5432/test``): each test session (each xdist worker)
creates its own database ``steward_test_<worker>_<random>`` there and drops it at the end, and
each test gets a fresh, empty schema inside it, so tests never see each other's rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from steward.settings import Settings
from steward.testing.postgres import temporary_database, temporary_schema
from steward.wiring import Services

POSTGRES_ENV = "STEWARD_TEST_POSTGRES_URL"
POSTGRES_SKIP_REASON = "set STEWARD_TEST_POSTGRES_URL to run the PostgreSQL tests"
BACKENDS = ["sqlite", "postgresql"]


def _worker(config: pytest.Config) -> str:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The server URL from the environment; skips the test when it is not set."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str, pytestconfig: pytest.Config) -> Iterator[str]:
    """A database of this session (this xdist worker) alone, dropped at the end."""
    with temporary_database(postgres_server_url, tag=_worker(pytestconfig)) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A URL on a fresh, empty schema in the session's database, dropped after the test."""
    with temporary_schema(postgres_database) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'steward.db'}"


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    """An empty metadata database on each backend (PostgreSQL skipped unless configured)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


def make_services(home: Path, url: str) -> Services:
    """Migrated services on ``url`` with artifacts under ``home``."""
    return Services.from_settings(Settings(home=home, database={"url": url}))


@pytest.fixture
def services_factory(backend_url: str, tmp_path: Path) -> Iterator[Callable[[], Services]]:
    """Build services on ``backend_url`` (each call a new engine on the same database)."""
    built: list[Services] = []

    def factory() -> Services:
        services = make_services(tmp_path / "home", backend_url)
        built.append(services)
        return services

    yield factory
    for services in built:
        services.close()


@pytest.fixture
def services(services_factory: Callable[[], Services]) -> Services:
    return services_factory()


@pytest.fixture
def sqlite_services(sqlite_url: str, tmp_path: Path) -> Iterator[Services]:
    """Services on SQLite alone, for what only SQLite does (its file's write lock)."""
    built = make_services(tmp_path / "home", sqlite_url)
    yield built
    built.close()


@pytest.fixture
def postgres_services(postgres_url: str, tmp_path: Path) -> Iterator[Services]:
    """Services on PostgreSQL alone (skipped without STEWARD_TEST_POSTGRES_URL)."""
    built = make_services(tmp_path / "home", postgres_url)
    yield built
    built.close()
