"""Tables in, prepared columns out: Parquet and CSV files, pyarrow Tables, pandas DataFrames.

A Parquet file is read one column at a time when compared (Parquet is columnar, so this costs
no extra I/O) and in record batches when profiled, so neither holds more than one column, or
one batch, of it in memory. A CSV file is parsed whole (CSV cannot be read by column) when
compared, and block by block when profiled. Every failure names the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from threading import Lock
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from steward.errors import InvalidInput
from steward.stats._samples import CategoricalSample, Family, numeric_sample
from steward.stats.drift import ColumnData
from steward.stats.profile import CategoryBatch, ColumnBatch, DatetimeBatch, NumericBatch

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
DEFAULT_BATCH_ROWS = 65_536
# pyarrow infers CSV column types from the first block: a large block makes a type change
# further down (an integer column that holds a decimal on row 90,000) far less likely.
_CSV_BLOCK_BYTES = 64 << 20
# pyarrow raises several unrelated types for a file it cannot read
_READ_ERRORS = (pa.ArrowException, OSError, ValueError)


def family(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return family(kind.value_type)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return Family.NUMERIC
    if pa.types.is_null(kind):
        return Family.NUMERIC  # all null: nothing to disagree with
    if pa.types.is_boolean(kind):
        return Family.BOOLEAN
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return Family.STRING
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return Family.DATETIME
    return Family.OTHER


# -- one column, whole ------------------------------------------------------------------------
def column_data(array: pa.ChunkedArray | pa.Array) -> ColumnData:
    """A column as the stats layer takes it: sorted numbers or category counts."""
    kind = family(array.type)
    rows = len(array)
    if kind == Family.NUMERIC:
        values = _floats(array)
        return ColumnData(kind, rows, numeric_sample(values, integer=_is_integer(array.type)))
    if kind in (Family.STRING, Family.BOOLEAN):
        keys, counts = _value_counts(array)
        sample = CategoricalSample(keys=keys, counts=counts, missing=array.null_count)
        return ColumnData(kind, rows, sample)
    return ColumnData(kind, rows, None)


def _is_integer(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind))


def _floats(array: pa.ChunkedArray | pa.Array) -> Any:
    if pa.types.is_decimal(array.type) or pa.types.is_null(array.type):
        array = array.cast(pa.float64())
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    # nulls become NaN (integers become float64 then); a chunked array is joined once here
    return array.to_numpy(zero_copy_only=False) if isinstance(array, pa.Array) else (
        array.to_numpy())  # fmt: skip


def _value_counts(array: pa.ChunkedArray | pa.Array) -> tuple[list[Any], Any]:
    """Counts per category, by pyarrow's hash table (a Python dict or numpy's sort-based
    ``unique`` costs ~10x more on a million strings); nulls are left out."""
    counted = pc.value_counts(array)
    keys = counted.field("values").to_pylist()
    counts = counted.field("counts").to_numpy().astype(np.int64)
    if array.null_count:
        keep = [i for i, key in enumerate(keys) if key is not None]
        keys, counts = [keys[i] for i in keep], counts[keep]
    return keys, counts


# -- one batch, for a profile -----------------------------------------------------------------
def column_batch(array: pa.Array | pa.ChunkedArray) -> ColumnBatch | None:
    kind = family(array.type)
    if kind == Family.NUMERIC:
        return NumericBatch(np.asarray(_floats(array), dtype=np.float64),
                            integer=_is_integer(array.type))  # fmt: skip
    if kind in (Family.STRING, Family.BOOLEAN):
        keys, counts = _value_counts(array)
        return CategoryBatch(keys, counts, missing=array.null_count, family=kind)
    if kind == Family.DATETIME:
        present = pc.drop_null(array)
        if pa.types.is_date(present.type):
            present = present.cast(pa.timestamp("ns"))
        nanoseconds = present.cast(pa.timestamp("ns")).cast(pa.int64())
        return DatetimeBatch(np.asarray(nanoseconds.to_numpy(), dtype=np.int64),
                             missing=array.null_count)  # fmt: skip
    return None  # lists, structs, binary: nothing a profile can summarise


# -- sources ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Something holding a table, and the name to use for it in messages."""

    label: str
    path: Path | None = None
    table: pa.Table | None = None


