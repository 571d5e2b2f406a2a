"""A PostgreSQL write that read nothing before its end, run as one statement.

A registration whose model's last number and the ledger's tip this process predicts
(`_predictions`) reads nothing: its claim, rows and event are all left for the write's end. Sent
as nine statements in psycopg's pipeline (BEGIN, the guarded claim, the version, its metric, the
ledger's lock, a savepoint, the tip's check, the event, COMMIT), that end cost the client
0.6-0.9 ms of CPU and PostgreSQL's backend ~0.46 ms: psycopg sends each statement as it is
queued, with ~60 µs of Python around each, and the backend wakes for each. The same writes as
one statement with a common table expression per row, run in autocommit mode (so the statement
is its own transaction: no BEGIN, no COMMIT), cost 0.15 ms and 0.23 ms, 0.52 ms in all against
0.9-1.2 ms (raw psycopg on this kind of host, median of 500).

The statement::

    WITH w0 AS (UPDATE models ... RETURNING models.id),       -- a `must_change` statement
         write_checked AS (SELECT 1 / (count(*) = 1)::int AS ok FROM w0),
         w1 AS (INSERT INTO model_versions (...)
                SELECT ... FROM write_checked WHERE write_checked.ok = 1 RETURNING 1),
         w2 AS (INSERT INTO version_metrics (...) SELECT ... RETURNING 1),
         ledger_locked AS (SELECT pg_advisory_xact_lock(<key> + 0 * (write_checked.ok
                 + w1_written.n + w2_written.n)) AS locked
             FROM write_checked, (SELECT count(*) AS n FROM w1) AS w1_written,
                  (SELECT count(*) AS n FROM w2) AS w2_written),
         ledger_gate AS (SELECT 1 FROM ledger_locked,
             (SELECT ln(count(*)) AS there FROM events WHERE seq = ... AND hash = ...) AS tip,
             (SELECT pg_notify(...)) AS feed_notified
             WHERE tip.there IS NOT NULL)
    INSERT INTO events (...) SELECT ... FROM ledger_gate [UNION ALL SELECT ... FROM ledger_gate]

Within one statement PostgreSQL runs common table expressions in no set order, so the order is
made by what each one reads (a value nothing reads may not be computed at all): the rows are
selected from the claim's check, the lock's key adds 0 times the count of every part's rows, so
it is taken after all of them, and the events are selected from the gate, so after the lock.
That is the pipelined end's order (its statements, the lock, the events), and it must be: a
writer that took the ledger's lock before a model's row while another took that row before the
lock would deadlock (seen in the concurrency test while the order was left to the planner). The
checks fail as the pipelined end's do, with the same sqlstates: a claim that did not change
exactly one row divides by zero (22012, `_registry.stale_claim`), a tip no longer in the ledger
takes ln(0) (2201E), events chained onto a tip another writer moved collide with its events'
seq (23505): `_ledger.moved_tip`. Any of them rolls the whole statement back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from steward.store.sql._driver import Deferred, DriverStatement, driver_errors
from steward.store.sql._feed import FEED_CHANNEL
from steward.store.sql._ledger import INSERT_EVENTS, LEDGER_LOCK, PG_TIP_CHECKED, PG_TIP_THERE

# More rows than this go the pipelined way: one common table expression per row is planned per
# row, and a statement per shape is cached (here and prepared by psycopg).
MAX_ROWS = 32
_MAX_SHAPES = 256
_NAMED = re.compile(r"%\((\w+)\)s")
_VALUES = " VALUES ("


@dataclass(frozen=True)
class _Shape:
    sql: str
    # Per deferred statement and row, the function binding its parameters (named as in its
    # own SQL); then the events'.
    binders: tuple[Any, ...]
    event_binder: Any


_shapes: dict[tuple[Any, ...], _Shape] = {}


def can_run(later: Sequence[Deferred]) -> bool:
    """Whether the statements left for a write's end can go into its one statement: INSERTs
    (new rows, which no other statement of the write touches) and at most one `must_change`
    statement (two could change one row, which one statement cannot do twice), with
    `MAX_ROWS` rows at most."""
    checks = sum(len(rows) for statement, rows in later if statement.must_change)
    return (
        checks <= 1
        and all(statement.must_change or statement.is_insert for statement, _ in later)
        and sum(len(rows) for _, rows in later) <= MAX_ROWS
    )


@dataclass(frozen=True)
class OneStatement:
    """A write's end as one statement: its SQL (named parameters) and their values."""

    sql: str
    parameters: dict[str, Any]


