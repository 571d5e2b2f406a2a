"""The prediction log: non-blocking writer, partitions, guarantees, and the reader."""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.settings import Settings
from steward.store import prediction_log
from steward.store.prediction_log import (
    PREDICTION_LOG_SCHEMA,
    RECORD_SCHEMA,
    PredictionLogWriter,
    PredictionRecord,
    RequestRecord,
    logged_to_table,
    read_predictions,
    records_to_table,
    requests_to_table,
)
from steward.store.unit_keys import unit_keys

H13 = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
H14 = H13 + timedelta(hours=1)
SIGNATURE = Signature(
    inputs=[ColumnSpec(name="amount", dtype="float64"), ColumnSpec(name="country", dtype="string")]
)


def _record(request_id: str, *, deployment: str = "fraud", at: datetime = H13, **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "version": 1,
        "latency_ms": 1.5,
        "inputs": {"amount": 10.0, "country": "FR"},
        "prediction": 1,
    }
    fields.update(kw)
    return PredictionRecord(deployment=deployment, request_id=request_id, timestamp=at, **fields)


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[Callable[..., PredictionLogWriter]]:
    writers: list[PredictionLogWriter] = []

    def make(**kw: Any) -> PredictionLogWriter:
        options = {"queue_size": 10_000, "flush_rows": 1_000, "flush_seconds": 60.0} | kw
        writer = PredictionLogWriter(str(tmp_path / "log"), **options)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close(timeout=5)


