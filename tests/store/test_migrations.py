"""The Alembic tree: one head, upgrade from empty, downgrade and back, no drift from the tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from steward.store.sql import migrate
from steward.store.sql._tracking import insert_points
from steward.store.sql.engine import build_engine
from steward.store.sql.tables import Base

TABLES = set(Base.metadata.tables)


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    engine = build_engine(backend_url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_single_head():
    script = ScriptDirectory.from_config(migrate.alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"the migration tree has several heads: {heads}"
    assert heads[0] == migrate.head_revision()
    bases = script.get_bases()
    assert len(bases) == 1, f"the migration tree has several bases: {bases}"


def test_upgrade_from_empty_to_head(engine):
    assert _tables(engine) == set()
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _tables(engine) == TABLES


def test_ensure_current_migrates_once(engine):
    migrate.ensure_current(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    migrate.ensure_current(engine)  # already at head: nothing to do, nothing fails
    assert _tables(engine) == TABLES


def test_downgrade_to_base_and_upgrade_again(engine):
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert _tables(engine) == set()
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _tables(engine) == TABLES
    assert _diff(engine) == []


def test_every_step_downgrades_and_upgrades(engine):
    """Walk the tree one revision at a time, down and up, so each step's downgrade is tested."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [r.revision for r in script.walk_revisions("base", "heads")]  # newest first
    migrate.upgrade(engine)
    for revision in revisions:
        migrate.downgrade(engine, "-1")
        assert migrate.current_revision(engine) != revision
    assert _tables(engine) == set()
    for revision in reversed(revisions):
        migrate.upgrade(engine, "+1")
        assert migrate.current_revision(engine) == revision


def test_no_diff_between_migrations_and_tables(engine):
    migrate.upgrade(engine)
    assert _diff(engine) == []


def test_diff_detects_a_missing_migration(engine):
    """The drift check above can fail: a column the migrations lack shows up in the diff."""
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE tokens ADD COLUMN note VARCHAR(10)")
    diff = _diff(engine)
    assert any(op[0] == "remove_column" and op[3].name == "note" for op in diff), diff


def test_metric_rows_get_their_versions_place_when_upgraded_to_0004(engine):
    """0004 fills the model name and version number of metric rows written before it."""
    migrate.upgrade(engine, "0003")
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO models (id, name, owner, risk_tier, card, latest_version, created_at,"
            f" created_by, updated_at) VALUES ('m1', 'credit', 'o', 1, '{{}}', 2, '{now}', 'o',"
            f" '{now}')"
        )
        for number in (1, 2):
            connection.exec_driver_sql(
                "INSERT INTO model_versions (id, model_id, version, flavor, files, primary_file,"
                " params, metrics, tags, lineage, status, trusted, created_at, created_by)"
                f" VALUES ('v{number}', 'm1', {number}, 'python', '{{}}', 'model.pkl', '{{}}',"
                f" '{{}}', '{{}}', '{{}}', 'registered', false, '{now}', 'o')"
            )
            connection.exec_driver_sql(
                "INSERT INTO version_metrics (version_id, key, value)"
                f" VALUES ('v{number}', 'auc', 0.{number})"
            )
    migrate.upgrade(engine)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT version_id, model_name, version FROM version_metrics ORDER BY version_id"
        ).all()
    assert [tuple(r) for r in rows] == [("v1", "credit", 1), ("v2", "credit", 2)]


def _segment_compression(engine: Engine) -> dict[str, str]:
    """Each segment column's compression method as declared ('' for the server's default)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT attname, attcompression FROM pg_attribute"
            " WHERE attrelid = 'run_metric_segments'::regclass"
            " AND attname IN ('steps', 'values', 'timestamps')"
        ).all()
    return {name: str(method) for name, method in rows}


@pytest.mark.postgres
def test_metric_segments_are_compressed_with_lz4_on_postgresql(postgres_url: str) -> None:
    """0008 declares lz4 for a segment's columns, so a batch's segment is stored with it; its
    downgrade gives them back to the server's default."""
    engine = build_engine(postgres_url)
    try:
        migrate.upgrade(engine, "0007")
        assert set(_segment_compression(engine).values()) == {""}
        migrate.upgrade(engine)
        assert _segment_compression(engine) == {"steps": "l", "values": "l", "timestamps": "l"}
        now = datetime(2026, 11, 29, tzinfo=UTC)
        with Session(engine) as session, session.begin():
            session.execute(
                text(
                    "INSERT INTO runs (id, name, project, status, params, tags, started_at,"
                    " created_by) VALUES ('r1', 'r', 'p', 'running', '{}', '{}', :now, 'o')"
                ),
                {"now": now},
            )
            insert_points(session, "r1", [("loss", 1.0 / (i + 1), i, now) for i in range(1000)])
        with engine.connect() as connection:
            stored = connection.exec_driver_sql(
                "SELECT pg_column_compression(steps), pg_column_compression(timestamps)"
                " FROM run_metric_segments"
            ).one()
        assert tuple(stored) == ("lz4", "lz4")
        migrate.downgrade(engine, "0007")
        assert set(_segment_compression(engine).values()) == {""}
    finally:
        engine.dispose()
