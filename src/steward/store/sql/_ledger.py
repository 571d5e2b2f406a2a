"""Appending to and reading the ledger inside a store transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from steward.domain.clock import utcnow
from steward.domain.entities import Event, VerifyReport
from steward.domain.ledger import GENESIS_HASH, event_hash
from steward.store.base import EventFilter
from steward.store.sql._convert import event_entity
from steward.store.sql._driver import DriverStatement, driver_error, driver_errors
from steward.store.sql.tables import EventRow

# Any fixed 64-bit number; PostgreSQL advisory locks are keyed by it.
_LEDGER_LOCK_KEY = 0x5354455741524431
# Built once: every write runs these, and building a statement per call cost more than
# executing it (measured on the registry's write path).
_EVENTS: Any = EventRow.__table__
_TIP = DriverStatement(
    select(_EVENTS.c.seq, _EVENTS.c.hash).order_by(_EVENTS.c.seq.desc()).limit(1)
)
INSERT_EVENTS = DriverStatement(insert(_EVENTS), keys=[c.key for c in _EVENTS.columns])
# The same tip on PostgreSQL, run by psycopg itself (see `_pg_lock_and_read_tip`).
_PG_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_PG_TIP = f"SELECT seq, hash FROM {_EVENTS.name} ORDER BY seq DESC LIMIT 1"
# Where a write whose events chain onto a predicted tip comes back to when the tip moved.
_PG_MARK = "SAVEPOINT steward_predicted_tip"
_PG_BACK_TO_MARK = "ROLLBACK TO SAVEPOINT steward_predicted_tip"
# The predicted tip must still be there: ln(0), an error with a code of its own (2201E), when
# the ledger no longer holds it (a database restored to an earlier state under this process).
_PG_TIP_THERE = (
    f"SELECT ln(count(*)) AS there FROM {_EVENTS.name} "
    "WHERE seq = %(tip_seq)s AND hash = %(tip_hash)s"
)
_TIP_GONE = "2201E"  # invalid_argument_for_logarithm
# The lock and the tip's check, for a write that ends in one statement (`_one_statement`).
# ``{after}``: an expression that adds 0 to the key, to take the lock after what it reads.
LEDGER_LOCK = f"pg_advisory_xact_lock({_LEDGER_LOCK_KEY}{{after}})"
PG_TIP_THERE = f"({_PG_TIP_THERE}) AS tip"
PG_TIP_CHECKED = "tip.there IS NOT NULL"  # read, so computed


@dataclass
class PendingEvent:
    kind: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any] = field(default_factory=dict)


def append_events(
    session: Session,
    actor: str,
    pending: list[PendingEvent],
    *,
    tip: tuple[int, str] | None = None,
) -> list[Event]:
    """Chain and insert ``pending``; called last in a transaction, just before commit.

    The lock is held from reading the chain's tip until commit, so two writers can never chain
    onto the same tip. SQLite already holds its write lock (BEGIN IMMEDIATE). ``tip``: the
    (seq, hash) to chain onto instead of reading it, after `lock_and_mark` (PostgreSQL), which
    has the database refuse the write when it is not the ledger's (`moved_tip`).
    """
    if not pending:
        return []
    rows = chained(actor, pending, _locked_tip(session) if tip is None else tip)
    INSERT_EVENTS.execute_rows(session.connection(), rows)
    return [Event(**row) for row in rows]


def chained(actor: str, pending: list[PendingEvent], tip: tuple[int, str]) -> list[dict[str, Any]]:
    """The events table's rows of ``pending``, chained onto ``tip`` (its seq and hash)."""
    seq, prev_hash = tip
    occurred_at = utcnow()
    rows: list[dict[str, Any]] = []
    for item in pending:
        seq += 1
        values: dict[str, Any] = {
            "seq": seq,
            "id": str(uuid.uuid4()),
            "occurred_at": occurred_at,
            "actor": actor,
            "kind": item.kind,
            "subject_type": item.subject_type,
            "subject_id": item.subject_id,
            "payload": item.payload,
            "prev_hash": prev_hash,
        }
        values["hash"] = prev_hash = event_hash(**values)
        rows.append(values)
    return rows


def _locked_tip(session: Session) -> tuple[int, str]:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        row = _pg_lock_and_read_tip(connection)
    else:
        # SQLite: BEGIN IMMEDIATE already holds the database's single write lock.
        row = _TIP.execute(connection, {}).fetchone()
    if row is None or row[0] is None:
        return 0, GENESIS_HASH
    return int(row[0]), str(row[1])