@pytest.fixture
def yields(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep(0)`` made while the test runs: the moments the GIL is given back."""
    found: list[float] = []
    sleep = time.sleep

    def counted(seconds: float) -> None:
        if seconds == 0:
            found.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", counted)
    return found


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.001)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_records_from_many_threads_land_exactly_once_in_their_partitions(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    writer = make_writer(flush_rows=97, flush_seconds=0.05)
    writer.set_signature("fraud", SIGNATURE)

    def produce(thread: int) -> None:
        for i in range(500):
            deployment = "fraud" if i % 2 else "churn model/v2"
            at = (H13 if i % 3 else H14) + timedelta(seconds=i)
            assert writer.log(_record(f"t{thread}-{i}", deployment=deployment, at=at))

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(timeout=10)

    assert (writer.written, writer.dropped, writer.queue_depth) == (2000, 0, 0)
    table = read_predictions(str(tmp_path / "log"))
    assert table.num_rows == 2000
    assert len(set(table.column("request_id").to_pylist())) == 2000
    for row in table.select(["deployment", "hour", "timestamp", "request_id"]).to_pylist():
        i = int(row["request_id"].split("-")[1])
        assert row["deployment"] == ("fraud" if i % 2 else "churn model/v2")
        assert row["hour"] == ("2024-05-01T13" if i % 3 else "2024-05-01T14")
        assert row["timestamp"].strftime("%Y-%m-%dT%H") == row["hour"]
    folders = {p.parent.relative_to(tmp_path / "log").as_posix() for p in _files(tmp_path / "log")}
    assert folders == {
        f"deployment={d}/hour={h}"
        for d in ("fraud", "churn%20model%2Fv2")
        for h in ("2024-05-01T13", "2024-05-01T14")
    }
    assert all(p.name.startswith("part-") and p.suffix == ".parquet" for p in _files(tmp_path))


def test_a_full_queue_drops_and_counts_without_blocking(
    make_writer: Callable[..., PredictionLogWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled, release = threading.Event(), threading.Event()
    real_write = PredictionLogWriter._write_file

    def stalled_write(self: PredictionLogWriter, *args: Any, **kw: Any) -> None:
        stalled.set()
        release.wait(10)
        real_write(self, *args, **kw)

    monkeypatch.setattr(PredictionLogWriter, "_write_file", stalled_write)
    writer = make_writer(queue_size=10, flush_rows=1)
    assert writer.log(_record("first"))
    assert stalled.wait(5)  # the thread holds "first" and is stuck writing it

    records = [_record(f"r{i}") for i in range(1000)]
    durations, accepted = [], []
    for record in records:
        start = time.perf_counter()
        accepted.append(writer.log(record))
        durations.append(time.perf_counter() - start)

    assert accepted == [True] * 9 + [False] * 991  # the record being written still counts
    assert writer.dropped == writer.dropped_by_reason["queue_full"] == 991
    assert writer.queue_depth == 10
    assert statistics.median(durations) < 20e-6  # microseconds, not the stalled write
    assert max(durations) < 0.05
    assert writer.flush(timeout=0.01) is False  # still stalled: flush gives up, says so

    release.set()
    assert writer.flush(timeout=5)
    assert (writer.written, writer.queue_depth) == (10, 0)


def test_flush_waits_for_everything_logged_before_it(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    writer = make_writer()  # a 60 s timer and 1,000 rows: only flush() writes these
    assert writer.flush() is True  # nothing logged yet: returns at once
    assert writer.log_many([_record(f"r{i}", row=i) for i in range(3)]) == 3
    assert writer.flush(timeout=5) is True
    table = read_predictions(str(tmp_path / "log"))
    assert table.column("request_id").to_pylist() == ["r0", "r1", "r2"]
    assert table.column("row").to_pylist() == [0, 1, 2]
    assert writer.written == 3


def test_flush_rows_triggers_a_write_before_the_timer(
    make_writer: Callable[..., PredictionLogWriter],
) -> None:
    writer = make_writer(flush_rows=5)
    for i in range(5):
        writer.log(_record(f"r{i}"))
    _wait_for(lambda: writer.written == 5)


def test_sorting_a_batch_into_files_gives_the_gil_back_every_slice(
    make_writer: Callable[..., PredictionLogWriter],
    monkeypatch: pytest.MonkeyPatch,
    yields: list[float],
) -> None:
    """The writer shares the GIL with the event loop: sorting 1,000 records by file at once
    held it ~1 ms, which a lone client's p99 showed."""
    writer = make_writer()
    sorted_with: list[int] = []

    def convert(records: Any, signature: Any) -> pa.Table:
        sorted_with.append(len(yields))  # the yields made before the first conversion
        return prediction_log.logged_to_table(records, signature)

    monkeypatch.setattr(prediction_log, "_table_in_slices", convert)
    writer._write_batch([_record(f"r{i}") for i in range(1000)], {})
    assert sorted_with == [1000 // prediction_log._SLICE]
    assert writer.written == 1000


def test_a_local_file_is_written_by_pyarrow_giving_the_gil_back_between_steps(
    tmp_path: Path, yields: list[float]
) -> None:
    """Opening, writing and closing the file each give the GIL back after them (through
    fsspec's file object a 1,000-request flush kept it ~1.1 ms)."""
    table = pa.table({"x": np.arange(1000), "label": ["a", "b"] * 500})
    path = tmp_path / "part.parquet"
    prediction_log._write_by_path(table, str(path), {"compression": "snappy"})
    assert len(yields) == 2
    assert pq.read_table(path).equals(table)


def test_close_flushes_is_idempotent_and_later_records_are_dropped(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    writer = make_writer()
    writer.log(_record("a"))
    writer.log(_record("b"))
    writer.close()
    assert writer.written == 2
    assert read_predictions(str(tmp_path / "log")).num_rows == 2
    writer.close()  # idempotent
    assert writer.log(_record("late")) is False
    assert writer.dropped_by_reason == {"queue_full": 0, "write_error": 0, "closed": 1}


def test_close_before_any_record_writes_nothing(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    make_writer().close()
    assert not (tmp_path / "log").exists()


def test_interpreter_exit_flushes_what_was_logged(tmp_path: Path) -> None:
    script = f"""
from datetime import UTC, datetime
from steward.store.prediction_log import PredictionLogWriter, PredictionRecord
writer = PredictionLogWriter({str(tmp_path)!r}, queue_size=100, flush_rows=100, flush_seconds=60)
for i in range(3):
    writer.log(PredictionRecord("fraud", 1, f"r{{i}}", datetime.now(UTC), 1.0, [i], 0.5))
"""  # exits without close(): the atexit hook must write the 3 records
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    table = read_predictions(str(tmp_path), "fraud")
    assert sorted(table.column("request_id").to_pylist()) == ["r0", "r1", "r2"]


def test_a_failing_write_is_counted_and_the_thread_survives(
    make_writer: Callable[..., PredictionLogWriter],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_write = prediction_log._write_by_path
    calls = []

    def half_then_fail(table: pa.Table, path: str, options: dict[str, Any]) -> None:
        calls.append(table.num_rows)
        if len(calls) == 1:
            Path(path).write_bytes(b"PAR1 half a file")
            raise OSError("disk full")
        real_write(table, path, options)

    monkeypatch.setattr(prediction_log, "_write_by_path", half_then_fail)
    writer = make_writer()
    writer.log_many([_record("lost-1"), _record("lost-2")])
    with caplog.at_level(logging.ERROR, logger="steward.store.prediction_log"):
        assert writer.flush(timeout=5)
    assert writer.dropped_by_reason["write_error"] == 2
    assert "could not write 2 records of deployment 'fraud'" in caplog.text
    assert _files(tmp_path / "log") == []  # the half-written temporary file was removed

    writer.log(_record("kept"))
    assert writer.flush(timeout=5)
    assert (writer.written, writer.dropped) == (1, 2)
    assert read_predictions(str(tmp_path / "log")).column("request_id").to_pylist() == ["kept"]


def test_a_record_that_is_not_a_record_is_counted_not_fatal(
    make_writer: Callable[..., PredictionLogWriter],
) -> None:
    writer = make_writer()
    writer.log(_record("bad", at="yesterday"))
    writer.log(_record("good", deployment="other"))
    assert writer.flush(timeout=5)
    assert (writer.written, writer.dropped_by_reason["write_error"]) == (1, 1)


def _write_hours(root: Path, hours: int) -> None:
    writer = PredictionLogWriter(str(root), queue_size=1000, flush_rows=1000, flush_seconds=60)
    for h in range(hours):
        for minute in (0, 30):
            at = H13 + timedelta(hours=h, minutes=minute)
            writer.log(_record(f"h{h}m{minute}", at=at))
            writer.log(_record(f"other-h{h}m{minute}", deployment="other", at=at))
    writer.close()


def test_the_reader_filters_by_deployment_and_time(tmp_path: Path) -> None:
    _write_hours(tmp_path, 3)
    everything = read_predictions(str(tmp_path))
    assert everything.num_rows == 12
    assert everything.schema == PREDICTION_LOG_SCHEMA  # JSON inputs: no input.<name> columns
    window = read_predictions(
        str(tmp_path), "fraud", since=H13 + timedelta(minutes=30), until=H14 + timedelta(hours=1)
    )  # since is inclusive, until exclusive
    assert window.column("request_id").to_pylist() == ["h0m30", "h1m0", "h1m30"]
    assert set(window.column("deployment").to_pylist()) == {"fraud"}
    assert read_predictions(str(tmp_path), "nobody").num_rows == 0


def test_the_reader_opens_only_the_hours_in_the_window(tmp_path: Path) -> None:
    _write_hours(tmp_path, 2)
    corrupt = tmp_path / "deployment=fraud" / "hour=2024-05-01T10" / "part-corrupt.parquet"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"not parquet")
    (tmp_path / "deployment=fraud" / "hour=2024-05-01T13" / ".part-x.parquet.tmp").write_bytes(
        b"an unfinished write"
    )
    table = read_predictions(str(tmp_path), "fraud", since=H13)
    assert table.num_rows == 4  # the corrupt hour was never opened, the temp file ignored
    with pytest.raises(pa.ArrowInvalid):
        read_predictions(str(tmp_path), "fraud")


def test_the_reader_selects_columns_and_nulls_an_input_never_logged(tmp_path: Path) -> None:
    _write_hours(tmp_path, 1)
    table = read_predictions(
        str(tmp_path), "fraud", columns=["request_id", "prediction", "input.amount"]
    )
    assert table.column_names == ["request_id", "prediction", "input.amount"]
    assert table.column("input.amount").null_count == 2  # this deployment logged JSON inputs
    with pytest.raises(InvalidInput, match="no column 'predictions'"):
        read_predictions(str(tmp_path), columns=["predictions"])


def test_a_missing_or_empty_root_gives_an_empty_table_with_the_schema(tmp_path: Path) -> None:
    missing = read_predictions(str(tmp_path / "nothing-here"))
    assert missing.num_rows == 0
    assert missing.schema == PREDICTION_LOG_SCHEMA
    empty = read_predictions(str(tmp_path), "fraud", since=H13, columns=["request_id", "hour"])
    assert empty.schema.names == ["request_id", "hour"]
    assert empty.num_rows == 0


def test_the_reader_refuses_naive_times(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware") as raised:
        read_predictions(str(tmp_path), since=datetime(2024, 5, 1))
    assert raised.value.field == "since"


def test_the_schema_every_file_has(tmp_path: Path) -> None:
    records = [
        _record("a", prediction=np.int64(1), probabilities=np.array([0.25, 0.75]), score=0.75),
        _record("b", prediction="cat", unit_id="user-7", shadow=True, version=2),
        _record("c", prediction=None, fallback="timeout", error="model exceeded 50 ms"),
        _record("d", prediction=[1, 2], at=H13.astimezone(timezone(timedelta(hours=2)))),
    ]
    table = records_to_table(records, None)
    assert table.schema.equals(RECORD_SCHEMA, check_metadata=True)
    assert table.schema.metadata == {b"steward.prediction_log.schema_version": b"2"}
    assert PREDICTION_LOG_SCHEMA.names == ["deployment", "hour", *RECORD_SCHEMA.names]
    rows = table.to_pylist()
    assert [r["prediction"] for r in rows] == [1.0, None, None, None]
    assert [r["prediction_label"] for r in rows] == [None, "cat", None, "[1,2]"]
    assert rows[0]["probabilities"] == [0.25, 0.75]
    assert rows[0]["score"] == 0.75
    assert (rows[1]["unit_id"], rows[1]["shadow"], rows[1]["version"]) == ("user-7", True, 2)
    hi, lo = unit_keys(pa.array(["user-7"]))
    assert [(r["unit_key_hi"], r["unit_key_lo"]) for r in rows] == [
        (None, None), (hi[0].as_py(), lo[0].as_py()), (None, None), (None, None),
    ]  # fmt: skip
    assert (rows[2]["fallback"], rows[2]["error"]) == ("timeout", "model exceeded 50 ms")
    assert rows[0]["inputs"] == '{"amount":10.0,"country":"FR"}'
    assert rows[3]["timestamp"] == H13  # stored in UTC whatever the caller's zone


def test_typed_inputs_with_a_signature_and_json_when_a_row_does_not_fit() -> None:
    signature = Signature(
        inputs=[
            ColumnSpec(name="amount", dtype="float32"),
            ColumnSpec(name="n", dtype="int64"),
            ColumnSpec(name="embedding", dtype="float64", shape=[-1, 2]),
            ColumnSpec(name="extra", dtype="object"),
        ]
    )
    mapping = {"amount": 1.5, "n": np.int64(3), "embedding": np.array([0.5, 1.0]), "extra": {}}
    as_mappings = [_record("a", inputs=mapping), _record("b", inputs={"n": 4, "extra": "x"})]
    typed = records_to_table(as_mappings, signature)
    assert typed.schema.field("input.amount").type == pa.float32()
    assert typed.schema.field("input.embedding").type == pa.list_(pa.float64())
    assert typed.column("input.n").to_pylist() == [3, 4]
    assert typed.column("input.embedding").to_pylist() == [[0.5, 1.0], None]
    assert typed.column("input.extra").to_pylist() == ["{}", "x"]
    assert typed.column("inputs").null_count == 2

    as_sequences = [_record("c", inputs=(2.0, 4, [1.0, 2.0], None))]
    assert records_to_table(as_sequences, signature).column("input.amount").to_pylist() == [2.0]

    unfit = records_to_table([_record("a", inputs={"amount": 1.0, "surprise": 2})], signature)
    assert "input.amount" not in unfit.column_names
    assert unfit.column("inputs").to_pylist() == ['{"amount":1.0,"surprise":2}']


def test_files_with_different_input_columns_read_as_one_table(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path), queue_size=100, flush_rows=100, flush_seconds=60)
    writer.set_signature("fraud", Signature(inputs=[ColumnSpec(name="a", dtype="int64")]))
    writer.log(_record("old", inputs={"a": 1}))
    writer.flush()
    writer.set_signature(
        "fraud",
        Signature(
            inputs=[ColumnSpec(name="a", dtype="float64"), ColumnSpec(name="b", dtype="string")]
        ),
    )
    writer.log(_record("new", inputs={"a": 2.5, "b": "x"}, at=H14))
    writer.close()
    table = read_predictions(str(tmp_path), columns=["request_id", "input.a", "input.b"])
    assert table.to_pylist() == [
        {"request_id": "old", "input.a": 1.0, "input.b": None},
        {"request_id": "new", "input.a": 2.5, "input.b": "x"},
    ]


def test_settings_section_and_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEWARD_PREDICTION_LOG_QUEUE_SIZE", "50")
    monkeypatch.setenv("STEWARD_PREDICTION_LOG_FLUSH_SECONDS", "0.25")
    settings = Settings(home=tmp_path)
    section = settings.prediction_log
    assert (section.queue_size, section.flush_rows, section.flush_seconds) == (50, 1000, 0.25)
    assert settings.prediction_log_root == str(tmp_path / "predictions")
    writer = PredictionLogWriter.from_settings(settings)
    assert (writer.root, writer.queue_size) == (str(tmp_path / "predictions"), 50)
    monkeypatch.setenv("STEWARD_PREDICTION_LOG_ROOT", "memory://predictions")
    assert Settings().prediction_log_root == "memory://predictions"


def test_fsspec_urls_work_for_writing_and_reading() -> None:
    root = f"memory://steward-test-{time.monotonic_ns()}"
    writer = PredictionLogWriter(root, queue_size=10, flush_rows=10, flush_seconds=60)
    writer.log(_record("m"))
    writer.close()
    assert read_predictions(root, "fraud").column("request_id").to_pylist() == ["m"]


# -- one record per request, written column by column -----------------------------------------


def _request(request_id: str, rows: int, *, at: datetime = H13, **kw: Any) -> RequestRecord:
    rng = np.random.default_rng(len(request_id) + rows)
    proba = rng.random((rows, 2))
    fields: dict[str, Any] = {
        "version": 2,
        "latency_ms": 0.8,
        "inputs": {
            "amount": rng.normal(size=rows),
            "country": np.array(["FR", "DE", "IT"][:1] * rows, dtype=object),
        },
        "predictions": (proba[:, 1] > 0.5).astype(np.int64),
        "probabilities": proba / proba.sum(axis=1, keepdims=True),
        "rows": rows,
    }
    fields.update(kw)
    return RequestRecord(
        deployment="fraud", request_id=request_id, timestamp=at.timestamp(), **fields
    )


def _rows_of(requests: list[RequestRecord]) -> list[PredictionRecord]:
    return [row for request in requests for row in request.to_rows()]


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([_request("a", 1), _request("b", 3, unit_id="u7")], id="numbers"),
        pytest.param(
            [_request("a", 2, predictions=np.array(["yes", "no"], dtype=object))], id="labels"
        ),
        pytest.param(
            [_request("a", 2, predictions=np.array(["yes", "no"]), probabilities=None)],
            id="unicode-labels-no-probabilities",
        ),
        pytest.param(
            [
                _request("a", 2, probabilities=np.full((2, 3), 1 / 3)),
                _request("b", 1, probabilities=np.full((1, 3), 1 / 3), shadow=True),
            ],
            id="three-classes-and-a-shadow",
        ),
        pytest.param(
            [_request("a", 1, fallback="error", error="boom", predictions=np.array([True]))],
            id="fallback-bool",
        ),
    ],
)
def test_requests_are_written_as_their_rows_would_be(requests: list[RequestRecord]) -> None:
    by_columns = requests_to_table(requests, SIGNATURE)
    assert by_columns is not None
    assert by_columns.equals(records_to_table(_rows_of(requests), SIGNATURE))
    assert by_columns.schema.metadata == RECORD_SCHEMA.metadata


@pytest.mark.parametrize(
    ("requests", "signature"),
    [
        ([_request("a", 1)], None),  # no signature: inputs are JSON text
        ([_request("a", 1, predictions=np.array([{"k": 1}], dtype=object))], SIGNATURE),
        ([_request("a", 1), _request("b", 1, probabilities=None)], SIGNATURE),
        ([_request("a", 1), _request("b", 1, probabilities=np.ones((1, 3)) / 3)], SIGNATURE),
        ([_request("a", 1, inputs={"amount": np.array([1.0])})], SIGNATURE),  # a column short
    ],
    ids=["no-signature", "object-prediction", "some-probabilities", "widths", "missing-input"],
)
def test_what_columns_cannot_hold_goes_row_by_row(
    requests: list[RequestRecord], signature: Signature | None
) -> None:
    assert requests_to_table(requests, signature) is None
    table = logged_to_table(requests, signature)
    assert table.equals(records_to_table(_rows_of(requests), signature))


def test_requests_and_rows_logged_together_are_all_written(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path), queue_size=100, flush_rows=100, flush_seconds=60)
    writer.set_signature("fraud", SIGNATURE)
    assert writer.log_request(_request("req", 3))
    assert writer.log(_record("row"))
    writer.close()
    table = read_predictions(str(tmp_path), "fraud")
    assert sorted(zip(table["request_id"].to_pylist(), table["row"].to_pylist(), strict=True)) == [
        ("req", 0), ("req", 1), ("req", 2), ("row", 0),
    ]  # fmt: skip
    assert writer.written == 4


def test_the_queue_counts_rows_and_drops_a_request_whole(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path), queue_size=5, flush_rows=100, flush_seconds=60)
    try:
        assert writer.log_request(_request("a", 4))
        assert writer.queue_depth == 4
        assert not writer.log_request(_request("b", 2))  # 6 rows > 5: none of them
        assert writer.dropped_by_reason["queue_full"] == 2
        assert writer.log(_record("c"))  # one row still fits
        assert not writer.log(_record("d"))
    finally:
        writer.close()
    assert writer.written == 5


