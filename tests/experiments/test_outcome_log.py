"""The outcome log: one file per (outcome, day) written atomically, read back by outcome and
time with projection, fast on millions of rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.errors import InvalidInput
from steward.store import outcome_log
from steward.store.outcome_log import (
    OUTCOME_LOG_SCHEMA,
    RECORD_SCHEMA,
    SCHEMA_VERSION_KEY,
    outcome_files,
    outcome_names,
    read_outcomes,
    write_outcomes,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LOGGED = datetime(2026, 3, 10, 12, tzinfo=UTC)


def events(rows: list[tuple[str | None, str | None, str, float, datetime]]) -> pa.Table:
    unit, request, name, value, stamp = (list(column) for column in zip(*rows, strict=True))
    return pa.table({
        "unit_id": pa.array(unit, pa.string()), "request_id": pa.array(request, pa.string()),
        "name": name, "value": pa.array(value, pa.float64()),
        "timestamp": pa.array(stamp, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def test_one_file_per_outcome_and_day(tmp_path: Path) -> None:
    root = str(tmp_path / "outcomes")
    table = events([
        ("u1", None, "purchase", 10.0, T0 + timedelta(hours=1)),
        (None, "r9", "click", 1.0, T0 + timedelta(hours=2)),
        ("u2", None, "purchase", 5.5, T0 + timedelta(days=1, hours=3)),
        ("u3", None, "purchase", 2.0, T0 + timedelta(hours=23, minutes=59)),
    ])  # fmt: skip
    files = write_outcomes(root, table, logged_at=LOGGED, source="sdk")
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "outcome=click/day=2026-03-01",
        "outcome=purchase/day=2026-03-01",
        "outcome=purchase/day=2026-03-02",
    ]
    assert all(f.rsplit("/", 1)[1].startswith("part-") for f in files)
    stored = pq.read_table(tmp_path / "outcomes" / files[1])
    assert stored.schema.metadata[SCHEMA_VERSION_KEY.encode()] == b"2"
    assert stored.schema.remove_metadata() == RECORD_SCHEMA.remove_metadata()
    assert sorted(stored.column("unit_id").to_pylist()) == ["u1", "u3"]
    assert set(stored.column("source").to_pylist()) == {"sdk"}
    assert set(stored.column("logged_at").to_pylist()) == {LOGGED}
    assert outcome_names(root) == ["click", "purchase"]
    hidden = [p for p in fsspec.filesystem("file").find(root) if "/." in p]
    assert hidden == []  # no temporary file left behind


def test_read_by_outcome_time_and_columns(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_outcomes(root, events([
        ("u1", None, "purchase", 10.0, T0),
        ("u2", None, "purchase", 20.0, T0 + timedelta(days=2)),
        ("u3", None, "churn", 1.0, T0 + timedelta(days=1)),
        (None, "r1", "purchase", 30.0, T0 + timedelta(days=4)),
    ]), logged_at=LOGGED, source="api")  # fmt: skip
    everything = read_outcomes(root, ["purchase", "churn"])
    assert everything.schema == OUTCOME_LOG_SCHEMA
    assert sorted(everything.column("value").to_pylist()) == [1.0, 10.0, 20.0, 30.0]
    purchases = read_outcomes(root, "purchase", since=T0 + timedelta(days=1),
                              until=T0 + timedelta(days=4))  # fmt: skip
    assert purchases.column("unit_id").to_pylist() == ["u2"]  # since <= t < until
    assert purchases.column("name").to_pylist() == ["purchase"]
    india = timezone(timedelta(hours=5, minutes=30))
    same = read_outcomes(root, ["purchase"], since=(T0 + timedelta(days=1)).astimezone(india),
                         until=T0 + timedelta(days=4))  # fmt: skip
    assert same.equals(purchases)
    projected = read_outcomes(root, ["purchase"], columns=["value", "request_id"])
    assert projected.column_names == ["value", "request_id"]
    assert sorted(projected.column("request_id").to_pylist(), key=str) == [None, None, "r1"]


def test_only_the_days_in_range_are_opened(tmp_path: Path) -> None:
    root = str(tmp_path)
    days = [("u", None, "visit", 1.0, T0 + timedelta(days=d)) for d in range(10)]
    write_outcomes(root, events(days), logged_at=LOGGED, source="sdk")  # type: ignore[arg-type]
    found = outcome_files(root, ["visit"], since=T0 + timedelta(days=3, hours=12),
                          until=T0 + timedelta(days=5))  # fmt: skip
    assert [f.split("day=")[1][:10] for f in found] == ["2026-03-04", "2026-03-05"]


def test_missing_root_and_unknown_outcomes_read_empty(tmp_path: Path) -> None:
    for names in (["nothing"], []):
        empty = read_outcomes(str(tmp_path / "absent"), names)
        assert empty.num_rows == 0
        assert empty.schema == OUTCOME_LOG_SCHEMA
    assert read_outcomes(str(tmp_path), ["x"], columns=["value"]).column_names == ["value"]
    assert outcome_names(str(tmp_path / "absent")) == []


def test_bad_reads_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_outcomes(str(tmp_path), ["x"], since=datetime(2026, 1, 1))
    assert caught.value.field == "since"
    with pytest.raises(InvalidInput) as caught:
        read_outcomes(str(tmp_path), ["x"], columns=["value", "colour"])
    assert caught.value.field == "columns"
    assert "colour" in caught.value.message


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(tmp_path)
    table = events([("u1", None, "a", 1.0, T0), ("u2", None, "b", 2.0, T0)])
    real = outcome_log._write_atomically
    calls: list[str] = []

    def second_fails(root: str, relative: str, table: pa.Table) -> None:
        calls.append(relative)
        if len(calls) == 2:
            raise OSError("disk full")
        real(root, relative, table)

    monkeypatch.setattr(outcome_log, "_write_atomically", second_fails)
    with pytest.raises(OSError, match="disk full"):
        write_outcomes(root, table, logged_at=LOGGED, source="sdk")
    assert [p for p in fsspec.filesystem("file").find(root) if p.endswith(".parquet")] == []


def test_write_refuses_a_naive_time_or_an_unknown_source(tmp_path: Path) -> None:
    table = events([("u1", None, "a", 1.0, T0)])
    with pytest.raises(ValueError, match="timezone-aware"):
        write_outcomes(str(tmp_path), table, logged_at=datetime(2026, 1, 1), source="sdk")
    with pytest.raises(ValueError, match="source"):
        write_outcomes(str(tmp_path), table, logged_at=LOGGED, source="carrier-pigeon")


def test_a_million_events_over_many_partitions_are_filtered_and_projected(
    tmp_path: Path,
) -> None:
    """1M events over 10 days and 2 outcomes (20 files) read back, filtered to 8 days and
    projected (speed is bench/bench_experiments.py's business, not a test's)."""
    root, rows = str(tmp_path), 1_000_000
    rng = np.random.default_rng(7)
    micros = rng.integers(0, 10 * 86_400 * 10**6, rows)
    stamps = pa.array(micros + int(T0.timestamp() * 10**6), pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    ids = pa.array([f"u{i}" for i in range(50_000)])
    units = pa.DictionaryArray.from_arrays(pa.array(np.arange(rows) % 50_000, pa.int32()), ids)
    names = pa.DictionaryArray.from_arrays(
        pa.array(np.arange(rows) % 2, pa.int8()), pa.array(["purchase", "click"])
    )
    table = pa.table({
        "unit_id": units, "request_id": pa.nulls(rows, pa.string()), "name": names,
        "value": rng.random(rows), "timestamp": stamps,
    })  # fmt: skip
    assert len(write_outcomes(root, table, logged_at=LOGGED, source="file")) == 20
    found = read_outcomes(root, ["purchase", "click"], since=T0 + timedelta(days=1),
                          until=T0 + timedelta(days=9), columns=["unit_id", "value"])  # fmt: skip
    in_range = (micros >= 86_400 * 10**6) & (micros < 9 * 86_400 * 10**6)
    assert found.num_rows == int(in_range.sum())
    assert found.column_names == ["unit_id", "value"]
