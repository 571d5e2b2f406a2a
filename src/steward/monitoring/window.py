"""One window of a deployment's prediction log, read partition by partition and merged.

Each hour folder of the log is read on its own into a :class:`Partial`: the columns prepared
as the drift tests take them (finite values sorted, categories counted, nulls counted), the
requests' latency and outcome for the SLOs, and the few columns labels join on. Partials merge
exactly (sorted runs merged, counts added, arrays concatenated), so the same window read in
one process or as one Ray task per partition (``--engine ray``) gives the same numbers.

Shadow answers are left out: they were never returned, and monitoring judges what callers got.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.monitoring._tables import column_data
from steward.stats._column_drift import ColumnData
from steward.stats._samples import CategoricalSample, NumericSample
from steward.store.prediction_log import INPUT_PREFIX, partitions, read_files

# Fallback reasons that mean the routed model failed the request: it counts against the
# availability SLO even though a fallback answered.
FAILED_FALLBACKS = frozenset({"error", "timeout"})
OUTPUT_COLUMNS = ("prediction", "prediction_label", "score")
# what the label join and the performance metrics read
JOIN_COLUMNS = ("request_id", "row", "version", "prediction", "prediction_label", "score")


@dataclass
class Partial:
    """What one partition contributes to a window; ``merge`` adds another's."""

    rows: int = 0
    inputs: dict[str, ColumnData] = field(default_factory=dict)
    outputs: dict[str, ColumnData] = field(default_factory=dict)
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # one per request
    ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    versions: dict[int, int] = field(default_factory=dict)  # version -> rows answered
    newest: datetime | None = None
    join: pa.Table | None = None

    def merge(self, other: Partial) -> Partial:
        return Partial(
            rows=self.rows + other.rows,
            inputs=_merge_columns(self.inputs, other.inputs, self.rows, other.rows),
            outputs=_merge_columns(self.outputs, other.outputs, self.rows, other.rows),
            latency_ms=np.concatenate([self.latency_ms, other.latency_ms]),
            ok=np.concatenate([self.ok, other.ok]),
            versions={
                v: self.versions.get(v, 0) + other.versions.get(v, 0)
                for v in sorted(set(self.versions) | set(other.versions))
            },
            newest=_later(self.newest, other.newest),
            join=_concat_tables(self.join, other.join),
        )


def read_partition(root: str, files: Sequence[str], start: datetime, end: datetime) -> Partial:
    """One hour folder's rows in ``[start, end)`` as a Partial (a Ray task runs this as is)."""
    try:
        table = read_files(root, files, start, end)
    except pa.ArrowTypeError:
        if len(files) == 1:
            raise
        # a signature changed an input's type within the hour: the files cannot be read as one
        # table, but their partials merge (such a column is then compared as text)
        merged = Partial()
        for file in files:
            merged = merged.merge(read_partition(root, [file], start, end))
        return merged
    table = table.filter(pc.invert(pc.fill_null(table["shadow"], False)))
    if table.num_rows == 0:
        return Partial()
    return Partial(
        rows=table.num_rows,
        inputs={name: column_data(array) for name, array in _inputs(table).items()},
        outputs={name: column_data(table[name]) for name in OUTPUT_COLUMNS},
        latency_ms=_per_request(table, "latency_ms").astype(np.float64),
        ok=_request_ok(table),
        versions=_version_rows(table),
        newest=table["timestamp"][-1].as_py(),
        join=table.select(list(JOIN_COLUMNS)),
    )


# Maps read_partition over the partitions: the local engine calls it in turn, the Ray engine
# as remote tasks. Either returns the partials in partition order.
Engine = Callable[[str, list[list[str]], datetime, datetime], list[Partial]]


def local_engine(
    root: str, parts: list[list[str]], start: datetime, end: datetime
) -> list[Partial]:
    return [read_partition(root, files, start, end) for files in parts]


def read_window(
    root: str, deployment: str, start: datetime, end: datetime, engine: Engine = local_engine
) -> Partial:
    merged = Partial()
    for partial in engine(root, partitions(root, deployment, start, end), start, end):
        merged = merged.merge(partial)
    return merged


def newest_prediction(root: str, deployment: str, before: datetime) -> datetime | None:
    """When the deployment last answered before ``before``: the newest hour folder with rows."""
    for files in reversed(partitions(root, deployment, None, before)):
        table = read_files(root, files, None, before, ["timestamp"])
        if table.num_rows:
            value: datetime = table["timestamp"][-1].as_py()
            return value
    return None


# -- reading one partition -------------------------------------------------------------------
def _inputs(table: pa.Table) -> dict[str, pa.ChunkedArray]:
    typed = {
        name[len(INPUT_PREFIX) :]: table[name]
        for name in table.column_names
        if name.startswith(INPUT_PREFIX)
    }
    if typed and table["inputs"].null_count == table.num_rows:
        return typed
    merged = _json_inputs(table["inputs"])
    for name, column in typed.items():
        merged[name] = _coalesce(column, merged.get(name))
    return merged