def test_a_request_reaching_flush_rows_wakes_the_writer(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path), queue_size=100, flush_rows=5, flush_seconds=60)
    try:
        writer.log_request(_request("a", 3))
        writer.log_request(_request("b", 3))  # crosses 5 rows: written without the timer
        _wait_for(lambda: writer.written == 6)
    finally:
        writer.close()


def test_a_flush_converted_in_slices_equals_one_conversion() -> None:
    requests = [_request(f"r{i}", 1 + i % 3) for i in range(600)]  # three slices
    mixed = [*requests[:300], _request("odd", 1, probabilities=None), *requests[300:]]
    for batch in (requests, mixed):  # the second: one slice goes row by row
        table = prediction_log._table_in_slices(batch, SIGNATURE)
        assert table.equals(logged_to_table(batch, SIGNATURE))


@pytest.mark.skipif(sys.platform != "linux", reason="threads have their own priority on Linux")
def test_the_writer_runs_at_idle_priority_and_its_helper_niced(
    make_writer: Callable[..., PredictionLogWriter],
) -> None:
    import os

    writer = make_writer()
    writer.log(_record("r1"))
    thread = writer._thread
    assert thread is not None
    assert thread.native_id is not None
    _wait_for(lambda: os.sched_getscheduler(thread.native_id) == os.SCHED_IDLE)
    assert writer.flush(5)  # asks the helper too
    helper = writer._helper
    assert helper is not None
    assert helper.native_id is not None
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    expected = min(19, mine + prediction_log.WRITER_NICE)
    _wait_for(lambda: os.getpriority(os.PRIO_PROCESS, helper.native_id) == expected)
    assert os.sched_getscheduler(helper.native_id) == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # only theirs
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def _held_batches(
    writer: PredictionLogWriter, *, writer_thread_only: bool
) -> tuple[threading.Event, threading.Event]:
    """Batches taken to be written wait for the second event (the first says one was taken):
    those of the writer thread only, or of any thread."""
    taken, released = threading.Event(), threading.Event()
    write_batch = writer._write_batch

    def held(batch: list[Any], signatures: dict[str, Signature]) -> None:
        if not writer_thread_only or threading.current_thread() is writer._thread:
            taken.set()
            released.wait(10)
        write_batch(batch, signatures)

    writer._write_batch = held  # type: ignore[method-assign]
    return taken, released


