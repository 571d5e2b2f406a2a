"""The label log's storage: layout and schema, atomic files, newest-wins reads, any fsspec URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.errors import InvalidInput
from steward.monitoring.labels import validated_labels
from steward.store.label_log import (
    LABEL_LOG_SCHEMA,
    RECORD_SCHEMA,
    SCHEMA_VERSION_KEY,
    newest_label,
    newest_labels,
    read_labels,
    write_labels,
)

T0 = datetime(2024, 5, 1, 13, 20, tzinfo=UTC)


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh folder of fsspec's in-memory filesystem (shared by the process)."""
    root = f"memory://labels-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _write(root: str, labels: object, at: datetime, deployment: str = "fraud") -> str:
    return write_labels(root, deployment, validated_labels(labels), logged_at=at, source="sdk")


def test_layout_schema_and_metadata(tmp_path: Path) -> None:
    root = str(tmp_path / "labels")
    relative = _write(root, {"r1": 1, "r2": True, "r3": "spam"}, T0, deployment="churn model/v2")
    folder, name = relative.rsplit("/", 1)
    assert folder == "deployment=churn%20model%2Fv2/hour=2024-05-01T13"
    assert name.startswith("part-")
    assert name.endswith(".parquet")
    assert [p.name for p in (tmp_path / "labels" / folder).iterdir()] == [name]  # no temp left

    stored = pq.read_table(tmp_path / "labels" / relative)
    assert stored.schema.equals(RECORD_SCHEMA, check_metadata=False)
    assert stored.schema.metadata[SCHEMA_VERSION_KEY.encode()] == b"1"
    assert stored.to_pylist() == [
        {"request_id": "r1", "row": 0, "label": 1.0, "label_text": None, "logged_at": T0,
         "source": "sdk"},
        {"request_id": "r2", "row": 0, "label": 1.0, "label_text": None, "logged_at": T0,
         "source": "sdk"},
        {"request_id": "r3", "row": 0, "label": None, "label_text": "spam", "logged_at": T0,
         "source": "sdk"},
    ]  # fmt: skip

    read = read_labels(root, "churn model/v2")
    assert read.table.schema == LABEL_LOG_SCHEMA
    assert read.table.column("deployment").to_pylist() == ["churn model/v2"] * 3
    assert read.table.column("hour").to_pylist() == ["2024-05-01T13"] * 3


def test_a_later_label_corrects_an_earlier_one(memory_root: str) -> None:
    _write(memory_root, [{"request_id": "a", "label": 0}, {"request_id": "a", "row": 1,
                                                           "label": 1}], T0)  # fmt: skip
    _write(memory_root, {"a": 1, "b": 0}, T0 + timedelta(hours=2))  # corrects (a, 0)
    _write(memory_root, {"a": 0}, T0 + timedelta(hours=3))  # and corrects it back
    read = read_labels(memory_root, "fraud")
    assert read.superseded == 2
    rows = [(r["request_id"], r["row"], r["label"]) for r in read.table.to_pylist()]
    assert sorted(rows) == [("a", 0, 0.0), ("a", 1, 1.0), ("b", 0, 0.0)]

    only_a = read_labels(memory_root, "fraud", request_ids={"a"})
    assert sorted(only_a.table.column("row").to_pylist()) == [0, 1]
    assert read_labels(memory_root, "fraud", request_ids=set()).table.num_rows == 0

    # since: the hour folders before it are not read; the correction after it still wins
    later = read_labels(memory_root, "fraud", since=T0 + timedelta(hours=2, minutes=30))
    assert [(r["request_id"], r["label"]) for r in later.table.to_pylist()] == [("a", 0.0)]
    assert later.superseded == 0


def test_newest_wins_ties_keep_the_row_read_last() -> None:
    table = pa.table({"request_id": ["x", "x", "y"], "row": pa.array([0, 0, 0], pa.int32()),
                      "label": [1.0, 2.0, 3.0]})  # fmt: skip
    newest, dropped = newest_labels(table)  # no logged_at: the last row of a key wins
    assert dropped == 1
    assert sorted(newest.column("label").to_pylist()) == [2.0, 3.0]


def test_empty_or_missing_log(memory_root: str) -> None:
    read = read_labels(memory_root, "nobody")
    assert read.table.num_rows == 0
    assert read.table.schema == LABEL_LOG_SCHEMA
    assert read.superseded == 0
    assert newest_label(memory_root, "nobody") is None
    _write(memory_root, {"a": 1}, T0)
    _write(memory_root, {"b": 1}, T0 + timedelta(hours=5))
    assert newest_label(memory_root, "fraud") == T0 + timedelta(hours=5)


def test_naive_since_is_refused(memory_root: str) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware") as refused:
        read_labels(memory_root, "fraud", since=datetime(2024, 5, 1))
    assert refused.value.field == "since"


def test_a_failed_write_leaves_no_file(memory_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        _write(memory_root, {"a": 1}, T0)
    fs = fsspec.filesystem("memory")
    assert fs.find(memory_root) == []
