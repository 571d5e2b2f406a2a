"""PostgreSQL writes built on what the process last saw (steward.store.sql._predictions).

A registration predicts its model's next number and the ledger's tip, and the database checks
both. Two `Services` on one database stand for two server processes: each one's writes make
the other's predictions stale, which must cost a round trip, never a wrong number, a lost
write or a forked chain.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from tests.conftest import make_services

from steward.schemas.registry import ModelCreate, VersionCreate
from steward.store.sql import _ledger, _registry
from steward.store.sql._predictions import LEDGER, Predictions, TrackRecord
from steward.wiring import Services

ROUNDS = 12  # past psycopg's prepare threshold (5): prepared statements take part


@pytest.fixture
def two(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Services, Services]]:
    first = make_services(tmp_path / "home", postgres_url)
    second = make_services(tmp_path / "home", postgres_url)
    yield first, second
    first.close()
    second.close()


def _register(services: Services, model: str = "m") -> int:
    ref = services.registry.upload_artifact(pickle.dumps({"w": 1}))
    body = VersionCreate(flavor="python", files={"model.pkl": ref}, metrics={"auc": 0.9})
    return services.registry.create_version("tester", model, body).version


def _numbers(services: Services, model: str = "m") -> list[int]:
    return sorted(v.version for v in services.registry.list_versions(model=model).items)


def test_a_known_model_and_tip_are_not_read_again(
    two: tuple[Services, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    assert _register(first) == 1  # learns the model's number and the tip
    reads: list[str] = []
    claim, tip = _registry.claim_version_number, _ledger._locked_tip

    def counted(name: str, real: Any) -> Any:
        def call(*args: Any) -> Any:
            reads.append(name)
            return real(*args)

        return call

    monkeypatch.setattr(_registry, "claim_version_number", counted("claim", claim))
    monkeypatch.setattr(_ledger, "_locked_tip", counted("tip", tip))
    assert [_register(first) for _ in range(3)] == [2, 3, 4]
    assert reads == []
    assert first.audit.verify().ok


def test_registrations_from_two_processes_take_distinct_numbers_in_order(
    two: tuple[Services, Services],
) -> None:
    first, second = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    got = []
    for _ in range(ROUNDS):
        # each one's registration makes the other's predicted number and tip stale
        got += [_register(first), _register(first), _register(second)]
    assert got == list(range(1, 3 * ROUNDS + 1))
    assert _numbers(first) == got
    report = first.audit.verify()
    assert report.ok, report
    assert second.audit.verify().events_checked == report.events_checked


def test_a_moved_tip_is_chained_onto_by_writes_of_every_kind(
    two: tuple[Services, Services],
) -> None:
    first, second = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    for _ in range(2):
        _register(first)
    before = first.audit.verify().events_checked
    for i in range(ROUNDS):
        first.registry.set_alias("a", "m", "live", 1 + i % 2)
        first.registry.set_alias("a", "m", "live", 2 - i % 2)
        second.registry.set_alias("b", "m", "other", 1 + i % 2)
    report = second.audit.verify()
    assert report.ok, report
    assert report.events_checked == before + 3 * ROUNDS
    aliases = first.registry.get_model("m").aliases
    assert aliases == {"live": 2 - (ROUNDS - 1) % 2, "other": 1 + (ROUNDS - 1) % 2}


def test_a_process_that_keeps_guessing_wrong_stops_guessing(
    two: tuple[Services, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes taking turns: what each remembers is always stale, and a miss costs more
    round trips than a hit saves, so they soon read instead, and start again when alone."""
    first, second = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    _register(first)
    predicted: list[int] = []
    lock_and_mark = _ledger.lock_and_mark

    def counted(connection: Any, tip: Any) -> None:
        predicted.append(1)
        lock_and_mark(connection, tip)

    monkeypatch.setattr(_ledger, "lock_and_mark", counted)
    for _ in range(ROUNDS):
        first.registry.set_alias("a", "m", "live", 1)
        second.registry.set_alias("b", "m", "other", 1)
    assert len(predicted) <= 6  # each guessed at first, then stopped
    predicted.clear()
    for _ in range(2 * ROUNDS):  # first alone: every tip it reads is the one it remembers
        first.registry.set_alias("a", "m", "live", 1)
    assert ROUNDS <= len(predicted) < 2 * ROUNDS  # trusted again after a few hits
    assert first.audit.verify().ok