def test_a_starved_writer_brings_the_helper_in_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_log, "_STARVED_AFTER", 0.2)
    writer = PredictionLogWriter(str(tmp_path), queue_size=40, flush_rows=1000, flush_seconds=60)
    taken, released = _held_batches(writer, writer_thread_only=True)  # takes one, gets no core
    pressed = int(40 * prediction_log._PRESSED)
    for i in range(pressed + 1):  # past the mark: the writer is woken and takes them
        assert writer.log(_record(f"r{i}"))
    assert taken.wait(5)
    for i in range(pressed + 1, 30):  # these stay untaken
        assert writer.log(_record(f"r{i}"))
    assert writer._helper is None  # untaken for less than _STARVED_AFTER: not yet
    time.sleep(0.3)
    assert writer.log(_record("r30"))  # untaken for longer: the helper is called in
    assert writer._helper is not None
    _wait_for(lambda: writer.written == 30 - pressed)  # the helper wrote r21..r30
    released.set()
    _wait_for(lambda: writer.written == 31)
    writer.close()
    assert writer.dropped == 0
    assert sorted(read_predictions(str(tmp_path), "fraud")["request_id"].to_pylist()) == sorted(
        f"r{i}" for i in range(31)
    )


def test_a_writer_taking_what_comes_is_not_helped_and_drops_the_excess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a writer that takes the records (here within a minute: a loaded test machine may leave
    # an idle-priority thread waiting seconds) but not all of them: the excess is dropped
    monkeypatch.setattr(prediction_log, "_STARVED_AFTER", 60.0)
    writer = PredictionLogWriter(str(tmp_path), queue_size=40, flush_rows=1000, flush_seconds=60)
    taken, released = _held_batches(writer, writer_thread_only=False)
    accepted = [writer.log(_record(f"r{i}")) for i in range(21)]  # past the mark: taken
    assert taken.wait(5)
    accepted += [writer.log(_record(f"r{i}")) for i in range(21, 45)]  # 19 fit, 5 do not
    assert accepted == [True] * 40 + [False] * 5
    released.set()
    _wait_for(lambda: writer.written == 40, timeout=30)
    assert writer._helper is None
    writer.close()
    assert writer.dropped_by_reason["queue_full"] == 5
    assert len(read_predictions(str(tmp_path), "fraud")) == 40


@pytest.mark.parametrize(
    ("setting", "codec"),
    [(None, "SNAPPY"), ("zstd", "ZSTD"), ("lz4", "LZ4"), ("none", "UNCOMPRESSED")],
)
def test_files_are_compressed_as_the_setting_says(
    tmp_path: Path, setting: str | None, codec: str
) -> None:
    section = {} if setting is None else {"compression": setting}
    settings = Settings(home=tmp_path, prediction_log=section)
    writer = PredictionLogWriter.from_settings(settings)
    writer.set_signature("fraud", SIGNATURE)
    writer.log_request(_request("a", 3))
    writer.close()
    [part] = (tmp_path / "predictions").rglob("part-*.parquet")
    metadata = pq.ParquetFile(part).metadata
    columns = metadata.row_group(0)
    assert {columns.column(i).compression for i in range(columns.num_columns)} == {codec}
    assert read_predictions(settings.prediction_log_root, "fraud").num_rows == 3


def test_an_unknown_compression_is_refused_naming_the_setting(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="compression"):
        Settings(home=tmp_path, prediction_log={"compression": "gzip2"})


# -- requests kept in column blocks as they are logged ----------------------------------------

NUMERIC = Signature(
    inputs=[ColumnSpec(name="amount", dtype="float64"), ColumnSpec(name="age", dtype="float64")]
)


def _numeric(request_id: str, rows: int, **kw: Any) -> RequestRecord:
    """A request as the gateway logs a numeric one: its inputs also as one matrix."""
    matrix = np.random.default_rng(len(request_id) * 7 + rows).normal(size=(rows, 2))
    inputs = {"amount": matrix[:, 0], "age": matrix[:, 1]}
    return _request(request_id, rows, **{"inputs": inputs, "matrix": matrix, **kw})


def _block_of(requests: list[RequestRecord]) -> Any:
    block = prediction_log._ColumnBlock(requests[0], capacity=1000)
    for request in requests:
        assert prediction_log._ColumnBlock.takes(request)
        assert block.fits(request)
        block.add(request)
    return block


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([_numeric("a", 1), _numeric("b", 1, unit_id="u7")], id="one-row-each"),
        pytest.param([_numeric("a", 3), _numeric("b", 1), _numeric("c", 2)], id="several-rows"),
        pytest.param(
            [_numeric("a", 2, probabilities=None), _numeric("b", 1, probabilities=None)],
            id="no-probabilities",
        ),
        pytest.param(
            [_numeric("a", 2, probabilities=np.full((2, 3), 1 / 3), shadow=True)],
            id="three-classes-shadow",
        ),
        pytest.param(
            [_numeric("a", 1, fallback="error", error="boom", predictions=np.array([0.25]))],
            id="fallback-float",
        ),
    ],
)
def test_a_column_block_is_written_as_its_requests_would_be(
    requests: list[RequestRecord],
) -> None:
    table = prediction_log._block_table(_block_of(requests), NUMERIC)
    assert table is not None
    expected = requests_to_table(requests, NUMERIC)
    assert expected is not None
    assert table.equals(expected)
    assert table.equals(records_to_table(_rows_of(requests), NUMERIC))


