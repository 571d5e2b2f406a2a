"""`DriverStatement`: a Core statement run on the driver's connection, as SQLAlchemy would run it.

Checked on each backend against SQLAlchemy's own execution of the same statements: the values
stored through the columns' bind processors (JSON, UTC timestamps, booleans), the literals a
statement carries itself, and driver errors wrapped as SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from steward.store.sql._driver import DriverStatement
from steward.store.sql.engine import build_engine
from steward.store.sql.tables import UTCDateTime

METADATA = MetaData()
THINGS = Table(
    "driver_things", METADATA,
    Column("id", String(36), primary_key=True),
    Column("payload", JSON),
    Column("at", UTCDateTime),
    Column("flag", Boolean),
    Column("n", Integer),
)  # fmt: skip
WITH_DEFAULT = Table(
    "driver_defaults", METADATA,
    Column("id", String(36), primary_key=True),
    Column("n", Integer, default=7),
)  # fmt: skip

INSERT = DriverStatement(insert(THINGS), keys=["id", "payload", "at", "flag", "n"])
ABOVE = DriverStatement(
    select(THINGS.c.id, THINGS.c.n)
    .where(THINGS.c.n > bindparam("low"))
    .order_by(THINGS.c.n)
    .limit(2)
)
BUMP = DriverStatement(
    update(THINGS).where(THINGS.c.id == bindparam("b_id")).values(n=THINGS.c.n + 10)
)
AT = datetime(2026, 11, 28, 12, 30, 5, 123456, tzinfo=UTC)


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    built = build_engine(backend_url)
    METADATA.create_all(built)
    yield built
    METADATA.drop_all(built)
    built.dispose()


def _row(i: int) -> dict[str, Any]:
    return {"id": f"t{i}", "payload": {"k": [i, "é"], "none": None}, "at": AT, "flag": i % 2 == 0,
            "n": i}  # fmt: skip


def test_rows_written_read_back_as_sqlalchemy_writes_them(engine: Engine) -> None:
    with engine.begin() as connection:
        INSERT.execute(connection, _row(0))
        INSERT.executemany(connection, [_row(1), _row(2), _row(3)])
        connection.execute(insert(THINGS), [{**_row(4), "id": "reference"}])
    with engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(THINGS))}
    reference = rows.pop("reference")
    assert set(rows) == {"t0", "t1", "t2", "t3"}
    for i in range(4):
        row = rows[f"t{i}"]
        assert row.payload == {"k": [i, "é"], "none": None} == reference.payload | {"k": [i, "é"]}
        assert row.at == AT == reference.at
        assert row.flag is (i % 2 == 0)
        assert row.n == i


def test_literals_of_the_statement_and_bound_parameters(engine: Engine) -> None:
    with engine.begin() as connection:
        INSERT.executemany(connection, [_row(i) for i in range(5)])
        assert ABOVE.execute(connection, {"low": 1}).fetchall() == [("t2", 2), ("t3", 3)]
        BUMP.execute(connection, {"b_id": "t0"})
        assert ABOVE.execute(connection, {"low": 3}).fetchall() == [("t4", 4), ("t0", 10)]


def test_a_missing_parameter_is_named(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(KeyError, match="low"):
        ABOVE.execute(connection, {})


def test_an_insert_must_give_the_columns_with_python_defaults(engine: Engine) -> None:
    partial = DriverStatement(insert(WITH_DEFAULT), keys=["id"])
    with engine.begin() as connection, pytest.raises(ValueError, match="n has a Python-side"):
        partial.execute(connection, {"id": "x"})


def test_a_refused_row_raises_sqlalchemys_error(engine: Engine) -> None:
    with engine.connect() as connection:
        INSERT.execute(connection, _row(0))
        with pytest.raises(IntegrityError):
            INSERT.execute(connection, _row(0))
        connection.rollback()
