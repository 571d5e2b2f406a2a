"""Hashing and sampling of in-memory tables: pandas, pyarrow and numpy."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from steward.errors import InvalidInput


def _update_frame(hasher: hashlib._Hash, frame: pd.DataFrame) -> None:
    header = {"columns": [str(c) for c in frame.columns], "dtypes": [str(t) for t in frame.dtypes]}
    hasher.update(b"pandas\0" + json.dumps(header).encode() + b"\0")
    try:
        rows = pd.util.hash_pandas_object(frame, index=True)
    except TypeError as exc:
        raise InvalidInput(
            f"Cannot fingerprint the DataFrame: {exc}. Columns must hold hashable values "
            "(numbers, strings, dates), not lists or dicts.",
            field="data",
        ) from exc
    hasher.update(rows.to_numpy().tobytes())


def _update_arrow(hasher: hashlib._Hash, table: pa.Table) -> None:
    schema = table.schema.remove_metadata()
    hasher.update(b"arrow\0" + schema.to_string().encode() + b"\0")
    try:
        # Through pandas, equal tables hash equal whatever their chunking or buffer layout.
        rows = pd.util.hash_pandas_object(table.to_pandas(), index=False)
        hasher.update(rows.to_numpy().tobytes())
    except (TypeError, pa.ArrowException):
        # Nested columns are unhashable in pandas: fall back to Arrow's own serialization,
        # with chunks combined so the layout does not depend on how the table was built.
        sink = pa.BufferOutputStream()
        combined = table.replace_schema_metadata(None).combine_chunks()
        with pa.ipc.new_stream(sink, combined.schema) as writer:
            writer.write_table(combined)
        hasher.update(sink.getvalue().to_pybytes())


def _update_array(hasher: hashlib._Hash, array: np.ndarray[Any, Any]) -> None:
    hasher.update(f"numpy\0{array.dtype.str}\0{array.shape}\0".encode())
    if array.dtype.hasobject:
        # Object arrays hold pointers; hash the values instead.
        hasher.update(pd.util.hash_array(array.ravel()).tobytes())
    else:
        hasher.update(np.ascontiguousarray(array).tobytes())


def update(hasher: hashlib._Hash, data: Any, kind: str) -> None:
    """Feed ``data``'s content to ``hasher``; ``kind`` is "pandas", "pyarrow" or "numpy"."""
    if kind == "pandas":
        _update_frame(hasher, data.to_frame() if isinstance(data, pd.Series) else data)
    elif kind == "pyarrow":
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        _update_arrow(hasher, table)
    else:
        _update_array(hasher, data)


def as_table(data: object, columns: Sequence[str] | None) -> pa.Table:
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, np.ndarray):
        matrix = data.reshape(-1, 1) if data.ndim == 1 else data
        if matrix.ndim != 2:
            raise InvalidInput(
                f"A numpy sample must be 1-D or 2-D; got {data.ndim}-D.", field="data"
            )
        names = list(columns) if columns is not None else [f"x{i}" for i in range(matrix.shape[1])]
        if len(names) != matrix.shape[1]:
            raise InvalidInput(
                f"Got {len(names)} column names for an array with {matrix.shape[1]} columns.",
                field="columns",
            )
        return pa.table({name: matrix[:, i] for i, name in enumerate(names)})
    raise InvalidInput(
        f"Cannot sample an object of type {type(data).__name__}; pass a pandas DataFrame, "
        "a pyarrow Table or a 2-D numpy array.",
        field="data",
    )


def sample_parquet(data: object, max_rows: int, seed: int, columns: Sequence[str] | None) -> bytes:
    table = as_table(data, columns)
    if table.num_rows > max_rows:
        rng = np.random.default_rng(seed)
        # Sorted positions keep the sample in the data's original order.
        picked = np.sort(rng.choice(table.num_rows, size=max_rows, replace=False))
        table = table.take(pa.array(picked))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def read_parquet(content: bytes) -> pd.DataFrame:
    frame: pd.DataFrame = pq.read_table(io.BytesIO(content)).to_pandas()
    return frame