@pytest.mark.parametrize(
    "request_",
    [
        _request("a", 1),  # no matrix (a text input)
        _numeric("a", 1, predictions=np.array(["yes"], dtype=object)),
        _numeric("a", 1, predictions=np.array([1, 0])),  # not one per row
        _numeric("a", 2, probabilities=np.ones((1, 2))),
        _numeric("a", 1, matrix=np.array([["x", "y"]], dtype=object)),
    ],
    ids=["no-matrix", "text-prediction", "prediction-count", "probability-rows", "text-matrix"],
)
def test_what_a_block_cannot_hold_goes_the_general_way(request_: RequestRecord) -> None:
    assert not prediction_log._ColumnBlock.takes(request_)


def test_a_block_without_a_typing_signature_is_written_by_the_general_path() -> None:
    requests = [_numeric("a", 2), _numeric("b", 1)]
    block = _block_of(requests)
    assert prediction_log._block_table(block, None) is None
    (table,) = prediction_log._tables([block], None)
    assert table.equals(logged_to_table(requests, None))


def test_a_block_holds_what_its_byte_budget_holds_within_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prediction_log, "_BLOCK_BYTES", 4000)
    one_row = _numeric("a", 1)  # 2 float64 inputs + a prediction + 2 probabilities: 40 bytes
    assert prediction_log._block_rows(one_row, 1000) == 100
    assert prediction_log._block_rows(one_row, 60) == 60  # never over the queue
    no_probabilities = _numeric("b", 1, probabilities=None)  # 24 bytes a row
    assert prediction_log._block_rows(no_probabilities, 1000) == 166
    assert prediction_log._block_rows(_numeric("c", 300), 1000) == 300  # one request at least