def one_statement(
    dialect: Dialect,
    later: Sequence[Deferred],
    events: Sequence[Mapping[str, Any]],
    tip: tuple[int, str],
    notification: str | None,
) -> OneStatement:
    """``later`` and the insert of ``events`` (chained onto ``tip``, the predicted ledger tip)
    as one statement, to run in autocommit mode: committed when it returns, nothing written
    when it raises. ``notification``: the feed's payload, sent at commit; None for none."""
    shape = _shape(dialect, later, len(events), notification is not None)
    parameters: dict[str, Any] = {"tip_seq": tip[0], "tip_hash": tip[1]}
    if notification is not None:
        parameters["feed_channel"], parameters["feed_payload"] = FEED_CHANNEL, notification
    for position, (_, row) in enumerate(_in_order(later)):
        _prefixed(parameters, f"w{position}_", shape.binders[position](row))
    for number, event in enumerate(events):
        _prefixed(parameters, f"e{number}_", shape.event_binder(event))
    return OneStatement(shape.sql, parameters)


def run(connection: Connection, statement: OneStatement) -> None:
    """Run ``statement`` on ``connection`` (its driver's, in autocommit mode)."""
    driver: Any = connection.connection.driver_connection
    with driver_errors(connection, statement.sql, statement.parameters):
        driver.execute(statement.sql, statement.parameters)


def _prefixed(into: dict[str, Any], prefix: str, bound: Mapping[str, Any]) -> None:
    for name, value in bound.items():
        into[prefix + name] = value


def _shape(dialect: Dialect, later: Sequence[Deferred], events: int, notifies: bool) -> _Shape:
    key = (tuple((id(statement), len(rows)) for statement, rows in later), events, notifies)
    found = _shapes.get(key)
    if found is None:
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        found = _shapes[key] = _build(dialect, later, events, notifies)
    return found


def _build(dialect: Dialect, later: Sequence[Deferred], events: int, notifies: bool) -> _Shape:
    ctes: list[str] = []
    binders: list[Any] = []
    # What the lock is taken after: a table each, and the sum that reads them all (PostgreSQL
    # drops a subquery's output that nothing reads, and the work that made it), times 0.
    done: list[str] = []
    counted: list[str] = []
    for statement, _ in _in_order(later):
        name = f"w{len(binders)}"
        sql, binder = statement.rendered(dialect)
        binders.append(binder)
        if statement.must_change:
            ctes.append(f"{name} AS ({_renamed(sql, name + '_')})")
            ctes.append(f"write_checked AS (SELECT 1 / (count(*) = 1)::int AS ok FROM {name})")
            done.append("write_checked")
            counted.append("write_checked.ok")
            continue
        if done and done[0] == "write_checked":  # the rows follow from the check (ok is 1)
            sql = _selected_from(sql, "write_checked WHERE write_checked.ok = 1")
        else:
            sql = f"{sql} RETURNING 1"
        ctes.append(f"{name} AS ({_renamed(sql, name + '_')})")
        done.append(f"(SELECT count(*) AS n FROM {name}) AS {name}_written")
        counted.append(f"{name}_written.n")
    after = f" + 0 * ({' + '.join(counted)})" if counted else ""
    lock = LEDGER_LOCK.format(after=after)
    ctes.append(f"ledger_locked AS (SELECT {lock} AS locked{_from(done)})")
    gate = f"ledger_locked, {PG_TIP_THERE}"
    if notifies:
        gate += ", (SELECT pg_notify(%(feed_channel)s, %(feed_payload)s)) AS feed_notified"
    ctes.append(f"ledger_gate AS (SELECT 1 FROM {gate} WHERE {PG_TIP_CHECKED})")
    insert, event_binder = INSERT_EVENTS.rendered(dialect)
    head, values = _split_insert(insert)
    selects = " UNION ALL ".join(
        f"SELECT {_renamed(values, f'e{number}_')} FROM ledger_gate" for number in range(events)
    )
    sql = f"WITH {', '.join(ctes)} {head} {selects}"
    return _Shape(sql, tuple(binders), event_binder)


def _in_order(later: Sequence[Deferred]) -> list[tuple[DriverStatement, Mapping[str, Any]]]:
    """Each row with its statement, as the statement runs them: the `must_change` one first."""
    ordered = sorted(later, key=lambda deferred: not deferred[0].must_change)
    return [(statement, row) for statement, rows in ordered for row in rows]


def _selected_from(insert: str, source: str) -> str:
    """A one-row ``INSERT ... VALUES (...)`` with RETURNING, its row selected from ``source``
    (so it is written after that is made)."""
    head, values = _split_insert(insert)
    return f"{head} SELECT {values} FROM {source} RETURNING 1"


def _split_insert(insert: str) -> tuple[str, str]:
    """``INSERT INTO t (columns)`` and the expressions of its one row of VALUES."""
    head, values = insert.split(_VALUES)
    assert values.endswith(")"), insert
    return head, values[:-1]


def _from(items: list[str]) -> str:
    return f" FROM {', '.join(items)}" if items else ""


def _renamed(sql: str, prefix: str) -> str:
    """``sql`` with each named parameter ``%(name)s`` renamed ``%(<prefix>name)s``."""
    return _NAMED.sub(lambda found: f"%({prefix}{found.group(1)})s", sql)


__all__ = ["MAX_ROWS", "OneStatement", "can_run", "one_statement", "run"]
