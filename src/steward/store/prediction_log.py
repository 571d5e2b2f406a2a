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
from typing import Any, NamedTuple
from urllib.parse import quote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from steward.domain.signature import Signature
from steward.errors import InvalidInput
from steward.settings import PredictionLogCompression, Settings
from steward.store import unit_keys

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
    ) -> None:
        self.root = root.rstrip("/")
        self.compression = compression
        self.queue_size = queue_size
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.written = 0
        self.dropped_by_reason: dict[str, int] = {"queue_full": 0, "write_error": 0, "closed": 0}
        self._lock = threading.Lock()
        self._done_cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._buffer: deque[Logged] = deque()
        self._buffered_rows = 0  # rows in the buffer (a RequestRecord holds several)
        self._accepted = 0  # rows ever accepted by log() and log_request()
        self._processed = 0  # rows written or dropped by the writer thread
        self._signatures: dict[str, Signature] = {}
        self._made_dirs: set[str] = set()
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionLogWriter:
        section = settings.prediction_log
        return cls(
            settings.prediction_log_root,
            queue_size=section.queue_size,
            flush_rows=section.flush_rows,
            flush_seconds=section.flush_seconds,
            compression=section.compression,
        )

    # -- the hot path ------------------------------------------------------------------------

    def log(self, record: PredictionRecord) -> bool:
        """Queue one record without ever blocking; False (and counted) when it was dropped."""
        return self._queue(record, 1)

    def log_request(self, record: RequestRecord) -> bool:
        """Queue the rows of one request at once; False (and all counted) when dropped.

        The queue counts rows: a request that does not fit whole is dropped whole."""
        return self._queue(record, record.rows)

    def _queue(self, record: Logged, rows: int) -> bool:
        with self._lock:
            if self._accepted - self._processed + rows > self.queue_size or self._closed:
                self.dropped_by_reason["closed" if self._closed else "queue_full"] += rows
                return False
            self._buffer.append(record)
            self._accepted += rows
            before = self._buffered_rows
            self._buffered_rows = before + rows
            if self._thread is None:
                self._start()
            if before < self.flush_rows <= before + rows:
                self._wake.set()
        return True

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
            return self._done_cond.wait_for(lambda: self._processed >= target, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush and stop the thread; later records are dropped (reason ``closed``). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        if thread is not None:
            self._wake.set()
            thread.join(timeout)

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"steward-prediction-log:{self.root}", daemon=True
        )
        self._thread.start()
        # A daemon thread still runs while atexit callbacks do: close() then drains it.
        atexit.register(self.close)

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        _lower_this_threads_priority()
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._lock:
                batch = list(self._buffer)
                self._buffer.clear()
                self._buffered_rows = 0
                closing = self._closed
                signatures = dict(self._signatures)
            if batch:
                self._write_batch(batch, signatures)
            if closing:
                with self._lock:
                    if not self._buffer:
                        return

    def _write_batch(self, batch: list[Logged], signatures: dict[str, Signature]) -> None:
        groups: dict[tuple[str, str], list[Logged]] = {}
        hours: dict[int, str] = {}
        for i, record in enumerate(batch):
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
        for (deployment, hour), records in groups.items():
            rows = sum(r.rows if isinstance(r, RequestRecord) else 1 for r in records)
            try:
                if not deployment:
                    raise ValueError("records without a deployment name or a datetime timestamp")
                table = _table_in_slices(records, signatures.get(deployment))
                self._write_file(deployment, hour, table)
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

    @cached_property
    def _fs_and_root(self) -> tuple[Any, str]:
        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path.rstrip("/")

    def _write_file(self, deployment: str, hour: str, table: pa.Table) -> None:
        fs, fs_root = self._fs_and_root
        folder = f"{fs_root}/{partition_path(deployment, hour)}"
        name = f"part-{uuid.uuid4().hex}.parquet"
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


# How much lower than the server's threads the writer runs (a nice increment, Linux): enough
# that the OS scheduler runs the event loop as soon as a request arrives instead of letting a
# flush finish its time slice first; not so much that a saturated core starves the writer
# (weight 110 against 1,024: ~10% of a busy core, where it needs ~3% at full load).
WRITER_NICE = 10


def _lower_this_threads_priority() -> None:
    """Nice the calling thread by `WRITER_NICE` where threads have their own priority (Linux);
    raising one's own nice value needs no privilege. Elsewhere a no-op."""
    if sys.platform != "linux" or not WRITER_NICE:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICE)
    except OSError:
        logger.debug("could not lower the prediction log writer's priority", exc_info=True)


# Records sorted into files, or converted, between two moments where the writer gives the
# GIL back.
_SLICE = 256


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
    if not requests or signature is None or not signature.inputs:
        return None
    if any(len(spec.shape) != 1 for spec in signature.inputs):
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
    # The request of each row, when some request has several.
    owner = None if total == len(requests) else np.repeat(np.arange(len(requests)), counts)

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


def _input_columns(
    inputs: Sequence[Mapping[str, Any]], matrices: Sequence[Any], signature: Signature
) -> dict[str, pa.Array] | None:
    """One column per input from each request's inputs (or its matrix, when all have one)."""
    arrays: dict[str, pa.Array] = {}
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
