"""The end of a write: statements left for commit, the ledger's events, COMMIT.

On PostgreSQL that end runs in psycopg's pipeline mode, where a statement's error arrives with
a later round trip; these check that such an error still fails the whole write with a typed
error, leaves nothing behind, and leaves the pooled connection fit for the next write.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from sqlalchemy import update
from tests.store.conftest import dangling_alias

from steward.errors import NotFound, StewardError
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.store.sql._driver import DriverStatement
from steward.store.sql.tables import AliasRow, ModelRow
from steward.wiring import Services

ALIASES: Any = AliasRow.__table__
MODELS: Any = ModelRow.__table__


def _version(services: Services, model: str) -> int:
    ref = services.registry.upload_artifact(pickle.dumps({"w": 1}))
    body = VersionCreate(flavor="python", files={"model.pkl": ref}, metrics={"auc": 0.9})
    return services.registry.create_version("tester", model, body).version


def _set_description(text: str) -> tuple[DriverStatement, list[dict[str, Any]]]:
    return DriverStatement(update(MODELS).values(description=text)), [{}]


def _write_refused_at_commit(services: Services) -> None:
    with services.store.write("tester") as tx:
        tx.execute_later([_set_description("changed"), dangling_alias()])
        tx.record("model.updated", "model", "m", {"description": "changed"})


def test_a_refused_statement_left_for_commit_undoes_the_whole_write(services: Services) -> None:
    services.registry.create_model("tester", ModelCreate(name="m"))
    before = services.audit.verify()
    for _ in range(2 * services.settings.database.pool_size):  # every pooled connection
        with pytest.raises(StewardError, match="refused the change"):
            _write_refused_at_commit(services)
    after = services.audit.verify()
    assert after.ok, after
    assert after.events_checked == before.events_checked  # no event of the failed writes
    assert services.registry.get_model("m").description is None  # nor their first statement
    # the connections went back to the pool fit for work: registrations and an alias move
    assert [_version(services, "m") for _ in range(3)] == [1, 2, 3]
    moved = services.registry.set_alias("tester", "m", "champion", 2)
    assert moved.version == 2
    assert services.registry.set_alias("tester", "m", "champion", 3).version == 3
    assert services.audit.verify().ok


def test_statements_left_for_commit_run_in_order_before_the_events(services: Services) -> None:
    services.registry.create_model("tester", ModelCreate(name="m"))
    with services.store.write("tester") as tx:
        tx.execute_later([_set_description("first"), _set_description("second")])
        tx.record("model.updated", "model", "m", {"description": "second"})
    assert services.registry.get_model("m").description == "second"
    (event,) = services.audit.list_events(kind="model.updated").items
    assert event.payload == {"description": "second"}
    assert services.audit.verify().ok


def test_an_alias_moved_and_a_version_registered_are_read_back(services: Services) -> None:
    """The two writes whose rows wait for commit: what they return is what was stored."""
    services.registry.create_model("tester", ModelCreate(name="m"))
    first, second = _version(services, "m"), _version(services, "m")
    assert services.registry.set_alias("tester", "m", "champion", first).version == first
    moved = services.registry.set_alias("tester", "m", "champion", second)
    assert services.registry.get_version("models:/m@champion").version == second == moved.version
    stored = services.registry.get_version(f"models:/m/{second}")
    assert (stored.metrics, stored.aliases) == ({"auc": 0.9}, ["champion"])
    (event,) = [e for e in services.audit.list_events(kind="alias.set").items
                if e.payload["version"] == second]  # fmt: skip
    assert event.payload["previous_version"] == first
    # an existing alias towards a version that does not exist: refused, left where it was
    with pytest.raises(NotFound, match="version 9"):
        services.registry.set_alias("tester", "m", "champion", 9)
    assert services.registry.get_version("models:/m@champion").version == second
    with pytest.raises(NotFound):
        services.registry.set_alias("tester", "no-such-model", "champion", 1)


def test_an_error_arriving_with_the_commit_is_typed_and_undoes_the_write(
    postgres_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a statement queued after the ledger's tip fails only when the pipeline's
    last Sync brings its answer back, with the COMMIT."""
    from tests.conftest import make_services

    from steward.store.sql import _feed

    services = make_services(tmp_path / "home", postgres_url)
    try:
        services.registry.create_model("tester", ModelCreate(name="m"))
        before = services.audit.verify()
        notify = _feed.notify

        def notify_then_fail(session: Any, events: Any) -> None:
            notify(session, events)
            session.connection().connection.driver_connection.execute("SELECT 1 / 0")

        monkeypatch.setattr(_feed, "notify", notify_then_fail)
        with pytest.raises(StewardError, match="division by zero"):
            _version(services, "m")
        monkeypatch.setattr(_feed, "notify", notify)
        after = services.audit.verify()
        assert (after.ok, after.events_checked) == (True, before.events_checked)
        assert services.registry.get_model("m").latest_version is None
        assert [_version(services, "m") for _ in range(2)] == [1, 2]
    finally:
        services.close()


# -- the transaction's start: on PostgreSQL, BEGIN sent with the first statement ---------------


class _Abandoned(Exception):
    """Raised inside a write to abandon it."""


def _claim_then_abandon(services: Services) -> None:
    from steward.store.sql import _registry

    with services.store.write("tester") as tx:
        _registry.claim_version_number(tx.session, "m")  # a DriverStatement
        raise _Abandoned


def _orm_update_then_abandon(services: Services) -> None:
    with services.store.write("tester") as tx:
        tx.update_model("m", {"description": "abandoned"}, None)  # SQLAlchemy's statements
        raise _Abandoned


def _abandon_before_any_statement(services: Services) -> None:
    with services.store.write("tester"):
        raise _Abandoned


@pytest.mark.parametrize(
    "abandon", [_claim_then_abandon, _orm_update_then_abandon, _abandon_before_any_statement]
)
def test_an_abandoned_write_keeps_nothing_of_its_first_statements(
    services: Services, abandon: Any
) -> None:
    """On PostgreSQL a write's connection is in autocommit mode and the write sends its own
    BEGIN with its first statement, whoever runs it: were it not sent, that statement would
    have committed on its own."""
    services.registry.create_model("tester", ModelCreate(name="m"))
    before = services.audit.verify()
    for _ in range(2 * services.settings.database.pool_size):  # every pooled connection
        with pytest.raises(_Abandoned):
            abandon(services)
    model = services.registry.get_model("m")
    assert (model.latest_version, model.description) == (None, None)
    assert services.audit.verify().events_checked == before.events_checked
    # and the connections went back to the pool fit for reads and writes
    assert [_version(services, "m") for _ in range(3)] == [1, 2, 3]
    assert services.registry.list_versions(model="m").items[0].version == 3
    assert services.audit.verify().ok


def test_no_begin_is_left_pending_on_a_pooled_connection(postgres_services: Services) -> None:
    from sqlalchemy.orm import Session

    from steward.store.sql._driver import take_pending_begin

    store: Any = postgres_services.store
    postgres_services.registry.create_model("tester", ModelCreate(name="m"))
    for abandon in (_abandon_before_any_statement, _claim_then_abandon):
        with pytest.raises(_Abandoned):
            abandon(postgres_services)
        _version(postgres_services, "m")
        with Session(store.engine) as session:  # the pool hands out its most recent first
            assert not take_pending_begin(session.connection())
