"""``keyed_events``: the outcome log joined onto a set of units by DuckDB, split by outcome,
checked against a row-by-row oracle."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.store import outcome_events
from steward.store.outcome_events import Events, keyed_events
from steward.store.outcome_log import RECORD_SCHEMA, outcome_parts, partition_path, write_outcomes
from steward.store.unit_keys import unit_keys

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LOGGED = datetime(2026, 3, 10, tzinfo=UTC)
Row = tuple[str | None, str | None, str, float, datetime]  # unit, request, outcome, value, time


def _write(root: str, rows: list[Row]) -> None:
    unit, request, name, value, stamp = (list(column) for column in zip(*rows, strict=True))
    table = pa.table({
        "unit_id": pa.array(unit, pa.string()), "request_id": pa.array(request, pa.string()),
        "name": name, "value": pa.array(value, pa.float64()),
        "timestamp": pa.array(stamp, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    write_outcomes(root, table, logged_at=LOGGED, source="sdk")


def _keys(units: list[str]) -> tuple[pa.Array, pa.Array]:
    return unit_keys(pa.array(units, pa.string()))


def _found(found: dict[str, Events]) -> dict[str, list[tuple[int, float]]]:
    """Each outcome's (unit, value) pairs, sorted: the join gives no order."""
    pairs = {name: events.arrays() for name, events in found.items()}
    return {
        name: sorted(zip(unit.tolist(), value.tolist(), strict=True))
        for name, (unit, value) in pairs.items()
    }


def _expected(
    rows: list[Row], names: list[str], units: list[str], requests: dict[str, int] | None = None
) -> dict[str, list[tuple[int, float]]]:
    index = {unit: i for i, unit in enumerate(units)}
    found: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for unit, request, name, value, _ in rows:
        at = index.get(unit) if unit is not None else (requests or {}).get(request or "")
        if at is not None and name in names:
            found[name].append((at, value))
    return {name: sorted(found[name]) for name in names}


@pytest.mark.parametrize("strangers", [0.0, 0.3], ids=["all-exposed", "some-never-exposed"])
def test_events_are_mapped_to_exposed_units_and_split_by_outcome(
    tmp_path: Path, strangers: float
) -> None:
    rng = np.random.default_rng(7)
    units = [f"u{i}" for i in range(60)]
    rows: list[Row] = [
        (
            f"x{i}" if rng.random() < strangers else str(rng.choice(units)),
            None,
            str(rng.choice(["checkout", "revenue", "churn"])),
            float(rng.normal()),
            T0 + timedelta(minutes=int(rng.integers(0, 3 * 24 * 60))),
        )
        for i in range(500)
    ]
    _write(str(tmp_path), rows)
    names = ["revenue", "checkout"]  # churn is not asked for
    found = keyed_events(str(tmp_path), names, _keys(units))
    assert _found(found) == _expected(rows, names, units)
    assert list(found) == names
    chunks = [chunk for events in found.values() for chunk in events.chunks()]
    assert chunks
    assert all(u.dtype == np.uint32 and v.dtype == np.float64 for u, v in chunks)


def test_events_keyed_by_request_reach_the_requests_unit(tmp_path: Path) -> None:
    units = ["alice", "bob"]
    requests = pa.table({"request_id": ["r1", "r2", "r3"], "unit": pa.array([0, 1, 1], pa.int64())})
    rows: list[Row] = [
        ("alice", None, "buy", 1.0, T0),
        (None, "r3", "buy", 2.0, T0),  # bob's request
        (None, "r404", "buy", 4.0, T0),  # a request never served: dropped
        ("carol", None, "buy", 8.0, T0),  # never exposed: dropped
        (None, "r1", "buy", 16.0, T0),
    ]
    _write(str(tmp_path), rows)
    found = keyed_events(str(tmp_path), ["buy"], _keys(units), requests)
    assert _found(found) == {"buy": [(0, 1.0), (0, 16.0), (1, 2.0)]}
    # without the requests, only the events keyed by unit are matched
    found = keyed_events(str(tmp_path), ["buy"], _keys(units))
    assert _found(found) == {"buy": [(0, 1.0)]}


