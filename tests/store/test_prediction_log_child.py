"""The prediction log's writer process: column blocks written by a child, exactly once."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.settings import Settings
from steward.store import prediction_log
from steward.store._prediction_log_child import BlockWriterProcess, ChildGone, receive, send
from steward.store.prediction_log import PredictionLogWriter, RequestRecord, read_predictions

NUMERIC = Signature(
    inputs=[ColumnSpec(name="amount", dtype="float64"), ColumnSpec(name="age", dtype="float32")]
)
AT = datetime(2024, 5, 1, 13, 30, tzinfo=UTC).timestamp()


def _request(request_id: str, rows: int = 1, **kw: Any) -> RequestRecord:
    """A numeric request as the gateway logs it: its inputs also as one matrix."""
    seed = sum(map(ord, request_id))
    matrix = np.random.default_rng(seed).normal(size=(rows, 2))
    fields: dict[str, Any] = {
        "deployment": "fraud", "version": 3, "request_id": request_id, "timestamp": AT,
        "latency_ms": 0.4, "inputs": {"amount": matrix[:, 0], "age": matrix[:, 1]},
        "predictions": np.arange(rows, dtype=np.int64), "probabilities": np.full((rows, 2), 0.5),
        "rows": rows, "matrix": matrix,
    }  # fmt: skip
    fields.update(kw)
    return RequestRecord(**fields)


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[Callable[..., PredictionLogWriter]]:
    writers: list[PredictionLogWriter] = []

    def make(root: Path | None = None, **kw: Any) -> PredictionLogWriter:
        options: dict[str, Any] = {"queue_size": 100_000, "flush_rows": 100, "flush_seconds": 60.0,
                   "writer": "process"} | kw  # fmt: skip
        writer = PredictionLogWriter(str(root or tmp_path / "log"), **options)
        writer.set_signature("fraud", NUMERIC)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close(timeout=10)


def _log_and_wait(writer: PredictionLogWriter, ids: list[str]) -> None:
    """Log one-row requests (a multiple of the writer's flush_rows, 100) and wait until the
    writer thread has written or dropped them: no flush(), which calls the helper in."""
    assert len(ids) % 100 == 0
    for start in range(0, len(ids), 100):  # the writer wakes when 100 rows are buffered
        for rid in ids[start : start + 100]:
            assert writer.log_request(_request(rid))
        _wait_for(lambda: writer.queue_depth == 0)


def _logged(root: Path) -> Counter[tuple[str, int]]:
    table = read_predictions(str(root), "fraud", columns=["request_id", "row"])
    return Counter(zip(table["request_id"].to_pylist(), table["row"].to_pylist(), strict=True))


def _wanted(ids: list[str], rows: int = 1) -> Counter[tuple[str, int]]:
    return Counter((rid, row) for rid in ids for row in range(rows))


def test_blocks_are_written_by_a_child_process_as_the_thread_writes_them(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    by_process = make_writer(tmp_path / "process")
    by_thread = make_writer(tmp_path / "thread", writer="thread")
    requests = [_request(f"r{i}", rows=1 + i % 3, unit_id=f"u{i % 5}") for i in range(300)]
    for request in requests:
        assert by_process.log_request(request)
        assert by_thread.log_request(request)
    assert by_process.flush(30)
    assert by_thread.flush(30)
    children = list(by_process._children.values())  # the writer's, the helper's, or both
    assert children
    assert all(child.pid not in (None, os.getpid()) for child in children)
    assert not by_thread._children  # the thread writer never starts one
    by_process.close()
    by_thread.close()
    assert by_process.written == by_thread.written == sum(r.rows for r in requests)
    assert by_process.dropped == 0

    def table(root: Path) -> Any:
        return read_predictions(str(root), "fraud").sort_by([("request_id", "ascending"),
                                                              ("row", "ascending")])  # fmt: skip

    assert table(tmp_path / "process").equals(table(tmp_path / "thread"))
    assert all(child.pid is None for child in children)  # closed with the writer


def test_a_killed_child_loses_nothing_and_is_replaced(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    writer = make_writer()
    first = [f"a{i}" for i in range(200)]
    _log_and_wait(writer, first)
    pid = writer._children[True].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    second = [f"b{i}" for i in range(200)]
    _log_and_wait(writer, second)
    assert writer._children[True].pid not in (None, pid)  # a new child wrote the rest
    writer.close()
    assert writer.dropped == 0
    assert _logged(tmp_path / "log") == _wanted(first + second)


class _DiesAfterWriting:
    """A child that wrote its files and died before it could say so."""

    gave_up = False
    pid = None

    def __init__(self, writer: PredictionLogWriter) -> None:
        self.writer = writer
        self.calls = 0

    def write(self, deployment: str, hour: str, blocks: list[Any], signature: Any, *,
              names: list[str]) -> None:  # fmt: skip
        self.calls += 1
        for table, name in zip(prediction_log._tables(blocks, signature), names, strict=False):
            self.writer._write_file(deployment, hour, table, name=name)
        raise ChildGone("killed after the rename")

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_files_a_dying_child_wrote_are_not_written_again(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    writer = make_writer()
    fake = _DiesAfterWriting(writer)
    writer._children = {True: fake, False: fake}  # type: ignore[dict-item]
    ids = [f"r{i}" for i in range(200)]
    _log_and_wait(writer, ids)
    writer.close()
    assert fake.calls >= 1
    assert writer.written == len(ids)
    assert _logged(tmp_path / "log") == _wanted(ids)


def test_a_child_that_cannot_start_leaves_the_blocks_to_the_thread(
    make_writer: Callable[..., PredictionLogWriter],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    writer = make_writer()
    ids = []
    for flush in range(prediction_log._CHILD_STARTS + 2):
        batch = [f"f{flush}-{i}" for i in range(100)]
        ids += batch
        _log_and_wait(writer, batch)
    assert writer._children[True].gave_up  # no more attempts: the thread writes from now on
    writer.close()
    assert writer.dropped == 0
    assert _logged(tmp_path / "log") == _wanted(ids)
    assert "writer process stopped" in caplog.text


def test_a_file_the_child_cannot_write_is_counted_and_the_next_one_written(
    make_writer: Callable[..., PredictionLogWriter], tmp_path: Path
) -> None:
    root = tmp_path / "log"
    root.mkdir()
    (root / "deployment=fraud").write_text("a file where the partition's folder goes")
    writer = make_writer()
    _log_and_wait(writer, [f"r{i}" for i in range(100)])
    assert writer.dropped_by_reason["write_error"] == 100
    pid = writer._children[True].pid
    assert pid is not None  # the child reported the failure and lives on
    (root / "deployment=fraud").unlink()
    _log_and_wait(writer, [f"s{i}" for i in range(100)])
    assert writer._children[True].pid == pid
    writer.close()
    assert writer.written == 100
    assert _logged(root) == _wanted([f"s{i}" for i in range(100)])


@pytest.fixture
def writes_by(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each write sent to a child went to the idle one (True) or the niced one."""
    calls: list[bool] = []
    real = BlockWriterProcess.write

    def spy(self: BlockWriterProcess, *args: Any, **kw: Any) -> None:
        calls.append(self.idle)
        real(self, *args, **kw)

    monkeypatch.setattr(BlockWriterProcess, "write", spy)
    return calls


@pytest.mark.skipif(sys.platform != "linux", reason="scheduling policies are Linux's")
def test_the_writer_thread_s_child_runs_at_idle_priority_and_the_helper_s_niced(
    make_writer: Callable[..., PredictionLogWriter], writes_by: list[bool]
) -> None:
    writer = make_writer(flush_rows=10**6)  # the writer thread writes when woken

    def logged(prefix: str, wake: Callable[[], None]) -> None:
        for i in range(100):
            assert writer.log_request(_request(f"{prefix}{i}"))
        wake()
        _wait_for(lambda: writer.queue_depth == 0)

    logged("r", writer._wake.set)
    assert writes_by == [True]  # the writer thread's
    idle, niced = writer._children[True].pid, writer._children[False].pid
    assert None not in (idle, niced)
    assert idle != niced  # both started with the writer, so neither starts under load
    assert os.sched_getscheduler(idle) == os.SCHED_IDLE  # type: ignore[arg-type]
    assert os.sched_getscheduler(niced) == os.SCHED_OTHER  # type: ignore[arg-type]
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + prediction_log.WRITER_NICE)
    # it lowers itself once its imports are done
    _wait_for(lambda: os.getpriority(os.PRIO_PROCESS, niced) == expected)  # type: ignore[arg-type]

    def press() -> None:
        with writer._lock:  # as when the queue fills: the helper is called in, and writes
            writer._press()

    logged("p", press)
    assert writes_by == [True, False]  # the helper's
    assert os.sched_getscheduler(idle) == os.SCHED_IDLE  # type: ignore[arg-type]
    writer.close()
    assert _logged(writer_root(writer)) == _wanted([f"{p}{i}" for p in "rp" for i in range(100)])


