"""The outcome log: what happened after units were served (a purchase, a churn, a click), one
Parquet row per event, read by the experiments' metrics.

Layout (a local folder or any fsspec URL)::

    {root}/outcome={name}/day={YYYY-MM-DD of timestamp, UTC}/part-{uuid}.parquet

A row is an event of outcome ``name`` with a ``value``, keyed by the unit it happened to
(``unit_id``) or by the request it follows (``request_id``) — exactly one of the two — at
``timestamp``; ``logged_at`` and ``source`` say when and how it was logged; ``unit_key_hi`` and
``unit_key_lo`` are the unit id's 128-bit key (``steward.store.unit_keys``: what an analysis
joins on; null for an event keyed by request, absent from files of schema version 1). The log is
append-only. Each ``write_outcomes`` call writes one file per (outcome, day) it touches, each
under a hidden temporary name first and then renamed, so a reader never sees a partial file.
``read_outcomes`` reads only the folders of the outcomes and days asked for, only the columns
asked for, and filters by timestamp inside pyarrow (10M rows in about a second). Validation of
what goes in is the experiments service's (``steward.experiments``); the schema is documented in
docs/experiments.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from steward.errors import InvalidInput
from steward.store import unit_keys

SCHEMA_VERSION = "2"  # 2: the unit key columns
SCHEMA_VERSION_KEY = "steward.outcome_log.schema_version"
DAY_FORMAT = "%Y-%m-%d"
SOURCES = ("sdk", "api", "file")
_TIME = pa.timestamp("us", tz="UTC")

# The folders: ``outcome`` is read back as the ``name`` column; ``day`` only prunes folders.
PARTITION_SCHEMA = pa.schema([("outcome", pa.string()), ("day", pa.string())])
# The columns every file has.
RECORD_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("timestamp", _TIME, nullable=False),
        pa.field("logged_at", _TIME, nullable=False),
        pa.field("source", pa.string(), nullable=False),
        *unit_keys.FIELDS,
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION},
)
# What ``read_outcomes`` returns (all of it, or the columns asked for, in this order).
OUTCOME_LOG_SCHEMA = pa.schema(
    [
        RECORD_SCHEMA.field("unit_id"),
        RECORD_SCHEMA.field("request_id"),
        pa.field("name", pa.string(), nullable=False),
        *(RECORD_SCHEMA.field(n) for n in ("value", "timestamp", "logged_at", "source")),
    ]
)
# What ``write_outcomes`` takes: the validated events, before the time and source are added.
OUTCOME_COLUMNS = pa.schema(
    [OUTCOME_LOG_SCHEMA.field(n) for n in ("unit_id", "request_id", "name", "value", "timestamp")]
)
_DATASET_SCHEMA = pa.unify_schemas([RECORD_SCHEMA, PARTITION_SCHEMA]).remove_metadata()


# -- writing ---------------------------------------------------------------------------------
def partition_path(name: str, day: str) -> str:
    return f"outcome={name}/day={day}"


def write_outcomes(root: str, outcomes: pa.Table, *, logged_at: datetime, source: str) -> list[str]:
    """Write ``outcomes`` (OUTCOME_COLUMNS, already validated, names safe in a path) as one
    file per (name, day of timestamp) partition; their paths relative to ``root``, in partition
    order. All or nothing: when one file fails, the ones written before it are removed."""
    if logged_at.tzinfo is None:
        raise ValueError("logged_at must be timezone-aware")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    table = pa.Table.from_arrays(
        [outcomes.column(n).cast(OUTCOME_COLUMNS.field(n).type) for n in OUTCOME_COLUMNS.names],
        schema=OUTCOME_COLUMNS,
    )
    # keyed in one call before the split by partition: DuckDB does a large table at once
    hi, lo = unit_keys.unit_keys(table.column("unit_id"))
    table = table.append_column(unit_keys.HI, hi).append_column(unit_keys.LO, lo)
    stamp = pa.scalar(logged_at.astimezone(UTC), _TIME)
    written: list[str] = []
    try:
        for name, day, part in _partitions(table):
            rows = part.num_rows
            record = pa.Table.from_arrays(
                [part.column("unit_id"), part.column("request_id"), part.column("value"),
                 part.column("timestamp"), pa.repeat(stamp, rows),
                 pa.repeat(pa.scalar(source, pa.string()), rows),
                 part.column(unit_keys.HI), part.column(unit_keys.LO)],
                schema=RECORD_SCHEMA,
            )  # fmt: skip
            relative = f"{partition_path(name, day)}/part-{uuid.uuid4().hex}.parquet"
            _write_atomically(root, relative, record)
            written.append(relative)
    except BaseException:
        delete_files(root, written)
        raise
    return written


_DAY_US = 86_400 * 10**6
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _partition_keys(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """One int64 per row, equal for rows of the same (name, day); and the distinct names. Day
    numbers since 1970 in numpy, not formatted dates: strftime cost 5 s on 10M rows."""
    encoded = pc.dictionary_encode(table.column("name").combine_chunks())
    micros = table.column("timestamp").cast(pa.int64()).to_numpy()
    days = np.floor_divide(micros, _DAY_US)
    names = encoded.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int64)  # codes in name order: files come out sorted
    rank[np.argsort(np.array(names, dtype=object))] = np.arange(len(names))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    return codes * (1 << 32) + (days + (1 << 31)), sorted(names)


def partition_count(table: pa.Table) -> int:
    """How many (name, day of timestamp) partitions the rows of ``table`` fall in."""
    if table.num_rows == 0:
        return 0
    return int(np.unique(_partition_keys(table)[0]).size)


def _partitions(table: pa.Table) -> Iterable[tuple[str, str, pa.Table]]:
    """(name, day, rows) per partition: one stable sort, then contiguous slices."""
    if table.num_rows == 0:
        return
    keys, names = _partition_keys(table)
    if keys.min() != keys.max():
        order = np.argsort(keys, kind="stable")
        keys, table = keys[order], table.take(pa.array(order))
    starts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist()]
    for start, end in zip(starts, [*starts[1:], table.num_rows], strict=True):
        key = int(keys[start])
        day = _EPOCH + timedelta(days=(key & 0xFFFFFFFF) - (1 << 31))
        yield names[key >> 32], day.strftime(DAY_FORMAT), table.slice(start, end - start)


def _write_atomically(root: str, relative: str, table: pa.Table) -> None:
    """Write under ``.{name}.tmp`` in the same folder, then rename: readers (and
    ``part-*.parquet`` listings) only ever see complete files."""
    fs, fs_root = fsspec.core.url_to_fs(root)
    folder, name = f"{fs_root.rstrip('/')}/{relative}".rsplit("/", 1)
    tmp, final = f"{folder}/.{name}.tmp", f"{folder}/{name}"
    fs.makedirs(folder, exist_ok=True)
    try:
        with fs.open(tmp, "wb") as out:
            # ids are unique-ish, so a dictionary would only grow the file
            pq.write_table(table, out, compression="zstd", use_dictionary=["source"])
        fs.mv(tmp, final)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def delete_files(root: str, relative: Sequence[str]) -> None:
    """Remove files ``write_outcomes`` wrote (their ledger event could not be recorded)."""
    fs, fs_root = fsspec.core.url_to_fs(root)
    for path in relative:
        full = f"{fs_root.rstrip('/')}/{path}"
        if fs.exists(full):
            fs.rm(full)


# -- reading ---------------------------------------------------------------------------------
def read_outcomes(
    root: str,
    names: str | Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The events of the outcomes ``names`` with ``since <= timestamp < until`` (both
    timezone-aware, both optional), as an Arrow table of OUTCOME_LOG_SCHEMA (or of
    ``columns``, in the order given), in no particular order.

    Only the day folders that can hold such events are listed, only the columns asked for are
    read, and the time filter runs inside pyarrow, multi-threaded. A missing root, an outcome
    never logged or no event in the range gives an empty table.
    """
    wanted = _columns(columns)
    since, until = _aware(since, "since"), _aware(until, "until")
    files = outcome_files(root, [names] if isinstance(names, str) else list(names), since, until)
    if not files:
        return OUTCOME_LOG_SCHEMA.empty_table().select(wanted)
    fs, fs_root = fsspec.core.url_to_fs(root)
    dataset = ds.dataset(
        files, schema=_DATASET_SCHEMA, filesystem=fs, format="parquet",
        partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
        partition_base_dir=fs_root.rstrip("/"),
    )  # fmt: skip
    projection = {n: ds.field("outcome" if n == "name" else n) for n in wanted}
    table = dataset.to_table(columns=projection, filter=_between(since, until))
    schema = pa.schema([OUTCOME_LOG_SCHEMA.field(n) for n in wanted])
    return table.cast(schema)