def source(data: Any, role: str) -> Source:
    """A path (.parquet/.csv), a pyarrow Table or a pandas DataFrame as a Source."""
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file():
            raise InvalidInput(f"The {role} file {str(path)!r} does not exist.", field=role)
        suffix = path.suffix.lower()
        if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
            raise InvalidInput(
                f"Cannot read the {role} {path.name!r}: use a .parquet or .csv file.", field=role
            )
        return Source(label=repr(str(path)), path=path)
    if isinstance(data, pa.Table):
        return Source(label=f"the {role} table", table=data)
    if type(data).__name__ == "DataFrame" and hasattr(data, "columns"):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except _READ_ERRORS as exc:
            raise InvalidInput(f"Cannot convert the {role} DataFrame: {exc}", field=role) from exc
        return Source(label=f"the {role} DataFrame", table=table)
    raise InvalidInput(
        f"Cannot read the {role} from a {type(data).__name__}: pass the path of a .parquet or "
        ".csv file, a pyarrow Table or a pandas DataFrame.",
        field=role,
    )


class ColumnReader(Mapping[str, ColumnData]):
    """A source's columns, each read and prepared when asked for, not kept."""

    def __init__(self, src: Source, role: str) -> None:
        self.src, self.role = src, role
        try:
            if src.path is not None and src.path.suffix.lower() in PARQUET_SUFFIXES:
                parquet = pq.ParquetFile(src.path)
                self._schema = parquet.schema_arrow
                self.rows = int(parquet.metadata.num_rows)
                self._read: Callable[[str], Any] = partial(_parquet_column, parquet, Lock())
            else:
                table = src.table if src.table is not None else read_csv(src.path)
                self._schema = table.schema
                self.rows = int(table.num_rows)
                self._read = table.column
        except _READ_ERRORS as exc:
            raise unreadable(src, role, exc) from exc

    def __getitem__(self, name: str) -> ColumnData:
        if name not in self._schema.names:
            raise KeyError(name)
        try:
            array = self._read(name)
        except _READ_ERRORS as exc:
            raise unreadable(self.src, self.role, exc, column=name) from exc
        return column_data(array)

    def __iter__(self) -> Iterator[str]:
        return iter(self._schema.names)

    def __len__(self) -> int:
        return len(self._schema.names)


def _parquet_column(parquet: pq.ParquetFile, lock: Lock, name: str) -> pa.ChunkedArray:
    with lock:  # columns are tested on several threads; one ParquetFile reads one at a time
        return parquet.read(columns=[name]).column(0)


def read_csv(path: Path | None) -> pa.Table:
    options = pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    return pcsv.read_csv(path, read_options=options)


def batches(src: Source, role: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The source's rows in record batches of at most ``batch_rows`` rows."""
    try:
        if src.path is None:
            table = src.table if src.table is not None else pa.table({})
            yield from table.to_batches(max_chunksize=batch_rows)
            return
        if src.path.suffix.lower() in PARQUET_SUFFIXES:
            # pre_buffer=False: with pyarrow's default the reader kept every row group it had
            # read (1.1 GB for a 10M x 20 file, measured; apache/arrow#39808 is the same family
            # of problem). buffer_size: column chunks are read in 1 MB pieces rather than whole,
            # so a large row group is not held at once (bench/bench_profile.py)
            parquet = pq.ParquetFile(src.path, pre_buffer=False, buffer_size=1 << 20)
            yield from parquet.iter_batches(batch_size=batch_rows)
            return
        options = pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
        with pcsv.open_csv(src.path, read_options=options) as reader:
            for batch in reader:
                yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=batch_rows)
    except _READ_ERRORS as exc:
        raise unreadable(src, role, exc) from exc


def unreadable(
    src: Source, role: str, exc: BaseException, column: str | None = None
) -> InvalidInput:
    where = f", column {column!r}" if column else ""
    detail = " ".join(str(exc).split())[:300]
    return InvalidInput(
        f"Cannot read the {role} {src.label}{where}: {detail}. Check that it is a valid "
        "Parquet or CSV file.",
        field=role,
    )
