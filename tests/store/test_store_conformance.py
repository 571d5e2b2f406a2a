"""The shipped store conformance suite, on SQLite always and on PostgreSQL when configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.settings import Settings
from steward.store.sql import _ledger
from steward.testing.store_checks import (
    STORE_CHECKS,
    check_metadata_store,
    check_model_round_trip,
    parametrize_with_store_checks,
    run_store_check,
)
from steward.wiring import Services


def sqlite_services(tmp_path: Path, sqlite_url: str) -> Services:
    return Services.from_settings(Settings(home=tmp_path / "home", database={"url": sqlite_url}))


def postgres_services(tmp_path: Path, postgres_url: str) -> Services:
    return Services.from_settings(Settings(home=tmp_path / "home", database={"url": postgres_url}))


@parametrize_with_store_checks({"sqlite": sqlite_services, "postgresql": postgres_services})
def test_store_conformance(store_factory, check, request):
    run_store_check(store_factory, check, request)


def test_checks_share_one_store(tmp_path):
    """Checks name what they create uniquely, so they also pass one after another on one store."""
    services = sqlite_services(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        for check in STORE_CHECKS:
            check(services)
        assert services.audit.verify().ok
    finally:
        services.close()


def _fresh_sqlite(tmp_path: Path):
    counter = iter(range(1_000))

    def factory() -> Services:
        n = next(counter)
        return sqlite_services(tmp_path / str(n), f"sqlite:///{tmp_path / f'{n}.db'}")

    return factory


def test_suite_fails_a_store_that_drops_events(tmp_path, monkeypatch):
    monkeypatch.setattr(_ledger, "append_events", lambda session, actor, pending, **how: [])
    services = sqlite_services(tmp_path, f"sqlite:///{tmp_path / 'broken.db'}")
    try:
        with pytest.raises(AssertionError, match="events of create_model"):
            check_model_round_trip(services)
    finally:
        services.close()
    with pytest.raises(AssertionError, match="events of"):
        check_metadata_store(_fresh_sqlite(tmp_path))


def test_expected_failure_that_passes_is_reported(tmp_path):
    with pytest.raises(AssertionError, match="check_model_round_trip passed but is listed"):
        check_metadata_store(
            _fresh_sqlite(tmp_path), expected_failures={"check_model_round_trip": "not yet"}
        )


def test_parametrize_gives_one_item_per_backend_and_check():
    mark = parametrize_with_store_checks(
        {"a": sqlite_services, "b": postgres_services},
        expected_failures={"b": {"check_tokens": "no tokens on b"}},
    ).mark
    params = mark.args[1]
    ids = [p.id for p in params]
    assert len(ids) == 2 * len(STORE_CHECKS) == len(set(ids))
    assert "a-check_filters" in ids
    assert "b-check_tokens" in ids
    xfailed = [p.id for p in params if p.marks]
    assert xfailed == ["b-check_tokens"]
