"""What several store test modules share: two server processes on one PostgreSQL database, a
row the database refuses, the ledger checked, and an event loop that opened its connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import insert
from tests.conftest import make_services

from steward.schemas.registry import ModelCreate
from steward.store.sql._driver import DriverStatement
from steward.store.sql.tables import AliasRow
from steward.wiring import Services

ALIASES: Any = AliasRow.__table__


@pytest.fixture
def two_servers(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Services, Services]]:
    """Two services on one PostgreSQL database (two server processes), with model ``m``."""
    first = make_services(tmp_path / "home", postgres_url)
    second = make_services(tmp_path / "home", postgres_url)
    first.registry.create_model("tester", ModelCreate(name="m"))
    yield first, second
    first.close()
    second.close()


def dangling_alias() -> tuple[DriverStatement, list[dict[str, Any]]]:
    """An insert the database refuses (its model and version do not exist), known only when the
    row arrives: the foreign keys are checked then."""
    row = {"model_id": "no-such-model", "alias": "x", "version_id": "no-such-version",
           "updated_at": datetime.now(UTC), "updated_by": "tester"}  # fmt: skip
    return DriverStatement(insert(ALIASES), keys=list(row)), [row]


def ledger_events(services: Services) -> int:
    """How many events the ledger holds, its chain verified."""
    report = services.audit.verify()
    assert report.ok, report
    return report.events_checked


T = TypeVar("T")


def on_a_loop(services: Services, scenario: Callable[[], Awaitable[T]]) -> T:
    """``scenario`` on an event loop that opened its connections, as the server's does."""

    async def main() -> T:
        await services.store.open_for_loop()
        try:
            return await scenario()
        finally:
            await services.store.close_for_loop()

    return asyncio.run(main())