def writer_root(writer: PredictionLogWriter) -> Path:
    return Path(writer.root)


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


def test_records_and_non_local_roots_stay_with_the_thread(
    make_writer: Callable[..., PredictionLogWriter], writes_by: list[bool]
) -> None:
    writer = make_writer()
    general = _request("text", matrix=None)  # no matrix: not a column block
    assert not prediction_log._ColumnBlock.takes(general)
    assert writer.log_request(general)
    assert writer.flush(30)
    assert writer.written == 1
    assert writes_by == []  # written by the thread
    memory = PredictionLogWriter(
        f"memory://steward-child-{time.monotonic_ns()}", queue_size=100, flush_rows=10,
        flush_seconds=60, writer="process",
    )  # fmt: skip
    memory.set_signature("fraud", NUMERIC)
    assert memory.log_request(_request("m1"))
    memory.close()
    assert not memory._children  # a child's memory filesystem would not be ours
    assert memory.written == 1


def test_messages_keep_their_arrays_and_the_end_of_input_is_told_apart() -> None:
    pipe = io.BytesIO()
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    send(pipe, ("fraud", {"ids": ["a", "b"]}, matrix, matrix[:, 1].copy()))
    send(pipe, None)
    message = pipe.getvalue()
    source = io.BytesIO(message)
    name, fields, got, column = receive(source)
    assert (name, fields) == ("fraud", {"ids": ["a", "b"]})
    assert np.array_equal(got, matrix)
    assert got.dtype == np.float32
    assert np.array_equal(column, matrix[:, 1])
    assert receive(source) is None
    with pytest.raises(EOFError):
        receive(source)  # closed between two messages: the child's signal to stop
    first = io.BytesIO()
    send(first, ("fraud", matrix))
    with pytest.raises(ChildGone):
        receive(io.BytesIO(first.getvalue()[:-5]))  # closed in the middle of one


def test_the_setting_picks_the_writer_and_refuses_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    default = PredictionLogWriter.from_settings(Settings(home=tmp_path))
    assert default.writer == "thread"
    assert not default._children
    monkeypatch.setenv("STEWARD_PREDICTION_LOG_WRITER", "process")
    chosen = PredictionLogWriter.from_settings(Settings(home=tmp_path))
    chosen.close()
    assert chosen.writer == "process"
    assert set(chosen._children) == {True, False}  # started with the writer
    with pytest.raises(ValidationError, match="writer"):
        Settings(home=tmp_path, prediction_log={"writer": "fork"})