def _coalesce(typed: pa.ChunkedArray, logged_as_json: pa.ChunkedArray | None) -> pa.ChunkedArray:
    """One hour can hold files written before and after the server knew the signature: each
    row's value is in one of the two columns, so take whichever is set."""
    if logged_as_json is None:
        return typed
    try:
        return pc.coalesce(typed, logged_as_json.cast(typed.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return typed  # values that do not fit the signature's type: the typed rows only


def _json_inputs(column: pa.ChunkedArray) -> dict[str, pa.ChunkedArray]:
    """Inputs logged as JSON objects (no signature known to the server), one column per key;
    rows logged as lists carry no names and are left out."""
    rows = [json.loads(text) if text is not None else None for text in column.to_pylist()]
    names: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            names.update(dict.fromkeys(row))
    out = {}
    for name in names:
        values = [row.get(name) if isinstance(row, dict) else None for row in rows]
        try:
            out[name] = pa.chunked_array([pa.array(values)])
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: compare as text
            text = [None if _missing(v) else _text(v) for v in values]
            out[name] = pa.chunked_array([pa.array(text, pa.string())])
    return out


def _first_rows(table: pa.Table) -> pa.Table:
    """One row per request: the rows of a batched request share its latency and outcome."""
    return table.filter(pc.equal(table["row"], 0))


def _per_request(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(_first_rows(table)[name].to_numpy(zero_copy_only=False))


def _request_ok(table: pa.Table) -> np.ndarray:
    """A request failed when a fallback answered for a failed model, or nothing answered (an
    error and no fallback); a forced fallback (an incident's mitigation) answered as asked."""
    first = _first_rows(table)
    reasons, errors = first["fallback"].to_pylist(), first["error"].to_pylist()
    return np.fromiter(
        (r not in FAILED_FALLBACKS and (r is not None or e is None)
         for r, e in zip(reasons, errors, strict=True)),
        dtype=bool, count=len(reasons),
    )  # fmt: skip


def _version_rows(table: pa.Table) -> dict[int, int]:
    counted = pc.value_counts(table["version"])
    versions = counted.field("values").to_pylist()
    counts = counted.field("counts").to_pylist()
    return {int(v): int(c) for v, c in sorted(zip(versions, counts, strict=True))}


# -- merging ---------------------------------------------------------------------------------
def _merge_columns(
    left: dict[str, ColumnData], right: dict[str, ColumnData], left_rows: int, right_rows: int
) -> dict[str, ColumnData]:
    out: dict[str, ColumnData] = {}
    for name in {**left, **right}:
        a, b = left.get(name), right.get(name)
        if a is None or b is None:  # a column only one partition logged: the other's are nulls
            present = a if a is not None else b
            assert present is not None
            out[name] = _with_missing(present, right_rows if a is not None else left_rows)
        else:
            out[name] = _merge_column(name, a, b)
    return out


def _merge_column(name: str, a: ColumnData, b: ColumnData) -> ColumnData:
    rows = a.rows + b.rows
    # a partition where the column is all null says nothing of its type: the other decides
    if _empty(a):
        return _with_missing(b, a.rows)
    if _empty(b):
        return _with_missing(a, b.rows)
    if a.sample is None or b.sample is None:
        return ColumnData(a.family, rows, a.sample or b.sample)
    if isinstance(a.sample, NumericSample) and isinstance(b.sample, NumericSample):
        return ColumnData(a.family, rows, _merge_numeric(a.sample, b.sample))
    if (
        isinstance(a.sample, CategoricalSample)
        and isinstance(b.sample, CategoricalSample)
        and a.family == b.family
    ):
        return ColumnData(a.family, rows, _merge_categories(a.sample, b.sample))
    # one partition logged numbers, another text (a signature changed, or JSON rows of mixed
    # types): compare the window's values as text, as a mixed JSON column is compared
    text = _merge_categories(_as_categories(a.sample), _as_categories(b.sample))
    return ColumnData("string", rows, text)


def _merge_numeric(a: NumericSample, b: NumericSample) -> NumericSample:
    # both runs are sorted: a stable sort of their concatenation merges them (timsort)
    values = np.sort(np.concatenate([a.values, b.values]), kind="stable")
    return NumericSample(values=values, n=a.n + b.n, missing=a.missing + b.missing,
                         integer=a.integer and b.integer)  # fmt: skip


def _merge_categories(a: CategoricalSample, b: CategoricalSample) -> CategoricalSample:
    counts: dict[Any, int] = dict(zip(a.keys, a.counts.tolist(), strict=True))
    for key, count in zip(b.keys, b.counts.tolist(), strict=True):
        counts[key] = counts.get(key, 0) + count
    return CategoricalSample(keys=list(counts),
                             counts=np.fromiter(counts.values(), np.int64, len(counts)),
                             missing=a.missing + b.missing)  # fmt: skip


def _empty(data: ColumnData) -> bool:
    return data.sample is not None and data.sample.n == 0


def _as_categories(sample: Any) -> CategoricalSample:
    if isinstance(sample, CategoricalSample):
        return CategoricalSample(keys=[_text(k) for k in sample.keys], counts=sample.counts,
                                 missing=sample.missing)  # fmt: skip
    keys, counts = sample.value_counts()
    return CategoricalSample(keys=[_text(k) for k in keys.tolist()],
                       counts=np.rint(counts).astype(np.int64), missing=sample.missing)  # fmt: skip


def _missing(value: Any) -> bool:
    """None, NaN and infinities: what a numeric partition counts as missing, too."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _text(value: Any) -> str:
    """A value as the text category it is compared as when a column mixes types: the same
    text whichever partition (or JSON row) it came from; 3.0 and 3 are both '3'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _with_missing(data: ColumnData, extra_missing: int) -> ColumnData:
    sample = data.sample
    if isinstance(sample, NumericSample):
        sample = NumericSample(values=sample.values, n=sample.n,
                               missing=sample.missing + extra_missing,
                               integer=sample.integer)  # fmt: skip
    elif isinstance(sample, CategoricalSample):
        sample = CategoricalSample(keys=sample.keys, counts=sample.counts,
                                   missing=sample.missing + extra_missing)  # fmt: skip
    return ColumnData(data.family, data.rows + extra_missing, sample)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _concat_tables(a: pa.Table | None, b: pa.Table | None) -> pa.Table | None:
    if a is None or b is None:
        return a if a is not None else b
    return pa.concat_tables([a, b], promote_options="permissive")