def test_only_events_inside_the_range_count(tmp_path: Path) -> None:
    since, until = T0 + timedelta(hours=6), T0 + timedelta(days=2, hours=6)
    stamps = [
        since - timedelta(microseconds=1), since, T0 + timedelta(days=1),
        T0 + timedelta(days=1, hours=23, minutes=59), until - timedelta(microseconds=1), until,
        T0 - timedelta(days=1), T0 + timedelta(days=5),
    ]  # fmt: skip
    rows: list[Row] = [("u", None, "buy", float(i), t) for i, t in enumerate(stamps)]
    _write(str(tmp_path), rows)
    found = keyed_events(str(tmp_path), ["buy"], _keys(["u"]), since=since, until=until)
    assert sorted(found["buy"].arrays()[1].tolist()) == [1.0, 2.0, 3.0, 4.0]
    # the middle day is wholly inside: read without a filter; the two it cuts are filtered
    parts = outcome_parts(str(tmp_path), "buy", since, until)
    assert [(p.path.split("/")[-2], p.whole) for p in parts] == [
        ("day=2026-03-01", False), ("day=2026-03-02", True), ("day=2026-03-03", False),
    ]  # fmt: skip
    everything = keyed_events(str(tmp_path), ["buy"], _keys(["u"]))
    assert sorted(everything["buy"].arrays()[1].tolist()) == [float(i) for i in range(len(stamps))]


def test_a_remote_filesystem_is_read_through_fsspec() -> None:
    root = "memory://steward-tests/outcome-events"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)
    rows: list[Row] = [("u1", None, "buy", 3.0, T0), ("u2", None, "buy", 5.0, T0)]
    _write(root, rows)
    found = keyed_events(root, ["buy"], _keys(["u2", "u1"]), since=T0, until=T0 + timedelta(1))
    assert _found(found) == {"buy": [(0, 5.0), (1, 3.0)]}
    # the files are known to hold the key by the paths DuckDB reads them at: joined on it as is
    paths = [outcome_events._path(fs, p, local=False) for p in outcome_parts(root, "buy")]
    with duckdb.connect() as con:
        con.register_filesystem(fs)
        assert outcome_events._keyed_files(con, paths) == set(paths)
    fs.rm(root, recursive=True)


def test_a_quote_in_the_path_is_data(tmp_path: Path) -> None:
    root = str(tmp_path / "o'brien's log")
    _write(root, [("u1", None, "buy", 3.0, T0)])
    assert keyed_events(root, ["buy"], _keys(["u1"]))["buy"].arrays()[1].tolist() == [3.0]


def test_nothing_to_read_gives_no_events(tmp_path: Path) -> None:
    def sizes(found: dict[str, Events]) -> dict[str, int]:
        return {name: events.size for name, events in found.items()}

    assert sizes(keyed_events(str(tmp_path / "missing"), ["buy"], _keys(["u1"]))) == {"buy": 0}
    _write(str(tmp_path), [("u1", None, "buy", 3.0, T0)])
    assert sizes(keyed_events(str(tmp_path), ["sell", "buy"], _keys(["u1"]))) == {
        "sell": 0, "buy": 1,
    }  # fmt: skip
    assert sizes(keyed_events(str(tmp_path), ["buy"], _keys([]))) == {"buy": 0}