def outcome_files(
    root: str,
    names: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """The files of the outcomes ``names`` whose day can hold events in ``[since, until)``,
    oldest day first (full paths on the root's filesystem)."""
    return [part.path for name in dict.fromkeys(names)
            for part in outcome_parts(root, name, since, until)]  # fmt: skip


@dataclass(frozen=True)
class OutcomePart:
    """A file of the log; ``whole`` when its day lies inside the range asked for, so that
    every event in it does (no need to filter it by time)."""

    path: str
    whole: bool


def outcome_parts(
    root: str, name: str, since: datetime | None = None, until: datetime | None = None
) -> list[OutcomePart]:
    """The files of outcome ``name`` whose day can hold events in ``[since, until)``, oldest
    day first (full paths on the root's filesystem)."""
    fs, fs_root = fsspec.core.url_to_fs(root)
    found: list[OutcomePart] = []
    for folder in _ls(fs, f"{fs_root.rstrip('/')}/outcome={name}"):
        day = _day(folder.rsplit("/", 1)[-1])
        if day is None or not _day_may_match(day, since, until):
            continue
        whole = (since is None or since <= day) and (until is None or day + _DAY <= until)
        found += [OutcomePart(p, whole) for p in _ls(fs, folder) if _is_part(p)]
    return found


def outcome_names(root: str) -> list[str]:
    """Every outcome the log holds, sorted."""
    fs, fs_root = fsspec.core.url_to_fs(root)
    folders = (p.rsplit("/", 1)[-1] for p in _ls(fs, fs_root.rstrip("/")))
    return sorted(f.removeprefix("outcome=") for f in folders if f.startswith("outcome="))


def _is_part(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("part-") and name.endswith(".parquet")


def _ls(fs: Any, path: str) -> list[str]:
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return sorted(e["name"].rstrip("/") for e in entries if e["type"] in ("directory", "file"))


def _day(folder: str) -> datetime | None:
    """The start of a ``day=YYYY-MM-DD`` folder's day (UTC), or None for any other name."""
    if not folder.startswith("day="):
        return None
    try:
        return datetime.strptime(folder.removeprefix("day="), DAY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _day_may_match(start: datetime, since: datetime | None, until: datetime | None) -> bool:
    if since is not None and start + _DAY <= since:
        return False
    return until is None or start < until


_DAY = timedelta(days=1)


def _between(since: datetime | None, until: datetime | None) -> Any:
    condition = None
    if since is not None:
        condition = ds.field("timestamp") >= pa.scalar(since, _TIME)
    if until is not None:
        before = ds.field("timestamp") < pa.scalar(until, _TIME)
        condition = before if condition is None else condition & before
    return condition


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(
            f"The '{name}' time must be timezone-aware (UTC); got the naive {value.isoformat()}. "
            "Pass e.g. datetime(..., tzinfo=UTC).",
            field=name,
        )
    return value


def _columns(columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return list(OUTCOME_LOG_SCHEMA.names)
    unknown = [c for c in columns if c not in OUTCOME_LOG_SCHEMA.names]
    if unknown:
        raise InvalidInput(
            f"The outcome log has no column {unknown[0]!r}. Use any of: "
            f"{', '.join(OUTCOME_LOG_SCHEMA.names)}.",
            field="columns",
        )
    return list(columns)


__all__ = [
    "DAY_FORMAT",
    "OUTCOME_COLUMNS",
    "OUTCOME_LOG_SCHEMA",
    "RECORD_SCHEMA",
    "SCHEMA_VERSION",
    "SOURCES",
    "delete_files",
    "outcome_files",
    "outcome_names",
    "outcome_parts",
    "partition_count",
    "partition_path",
    "read_outcomes",
    "write_outcomes",
]
