"""A PostgreSQL write that read nothing before its end, run as one statement
(steward.store.sql._one_statement): what it writes, what it refuses, and when it is not used.

Statements are counted at psycopg's cursor, where every statement of a write passes (the
pipelined end's, SQLAlchemy's and the store's own).
"""

from __future__ import annotations

import pickle
from typing import Any

import psycopg
import pytest
from tests.store.conftest import dangling_alias, ledger_events

from steward.domain.deployments import FOLLOWED_EVENTS
from steward.errors import StewardError
from steward.schemas.registry import VersionCreate
from steward.schemas.tracking import RunCreate
from steward.store.sql import _one_statement
from steward.store.sql._driver import driver_error
from steward.store.sql._feed import FEED_CHANNEL
from steward.store.sql.tables import AliasRow
from steward.wiring import Services

pytestmark = pytest.mark.postgres
ALIASES: Any = AliasRow.__table__


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement psycopg's cursors run from now on."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query.decode() if isinstance(query, bytes) else str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    return sent


@pytest.fixture
def refusals(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The sqlstate of each one-statement write the database refused."""
    seen: list[str | None] = []
    real = _one_statement.run

    def watched(*args: Any, **kwargs: Any) -> None:
        try:
            real(*args, **kwargs)
        except Exception as error:
            seen.append(getattr(driver_error(error), "sqlstate", None))
            raise

    monkeypatch.setattr(_one_statement, "run", watched)
    return seen


def _register(services: Services, metrics: dict[str, float] | None = None) -> int:
    ref = services.registry.upload_artifact(pickle.dumps({"w": 1}))
    body = VersionCreate(
        flavor="python", files={"model.pkl": ref}, metrics=metrics or {"auc": 0.9},
        tags={"team": "fraud"},
    )  # fmt: skip
    return services.registry.create_version("tester", "m", body).version


def test_a_registration_whose_number_and_tip_are_predicted_is_one_statement(
    two_servers: tuple[Services, Services], statements: list[str]
) -> None:
    first, _ = two_servers
    assert _register(first) == 1  # reads the claim and the tip, and learns them
    statements.clear()
    assert _register(first, {"auc": 0.91, "f1": 0.8}) == 2
    (sent,) = statements
    assert sent.startswith("WITH ")
    assert "INSERT INTO events" in sent
    version = first.registry.get_version("models:/m/2")
    assert (version.metrics, version.tags) == ({"auc": 0.91, "f1": 0.8}, {"team": "fraud"})
    assert [v.version for v in first.registry.list_versions("metrics.f1 > 0.5").items] == [2]
    event = first.audit.list_events(kind="version.registered").items[-1]
    assert (event.subject_id, event.payload["metrics"]) == ("models:/m/2", version.metrics)
    assert ledger_events(first) == event.seq


def test_a_write_with_more_rows_than_one_statement_takes_is_pipelined_and_whole(
    two_servers: tuple[Services, Services], statements: list[str]
) -> None:
    first, _ = two_servers
    _register(first)
    statements.clear()
    many = {f"m{i}": float(i) for i in range(_one_statement.MAX_ROWS)}  # and the version's row
    assert _register(first, many) == 2
    assert len(statements) > 1
    assert first.registry.get_version("models:/m/2").metrics == many
    ledger_events(first)


def test_a_stale_claim_in_one_statement_writes_nothing_and_the_registration_runs_again(
    two_servers: tuple[Services, Services], refusals: list[str | None]
) -> None:
    first, second = two_servers
    assert _register(first) == 1
    assert _register(second) == 2  # what the first remembers of m is stale now
    before = ledger_events(first)
    assert _register(first) == 3
    assert refusals == ["22012"]  # the claim changed nothing: refused whole, then read
    assert sorted(v.version for v in first.registry.list_versions(model="m").items) == [1, 2, 3]
    assert ledger_events(first) == before + 1


def test_a_moved_tip_in_one_statement_is_chained_onto_where_it_is(
    two_servers: tuple[Services, Services], refusals: list[str | None], statements: list[str]
) -> None:
    first, second = two_servers
    _register(first)
    second.tracking.create_run("tester", RunCreate(name="elsewhere"))  # moves the ledger's tip
    assert _register(first) == 2
    assert refusals == ["23505"]  # the event's seq was taken: nothing written, then chained
    before = ledger_events(first)
    statements.clear()
    assert _register(first) == 3  # the tip learned again: one statement again
    assert len(statements) == 1
    assert ledger_events(first) == before + 1


def test_a_row_refused_in_one_statement_undoes_the_whole_write(
    two_servers: tuple[Services, Services], statements: list[str]
) -> None:
    first, _ = two_servers
    _register(first)
    before = ledger_events(first)
    dangling, rows = dangling_alias()

    def refused_write() -> None:
        with first.store.write("tester") as tx:
            tx.execute_later([(dangling, rows)])
            tx.record("alias.set", "model", "m", {"alias": "x"})

    for _ in range(2 * first.settings.database.pool_size):  # every pooled connection
        statements.clear()
        with pytest.raises(StewardError, match="refused the change"):
            refused_write()
        assert len(statements) == 1
    assert ledger_events(first) == before
    assert _register(first) == 2  # the connections went back fit for work


def test_one_statement_notifies_the_feed_at_commit(
    two_servers: tuple[Services, Services], statements: list[str]
) -> None:
    first, _ = two_servers
    _register(first)
    kind = sorted(FOLLOWED_EVENTS)[0]
    engine = first.store.engine
    _, params = engine.dialect.create_connect_args(engine.url)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {FEED_CHANNEL}")
        statements.clear()
        with first.store.write("tester") as tx:
            tx.record(kind, "deployment", "d", {})
        assert len(statements) == 1
        (note,) = list(listener.notifies(timeout=2, stop_after=1))
    (event,) = first.audit.list_events(kind=kind).items
    assert int(note.payload) == event.seq
    ledger_events(first)
