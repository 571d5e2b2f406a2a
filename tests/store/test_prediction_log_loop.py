"""The prediction log's conversions run on the server's event loop (`convert_on`), and on the
writer thread whenever the loop cannot take them: closed, stopped, or gone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.store import prediction_log
from steward.store.prediction_log import PredictionLogWriter, RequestRecord, read_predictions

SIGNATURE = Signature(inputs=[ColumnSpec(name="amount", dtype="float64")])
AT = datetime(2024, 5, 1, 13, 0, tzinfo=UTC).timestamp()


def _request(i: int) -> RequestRecord:
    return RequestRecord(
        "fraud", 1, f"r{i}", AT, 0.5, {"amount": np.array([float(i)])},
        np.array([i % 2]), np.array([[0.25, 0.75]]), 1,
    )  # fmt: skip


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as the server's is."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def conversion_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of every slice converted, in order."""
    seen: list[int] = []
    convert = prediction_log.logged_to_table

    def spied(records: Any, signature: Signature | None) -> pa.Table:
        seen.append(threading.get_ident())
        return convert(records, signature)

    monkeypatch.setattr(prediction_log, "logged_to_table", spied)
    return seen


def _writer(root: Path) -> PredictionLogWriter:
    return PredictionLogWriter(str(root), queue_size=10_000, flush_rows=10_000, flush_seconds=60)


def _log_and_flush(writer: PredictionLogWriter, count: int) -> None:
    for i in range(count):
        assert writer.log_request(_request(i))
    assert writer.flush(timeout=10)


def _loop_thread(loop: asyncio.AbstractEventLoop) -> int:
    found: list[int] = []
    done = threading.Event()
    loop.call_soon_threadsafe(lambda: (found.append(threading.get_ident()), done.set()))
    assert done.wait(5)
    return found[0]


def test_slices_are_converted_on_the_loop_and_written_as_on_the_thread(
    tmp_path: Path, running_loop: asyncio.AbstractEventLoop, conversion_threads: list[int]
) -> None:
    count = 3 * prediction_log._SLICE + 7
    on_loop, on_thread = _writer(tmp_path / "loop"), _writer(tmp_path / "thread")
    for writer in (on_loop, on_thread):
        writer.set_signature("fraud", SIGNATURE)
    on_loop.convert_on(running_loop)
    try:
        _log_and_flush(on_loop, count)
        assert set(conversion_threads) == {_loop_thread(running_loop)}
        assert len(conversion_threads) == 4  # one per slice
        _log_and_flush(on_thread, count)
    finally:
        on_loop.close()
        on_thread.close()
    assert on_thread._thread is not None
    assert conversion_threads[4:] == [on_thread._thread.ident] * 4
    written = read_predictions(str(tmp_path / "loop"), "fraud").drop_columns(["timestamp"])
    expected = read_predictions(str(tmp_path / "thread"), "fraud").drop_columns(["timestamp"])
    assert written.num_rows == count
    assert written.sort_by("request_id").equals(expected.sort_by("request_id"))


def test_a_closed_loop_leaves_the_conversion_to_the_writer_thread(
    tmp_path: Path, conversion_threads: list[int]
) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    writer = _writer(tmp_path)
    writer.convert_on(loop)
    try:
        _log_and_flush(writer, 5)
    finally:
        writer.close()
    assert writer.written == 5
    assert writer._thread is not None
    assert conversion_threads == [writer._thread.ident]


def test_a_stopped_loop_is_waited_for_briefly_and_never_converts_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversion_threads: list[int]
) -> None:
    monkeypatch.setattr(prediction_log, "LOOP_WAIT_SECONDS", 0.05)
    loop = asyncio.new_event_loop()  # never run: the slice waits in its queue
    writer = _writer(tmp_path)
    writer.convert_on(loop)
    try:
        _log_and_flush(writer, 5)
        assert writer.written == 5
        loop.run_until_complete(asyncio.sleep(0))  # runs the queued slice, given up on
    finally:
        writer.close()
        loop.close()
    assert writer._thread is not None
    assert conversion_threads == [writer._thread.ident]  # by the thread, once
    assert read_predictions(str(tmp_path), "fraud").num_rows == 5


def test_a_conversion_failing_on_the_loop_is_counted_and_the_loop_goes_on(
    tmp_path: Path, running_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(records: Any, signature: Signature | None) -> pa.Table:
        raise ValueError("cannot convert")

    monkeypatch.setattr(prediction_log, "logged_to_table", broken)
    writer = _writer(tmp_path)
    writer.convert_on(running_loop)
    try:
        _log_and_flush(writer, 3)
    finally:
        writer.close()
    assert (writer.written, writer.dropped_by_reason["write_error"]) == (0, 3)
    assert _loop_thread(running_loop)  # still answering


def test_back_on_the_thread_once_the_loop_is_taken_away(
    tmp_path: Path, running_loop: asyncio.AbstractEventLoop, conversion_threads: list[int]
) -> None:
    writer = _writer(tmp_path)
    writer.convert_on(running_loop)
    try:
        _log_and_flush(writer, 2)
        writer.convert_on(None)
        _log_and_flush(writer, 2)
    finally:
        writer.close()
    assert writer._thread is not None
    assert conversion_threads == [_loop_thread(running_loop), writer._thread.ident]


def test_the_gateway_converts_on_its_loop_while_it_serves(
    tmp_path: Path, conversion_threads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`create_gateway`'s lifespan hands its loop to the log, and takes it back at shutdown."""
    from starlette.testclient import TestClient

    from steward.serving.gateway import create_gateway

    attached: list[bool | None] = []  # whether the loop ran when handed over; None: taken back
    writer = _writer(tmp_path)
    convert_on = writer.convert_on

    def spy(loop: asyncio.AbstractEventLoop | None) -> None:
        attached.append(None if loop is None else loop.is_running())
        convert_on(loop)

    monkeypatch.setattr(writer, "convert_on", spy)
    runtime: Any = _NoDeployments()
    with TestClient(create_gateway(runtime, writer, poll_seconds=None)) as http:
        assert http.get("/v2/health/live").status_code == 200
        _log_and_flush(writer, 2)
    assert attached == [True, None]
    assert writer._thread is not None
    assert conversion_threads
    assert writer._thread.ident not in conversion_threads


class _NoDeployments:
    """The runtime surface `create_gateway` touches, serving nothing."""

    metrics = None
    store = None
    names: tuple[str, ...] = ()
    on_signature: Any = None

    async def start(self, poll_seconds: float | None) -> None:
        return None

    async def close(self) -> None:
        return None
