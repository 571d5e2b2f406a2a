"""PostgreSQL connection handling: idle connections are pinged, busy ones are not, reads take no
transaction, and a failure inside the ledger's pipelined lock is translated like any other."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from steward.errors import Unavailable
from steward.schemas.registry import ModelCreate
from steward.settings import Settings
from steward.store.sql import _ledger, engine
from steward.wiring import Services


def _services(home: Path, url: str) -> Services:
    return Services.from_settings(Settings(home=home, database={"url": url}))


@pytest.fixture
def services(postgres_services: Services) -> Services:
    return postgres_services


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pooled_backend_pid(services: Services) -> int:
    """The server process of the connection the pool hands out next (LIFO: the last one used)."""
    with services.store.engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(_libpq(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_an_idle_connection_that_died_is_replaced_before_use(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.0)  # every reuse counts as idle
    services = _services(tmp_path / "home", postgres_url)
    try:
        services.registry.create_model("admin", ModelCreate(name="m"))
        _terminate(postgres_url, _pooled_backend_pid(services))
        assert services.registry.get_model("m").name == "m"  # the ping found it dead
        assert _pooled_backend_pid(services) > 0
    finally:
        services.close()


def test_a_connection_used_moments_ago_is_not_pinged_and_fails_once(
    services: Services, postgres_url: str
) -> None:
    services.registry.create_model("admin", ModelCreate(name="m"))
    _terminate(postgres_url, _pooled_backend_pid(services))
    with pytest.raises(Unavailable, match="unavailable"):
        services.registry.get_model("m")
    # SQLAlchemy discarded the pool's connections on that failure: the next call reconnects.
    assert services.registry.get_model("m").name == "m"


def test_reads_run_outside_a_transaction(services: Services) -> None:
    with services.store.read() as rx:
        status = rx.session.connection().connection.driver_connection.info.transaction_status
        rx.ledger_tip()
        after = rx.session.connection().connection.driver_connection.info.transaction_status
    assert (status, after) == (psycopg.pq.TransactionStatus.IDLE,) * 2


def test_a_failure_in_the_ledger_lock_is_translated_and_leaves_the_store_usable(
    postgres_url: str, tmp_path: Path
) -> None:
    options = make_url(postgres_url).query.get("options", "")
    impatient = make_url(postgres_url).update_query_dict(
        {"options": f"{options} -c lock_timeout=100".strip()}
    )
    services = _services(tmp_path / "home", impatient.render_as_string(hide_password=False))
    try:
        with psycopg.connect(_libpq(postgres_url)) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (_ledger._LEDGER_LOCK_KEY,))
            with pytest.raises(Unavailable, match="lock timeout"):
                services.registry.create_model("admin", ModelCreate(name="blocked"))
            holder.rollback()
        services.registry.create_model("admin", ModelCreate(name="after"))
        assert [m.name for m in services.registry.list_models().items] == ["after"]
        assert services.audit.verify().ok
    finally:
        services.close()
