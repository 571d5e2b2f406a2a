"""Turn the shapes callers send (frames, arrays, rows, columns) into one DataFrame.

Every backend starts from ``to_frame`` so that a missing column or an uncastable value fails
the same way, with the column named, whichever flavor serves the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from steward.domain.signature import ColumnSpec
from steward.errors import InvalidInput

_NUMERIC_DTYPES = frozenset(
    {
        "float16", "float32", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool",
    }
)  # fmt: skip
_INPUT_KINDS = (
    "a pandas DataFrame, a numpy array, a list of dicts (rows), a dict of columns "
    "or a list of lists"
)


def default_names(count: int) -> list[str]:
    """Names for unnamed matrix columns: x0, x1, ..."""
    return [f"x{i}" for i in range(count)]


def to_frame(
    data: object,
    names: Sequence[str] | None = None,
    specs: Sequence[ColumnSpec] | None = None,
) -> pd.DataFrame:
    """A DataFrame with exactly the ``names`` columns, in that order, cast to ``specs``' dtypes.

    ``names`` also labels the columns of matrix-shaped input; without it they are x0, x1, ...
    """
    if names is not None and isinstance(data, Mapping) and [str(k) for k in data] == list(names):
        # The gateway's case: already the signature's columns, in order, as numpy arrays.
        block = _one_block(data)
        if block is not None and _block_fits(next(iter(data.values())).dtype, specs):
            return block
    frame = _as_frame(data, list(names) if names is not None else None)
    if names is None:
        return frame
    missing = [n for n in names if n not in frame.columns]
    if missing:
        expected = ", ".join(names)
        raise InvalidInput(
            f"The input is missing column '{missing[0]}'. The model expects the columns: "
            f"{expected}.",
            field=missing[0],
            details={"missing": missing},
        )
    if list(frame.columns) != list(names):
        frame = frame.loc[:, list(names)]
    # Only the columns whose dtype changes are replaced, all at once: assigning each column
    # back (30 of them) cost ~7 ms a call, most of a one-row prediction (measured).
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    changed: dict[str, pd.Series] = {}
    for spec in specs or ():
        if spec.name not in dtypes or len(spec.shape) != 1 or _already(dtypes[spec.name], spec):
            continue
        column = frame[spec.name]
        cast = cast_column(column, spec)
        if cast is not column:
            changed[spec.name] = cast
    return frame.assign(**changed) if changed else frame


def uniform_dtype(specs: Sequence[ColumnSpec] | None) -> np.dtype[Any] | None:
    """The one numeric or bool dtype every column of ``specs`` has, if they share one."""
    if not specs or any(len(spec.shape) != 1 for spec in specs):
        return None
    dtypes = {spec.dtype for spec in specs}
    if len(dtypes) != 1 or not dtypes <= _NUMERIC_DTYPES:
        return None
    return np.dtype(dtypes.pop())


def numeric_matrix(
    data: object, names: Sequence[str], dtype: np.dtype[Any]
) -> np.ndarray[Any, Any] | None:
    """``data`` as one ``dtype`` matrix with the ``names`` columns, without building a frame,
    when it already is one: a 2-D array of that dtype and width (what the gateway decodes), or
    the signature's columns in order as 1-D arrays of that dtype. None otherwise, and the
    caller takes the general path (which names what is wrong).

    For estimators fitted on plain arrays a DataFrame is pure overhead: building one cost more
    than the one-row model call itself (measured, pandas 3).
    """
    if isinstance(data, np.ndarray):
        if data.ndim == 2 and data.shape[1] == len(names) and data.dtype == dtype:
            return data
        return None
    if not isinstance(data, Mapping) or len(data) != len(names):
        return None
    values: list[np.ndarray[Any, Any]] = []
    for name, (key, value) in zip(names, data.items(), strict=True):
        if key != name or not isinstance(value, np.ndarray) or value.ndim != 1:
            return None
        if value.dtype != dtype or (values and len(value) != len(values[0])):
            return None
        values.append(value)
    return np.column_stack(values)


@lru_cache(maxsize=256)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """A frame's column labels, built once per signature: with pandas 3, making an Index of
    strings goes through pyarrow and cost ~30 µs per request (measured)."""
    return pd.Index(list(names), dtype=object)


def _block_fits(dtype: np.dtype[Any], specs: Sequence[ColumnSpec] | None) -> bool:
    return all(_already(dtype, spec) for spec in specs or () if len(spec.shape) == 1)


def _already(dtype: Any, spec: ColumnSpec) -> bool:
    """The column already has the numeric or bool dtype the signature asks for."""
    if spec.dtype in ("string", "object", "datetime64[ns]"):
        return False
    return bool(dtype == np.dtype(spec.dtype))


def _as_frame(data: object, names: list[str] | None) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame().T  # a Series is one row keyed by column name
    if isinstance(data, Mapping):
        return _from_columns(data)
    if isinstance(data, np.ndarray):
        return _from_matrix(data, names)
    if isinstance(data, (list, tuple)):
        if not data:
            raise InvalidInput("The input has no rows; send at least one.", field="data")
        if all(isinstance(row, Mapping) for row in data):
            return pd.DataFrame.from_records(list(data))
        if _is_scalar(data[0]):
            data = [list(data)]  # a flat list is one row
        return _from_rows(list(data), names)
    raise InvalidInput(
        f"Cannot read input of type {type(data).__name__}; send {_INPUT_KINDS}.", field="data"
    )


def _is_scalar(value: object) -> bool:
    return not isinstance(value, (list, tuple, np.ndarray, pd.Series, Mapping))


def _from_columns(data: Mapping[Any, Any]) -> pd.DataFrame:
    if all(_is_scalar(v) for v in data.values()):
        return pd.DataFrame([dict(data)])  # a dict of scalars is one row
    stacked = _one_block(data)
    if stacked is not None:
        return stacked
    try:
        return pd.DataFrame({str(k): list(v) for k, v in data.items()})
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"The columns of the input could not be read as a table: {exc}.", field="data"
        ) from exc


def _one_block(data: Mapping[Any, Any]) -> pd.DataFrame | None:
    """Numeric numpy columns of one dtype and length, as a single-block frame.

    What the gateway hands over (decoded per the signature). Building a frame column by column
    cost ~1 ms for 30 columns; one stacked block costs a few tens of microseconds (measured).
    """
    values = list(data.values())
    first = values[0]
    if not isinstance(first, np.ndarray) or first.ndim != 1 or first.dtype.kind not in "iufb":
        return None
    for value in values:
        if not (
            isinstance(value, np.ndarray)
            and value.ndim == 1
            and value.dtype == first.dtype
            and len(value) == len(first)
        ):
            return None
    return pd.DataFrame(np.column_stack(values), columns=_column_index(tuple(map(str, data))))


def _from_matrix(array: np.ndarray[Any, Any], names: list[str] | None) -> pd.DataFrame:
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidInput(
            f"A numpy input must be 1-D (one row) or 2-D (rows x columns); got {array.ndim}-D.",
            field="data",
        )
    columns = _matrix_names(array.shape[1], names)
    return pd.DataFrame(array, columns=_column_index(tuple(columns)))


def _from_rows(rows: list[Any], names: list[str] | None) -> pd.DataFrame:
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise InvalidInput(
            f"Every row must have the same number of values; got lengths {sorted(widths)}.",
            field="data",
        )
    return pd.DataFrame(rows, columns=_matrix_names(widths.pop(), names))


def _matrix_names(width: int, names: list[str] | None) -> list[str]:
    if names is None:
        return default_names(width)
    if len(names) != width:
        raise InvalidInput(
            f"The input has {width} columns but the model expects {len(names)}: "
            f"{', '.join(names)}.",
            field="data",
        )
    return names


def cast_column(column: pd.Series, spec: ColumnSpec) -> pd.Series:
    """``column`` as ``spec.dtype``; refuses lossy casts (1.5 to int, 'abc' to float)."""
    try:
        return _cast(column, spec.dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"Column '{spec.name}' must hold {spec.dtype} values; {exc}.",
            field=spec.name,
        ) from exc


def _cast(column: pd.Series, dtype: str) -> pd.Series:
    if dtype in ("string", "object"):
        return column.astype(object)
    if dtype == "datetime64[ns]":
        return pd.to_datetime(column)
    if dtype == "bool":
        return _to_bool(column)
    if column.dtype == np.dtype(dtype):
        return column
    numeric = pd.to_numeric(column, errors="raise")
    if dtype.startswith(("int", "uint")):
        values = numeric.to_numpy(dtype="float64")
        if np.isnan(values).any():
            raise ValueError("it has missing values")
        if not np.array_equal(values, np.round(values)):
            raise ValueError("it has non-integer values")
    return numeric.astype(np.dtype(dtype))


def _to_bool(column: pd.Series) -> pd.Series:
    if column.dtype == bool:
        return column
    values = set(pd.unique(column))
    if values <= {0, 1}:  # True == 1 and False == 0, so this admits bools too
        return column.astype(bool)
    raise ValueError("only true/false or 0/1 can be read as bool")


def to_matrix(data: object, width: int | None, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """A 2-D array of ``dtype`` from matrix-like input, for models without named columns."""
    if isinstance(data, (np.ndarray, list, tuple)) and not _is_rows_of_dicts(data):
        try:
            array = np.asarray(data, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"The input could not be read as a {dtype} matrix: {exc}.", field="data"
            ) from exc
    else:
        array = frame_to_array(to_frame(data), dtype)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        raise InvalidInput(
            f"The model expects rows of {width} values; got an array of shape {array.shape}.",
            field="data",
        )
    return array


def _is_rows_of_dicts(data: object) -> bool:
    return isinstance(data, (list, tuple)) and bool(data) and isinstance(data[0], Mapping)


def frame_to_array(frame: pd.DataFrame, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """Stack the frame's columns into one ``dtype`` matrix (the single-tensor model input)."""
    try:
        return frame.to_numpy(dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"The input columns could not be stacked into a {dtype} matrix: {exc}.",
            field="data",
        ) from exc
