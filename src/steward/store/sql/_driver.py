"""Core statements run on the database driver's own connection, compiled once per dialect.

The write hot path (registering a version, moving an alias, chaining the ledger's events) runs
a handful of short statements. Through SQLAlchemy's ``Connection.execute`` each cost ~30 µs of
Python (its execution context, parameter processing, result set-up) where SQLite's own work is
~10 µs (measured on a registration, 0.57 ms in all). A `DriverStatement` does what that layer
does, once: SQLAlchemy's compiler renders the SQL for the connection's dialect, parameters go
through the columns' own bind processors (JSON, UTC timestamps, booleans), and driver errors
are wrapped as SQLAlchemy wraps them, so callers and the store's error translation see the same
exceptions. It runs inside the caller's transaction, on the same connection.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Integer, cast, func, literal, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

_MISSING: Any = object()


@dataclass(frozen=True)
class _Parameter:
    name: str  # as the SQL names it
    key: str  # as the caller's parameters name it
    literal: Any  # the value the statement itself gives (a LIMIT, a `+ 1`), else _MISSING
    process: Callable[[Any], Any] | None  # the column type's bind processor


@dataclass(frozen=True)
class _Compiled:
    sql: str
    parameters: tuple[_Parameter, ...]  # in the order a positional driver takes them
    positional: bool


class DriverStatement:
    """A Core statement, executed on the DBAPI connection under ``connection``'s transaction.

    ``keys``: the columns an INSERT is given (each call gives all of them, so no Python-side
    column default is left for SQLAlchemy to fill: a column with one must be among them).

    ``must_change``: for an INSERT, UPDATE or DELETE with RETURNING (PostgreSQL) that must change
    exactly one row or fail the transaction. It runs as ``WITH changed AS (dml) SELECT 1 /
    (count(*) = 1)::int FROM changed``: a division by zero (sqlstate 22012) otherwise.
    """

    def __init__(
        self, statement: Any, *, keys: Sequence[str] | None = None, must_change: bool = False
    ) -> None:
        self.statement = statement
        self.keys = None if keys is None else list(keys)
        self.must_change = must_change
        # What a one-statement write takes as a common table expression (`rendered`).
        self._dml = DriverStatement(statement, keys=keys) if must_change else self
        if must_change:
            changed_one = cast(func.count() == 1, Integer)
            statement = select(literal(1) // changed_one).select_from(statement.cte("changed"))
            self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    @property
    def is_insert(self) -> bool:
        """An INSERT (with no `must_change` check)."""
        return isinstance(self._dml.statement, Insert) and not self.must_change

    def rendered(
        self, dialect: Dialect
    ) -> tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        """The statement itself (a write without its `must_change` check) as this dialect's SQL
        with named parameters, and the function that binds a call's parameters to them: for a
        caller that runs it elsewhere (in one statement with others, on an async connection)."""
        compiled = self._dml._for(dialect)
        assert not compiled.positional, "named parameters only (psycopg's pyformat)"
        return compiled.sql, functools.partial(_bound, compiled)

    def execute(self, connection: Connection, parameters: Mapping[str, Any]) -> Any:
        """Run once; the driver's cursor, to fetch a RETURNING row from."""
        compiled = self._for(connection.dialect)
        return self._run(connection, compiled, "execute", _bound(compiled, parameters))

    def executemany(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        compiled = self._for(connection.dialect)
        self._run(connection, compiled, "executemany", [_bound(compiled, row) for row in rows])

    def execute_rows(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row: one ``execute`` for a single row (the usual case), which costs the
        driver less than an ``executemany`` of one."""
        if len(rows) == 1:
            self.execute(connection, rows[0])
        else:
            self.executemany(connection, rows)

    def _run(self, connection: Connection, compiled: _Compiled, method: str, bound: Any) -> Any:
        driver: Any = connection.connection.driver_connection
        cursor = driver.cursor()
        with driver_errors(connection, compiled.sql, bound):
            if take_pending_begin(connection):
                # One round trip for both: the pipeline's exit sends them with one Sync, and
                # the statement's rows are the cursor's once it has.
                with driver.pipeline():
                    driver.execute(BEGIN)
                    getattr(cursor, method)(compiled.sql, bound)
            else:
                getattr(cursor, method)(compiled.sql, bound)
        return cursor

    def _for(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        if isinstance(self.statement, Insert) and self.keys is not None:
            given = set(self.keys)
            for column in self.statement.table.columns:
                if column.key not in given and column.default is not None:
                    raise ValueError(f"{column.key} has a Python-side default; give it a value")
        compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
        if compiled.literal_execute_params or compiled.post_compile_params:
            # Values SQLAlchemy renders into the SQL at each execution (an IN list, a
            # ``literal_execute`` bind): SQL text, or an expanding parameter, is needed here.
            raise ValueError("a DriverStatement cannot render values at execution time")
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        names = compiled.positiontup if compiled.positional else list(binds)
        parameters = []
        for name in names or ():
            bind = binds[name]
            literal = bind.effective_value if bind.value is not None else _MISSING
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            parameters.append(_Parameter(name, bind.key, literal, process))
        return _Compiled(compiled.string, tuple(parameters), compiled.positional)


# A statement and the rows to run it with, left for a write's end (`execute_later`).
Deferred = tuple[DriverStatement, Sequence[Mapping[str, Any]]]

# A transaction's ends, as a PostgreSQL write sends them itself (`deferred_begin`).
BEGIN, COMMIT = b"BEGIN", b"COMMIT"
# In a PostgreSQL write's connection's info: the write's BEGIN is still to be sent, with the
# transaction's first statement (`deferred_begin`).
_BEGIN_PENDING = "steward.begin_pending"


@contextmanager
def deferred_begin(connection: Connection) -> Iterator[None]:
    """In the block, the transaction's BEGIN goes out with its first statement, not on its own.

    For a connection in autocommit mode whose transaction the caller manages (a PostgreSQL
    write). psycopg, managing it, sends BEGIN and waits for its answer before the first
    statement, even in pipeline mode: a round trip of its own, one of the four of a
    registration. Whoever runs the first statement takes the BEGIN with it
    (`take_pending_begin`): a `DriverStatement` in the same round trip, SQLAlchemy's execution
    just before it (the engine's ``before_cursor_execute``), the write's end in its pipeline.
    """
    info = connection.info  # the pooled connection's: cleared however the block ends
    info[_BEGIN_PENDING] = True
    try:
        yield
    finally:
        info.pop(_BEGIN_PENDING, None)


def begin_pending(connection: Connection) -> bool:
    """Whether nothing was sent yet in a `deferred_begin` block: BEGIN is still to be sent."""
    return bool(connection.info.get(_BEGIN_PENDING, False))


def take_pending_begin(connection: Connection) -> bool:
    """Whether BEGIN is still to be sent; from now on it is the caller's to send."""
    return bool(connection.info.pop(_BEGIN_PENDING, False))


def driver_errors(
    connection: Connection, sql: str, parameters: Any = None
) -> AbstractContextManager[None]:
    """The driver's errors raised in the block, wrapped as SQLAlchemy wraps them (an
    IntegrityError, an OperationalError...), so the store translates them like any other."""
    return wrapped_errors(connection.dialect.loaded_dbapi.Error, sql, parameters)


@contextmanager
def wrapped_errors(error_class: type[Exception], sql: str, parameters: Any) -> Iterator[None]:
    """`driver_errors` for a driver connection outside SQLAlchemy (an event loop's)."""
    try:
        yield
    except error_class as error:
        raise DBAPIError.instance(sql, parameters, error, error_class) from error


def driver_error(error: BaseException) -> Any:
    """The driver's own exception: ``error``, or the one SQLAlchemy wrapped in it (its
    ``sqlstate`` and ``diag`` name what PostgreSQL refused)."""
    return getattr(error, "orig", None) or error


class _NoEchoOfAbortedPipelines(logging.Filter):
    """psycopg logs "error ignored terminating <pipeline>: pipeline aborted" when an error was
    raised in a pipeline block and the block's exit finds the pipeline aborted by that same
    error: an echo of what the caller is given anyway (a write's ledger tip moved by another
    process, a refused row), which would fill a server's log with warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        echo = str(record.msg).startswith("error ignored terminating") and any(
            type(arg).__name__ == "PipelineAborted" for arg in args
        )
        return not echo


def quiet_aborted_pipelines() -> None:
    """Install `_NoEchoOfAbortedPipelines` on psycopg's logger, once."""
    psycopg_logger = logging.getLogger("psycopg")
    if not any(isinstance(f, _NoEchoOfAbortedPipelines) for f in psycopg_logger.filters):
        psycopg_logger.addFilter(_NoEchoOfAbortedPipelines())


def _bound(compiled: _Compiled, given: Mapping[str, Any]) -> Any:
    values = []
    for parameter in compiled.parameters:
        value = given.get(parameter.key, parameter.literal)
        if value is _MISSING:
            raise KeyError(f"no value for the statement's parameter {parameter.key!r}")
        values.append(value if parameter.process is None else parameter.process(value))
    if compiled.positional:
        return tuple(values)
    return {p.name: value for p, value in zip(compiled.parameters, values, strict=True)}


__all__ = [
    "BEGIN",
    "COMMIT",
    "Deferred",
    "DriverStatement",
    "begin_pending",
    "deferred_begin",
    "driver_error",
    "driver_errors",
    "quiet_aborted_pipelines",
    "take_pending_begin",
    "wrapped_errors",
]