def test_a_track_record_trusts_a_hit_rate_worth_a_miss() -> None:
    record = TrackRecord()
    assert record.trusted
    record.observe(False)
    assert record.trusted  # one miss: still worth it
    record.observe(False)
    assert not record.trusted
    for _ in range(10):  # taking turns with another writer: right half the time
        record.observe(True)
        record.observe(False)
    assert not record.trusted
    for _ in range(3):
        record.observe(True)
    assert not record.trusted
    record.observe(True)  # four in a row
    assert record.trusted


def test_a_ledger_set_back_under_a_running_server_is_chained_onto_where_it_is(
    two: tuple[Services, Services],
) -> None:
    """A database restored to an earlier state: the tip this process remembers is gone. The
    next event must chain onto the tip that is there, not leave a gap after it."""
    first, _ = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    for _ in range(3):
        _register(first)  # remembers the third registration's event as the tip
    with first.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)"))
    first.registry.set_alias("tester", "m", "live", 1)
    report = first.audit.verify()
    assert report.ok, report
    assert report.events_checked == 4  # the model, two registrations left, the alias: no gap


def test_a_model_made_again_under_its_name_is_claimed_afresh(
    two: tuple[Services, Services],
) -> None:
    """The prediction names the model's row by id: a row made since under the same name (by
    another process) does not take numbers meant for the old one."""
    first, second = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    assert _register(first) == 1
    # another process renames the model away and makes a new one with the old name
    with second.store.write("admin") as tx:
        tx.update_model("m", {"name": "m-old"}, None)
    second.registry.create_model("tester", ModelCreate(name="m"))
    assert _register(second) == 1  # the new model's last number is the one first expects
    assert _register(first) == 2  # the new model's second version, not the old one's
    assert _numbers(first, "m") == [1, 2]
    assert _numbers(first, "m-old") == [1]
    assert first.audit.verify().ok


def test_a_failed_write_teaches_nothing(
    two: tuple[Services, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = two
    first.registry.create_model("tester", ModelCreate(name="m"))
    _register(first)
    predictions = first.store._predictions
    assert predictions is not None
    tip, claim = predictions.tip.remembered(LEDGER), predictions.claims.remembered("m")

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the write's end failed")

    with monkeypatch.context() as patched:
        patched.setattr(_ledger, "chained", refused)
        with pytest.raises(RuntimeError):
            _register(first)
    assert (predictions.tip.remembered(LEDGER), predictions.claims.remembered("m")) == (tip, claim)
    assert _register(first) == 2
    assert first.audit.verify().ok


def test_predictions_keep_the_newest_they_learn() -> None:
    predictions = Predictions()
    tip, claims = predictions.tip, predictions.claims
    assert (tip.predicted(LEDGER), claims.predicted("m")) == (None, None)
    tip.learn(LEDGER, (5, "h5"))
    tip.learn(LEDGER, (4, "h4"))  # a thread that committed earlier, reporting late
    assert tip.predicted(LEDGER) == (5, "h5")
    claims.learn("m", ("id-1", 3))
    claims.learn("m", ("id-1", 2))
    assert claims.predicted("m") == ("id-1", 3)
    claims.learn("m", ("id-2", 1))  # another model under the name: its own numbers
    assert claims.predicted("m") == ("id-2", 1)
    for _ in range(2):
        claims.observe(("id-2", 1), ("id-2", 2))  # remembered, then found moved: twice
    assert claims.predicted("m") is None  # not trusted: read instead
    assert claims.remembered("m") == ("id-2", 1)
    claims.forget("m")
    tip.forget(LEDGER)
    assert (tip.remembered(LEDGER), claims.remembered("m")) == (None, None)


def test_sqlite_predicts_nothing(sqlite_services: Services) -> None:
    assert sqlite_services.store._predictions is None