def _pg_lock_and_read_tip(connection: Connection) -> Any:
    """Take the ledger's lock, then read its tip: two statements in one round trip.

    Two statements, not one: under READ COMMITTED a statement reads the snapshot taken when it
    starts, so a tip read in the statement that waited for the lock would miss the events of
    the writer that held it, and chain onto a stale tip. The write's end runs in psycopg's
    pipeline mode (`SqlMetadataStore.write`): both go out with the statements queued before
    them, and reading the tip waits for them all at once; the server still runs them in
    order, the tip on a snapshot taken after the lock.
    """
    driver: Any = connection.connection.driver_connection  # the psycopg connection
    with driver_errors(connection, _PG_TIP):
        driver.execute(_PG_LOCK, (_LEDGER_LOCK_KEY,))
        return driver.execute(_PG_TIP).fetchone()


def lock_and_mark(connection: Connection, tip: tuple[int, str]) -> None:
    """PostgreSQL, before events chained onto a predicted ``tip``: take the ledger's lock, set a
    savepoint to come back to (`back_to_mark`; the lock outlives the way back), and check the
    tip is still in the ledger. A tip that is gone fails that check (`_PG_TIP_THERE`); one with
    events after it makes the events' sequence numbers collide with theirs."""
    driver: Any = connection.connection.driver_connection
    driver.execute(_PG_LOCK, (_LEDGER_LOCK_KEY,))
    driver.execute(_PG_MARK)
    driver.execute(_PG_TIP_THERE, {"tip_seq": tip[0], "tip_hash": tip[1]})


def back_to_mark(connection: Connection) -> None:
    """Undo what followed `lock_and_mark` (the events), keeping the lock and what preceded it,
    then make psycopg and the server forget every prepared statement.

    psycopg (3.3) counts a statement it prepares in a pipeline as prepared when it sends it,
    and keeps counting it so when the pipeline aborts before the server parsed it: its next
    use failed with "prepared statement does not exist" (seen in the concurrency tests). A
    ROLLBACK makes it forget them all; a ROLLBACK TO does not, reliably, so it is told here.
    Rare (another process wrote since this one's last write) and cheap: two round trips.
    """
    driver: Any = connection.connection.driver_connection
    driver.execute(_PG_BACK_TO_MARK)
    # No public call for it. Should a psycopg release move it, the server side is still
    # cleared, and tests/store/test_store_predictions.py fails on the next use of a statement.
    prepared = getattr(driver, "_prepared", None)
    if prepared is not None:
        prepared.clear()
    driver.execute("DEALLOCATE ALL")


def moved_tip(error: Exception) -> bool:
    """Whether ``error`` (the driver's, or SQLAlchemy's wrapping it) is events chained onto a
    tip that is no longer the ledger's: their seq taken by another writer's, or the tip gone."""
    error = driver_error(error)
    state, diag = getattr(error, "sqlstate", None), getattr(error, "diag", None)
    taken = state == "23505" and diag is not None and diag.table_name == _EVENTS.name
    return taken or state == _TIP_GONE


def _filtered(flt: EventFilter) -> Any:
    query = select(EventRow)
    for column, value in (
        (EventRow.kind, flt.kind),
        (EventRow.subject_type, flt.subject_type),
        (EventRow.subject_id, flt.subject_id),
        (EventRow.actor, flt.actor),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.since is not None:
        query = query.where(EventRow.occurred_at >= flt.since)
    if flt.until is not None:
        query = query.where(EventRow.occurred_at < flt.until)
    if flt.after_seq is not None:
        query = query.where(EventRow.seq > flt.after_seq)
    return query


def list_events(
    session: Session, flt: EventFilter, *, limit: int, offset: int, newest_first: bool
) -> list[Event]:
    order = EventRow.seq.desc() if newest_first else EventRow.seq.asc()
    query = _filtered(flt).order_by(order).limit(limit).offset(offset)
    return [event_entity(row) for row in session.scalars(query)]


def _iter_chain(session: Session, batch: int = 5000) -> Iterator[EventRow]:
    last = 0
    while True:
        rows = list(
            session.scalars(
                select(EventRow).where(EventRow.seq > last).order_by(EventRow.seq).limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify_chain(session: Session) -> VerifyReport:
    """Recompute every hash in order; report the first event that does not match."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for row in _iter_chain(session):
        reason = _broken_reason(row, expected_seq, expected_prev)
        if reason is not None:
            return VerifyReport(
                ok=False, events_checked=checked, first_broken_seq=row.seq, reason=reason
            )
        checked += 1
        expected_prev, expected_seq = row.hash, row.seq + 1
    return VerifyReport(ok=True, events_checked=checked)


def _broken_reason(row: EventRow, expected_seq: int, expected_prev: str) -> str | None:
    if row.seq != expected_seq:
        return f"event {expected_seq} is missing (the next one found is {row.seq})"
    if row.prev_hash != expected_prev:
        return "its prev_hash does not match the hash of the event before it"
    recomputed = event_hash(
        seq=row.seq,
        id=row.id,
        occurred_at=row.occurred_at,
        actor=row.actor,
        kind=row.kind,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload=dict(row.payload),
        prev_hash=row.prev_hash,
    )
    if recomputed != row.hash:
        return "its content does not match its hash (the row was changed after it was written)"
    return None
