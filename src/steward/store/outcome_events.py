"""The outcome log's events mapped onto a set of units: what an experiment's analysis reads.

Each event is keyed by a unit id (or by the id of the request it follows); the analysis needs
it as an index into its exposed units. That is a join of tens of millions of string keys
against millions, done here by DuckDB: it reads the Parquet files itself (only the columns the
join needs, the time filter only on the day folders the range cuts) and joins on every core.
At 35M events onto 10M units that is ~3 s on two cores where pyarrow's single-threaded
``index_in`` after ``read_outcomes`` took ~13 s, and polars' join ~17 s (docs/benchmarks.md,
experiments); the join stays exact, string against string.

DuckDB is imported here only: ``import steward`` does not load it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from steward.store.outcome_log import outcome_parts

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Events:
    """One outcome's events, in no particular order: ``unit[i]`` and ``value[i]`` are the
    unit indices and values of chunk ``i`` (the batches DuckDB returned: joining them into one
    array would copy every event, 0.7 s at 35M, and a per-unit sum takes them one by one)."""

    unit: tuple[np.ndarray, ...] = ()
    value: tuple[np.ndarray, ...] = ()

    @classmethod
    def of(cls, unit: np.ndarray, value: np.ndarray) -> Events:
        return cls((unit,), (value,))

    @property
    def size(self) -> int:
        return sum(len(u) for u in self.unit)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return zip(self.unit, self.value, strict=True)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk's units and values, each in one array."""
        if not self.unit:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(self.unit), np.concatenate(self.value)


def keyed_events(
    root: str,
    names: Sequence[str],
    units: pa.Array | pa.ChunkedArray,
    requests: pa.Table | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Events]:
    """The events of each of the outcomes ``names`` with ``since <= timestamp < until`` whose
    unit is one of ``units`` (distinct ids), or whose request is one of ``requests``
    (``request_id``, and ``unit``: the request's index into ``units``), as indices into
    ``units``; events of other units are left out. Every name has an entry.

    An event keyed by a unit id is matched on it; one keyed by a request id through the
    request (the outcome log holds one key or the other).
    """
    names = list(dict.fromkeys(names))
    fs, _ = fsspec.core.url_to_fs(root)
    scans = _scans(fs, root, names, since, until)
    if not scans or len(units) == 0:
        return {name: Events() for name in names}
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = false")  # any order: less memory, faster
        if not isinstance(fs, LocalFileSystem):
            con.register_filesystem(fs)
        events = " UNION ALL ".join(scans)
        con.register("units", pa.table({"unit_id": units, "unit": _indices(len(units))}))
        by_request = (
            requests is not None
            and requests.num_rows > 0
            and _has_request_keys(con, events, {"since": since, "until": until})
        )
        if by_request:
            assert requests is not None
            con.register("requests", requests.select(["request_id", "unit"]))
            query = f"""
                SELECT e.outcome, coalesce(u.unit, r.unit) AS unit, e.value
                FROM ({events}) e
                LEFT JOIN units u ON e.unit_id = u.unit_id
                LEFT JOIN requests r ON e.request_id = r.request_id
                WHERE coalesce(u.unit, r.unit) IS NOT NULL"""
        else:
            query = f"""
                SELECT e.outcome, u.unit, e.value
                FROM ({events}) e JOIN units u ON e.unit_id = u.unit_id"""
        joined = _relation(con, query, {"since": since, "until": until})
        found = _by_outcome(pa.RecordBatchReader.from_stream(joined), len(names))
    return dict(zip(names, found, strict=True))


def _by_outcome(batches: pa.RecordBatchReader, count: int) -> list[Events]:
    """The joined rows (outcome code, unit, value) gathered by outcome, batch by batch.

    DuckDB's batches each hold one outcome's rows here (every scan is one outcome's files and
    the join keeps a probed chunk's rows together), so a batch is taken whole; one that mixes
    outcomes is split. Splitting the whole result instead (a pass per outcome over 35M codes,
    or a sort by code, and the copies) cost 1.2-1.9 s at 35M events (measured).
    """
    units: list[list[np.ndarray]] = [[] for _ in range(count)]
    values: list[list[np.ndarray]] = [[] for _ in range(count)]
    for batch in batches:
        if batch.num_rows == 0:
            continue
        code, unit, value = (batch.column(i).to_numpy(zero_copy_only=False) for i in range(3))
        if (code == code[0]).all():
            units[code[0]].append(unit)
            values[code[0]].append(value)
            continue
        for one in np.unique(code):
            rows = np.flatnonzero(code == one)
            units[one].append(unit[rows])
            values[one].append(value[rows])
    return [Events(tuple(u), tuple(v)) for u, v in zip(units, values, strict=True)]


def _scans(
    fs: Any, root: str, names: Sequence[str], since: datetime | None, until: datetime | None
) -> list[str]:
    """One SELECT per outcome and kind of file: the days wholly inside the range unfiltered,
    the (at most two) days it cuts filtered by timestamp. ``fs``: the root's filesystem."""
    local = isinstance(fs, LocalFileSystem)
    scans: list[str] = []
    code_type = _code_type(len(names))
    for code, name in enumerate(names):
        parts = outcome_parts(root, name, since, until)
        for whole in (True, False):
            paths = [p.path if local else fs.unstrip_protocol(p.path) for p in parts
                     if p.whole == whole]  # fmt: skip
            if not paths:
                continue
            scan = (f"SELECT {code}::{code_type} AS outcome, unit_id, request_id, value "
                    f"FROM read_parquet({_list(paths)}, hive_partitioning = false)")  # fmt: skip
            if not whole:
                scan += f" WHERE {_time_filter(since, until)}"
            scans.append(scan)
    return scans


def _time_filter(since: datetime | None, until: datetime | None) -> str:
    bounds = []
    if since is not None:
        bounds.append("timestamp >= $since")
    if until is not None:
        bounds.append("timestamp < $until")
    return " AND ".join(bounds) or "TRUE"


def _list(paths: list[str]) -> str:
    """A SQL list of string literals (quotes doubled: a path is data, never SQL)."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _code_type(count: int) -> str:
    """The narrowest SQL type for an outcome's code: every byte of it is written per event."""
    return "UTINYINT" if count <= 1 << 8 else "USMALLINT" if count <= 1 << 16 else "UINTEGER"


def _indices(count: int) -> pa.Array:
    """The units' indices, 4 bytes each where they fit (every byte is written per event;
    ``np.bincount`` takes them as they are)."""
    return pa.array(np.arange(count, dtype=np.uint32 if count <= 1 << 32 else np.int64))


def _has_request_keys(con: duckdb.DuckDBPyConnection, events: str, bounds: dict[str, Any]) -> bool:
    """Whether any event is keyed by request (read from the files' statistics when they say
    a column is all null, so the common case costs milliseconds)."""
    found = _relation(con, f"SELECT count(request_id) AS keyed FROM ({events})", bounds)
    return bool(pa.table(found)["keyed"][0].as_py())


def _relation(
    con: duckdb.DuckDBPyConnection, query: str, bounds: dict[str, Any]
) -> duckdb.DuckDBPyRelation:
    used = {k: v for k, v in bounds.items() if v is not None and f"${k}" in query}
    relation = con.sql(query, params=used or None)
    assert relation is not None  # a SELECT always gives a relation
    return relation