def test_a_flush_size_beyond_memory_does_not_size_the_blocks(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path), queue_size=100, flush_rows=10**12,
                                 flush_seconds=60)  # fmt: skip
    writer.set_signature("fraud", NUMERIC)
    for i in range(5):
        assert writer.log_request(_numeric(f"r{i}", 2))
    writer.close()
    assert writer.written == 10
    assert read_predictions(str(tmp_path), "fraud").num_rows == 10


def test_blocks_and_records_logged_together_are_written_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_log, "_BLOCK_BYTES", 160)  # 4 rows of 40 bytes, 6 of 24
    writer = PredictionLogWriter(str(tmp_path), queue_size=1000, flush_rows=4, flush_seconds=60)
    writer.set_signature("fraud", NUMERIC)
    late = H13 + timedelta(minutes=59, seconds=59)
    logged = [
        _numeric("n1", 1), _numeric("n2", 3),  # a block of 4 rows: full, queued
        _request("general", 1, inputs={"amount": np.array([1.0]), "age": np.array([2.0])}),
        _numeric("n3", 1, probabilities=None),  # another width: a new block
        _numeric("n4", 1, probabilities=None, at=late),
        _numeric("n5", 2, probabilities=None, at=H14),  # this block spans two hours
    ]  # fmt: skip
    for request in logged:
        assert writer.log_request(request)
    writer.close()
    assert writer.written == 9
    assert writer.dropped == 0
    table = read_predictions(str(tmp_path), "fraud")
    ordered = table.sort_by([("request_id", "ascending"), ("row", "ascending")])
    expected = records_to_table(_rows_of(logged), NUMERIC).sort_by(
        [("request_id", "ascending"), ("row", "ascending")]
    )
    for name in ("request_id", "row", "timestamp", "input.amount", "input.age", "prediction",
                 "score", "probabilities"):  # fmt: skip
        assert ordered[name].to_pylist() == expected[name].to_pylist(), name
    hours = {f.parent.name for f in _files(tmp_path)}
    assert hours == {"hour=2024-05-01T13", "hour=2024-05-01T14"}
