"""The prediction log: one Parquet row per answered prediction row, written off the hot path.

Layout (local folder or any fsspec URL)::

    {root}/deployment={name}/hour={YYYY-MM-DDTHH}/part-{uuid}.parquet

``PredictionLogWriter.log`` only appends to a bounded in-memory buffer (a lock, two integer
checks and a deque append); a background thread groups the buffered records by deployment and
UTC hour and writes one file per group, to a hidden temporary name first and then renamed, so a
reader never sees a partial file. When the buffer is full the record is dropped and counted,
never waited for. The schema is documented in docs/prediction-log.md; monitoring and
experiments read it through ``read_predictions``.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import SimpleNamespace
from typing import Any, NamedTuple, TypeGuard
from urllib.parse import quote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from steward.domain.signature import Signature
from steward.errors import InvalidInput
from steward.settings import PredictionLogCompression, PredictionLogWriterKind, Settings
from steward.store import unit_keys
from steward.store._prediction_log_child import (
    WRITER_NICE,
    BlockWriterProcess,
    ChildGone,
    ChildWriteFailed,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "2"  # 2: the unit key columns
INPUT_PREFIX = "input."
HOUR_FORMAT = "%Y-%m-%dT%H"

PARTITION_SCHEMA = pa.schema([("deployment", pa.string()), ("hour", pa.string())])
# The columns every file has (the partition columns live in the folder names).
RECORD_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("unit_id", pa.string()),
        *unit_keys.FIELDS,
        pa.field("version", pa.int64(), nullable=False),
        pa.field("shadow", pa.bool_(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("fallback", pa.string()),
        pa.field("error", pa.string()),
        pa.field("prediction", pa.float64()),
        pa.field("prediction_label", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("probabilities", pa.list_(pa.float64())),
        pa.field("inputs", pa.string()),
    ],
    metadata={"steward.prediction_log.schema_version": SCHEMA_VERSION},
)
# What ``read_predictions`` returns before any ``input.<name>`` column.
PREDICTION_LOG_SCHEMA = pa.unify_schemas([PARTITION_SCHEMA, RECORD_SCHEMA])

_ARROW_TYPES: dict[str, pa.DataType] = {
    "float16": pa.float32(),  # Python floats do not convert to half floats; keep the value
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "object": pa.string(),  # a str as is, anything else as JSON text
    "datetime64[ns]": pa.timestamp("ns"),
}


class PredictionRecord(NamedTuple):
    """One answered prediction row; a NamedTuple because it is built on the hot path (~0.7 µs).

    ``inputs`` is the row: a mapping of column name to value, or a sequence in the order of the
    deployment's signature. ``row`` is the row's position in a batched request, so
    ``(request_id, row)`` identifies it. ``timestamp`` is timezone-aware UTC (a naive value is
    read as UTC).
    """

    deployment: str
    version: int
    request_id: str
    timestamp: datetime
    latency_ms: float
    inputs: Mapping[str, Any] | Sequence[Any]
    prediction: Any
    row: int = 0
    unit_id: str | None = None
    score: float | None = None
    probabilities: Sequence[float] | None = None
    fallback: str | None = None
    shadow: bool = False
    error: str | None = None


class RequestRecord(NamedTuple):
    """One answered request with its rows as arrays: what the gateway logs.

    One object per request instead of one per row: the per-row work (splitting inputs and
    outputs into rows) is done by the writer thread, in numpy and Arrow, instead of on the
    event loop in Python (measured: ~30 µs a one-row request before, ~2 µs now). ``inputs``
    maps each input name to an array with one entry per row; ``predictions`` has one entry per
    row and ``probabilities`` one row of class probabilities per row (or None). ``timestamp``
    is seconds since the epoch (``time.time()``): Arrow converts a column of those ~15x faster
    than one of timezone-aware datetimes (measured: 0.3 against 4.7 µs a row).
    """

    deployment: str
    version: int
    request_id: str
    timestamp: float
    latency_ms: float
    inputs: Mapping[str, Any]
    predictions: Any
    probabilities: Any
    rows: int
    unit_id: str | None = None
    fallback: str | None = None
    shadow: bool = False
    error: str | None = None
    # The inputs as one rows x columns array in the signature's order, when the request was
    # decoded as one: the writer then joins one array per request, not one per column.
    matrix: Any = None

    def to_rows(self) -> list[PredictionRecord]:
        """The request as one `PredictionRecord` per row (the general path)."""
        columns = [_plain(column) for column in self.inputs.values()]
        inputs = list(zip(*columns, strict=True)) if columns else [()] * self.rows
        predictions = _per_row(self.predictions, self.rows)
        probabilities = _per_row(self.probabilities, self.rows)
        return [
            PredictionRecord(
                self.deployment, self.version, self.request_id,
                datetime.fromtimestamp(self.timestamp, UTC),
                self.latency_ms, inputs[i], predictions[i], row=i, unit_id=self.unit_id,
                score=_score(probabilities[i]), probabilities=probabilities[i],
                fallback=self.fallback, shadow=self.shadow, error=self.error,
            )
            for i in range(self.rows)
        ]  # fmt: skip


Logged = PredictionRecord | RequestRecord


class _ColumnBlock:
    """Requests of one deployment kept column by column as they are logged: the hot path's
    lane when every request looks the same (one numeric input matrix in the signature's
    order, numeric predictions, class probabilities of one width).

    Why: the writer thread turned a flush of `RequestRecord`s into columns while holding the
    GIL, ~1.4 µs a request of 20 features (transposing the records, joining one small array
    per request), and the event loop waited for it. Here each request's values are appended
    where they arrive (checking its shapes, list appends and one row copy per array: ~2 µs on
    the loop), and the writer builds the table with a few whole-column calls, ~0.36 ms a
    thousand requests (measured). With the writer at idle priority, ONNX `/predict` at
    concurrency 1 went from 0.84x to 1.0x the bare app's requests/s and its p99 from 1.55 to
    0.83 ms (the bare app's: 0.41-0.51 ms; docs/benchmarks.md).
    """

    def __init__(self, first: RequestRecord, capacity: int) -> None:
        matrix, probabilities = first.matrix, first.probabilities
        self.deployment = first.deployment
        # The input names, in the matrix's order (the deployment's signature's, as the
        # general path also assumes when it joins the requests' matrices).
        self.names = tuple(first.inputs)
        self.capacity = capacity  # at least the first request's rows (`_block_rows`)
        self.inputs = np.empty((self.capacity, matrix.shape[1]), matrix.dtype)
        self.predictions = np.empty(self.capacity, np.float64)
        self.probabilities = (
            None if probabilities is None
            else np.empty((self.capacity, probabilities.shape[1]), np.float64)
        )  # fmt: skip
        self.rows = 0
        # one entry per request
        self.counts: list[int] = []
        self.versions: list[int] = []
        self.request_ids: list[str] = []
        self.timestamps: list[float] = []
        self.latencies: list[float] = []
        self.units: list[str | None] = []
        self.fallbacks: list[str | None] = []
        self.errors: list[str | None] = []
        self.shadows: list[bool] = []

    def __getstate__(self) -> dict[str, Any]:
        """What is sent to the writer process: the arrays cut to the rows held (a block's
        arrays are allocated for `_BLOCK_BYTES`, mostly unused at a flush)."""
        state = dict(self.__dict__)
        rows = self.rows
        state["capacity"] = rows
        state["inputs"] = self.inputs[:rows]
        state["predictions"] = self.predictions[:rows]
        if self.probabilities is not None:
            state["probabilities"] = self.probabilities[:rows]
        return state

    @staticmethod
    def takes(record: RequestRecord) -> bool:
        """Whether ``record`` has the shapes a block keeps (else it goes the general way)."""
        matrix, predictions, probabilities = record.matrix, record.predictions, record.probabilities
        rows = record.rows
        return (
            isinstance(matrix, np.ndarray) and matrix.ndim == 2 and matrix.shape[0] == rows
            and matrix.shape[1] == len(record.inputs) and matrix.dtype.kind in "biuf"
            and isinstance(predictions, np.ndarray) and predictions.shape == (rows,)
            and predictions.dtype.kind in "biuf"
            and (probabilities is None or (
                isinstance(probabilities, np.ndarray) and probabilities.ndim == 2
                and probabilities.shape[0] == rows and probabilities.dtype.kind in "biuf"))
            and isinstance(record.timestamp, float)
        )  # fmt: skip

    def fits(self, record: RequestRecord) -> bool:
        """Room for ``record``, with the same input width and dtype and probability width."""
        probabilities = record.probabilities
        return (
            self.rows + record.rows <= self.capacity
            and record.matrix.shape[1] == self.inputs.shape[1]
            and record.matrix.dtype == self.inputs.dtype
            and (probabilities is None) == (self.probabilities is None)
            and (probabilities is None or probabilities.shape[1] == self.probabilities.shape[1])  # type: ignore[union-attr]
        )  # fmt: skip

    def add(self, record: RequestRecord) -> None:
        start, end = self.rows, self.rows + record.rows
        self.inputs[start:end] = record.matrix
        self.predictions[start:end] = record.predictions
        if self.probabilities is not None:
            self.probabilities[start:end] = record.probabilities
        self.rows = end
        self.counts.append(record.rows)
        self.versions.append(record.version)
        self.request_ids.append(record.request_id)
        self.timestamps.append(record.timestamp)
        self.latencies.append(record.latency_ms)
        self.units.append(record.unit_id)
        self.fallbacks.append(record.fallback)
        self.errors.append(record.error)
        self.shadows.append(record.shadow)

    def hours(self, hours: dict[int, str]) -> set[str]:
        first, last = min(self.timestamps), max(self.timestamps)
        return {_hour_of(first, hours), _hour_of(last, hours)}

    def to_requests(self) -> list[RequestRecord]:
        """The block as the records it was built from (the general path's input)."""
        found, start = [], 0
        for i, rows in enumerate(self.counts):
            end = start + rows
            probabilities = None if self.probabilities is None else self.probabilities[start:end]
            matrix = self.inputs[start:end]
            inputs = {name: matrix[:, j] for j, name in enumerate(self.names)}
            found.append(RequestRecord(
                self.deployment, self.versions[i], self.request_ids[i], self.timestamps[i],
                self.latencies[i], inputs, self.predictions[start:end], probabilities, rows,
                unit_id=self.units[i], fallback=self.fallbacks[i], shadow=self.shadows[i],
                error=self.errors[i], matrix=matrix,
            ))  # fmt: skip
            start = end
        return found


# The most bytes a column block's arrays take (allocated at once, touched as rows arrive).
_BLOCK_BYTES = 4 * 1024 * 1024


def _block_rows(first: RequestRecord, queue_size: int) -> int:
    """The rows a new block holds: as many as `_BLOCK_BYTES` of its arrays hold (at most the
    queue's size, at least the first request's rows), so that a writer fallen behind finds a few
    large blocks rather than many small ones; a full block is queued and the next one started,
    and the writer joins a flush's blocks. Each block is a table of its own, ~0.5 ms of fixed
    cost: a flush of 10,000 rows of 100-row requests took 10.5 ms in blocks of 1,000 rows and
    5.2 ms in one block (measured), and a saturated core dropped a third fewer."""
    matrix, probabilities = first.matrix, first.probabilities
    width: int = matrix.shape[1] * matrix.dtype.itemsize + 8  # the inputs, a prediction
    if probabilities is not None:
        width += probabilities.shape[1] * 8
    return max(first.rows, min(queue_size, _BLOCK_BYTES // width))


def _per_row(values: Any, rows: int) -> list[Any]:
    return [None] * rows if values is None else list(_plain(values))


def _score(probabilities: Any) -> float | None:
    """The positive class's probability of a binary classifier."""
    if isinstance(probabilities, list) and len(probabilities) == 2:
        return float(probabilities[1])
    return None


class PredictionLogWriter:
    """Buffers records in memory and writes them as Parquet from one background thread."""

    def __init__(
        self,
        root: str,
        *,
        queue_size: int,
        flush_rows: int,
        flush_seconds: float,
        compression: PredictionLogCompression = "snappy",
        writer: PredictionLogWriterKind = "thread",
    ) -> None:
        self.root = root.rstrip("/")
        self.compression = compression
        self.writer = writer
        self.queue_size = queue_size
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.written = 0
        self.dropped_by_reason: dict[str, int] = {"queue_full": 0, "write_error": 0, "closed": 0}
        self._lock = threading.Lock()
        self._done_cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        # Set while the helper thread writes too: the queue past `_PRESSED` of its size and
        # the writer starved (see `_press_if_starved`).
        self._pressure = threading.Event()
        # Since when buffered records have waited for a thread to take them (None: taken).
        self._untaken_since: float | None = None
        self._helper: threading.Thread | None = None
        self._buffer: deque[Logged | _ColumnBlock] = deque()
        self._blocks: dict[str, _ColumnBlock] = {}  # each deployment's open block
        self._buffered_rows = 0  # rows in the buffer (a RequestRecord holds several)
        self._accepted = 0  # rows ever accepted by log() and log_request()
        self._processed = 0  # rows written or dropped by the writer thread
        self._signatures: dict[str, Signature] = {}
        self._made_dirs: set[str] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        # the writer processes of the writer thread (idle) and of its helper (niced)
        self._children: dict[bool, BlockWriterProcess] = {}
        self._start_writer_processes()

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionLogWriter:
        section = settings.prediction_log
        return cls(
            settings.prediction_log_root,
            queue_size=section.queue_size,
            flush_rows=section.flush_rows,
            flush_seconds=section.flush_seconds,
            compression=section.compression,
            writer=section.writer,
        )

    # -- the hot path ------------------------------------------------------------------------

    def log(self, record: PredictionRecord) -> bool:
        """Queue one record without ever blocking; False (and counted) when it was dropped."""
        return self._queue(record, 1)

    def log_request(self, record: RequestRecord) -> bool:
        """Queue the rows of one request at once; False (and all counted) when dropped.

        The queue counts rows: a request that does not fit whole is dropped whole."""
        return self._queue(record, record.rows, columnar=_ColumnBlock.takes(record))

    def _queue(self, record: Logged, rows: int, *, columnar: bool = False) -> bool:
        with self._lock:
            if self._accepted - self._processed + rows > self.queue_size or self._closed:
                self.dropped_by_reason["closed" if self._closed else "queue_full"] += rows
                return False
            if columnar:
                self._add_to_block(record)  # type: ignore[arg-type]
            else:
                self._buffer.append(record)
            self._accepted += rows
            before = self._buffered_rows
            self._buffered_rows = before + rows
            if self._thread is None:
                self._start()
            if before < self.flush_rows <= before + rows:
                self._wake.set()
            if self._accepted - self._processed > self.queue_size * _PRESSED:
                self._press_if_starved()
        return True

    def _press_if_starved(self) -> None:
        """The queue is filling: the helper writes too when the writer is starved, that is when
        it has left buffered records untaken for `_STARVED_AFTER` (a core with no idle time,
        which an idle-priority thread never gets).

        A writer that takes them, but more slowly than they come (a load more than the core can
        serve and log, where the writer only has the idle moments between requests), is not
        helped: the helper's writes would land beside the requests (measured, ONNX
        `/predict` with 100-row requests at concurrency 1: p99 2.39 ms with the helper in at
        half the queue, 1.04 ms without, the bare app's 1.71 ms), and the records that do not
        fit are dropped and counted, as the log promises, rather than the requests slowed."""
        now = time.monotonic()
        if self._untaken_since is None:
            self._untaken_since = now
            self._wake.set()
        elif now - self._untaken_since >= _STARVED_AFTER:
            self._press()

    def _press(self) -> None:
        """The helper thread, at an ordinary niced priority, writes as well (until the queue is
        down to `_RELIEVED`)."""
        if self._pressure.is_set():
            return
        if self._helper is None:
            self._helper = threading.Thread(
                target=self._help, name=f"steward-prediction-log-helper:{self.root}", daemon=True
            )
            self._helper.start()
        self._pressure.set()

    def _add_to_block(self, record: RequestRecord) -> None:
        """Append to the deployment's open block; a full or different one is queued first."""
        block = self._blocks.get(record.deployment)
        if block is None or not block.fits(record):
            if block is not None:
                self._buffer.append(block)
            rows = _block_rows(record, self.queue_size)
            block = self._blocks[record.deployment] = _ColumnBlock(record, rows)
        block.add(record)

    def log_many(self, records: Sequence[PredictionRecord]) -> int:
        """Queue the rows of one request; returns how many were accepted (the rest are counted)."""
        return sum(self.log(record) for record in records)

    # -- counters and control ----------------------------------------------------------------

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    @property
    def queue_depth(self) -> int:
        """Records accepted and not yet written (or dropped by a failed write)."""
        return self._accepted - self._processed

    def set_signature(self, deployment: str, signature: Signature | None) -> None:
        """Write the deployment's inputs as typed ``input.<name>`` columns (None: JSON text)."""
        with self._lock:
            if signature is None or not signature.inputs:
                self._signatures.pop(deployment, None)
            else:
                self._signatures[deployment] = signature

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record accepted before this call is written; False on timeout."""
        with self._lock:
            target = self._accepted
            if self._thread is None or self._processed >= target:
                return True
            self._wake.set()
            self._press()  # a busy core would leave the idle-priority writer waiting
            return self._done_cond.wait_for(lambda: self._processed >= target, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush and stop the threads; later records are dropped (reason ``closed``).
        Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = [t for t in (self._thread, self._helper) if t is not None]
        atexit.unregister(self.close)
        self._wake.set()
        self._pressure.set()
        for thread in threads:
            thread.join(timeout)
        for child in self._children.values():
            child.close()

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"steward-prediction-log:{self.root}", daemon=True
        )
        self._thread.start()
        # A daemon thread still runs while atexit callbacks do: close() then drains it.
        atexit.register(self.close)

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        """The writer: every ``flush_seconds``, or when ``flush_rows`` are buffered."""
        _lower_this_threads_priority(idle=True)
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            closing = self._write_buffered()
            if closing:
                with self._lock:
                    if not self._buffer and not self._blocks:
                        return

    def _help(self) -> None:
        """The helper: called in for a starved writer (`_press_if_starved`) or by `flush()`,
        writes until the queue is down to `_RELIEVED` (or the writer is closed)."""
        _lower_this_threads_priority(idle=False)
        while True:
            self._pressure.wait()
            if self._write_buffered():
                return
            with self._lock:
                relieved = self._accepted - self._processed <= self.queue_size * _RELIEVED
                # nothing buffered: the rest is being written by the writer
                if relieved or (not self._buffer and not self._blocks):
                    self._pressure.clear()

    def _write_buffered(self) -> bool:
        """Write what is buffered now; whether the writer is closing."""
        with self._lock:
            batch = [*self._buffer, *self._blocks.values()]
            self._buffer.clear()
            self._blocks.clear()
            self._buffered_rows = 0
            self._untaken_since = None
            closing = self._closed
            signatures = dict(self._signatures)
        if batch:
            self._write_batch(batch, signatures)
        return closing

    def _write_batch(
        self, batch: list[Logged | _ColumnBlock], signatures: dict[str, Signature]
    ) -> None:
        groups: dict[tuple[str, str], list[Logged | _ColumnBlock]] = {}
        hours: dict[int, str] = {}
        for block in [item for item in batch if isinstance(item, _ColumnBlock)]:
            within = block.hours(hours)
            if len(within) == 1:
                groups.setdefault((block.deployment, within.pop()), []).append(block)
            else:  # a block across an hour's end: its requests go one by one
                batch.extend(block.to_requests())
        logged = [item for item in batch if not isinstance(item, _ColumnBlock)]
        for i, record in enumerate(logged):
            if i % _SLICE == _SLICE - 1:
                # bytecode keeps the GIL for the whole switch interval (5 ms) once the event
                # loop asks for it: sorting 1,000 records at once made the p99 of a lone
                # client 1.8 ms instead of 1.06 (measured; the same at 32 clients)
                time.sleep(0)
            try:
                key = (str(record.deployment), _hour_of(record.timestamp, hours))
            except (AttributeError, TypeError, ValueError):
                key = ("", "")  # not a record: fails below, is logged and counted
            groups.setdefault(key, []).append(record)
        for (deployment, hour), items in groups.items():
            rows = sum(1 if isinstance(r, PredictionRecord) else r.rows for r in items)
            try:
                if not deployment:
                    raise ValueError("records without a deployment name or a datetime timestamp")
                self._write_group(deployment, hour, items, signatures.get(deployment))
            except Exception:
                logger.exception(
                    "The prediction log could not write %d records of deployment %r (hour %s) "
                    "to %s; they are dropped and counted as write_error.",
                    rows, deployment, hour, self.root,
                )  # fmt: skip
                outcome = "write_error"
            else:
                outcome = "written"
            with self._lock:
                if outcome == "written":
                    self.written += rows
                else:
                    self.dropped_by_reason["write_error"] += rows
                self._processed += rows
                self._done_cond.notify_all()

    def _write_group(
        self,
        deployment: str,
        hour: str,
        items: list[Logged | _ColumnBlock],
        signature: Signature | None,
    ) -> None:
        """The partition's file(s) of ``items``: column blocks by the writer process when there
        is one, anything else here."""
        names: list[str] | None = None  # the files a writer process was asked to write
        child = self._writer_process() if all(isinstance(i, _ColumnBlock) for i in items) else None
        if child is not None:
            names = [f"part-{uuid.uuid4().hex}.parquet" for _ in items]  # a block: one file
            try:
                child.write(deployment, hour, items, signature, names=names)
                return
            except ChildWriteFailed as error:
                raise OSError(f"the writer process: {error}") from None
            except ChildGone:
                logger.warning(
                    "The prediction log's writer process stopped; deployment %r (hour %s) is "
                    "written by the server's own thread.", deployment, hour, exc_info=True,
                )  # fmt: skip
        for i, table in enumerate(_tables(items, signature)):
            if names is None:
                self._write_file(deployment, hour, table)
            elif not self._written_already(deployment, hour, names[i]):
                # the process may have written some of them before it stopped: not again
                self._write_file(deployment, hour, table, name=names[i])

    def _start_writer_processes(self) -> None:
        """Both writer processes, when there are to be any, started with the writer rather
        than with its first records: their imports (~1.4 s of CPU) then run while the server
        starts, at the priority of the thread making the writer, instead of beside the first
        requests (a server loaded at once answered a third as many in its first 5 s,
        measured); and the helper's is needed precisely when the core is saturated."""
        if self._uses_processes():
            for idle in (True, False):
                self._child_of(idle=idle).start()
            atexit.register(self.close)

    def _writer_process(self) -> BlockWriterProcess | None:
        """The process writing column blocks for the calling thread (the writer's at idle
        priority, the helper's niced): with ``writer="process"`` and a local root, unless it
        failed to start or died `_CHILD_STARTS` times."""
        if not self._uses_processes():
            return None
        child = self._child_of(idle=threading.current_thread() is not self._helper)
        return None if child.gave_up else child

    def _uses_processes(self) -> bool:
        return self.writer == "process" and isinstance(self._fs_and_root[0], LocalFileSystem)

    def _child_of(self, *, idle: bool) -> BlockWriterProcess:
        child = self._children.get(idle)
        if child is None:
            child = self._children[idle] = BlockWriterProcess(
                self.root, self.compression, idle=idle, starts=_CHILD_STARTS
            )
        return child

    def _written_already(self, deployment: str, hour: str, name: str) -> bool:
        fs, fs_root = self._fs_and_root
        return bool(fs.exists(f"{fs_root}/{partition_path(deployment, hour)}/{name}"))

    @cached_property
    def _fs_and_root(self) -> tuple[Any, str]:
        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path.rstrip("/")

    def _write_file(
        self, deployment: str, hour: str, table: pa.Table, *, name: str | None = None
    ) -> None:
        fs, fs_root = self._fs_and_root
        folder = f"{fs_root}/{partition_path(deployment, hour)}"
        name = name or f"part-{uuid.uuid4().hex}.parquet"
        tmp, final = f"{folder}/.{name}.tmp", f"{folder}/{name}"
        if folder not in self._made_dirs:
            fs.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        options = {"compression": self.compression, "use_dictionary": _dictionary(table)}
        try:
            if isinstance(fs, LocalFileSystem):
                _write_by_path(table, tmp, options)
            else:
                with fs.open(tmp, "wb") as out:
                    pq.write_table(table, out, **options)
            fs.mv(tmp, final)
        except BaseException:
            if fs.exists(tmp):
                fs.rm(tmp)
            raise


def _write_by_path(table: pa.Table, path: str, options: dict[str, Any]) -> None:
    """Parquet written by pyarrow itself, the GIL given back between opening the file, writing
    the table and closing it (each keeps it ~0.1-0.3 ms). Through fsspec's file object every
    write came back to Python: a 1,000-request flush kept the GIL ~1.1 ms, which the event loop
    waited for (the p99 of a lone client; measured)."""
    with pq.ParquetWriter(path, table.schema, **options) as writer:
        time.sleep(0)
        writer.write_table(table)
        time.sleep(0)


def _dictionary(table: pa.Table) -> list[str]:
    """The columns worth dictionary-encoding: text that repeats (labels, fallbacks, categories),
    not request ids or numbers. Encoding 20 float inputs that way made the file larger and its
    write twice as slow (measured)."""
    return [
        field.name
        for field in table.schema
        if pa.types.is_string(field.type) and field.name != "request_id"
    ]


def partition_path(deployment: str, hour: str) -> str:
    """The folder of one (deployment, hour) partition, relative to the log's root."""
    return f"deployment={quote(deployment, safe='')}/hour={hour}"


def _hour_of(timestamp: datetime | float, hours: dict[int, str]) -> str:
    """The UTC hour partition of a datetime, or of epoch seconds (formatted once per hour)."""
    if not isinstance(timestamp, datetime):
        index = int(timestamp // 3600)
        hour = hours.get(index)
        if hour is None:
            hour = hours[index] = datetime.fromtimestamp(index * 3600, UTC).strftime(HOUR_FORMAT)
        return hour
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC)
    return timestamp.strftime(HOUR_FORMAT)


# -- records to Arrow ----------------------------------------------------------------------


# How many times a writer process is started (the first, then after deaths) before the
# column blocks stay with the server's own thread.
_CHILD_STARTS = 3
# The queue's fill past which the helper thread writes too, and down to which it does.
_PRESSED, _RELIEVED = 0.5, 0.25
# Seconds buffered records may wait untaken, the queue past `_PRESSED`, before the writer counts
# as starved: it takes a block in milliseconds whenever its core idles (every ~20 ms at 2,000
# 100-row requests a second on one core), and a saturated core gives it nothing for seconds.
_STARVED_AFTER = 0.2


def _lower_this_threads_priority(*, idle: bool) -> None:
    """The calling thread at idle priority (``SCHED_IDLE``, Linux) when ``idle``, else niced by
    `WRITER_NICE` (threads have their own priority on Linux; lowering one's own needs no
    privilege). Elsewhere a no-op.

    Idle priority is the writer's: it runs only when nothing else on its core wants to, and a
    request's wake-up takes the core back from it at once. At nice 10 a flush being encoded
    (GIL-free, ~1 ms) kept the core until its time slice ended, and a lone client's requests
    met that at ~1% of them: the p99 of ONNX `/predict` at concurrency 1 was 0.96 ms with the
    writer niced against 0.54 ms at idle priority, the bare app's 0.56 ms (measured, same
    rounds). A saturated core has no idle time, hence the helper (`PredictionLogWriter._help`).
    """
    if sys.platform != "linux":
        return
    try:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
    except OSError:
        logger.debug("could not run the prediction log writer at idle priority", exc_info=True)
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICE)
    except OSError:
        logger.debug("could not lower the prediction log writer's priority", exc_info=True)


# Records sorted into files, or converted, between two moments where the writer gives the
# GIL back.
_SLICE = 256


def _tables(items: Sequence[Logged | _ColumnBlock], signature: Signature | None) -> list[pa.Table]:
    """The tables of one file's worth of logged items: one when they share a schema (the usual
    case), else one per schema."""
    tables: list[pa.Table] = []
    records: list[Logged] = []
    for item in items:
        if not isinstance(item, _ColumnBlock):
            records.append(item)
            continue
        table = _block_table(item, signature)
        if table is None:
            records.extend(item.to_requests())
        else:
            tables.append(table)
            time.sleep(0)  # the GIL back to the event loop between blocks
    if records:
        tables.append(_table_in_slices(records, signature))
    if len(tables) <= 1:
        return tables
    try:
        return [pa.concat_tables(tables)]
    except pa.ArrowInvalid:  # typed inputs in one, JSON text in another
        return tables


def _table_in_slices(records: Sequence[Logged], signature: Signature | None) -> pa.Table:
    """`logged_to_table`, a slice of records at a time, the GIL given back between slices.

    The writer shares its process, and often its core, with the server's event loop: a flush
    of 1,000 requests converted at once kept the loop waiting ~5 ms, and the requests that
    arrived meanwhile made the server's p99 (measured in process: 10,000 at once, a 10 ms
    wait). A slice takes well under a millisecond.
    """
    tables = []
    for start in range(0, len(records), _SLICE):
        tables.append(logged_to_table(records[start : start + _SLICE], signature))
        time.sleep(0)  # lets the event loop's thread take the GIL
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:  # slices that took different paths typed a column differently
        return logged_to_table(records, signature)


def logged_to_table(records: Sequence[Logged], signature: Signature | None) -> pa.Table:
    """One file's table from what was logged: requests column by column when they all allow
    it (`requests_to_table`), else everything row by row."""
    if all(isinstance(r, RequestRecord) for r in records):
        requests = [r for r in records if isinstance(r, RequestRecord)]
        table = requests_to_table(requests, signature)
        if table is not None:
            return table
    rows: list[PredictionRecord] = []
    for record in records:
        if isinstance(record, RequestRecord):
            rows.extend(record.to_rows())
        else:
            rows.append(record)
    return records_to_table(rows, signature)


def requests_to_table(
    requests: Sequence[RequestRecord], signature: Signature | None
) -> pa.Table | None:
    """The table of ``requests`` built from their arrays, the same as `records_to_table`
    would build from their rows; None when something needs the row-by-row path (no
    signature, multi-dimensional inputs, predictions that are not numbers or text,
    probabilities of different widths).

    This runs on the writer thread holding the GIL, which the server's event loop waits for:
    the records are transposed into one tuple per field in a single pass (``zip``), and every
    column is built from those with one numpy or Arrow call, with no per-request table.
    """
    if not requests or not _flat_inputs(signature):
        return None
    # Each field holds a tuple: the requests' values of that field, in order.
    fields: Any = RequestRecord._make(zip(*requests, strict=True))
    counts = np.array(fields.rows, dtype=np.int64)
    total = int(counts.sum())
    prediction = _prediction_columns(list(fields.predictions), total)
    probabilities = _probability_columns(list(fields.probabilities), total)
    inputs = _input_columns(fields.inputs, fields.matrix, signature)
    if prediction is None or probabilities is None or inputs is None:
        return None
    return _table_of_requests(fields, counts, total, prediction, probabilities, inputs)


def _flat_inputs(signature: Signature | None) -> TypeGuard[Signature]:
    """Whether ``signature`` types every input as one value a row: what the column paths
    need (the others go row by row)."""
    return (
        signature is not None
        and bool(signature.inputs)
        and all(len(spec.shape) == 1 for spec in signature.inputs)
    )


def _block_table(block: _ColumnBlock, signature: Signature | None) -> pa.Table | None:
    """A block's table, as `requests_to_table` builds it from the block's requests; None when
    the deployment's signature does not type its inputs (the block then goes that way)."""
    if not _flat_inputs(signature) or len(signature.inputs) != block.inputs.shape[1]:
        return None
    total = block.rows
    inputs = _matrix_columns(block.inputs[:total], signature)
    if inputs is None:
        return None
    time.sleep(0)  # the GIL back to the event loop: the block's table is ~0.36 ms of it
    prediction = pa.array(block.predictions[:total]), pa.nulls(total, pa.string())
    probabilities = _probability_columns(
        [None if block.probabilities is None else block.probabilities[:total]], total
    )
    assert probabilities is not None  # one array of the block's width, or None
    # The requests' fields as `requests_to_table` transposes them, here kept that way.
    fields = SimpleNamespace(
        rows=block.counts, version=block.versions, request_id=block.request_ids,
        timestamp=block.timestamps, latency_ms=block.latencies, unit_id=block.units,
        fallback=block.fallbacks, shadow=block.shadows, error=block.errors,
    )  # fmt: skip
    counts = np.array(block.counts, dtype=np.int64)
    return _table_of_requests(fields, counts, total, prediction, probabilities, inputs)


def _table_of_requests(
    fields: Any,
    counts: Any,
    total: int,
    prediction: tuple[pa.Array, pa.Array],
    probabilities: tuple[pa.Array, pa.Array],
    inputs: dict[str, pa.Array],
) -> pa.Table:
    """The table of requests given field by field (each field a sequence, one value per
    request) and their columns of predictions, probabilities and inputs (one value per row)."""
    requests = len(fields.rows)
    # The request of each row, when some request has several.
    owner = None if total == requests else np.repeat(np.arange(requests), counts)

    def per_row(values: Any) -> Any:
        return values if owner is None else values[owner]

    micros = np.round(np.asarray(fields.timestamp, dtype=np.float64) * 1e6).astype(np.int64)
    columns: dict[str, pa.Array] = {
        "timestamp": pa.array(per_row(micros), pa.timestamp("us", tz="UTC")),
        "request_id": _per_row_text(fields.request_id, owner, total),
        "row": pa.array(
            np.zeros(total, np.int32) if owner is None
            else np.arange(total) - (np.cumsum(counts) - counts)[owner], pa.int32(),
        ),
        "unit_id": _per_row_text(fields.unit_id, owner, total),
        **_per_row_keys(fields.unit_id, owner, total),
    }  # fmt: skip
    time.sleep(0)  # the GIL back to the event loop halfway
    columns |= {
        "version": pa.array(per_row(np.array(fields.version, dtype=np.int64))),
        "shadow": pa.array(per_row(np.array(fields.shadow, dtype=bool))),
        "latency_ms": pa.array(per_row(np.array(fields.latency_ms, dtype=np.float64))),
        "fallback": _per_row_text(fields.fallback, owner, total),
        "error": _per_row_text(fields.error, owner, total),
        "inputs": pa.nulls(total, pa.string()),
    }  # fmt: skip
    columns["prediction"], columns["prediction_label"] = prediction
    columns["score"], columns["probabilities"] = probabilities
    columns.update(inputs)
    schema = _schema_with_inputs(tuple((name, array.type) for name, array in inputs.items()))
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _per_row_text(values: tuple[Any, ...], owner: Any, total: int) -> pa.Array:
    """A text column from one value per request (None when unset, mostly all of them)."""
    if values.count(None) == len(values):
        return pa.nulls(total, pa.string())
    array = pa.array(values, pa.string())
    return array if owner is None else array.take(owner)


def _per_row_keys(units: tuple[Any, ...], owner: Any, total: int) -> dict[str, pa.Array]:
    """The unit key columns from one unit id per request, hashed once per request."""
    hi, lo = unit_keys.unit_keys_of(units)
    if owner is not None:
        hi, lo = hi.take(owner), lo.take(owner)
    return {unit_keys.HI: hi, unit_keys.LO: lo}


@functools.lru_cache(maxsize=64)
def _schema_with_inputs(inputs: tuple[tuple[str, pa.DataType], ...]) -> pa.Schema:
    fields = list(RECORD_SCHEMA) + [pa.field(name, type_) for name, type_ in inputs]
    return pa.schema(fields, metadata=RECORD_SCHEMA.metadata)


def _prediction_columns(values: list[Any], total: int) -> tuple[pa.Array, pa.Array] | None:
    """(prediction, prediction_label): numbers and bools as numbers, text as labels."""
    if any(v is None for v in values):
        return None
    joined = _concatenated(values)
    if joined is None or joined.ndim != 1:
        joined = np.concatenate([np.asarray(v).reshape(-1) for v in values])
    if len(joined) != total:
        return None
    if joined.dtype.kind in "biuf":
        return pa.array(joined.astype(np.float64)), pa.nulls(total, pa.string())
    if joined.dtype.kind == "U" or (
        joined.dtype.kind == "O" and all(isinstance(v, str) for v in joined)
    ):
        return pa.nulls(total, pa.float64()), pa.array(joined.astype(object), pa.string())
    return None


def _probability_columns(values: list[Any], total: int) -> tuple[pa.Array, pa.Array] | None:
    """(score, probabilities): the positive class's probability for two classes."""
    if all(v is None for v in values):
        return pa.nulls(total, pa.float64()), pa.nulls(total, pa.list_(pa.float64()))
    if any(v is None for v in values):
        return None
    joined = _concatenated(values)
    if joined is None or joined.ndim != 2 or len(joined) != total:
        return None
    joined = joined.astype(np.float64, copy=False)
    width = joined.shape[1]
    lists = pa.FixedSizeListArray.from_arrays(pa.array(joined.reshape(-1)), width)
    score = pa.array(joined[:, 1]) if width == 2 else pa.nulls(total, pa.float64())
    return score, lists.cast(pa.list_(pa.float64()))


def _joined_matrix(matrices: Sequence[Any], width: int) -> Any:
    """Every request's input matrix stacked, when each has one of that width (else None)."""
    if any(m is None for m in matrices):
        return None
    joined = _concatenated(list(matrices))
    if joined is None or joined.ndim != 2 or joined.shape[1] != width:
        return None
    return joined


def _concatenated(values: list[Any]) -> Any:
    """The per-request arrays joined in one call, or None when they do not join (different
    widths or dimensions): one numpy call instead of a conversion per request."""
    try:
        return np.concatenate(values)
    except (ValueError, TypeError):
        return None


def _matrix_columns(matrix: Any, signature: Signature) -> dict[str, pa.Array] | None:
    """One column per input from the rows x inputs matrix of every request's inputs."""
    return _input_columns((), (), signature, matrix=matrix)


def _input_columns(
    inputs: Sequence[Mapping[str, Any]],
    matrices: Sequence[Any],
    signature: Signature,
    *,
    matrix: Any = None,
) -> dict[str, pa.Array] | None:
    """One column per input from each request's inputs (or its matrix, when all have one;
    or ``matrix``, all the requests' already joined)."""
    arrays: dict[str, pa.Array] = {}
    if matrix is None:
        matrix = _joined_matrix(matrices, len(signature.inputs))
    # Columns of the transposed matrix are contiguous: Arrow takes them without a copy.
    by_column = None if matrix is None else np.ascontiguousarray(matrix.T)
    for j, spec in enumerate(signature.inputs):
        if by_column is not None:
            joined = by_column[j]
        else:
            try:
                parts = [np.asarray(columns[spec.name]).reshape(-1) for columns in inputs]
            except KeyError:
                return None
            joined = np.concatenate(parts)
        arrow_type = _ARROW_TYPES[spec.dtype]
        values: Any = joined
        if spec.dtype in ("string", "object"):
            values = [v if v is None or isinstance(v, str) else _json(v) for v in joined]
        elif joined.dtype.kind not in "biuf" or joined.dtype == np.float16:
            values = joined.tolist()  # as the row path converts them
        try:
            arrays[INPUT_PREFIX + spec.name] = pa.array(values, arrow_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
    return arrays


def records_to_table(records: Sequence[PredictionRecord], signature: Signature | None) -> pa.Table:
    """One file's table: the fixed columns, then typed inputs or the ``inputs`` JSON text."""
    predictions = [_split_prediction(r.prediction) for r in records]
    columns: dict[str, pa.Array] = {
        "timestamp": pa.array([r.timestamp for r in records], pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([r.request_id for r in records], pa.string()),
        "row": pa.array([r.row for r in records], pa.int32()),
        "unit_id": pa.array([r.unit_id for r in records], pa.string()),
        "version": pa.array([r.version for r in records], pa.int64()),
        "shadow": pa.array([bool(r.shadow) for r in records], pa.bool_()),
        "latency_ms": pa.array([r.latency_ms for r in records], pa.float64()),
        "fallback": pa.array([r.fallback for r in records], pa.string()),
        "error": pa.array([r.error for r in records], pa.string()),
        "prediction": pa.array([p[0] for p in predictions], pa.float64()),
        "prediction_label": pa.array([p[1] for p in predictions], pa.string()),
        "score": pa.array([r.score for r in records], pa.float64()),
        "probabilities": pa.array(
            [None if r.probabilities is None else list(_plain(r.probabilities)) for r in records],
            pa.list_(pa.float64()),
        ),
    }
    columns[unit_keys.HI], columns[unit_keys.LO] = unit_keys.unit_keys(columns["unit_id"])
    typed = _typed_inputs(records, signature) if signature is not None else None
    if typed is None:
        columns["inputs"] = pa.array([_json(r.inputs) for r in records], pa.string())
        fields = list(RECORD_SCHEMA)
    else:
        columns["inputs"] = pa.nulls(len(records), pa.string())
        columns.update(typed)
        fields = list(RECORD_SCHEMA) + [pa.field(n, a.type) for n, a in typed.items()]
    schema = pa.schema(fields, metadata=RECORD_SCHEMA.metadata)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _typed_inputs(
    records: Sequence[PredictionRecord], signature: Signature
) -> dict[str, pa.Array] | None:
    """``input.<name>`` arrays typed by the signature; None when a row does not fit it."""
    names = signature.input_names
    rows = [r.inputs for r in records]
    if all(isinstance(row, Mapping) for row in rows):
        known = set(names)
        if not all(known.issuperset(row) for row in rows):
            return None
        columns = [[row.get(name) for row in rows] for name in names]  # type: ignore[union-attr]
    elif all(isinstance(row, list | tuple) and len(row) == len(names) for row in rows):
        columns = [list(column) for column in zip(*rows, strict=True)]
    else:
        return None
    arrays: dict[str, pa.Array] = {}
    for spec, values in zip(signature.inputs, columns, strict=True):
        arrow_type = _ARROW_TYPES[spec.dtype]
        if spec.dtype == "object":
            values = [v if v is None or isinstance(v, str) else _json(v) for v in values]
        for _ in spec.shape[1:]:
            arrow_type = pa.list_(arrow_type)
        try:
            arrays[INPUT_PREFIX + spec.name] = pa.array(values, arrow_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
    return arrays


def _split_prediction(value: Any) -> tuple[float | None, str | None]:
    """(numeric prediction, text prediction): numbers and bools go left, the rest right."""
    value = _plain(value)
    if value is None:
        return None, None
    if isinstance(value, bool | int | float):
        return float(value), None
    if isinstance(value, str):
        return None, value
    return None, _json(value)


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as Python values."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _json(value: Any) -> str:
    return _ENCODER.encode(_plain(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    plain = _plain(value)
    return str(value) if plain is value else plain


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default, check_circular=False)


# -- the reader ----------------------------------------------------------------------------


def read_predictions(
    root: str,
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    *,
    ordered: bool = True,
) -> pa.Table:
    """The logged rows with ``since <= timestamp < until``, as one Arrow table, in time order
    unless ``ordered`` is False (sorting ten million rows costs seconds a reader that
    aggregates does not need).

    Only the hour folders that can hold such rows are listed and opened. Files written with
    different input columns (a signature that changed) are unified: a missing column reads as
    null, an integer column that became float reads as float. A missing root or no files gives
    an empty table with ``PREDICTION_LOG_SCHEMA``.
    """
    files = [f for part in partitions(root, deployment, since, until) for f in part]
    return read_files(root, files, since, until, columns, ordered=ordered)


def partitions(
    root: str,
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[list[str]]:
    """The files of each hour folder that can hold rows with ``since <= timestamp < until``,
    one list per folder, oldest first: the unit of work a distributed reader hands out."""
    since, until = _aware(since, "since"), _aware(until, "until")
    fs, fs_root = fsspec.core.url_to_fs(root)
    fs_root = fs_root.rstrip("/")
    found = []
    for folder in _partition_folders(fs, fs_root, deployment):
        if not _hour_may_match(folder.rsplit("hour=", 1)[1], since, until):
            continue
        files = [
            path
            for path in _ls(fs, folder)
            if path.rsplit("/", 1)[-1].startswith("part-") and path.endswith(".parquet")
        ]
        if files:
            found.append(files)
    return found


def read_files(
    root: str,
    files: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    *,
    ordered: bool = True,
) -> pa.Table:
    """The rows of ``files`` (paths as ``partitions`` lists them) in ``[since, until)``."""
    # Imported here: pyarrow.dataset brings pandas along (~1 s), which the writer never needs
    # (the log's writer process imports this module at the start of every server).
    import pyarrow.dataset as ds

    since, until = _aware(since, "since"), _aware(until, "until")
    if not files:
        return _select(PREDICTION_LOG_SCHEMA.empty_table(), columns)
    fs, fs_root = fsspec.core.url_to_fs(root)
    fs_root = fs_root.rstrip("/")
    partitioning = ds.partitioning(PARTITION_SCHEMA, flavor="hive")
    found = ds.dataset(
        list(files), filesystem=fs, format="parquet", partitioning=partitioning,
        partition_base_dir=fs_root,
    )  # fmt: skip
    schemas = [fragment.physical_schema for fragment in found.get_fragments()]
    schema = pa.unify_schemas(
        [PREDICTION_LOG_SCHEMA, *schemas], promote_options="permissive"
    ).remove_metadata()
    dataset = ds.dataset(
        list(files), schema=schema, filesystem=fs, format="parquet", partitioning=partitioning,
        partition_base_dir=fs_root,
    )  # fmt: skip
    condition = None
    if since is not None:
        condition = ds.field("timestamp") >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
    if until is not None:
        before = ds.field("timestamp") < pa.scalar(until, pa.timestamp("us", tz="UTC"))
        condition = before if condition is None else condition & before
    wanted = None
    if columns is not None and not ordered:  # read only the columns asked for
        wanted = [name for name in columns if name in schema.names]
    table = dataset.to_table(columns=wanted, filter=condition)
    if ordered:
        table = table.sort_by([("timestamp", "ascending"), ("request_id", "ascending")])
    return _select(table, columns)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(
            f"The '{name}' time must be timezone-aware (UTC); got the naive {value.isoformat()}. "
            "Pass e.g. datetime(..., tzinfo=UTC).",
            field=name,
        )
    return value


def _ls(fs: Any, path: str) -> list[str]:
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return sorted(e["name"].rstrip("/") for e in entries if e["type"] in ("directory", "file"))


def _partition_folders(fs: Any, fs_root: str, deployment: str | None) -> Iterable[str]:
    if deployment is not None:
        deployments = [f"{fs_root}/deployment={quote(deployment, safe='')}"]
    else:
        deployments = [
            p for p in _ls(fs, fs_root) if p.rsplit("/", 1)[-1].startswith("deployment=")
        ]
    for folder in deployments:
        yield from (p for p in _ls(fs, folder) if p.rsplit("/", 1)[-1].startswith("hour="))


def _hour_may_match(hour: str, since: datetime | None, until: datetime | None) -> bool:
    try:
        start = datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False
    if since is not None and start + timedelta(hours=1) <= since:
        return False
    return until is None or start < until


def _select(table: pa.Table, columns: Sequence[str] | None) -> pa.Table:
    if columns is None:
        return table
    for name in columns:
        if name in table.column_names:
            continue
        if not name.startswith(INPUT_PREFIX):
            known = ", ".join(PREDICTION_LOG_SCHEMA.names)
            raise InvalidInput(
                f"The prediction log has no column {name!r}. Use one of: {known}, or "
                f"'{INPUT_PREFIX}<feature>'.",
                field="columns",
            )
        # An input column nobody logged in this window: all null rather than an error.
        table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(list(columns))


__all__ = [
    "PREDICTION_LOG_SCHEMA",
    "RECORD_SCHEMA",
    "PredictionLogWriter",
    "PredictionRecord",
    "RequestRecord",
    "logged_to_table",
    "partition_path",
    "partitions",
    "read_files",
    "read_predictions",
    "records_to_table",
    "requests_to_table",
]