def _write_unkeyed(root: Path, name: str, day: str, rows: list[tuple[str, float]]) -> None:
    """A file as schema version 1 wrote it: no unit key columns."""
    folder = root / partition_path(name, day)
    folder.mkdir(parents=True, exist_ok=True)
    fields = [f for f in RECORD_SCHEMA if not f.name.startswith("unit_key_")]
    table = pa.table({
        "unit_id": [u for u, _ in rows], "request_id": pa.nulls(len(rows), pa.string()),
        "value": [v for _, v in rows], "timestamp": pa.array([T0] * len(rows), fields[3].type),
        "logged_at": pa.array([LOGGED] * len(rows), fields[4].type),
        "source": ["file"] * len(rows),
    }, schema=pa.schema(fields))  # fmt: skip
    pq.write_table(table, folder / "part-v1.parquet")


@pytest.mark.parametrize("window", [False, True], ids=["whole-days", "cut-days"])
def test_files_written_before_the_unit_key_are_keyed_as_read(tmp_path: Path, window: bool) -> None:
    """A log that mixes files with and without the key columns, in one day folder: every event
    is found, each once, and a unit never exposed still drops out."""
    _write(str(tmp_path), [("u1", None, "buy", 1.0, T0), ("u3", None, "buy", 2.0, T0)])
    _write_unkeyed(tmp_path, "buy", "2026-03-01", [("u1", 4.0), ("u2", 8.0), ("x", 16.0)])
    _write_unkeyed(tmp_path, "sell", "2026-03-01", [("u2", 32.0)])
    bounds = {"since": T0, "until": T0 + timedelta(hours=1)} if window else {}
    found = keyed_events(str(tmp_path), ["buy", "sell"], _keys(["u2", "u1", "u3"]), **bounds)
    assert _found(found) == {"buy": [(0, 8.0), (1, 1.0), (1, 4.0), (2, 2.0)], "sell": [(0, 32.0)]}


def test_the_written_unit_key_is_the_one_an_analysis_joins_on(tmp_path: Path) -> None:
    _write(str(tmp_path), [("ü-1", None, "buy", 1.0, T0), (None, "r1", "buy", 2.0, T0)])
    (path,) = [p.path for p in outcome_parts(str(tmp_path), "buy")]
    written = pq.read_table(path)
    hi, lo = _keys(["ü-1"])
    assert written["unit_key_hi"].to_pylist() == [hi[0].as_py(), None]
    assert written["unit_key_lo"].to_pylist() == [lo[0].as_py(), None]
    assert written.schema.metadata[b"steward.outcome_log.schema_version"] == b"2"


def _batch(code: Any, rng: np.random.Generator) -> pa.RecordBatch:
    return pa.record_batch({
        "outcome": pa.array(code, pa.int32()),
        "unit": pa.array(rng.integers(0, 100, len(code)), pa.int64()),
        "value": pa.array(rng.normal(size=len(code))),
    })  # fmt: skip


def _batches(code: list[int], seed: int = 3) -> pa.RecordBatchReader:
    rng = np.random.default_rng(seed)
    sizes = [50, 0, 70, 30, 40]
    batches = [_batch([c] * n if c >= 0 else rng.integers(0, 3, n), rng)
               for c, n in zip(code, sizes, strict=False)]  # fmt: skip
    return pa.RecordBatchReader.from_batches(batches[0].schema, batches)


@pytest.mark.parametrize("codes", [[0, 2, 2, 0], [0, -1, 2, -1, 1]], ids=["whole", "mixed"])
def test_batches_are_gathered_by_outcome_in_their_order(codes: list[int]) -> None:
    """A batch of one outcome is taken whole; one that mixes outcomes (-1 here) is split."""
    table = pa.Table.from_batches(list(_batches(codes)))
    found = outcome_events._by_outcome(_batches(codes), 4)
    code = table["outcome"].to_numpy()
    for i, events in enumerate(found):  # outcome 3 has no event
        unit, value = events.arrays()
        assert unit.tolist() == table["unit"].to_numpy()[code == i].tolist()
        assert value.tolist() == table["value"].to_numpy()[code == i].tolist()
    assert found[3].size == 0
    assert found[3].unit == ()
