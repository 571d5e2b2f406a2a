"""Outcome events checked before they are written: rows one by one (pydantic-core, the same
``OutcomeIn`` the API reads JSON with), tables column by column (pyarrow compute, no per-row
Python). Every refusal names the event and its field (``outcomes.3.value``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from steward.domain.experiments import check_name
from steward.errors import InvalidInput
from steward.schemas import readable
from steward.schemas.experiments import MAX_OUTCOMES_PER_CALL, OutcomeIn, outcome_table
from steward.store.outcome_log import OUTCOME_COLUMNS, partition_count

# (outcome, day) pairs one call may touch: one file each.
MAX_PARTITIONS_PER_CALL = 1_000
_ROWS = TypeAdapter(list[OutcomeIn])
_TIME = pa.timestamp("us", tz="UTC")
_FIRST_US = pa.scalar(datetime.min.replace(tzinfo=UTC), _TIME).cast(pa.int64())
_LAST_US = pa.scalar(datetime.max.replace(tzinfo=UTC), _TIME).cast(pa.int64())


def validated_outcomes(data: object, now: datetime) -> pa.Table:
    """``data`` (rows, a table, a DataFrame or a .parquet/.csv path) as a table of
    OUTCOME_COLUMNS, every event checked: a valid outcome name, a finite value, exactly one of
    unit_id and request_id, a timestamp (default ``now``; without a zone: UTC)."""
    if isinstance(data, list | tuple):
        _check_count(len(data))
        table = _from_rows(list(data), now)
    else:
        given = outcome_table(data)
        _check_count(given.num_rows)
        table = _from_table(given, now)
    _check_partitions(table)
    return table


def _check_count(count: int) -> None:
    if count == 0:
        raise InvalidInput("No outcomes given: there is nothing to log.", field="outcomes")
    if count > MAX_OUTCOMES_PER_CALL:
        raise InvalidInput(
            f"{count:,} outcomes in one call; at most {MAX_OUTCOMES_PER_CALL:,} are logged at "
            "once. Split them into several calls.",
            field="outcomes",
        )


# -- rows ------------------------------------------------------------------------------------
def _from_rows(rows: list[Any], now: datetime) -> pa.Table:
    try:
        checked = _ROWS.validate_python(rows)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in ("outcomes", *first["loc"]))
        raise InvalidInput(
            f"The field {field!r} is invalid: {readable(first)}.", field=field
        ) from None
    columns: dict[str, list[Any]] = {name: [] for name in OUTCOME_COLUMNS.names}
    for i, row in enumerate(checked):
        unit, request = row.get("unit_id"), row.get("request_id")
        if (unit is None) == (request is None):
            raise _not_one_key(i, row["name"], both=unit is not None)
        stamp = row.get("timestamp")
        columns["unit_id"].append(unit)
        columns["request_id"].append(request)
        columns["name"].append(row["name"])
        columns["value"].append(row["value"])
        columns["timestamp"].append(now if stamp is None else _utc(stamp))
    return pa.Table.from_pydict(columns, schema=OUTCOME_COLUMNS)


def _utc(stamp: datetime) -> datetime:
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _not_one_key(i: int, name: str, *, both: bool) -> InvalidInput:
    has = "both a unit_id and a request_id" if both else "neither a unit_id nor a request_id"
    return InvalidInput(
        f"Outcome {i} ({name!r}) has {has}: an event happens to a unit (unit_id) or follows a "
        "request (request_id), exactly one of the two.",
        field=f"outcomes.{i}.unit_id",
    )


# -- tables ----------------------------------------------------------------------------------
def _from_table(table: pa.Table, now: datetime) -> pa.Table:
    rows = table.num_rows
    names = _name_column(table.column("name"))
    unit = _key_column(table, "unit_id")
    request = _key_column(table, "request_id")
    one = pc.xor(pc.is_valid(unit), pc.is_valid(request))
    if not pc.all(one).as_py():
        i = _first(pc.invert(one))
        raise _not_one_key(i, names[i].as_py(), both=unit[i].is_valid)
    stamps = (
        _time_column(table.column("timestamp"), now)
        if "timestamp" in table.column_names
        else pa.chunked_array([pa.repeat(pa.scalar(now, _TIME), rows)])
    )
    values = _value_column(table.column("value"))
    return pa.Table.from_arrays([unit, request, names, values, stamps], schema=OUTCOME_COLUMNS)


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _name_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    column = _decoded(column)
    if not _text(column.type):
        raise InvalidInput(
            f"The outcome names must be text; the name column is {column.type}.", field="name"
        )
    column = column.cast(pa.string())
    if column.null_count:
        raise InvalidInput(
            f"Outcome {_first(pc.is_null(column))} has no name.",
            field=f"outcomes.{_first(pc.is_null(column))}.name",
        )
    for name in pc.unique(column).to_pylist():  # the distinct names: a few, not one per row
        try:
            check_name(name, "outcome")
        except ValueError as exc:
            i = _first(pc.equal(column, name))
            raise InvalidInput(f"Outcome {i}: {exc}.", field=f"outcomes.{i}.name") from None
    return column


def _key_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """The ids as text (integers converted, empty text as missing); all null when absent."""
    if name not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
    column = _decoded(table.column(name))
    if pa.types.is_integer(column.type) or pa.types.is_null(column.type):
        column = column.cast(pa.string())
    if not _text(column.type):
        raise InvalidInput(f"The {name}s must be text; the {name} column is {column.type}.",
                           field=name)  # fmt: skip
    column = column.cast(pa.string())
    empty = pc.equal(pc.utf8_length(column), 0)
    return pc.if_else(empty, pa.scalar(None, pa.string()), column)


def _value_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    column = _decoded(column)
    kind = column.type
    if not (pa.types.is_boolean(kind) or pa.types.is_integer(kind)
            or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):  # fmt: skip
        raise InvalidInput(
            f"The outcome values must be numbers or booleans; the value column is {kind}.",
            field="value",
        )
    number = column.cast(pa.float64())
    finite = pc.fill_null(pc.is_finite(number), False)
    if not pc.all(finite).as_py():
        i = _first(pc.invert(finite))
        found = number[i].as_py()
        what = "no value" if found is None else f"the value {found}"
        raise InvalidInput(
            f"Outcome {i} has {what}: a value is a finite number or a boolean.",
            field=f"outcomes.{i}.value",
        )
    return number


def _time_column(column: pa.ChunkedArray, now: datetime) -> pa.ChunkedArray:
    """UTC microseconds: aware times converted, naive ones read as UTC, ISO text parsed,
    missing ones ``now``."""
    column = _decoded(column)
    kind = column.type
    try:
        if _text(kind):
            column = _parsed(column.cast(pa.string()))
        elif pa.types.is_date(kind):
            column = column.cast(pa.timestamp("us"))
        elif not pa.types.is_timestamp(kind) and not pa.types.is_null(kind):
            raise InvalidInput(
                f"The timestamps must be times (or ISO 8601 text); the timestamp column is {kind}.",
                field="timestamp",
            )
        if pa.types.is_null(column.type):
            column = column.cast(_TIME)
        elif column.type.tz is None:
            column = pc.assume_timezone(column.cast(pa.timestamp("us")), "UTC")
        column = pc.cast(column, _TIME, safe=False)  # nanoseconds truncated to microseconds
    except pa.ArrowException as exc:
        raise InvalidInput(
            f"Cannot read the timestamps: {' '.join(str(exc).split())[:200]}.", field="timestamp"
        ) from exc
    column = pc.fill_null(column, pa.scalar(now, _TIME))
    _check_range(column)
    return column


def _check_range(column: pa.ChunkedArray) -> None:
    """Times a datetime can hold (years 1 to 9999): a day folder is named after each."""
    micros = column.cast(pa.int64())
    outside = pc.or_(pc.less(micros, _FIRST_US), pc.greater(micros, _LAST_US))
    if pc.any(outside).as_py():
        i = _first(outside)
        raise InvalidInput(
            f"Outcome {i} has a timestamp outside the years 1 to 9999.",
            field=f"outcomes.{i}.timestamp",
        )


def _parsed(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO 8601 text with a zone offset, or without one (UTC)."""
    try:
        return column.cast(_TIME)
    except pa.ArrowInvalid:
        pass
    try:
        return column.cast(pa.timestamp("us"))
    except pa.ArrowInvalid:
        for i, text in enumerate(column.to_pylist()):  # only reached to name the bad one
            try:
                datetime.fromisoformat(text or "2000-01-01")
            except ValueError:
                raise InvalidInput(
                    f"Outcome {i} has the timestamp {text!r:.60}: write times as ISO 8601, e.g. "
                    "2025-01-31T14:00:00Z.",
                    field=f"outcomes.{i}.timestamp",
                ) from None
        raise


def _check_partitions(table: pa.Table) -> None:
    count = partition_count(table)
    if count > MAX_PARTITIONS_PER_CALL:
        raise InvalidInput(
            f"These outcomes span {count:,} (outcome, day) pairs; one call writes at most "
            f"{MAX_PARTITIONS_PER_CALL:,} (one file each). Log them in several calls, e.g. a "
            "day or a month at a time.",
            field="timestamp",
        )


def counts(table: pa.Table) -> dict[str, int]:
    """Events per outcome name."""
    found = pc.value_counts(table.column("name").combine_chunks())
    pairs = zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True)
    return dict(sorted(pairs))


__all__ = ["MAX_PARTITIONS_PER_CALL", "counts", "validated_outcomes"]
