"""The outcome log's events mapped onto a set of units: what an experiment's analysis reads.

Each event is keyed by a unit id (or by the id of the request it follows); the analysis needs
it as an index into its exposed units. That is a join of tens of millions of events onto
millions of units, done here by DuckDB: it reads the Parquet files itself (only the columns the
join needs, the time filter only on the day folders the range cuts) and joins on every core.
The join is on the unit's 128-bit key (``steward.store.unit_keys``), which the log writes
beside the id: two integers per event instead of a string. 35M events onto 10M units, this
function as a whole on two cores: 3.0-3.7 s, where the same join on 16-character ids took
4.6-5.3 s, pyarrow's single-threaded ``index_in`` on the ids ~13 s and polars' join ~17 s
(docs/benchmarks.md). Files written before the key existed are keyed as they are read, with
the same digest.

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

from steward.store.outcome_log import OutcomePart, outcome_parts
from steward.store.unit_keys import HI, LO, key_sql

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
    keys: tuple[pa.Array | pa.ChunkedArray, pa.Array | pa.ChunkedArray],
    requests: pa.Table | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Events]:
    """The events of each of the outcomes ``names`` with ``since <= timestamp < until`` whose
    unit is one of the units keyed by ``keys`` (``unit_keys.unit_keys`` of distinct ids: hi,
    lo), or whose request is one of ``requests`` (``request_id``, and ``unit``: the request's
    index into the units), as indices into the units; events of other units are left out.
    Every name has an entry.

    An event keyed by a unit id is matched on its key; one keyed by a request id through the
    request (the outcome log holds one or the other).
    """
    names = list(dict.fromkeys(names))
    count = len(keys[0])
    fs, _ = fsspec.core.url_to_fs(root)
    parts = {name: outcome_parts(root, name, since, until) for name in names}
    if count == 0 or not any(parts.values()):
        return {name: Events() for name in names}
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = false")  # any order: less memory, faster
        local = isinstance(fs, LocalFileSystem)
        if not local:
            con.register_filesystem(fs)
        paths = {n: [_path(fs, p, local) for p in found] for n, found in parts.items()}
        keyed = _keyed_files(con, [p for found in paths.values() for p in found])
        events = " UNION ALL ".join(_scans(names, parts, paths, keyed, since, until))
        con.register("units", pa.table({"hi": keys[0], "lo": keys[1], "unit": _indices(count)}))
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
                LEFT JOIN units u ON e.lo = u.lo AND e.hi = u.hi
                LEFT JOIN requests r ON e.request_id = r.request_id
                WHERE coalesce(u.unit, r.unit) IS NOT NULL"""
        else:
            query = f"""
                SELECT e.outcome, u.unit, e.value
                FROM ({events}) e JOIN units u ON e.lo = u.lo AND e.hi = u.hi"""
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


def _path(fs: Any, part: OutcomePart, local: bool) -> str:
    return part.path if local else str(fs.unstrip_protocol(part.path))


def _keyed_files(con: duckdb.DuckDBPyConnection, paths: list[str]) -> set[str]:
    """Those of ``paths`` that hold the unit key columns (read from their footers)."""
    if not paths:
        return set()
    found = con.sql(
        f"SELECT DISTINCT file_name FROM parquet_schema({_list(paths)}) WHERE name = '{HI}'"
    ).fetchall()
    return {row[0] for row in found}


def _scans(
    names: Sequence[str],
    parts: dict[str, list[OutcomePart]],
    paths: dict[str, list[str]],
    keyed: set[str],
    since: datetime | None,
    until: datetime | None,
) -> list[str]:
    """One SELECT per outcome and kind of file, each giving (outcome, hi, lo, request_id,
    value): the days wholly inside the range unfiltered, the (at most two) days it cuts
    filtered by timestamp; files without the key columns keyed as they are read."""
    code_type = _code_type(len(names))
    hi, lo = key_sql("digest")
    scans: list[str] = []
    for code, name in enumerate(names):
        for whole in (True, False):
            for has_keys in (True, False):
                files = [path for part, path in zip(parts[name], paths[name], strict=True)
                         if part.whole == whole and (path in keyed) == has_keys]  # fmt: skip
                if not files:
                    continue
                source = f"read_parquet({_list(files)}, hive_partitioning = false)"
                if not whole:
                    source += f" WHERE {_time_filter(since, until)}"
                keys = (HI, LO)
                if not has_keys:  # keyed as read: the id hashed once, then the two halves
                    source = (f"(SELECT md5_number(unit_id) AS digest, request_id, value "
                              f"FROM {source})")  # fmt: skip
                    keys = (hi, lo)
                scans.append(f"SELECT {code}::{code_type} AS outcome, {keys[0]} AS hi, "
                             f"{keys[1]} AS lo, request_id, value FROM {source}")  # fmt: skip
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
