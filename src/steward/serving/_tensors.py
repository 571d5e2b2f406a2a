"""Shared helpers of the gateway's codecs: JSON in and out, strict JSON-list-to-numpy conversion.

Both wire formats (Open Inference Protocol and the simple ``/predict`` JSON) end in the same
place: one numpy array per signature input, of the signature's dtype, with the batch first.
Conversion is done by numpy in bulk (``np.asarray`` on the whole list, then checks on the
array), never element by element, except for the ``isinstance(str)`` check of string columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic_core

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput

Array = np.ndarray[Any, Any]

MAX_REQUEST_ID_LENGTH = 256


class ColumnView(Mapping[str, Array]):
    """The columns of a rows x columns matrix, by name, without making them up front.

    A table decoded as one block is handed to the model as that block; the columns are only
    looked at when something needs one (a unit id column, a rule, another version's input),
    and building twenty column views per request cost more than the rest of the decoding.
    """

    __slots__ = ("_index", "matrix")

    def __init__(self, matrix: Array, index: Mapping[str, int]) -> None:
        self.matrix = matrix
        self._index = index  # name -> column position, shared by every request of a signature

    def __getitem__(self, name: str) -> Array:
        return self.matrix[:, self._index[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index


# Signature dtypes read from JSON strings rather than numbers.
_TEXT_DTYPES = frozenset({"string", "datetime64[ns]"})


def parse_object(body: bytes | str) -> dict[str, Any]:
    """The request body as a JSON object; anything else is refused with ``field="body"``."""
    try:
        parsed = pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise InvalidInput(
            f"The request body is not valid JSON ({exc}); send a JSON object.", field="body"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidInput(
            f"The request body must be a JSON object; got a JSON {_json_type(parsed)}.",
            field="body",
        )
    return parsed


def to_json(value: object) -> bytes:
    """Standard JSON (NaN and infinities become null), numpy scalars written as numbers."""
    return pydantic_core.to_json(value, inf_nan_mode="null", fallback=_fallback)


def _fallback(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


def request_id(value: object, field: str = "id") -> str | None:
    """A caller's request id: a non-empty string of at most 256 characters, or absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID_LENGTH:
        raise InvalidInput(
            f"The '{field}' must be a non-empty string of at most {MAX_REQUEST_ID_LENGTH} "
            f"characters; got {value!r:.80}.",
            field=field,
        )
    return value


def spec_dtype(spec: ColumnSpec) -> np.dtype[Any]:
    """The numpy dtype an input column is converted to."""
    if spec.dtype == "string":
        return np.dtype(object)
    return np.dtype(spec.dtype)


def coerce(values: object, spec_type: str, field: str, label: str) -> Array:
    """``values`` (a JSON list, maybe nested) as an array of ``spec_type``, a signature dtype.

    Refuses what would lose information: 1.5 or NaN for an integer, 300 for uint8, a number for
    a string column, ``true`` for a float. ``null`` in a float column reads as NaN (missing).
    ``label`` names the values in messages ("Input 'age'").
    """
    if not isinstance(values, list):
        raise InvalidInput(
            f"{label} must hold a JSON array of values; got a JSON {_json_type(values)}.",
            field=field,
        )
    if spec_type in _TEXT_DTYPES:
        return _coerce_text(values, spec_type, field, label)
    if spec_type == "object":
        return _asarray(values, np.dtype(object), field, label)
    target = np.dtype(spec_type)
    array = _asarray(values, None, field, label)
    kind = array.dtype.kind
    if kind == "O" and target.kind == "f":  # nulls among numbers: missing values
        array = _asarray(values, target, field, label)
        kind = "f"
    if kind not in "biuf" or (kind == "b") != (target.kind == "b"):
        want = "true/false values" if target.kind == "b" else f"numbers ({spec_type})"
        raise InvalidInput(f"{label} must hold {want}; {_found(array)}.", field=field)
    if target.kind in "iu":
        _check_integers(array, target, field, label)
    return array.astype(target, copy=False)


def _found(array: Array) -> str:
    kind = array.dtype.kind
    if kind == "b":
        return "got true/false"
    if kind in "iuf":
        return "got numbers"
    if kind in "US":
        return "got strings"
    return "got nulls or mixed values"


def _asarray(values: list[Any], dtype: np.dtype[Any] | None, field: str, label: str) -> Array:
    try:
        return np.asarray(values, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        if "inhomogeneous" in str(exc):
            reason = "its nested lists have different lengths"
        else:
            reason = str(exc)
        raise InvalidInput(f"{label} could not be read: {reason}.", field=field) from exc


def _check_integers(array: Array, target: np.dtype[Any], field: str, label: str) -> None:
    if array.size == 0:
        return
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InvalidInput(
                f"{label} is an integer input and cannot hold NaN or infinity; send whole numbers.",
                field=field,
            )
        if not np.array_equal(array, np.trunc(array)):
            raise InvalidInput(
                f"{label} is an integer input ({target.name}); got non-integer numbers.",
                field=field,
            )
    info = np.iinfo(target)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        raise InvalidInput(
            f"{label} holds values outside the {target.name} range [{info.min}, {info.max}]; "
            f"got values from {low} to {high}.",
            field=field,
        )


def _coerce_text(values: list[Any], spec_type: str, field: str, label: str) -> Array:
    array = _asarray(values, np.dtype(object), field, label)
    if not all(isinstance(v, str) for v in array.flat):
        raise InvalidInput(f"{label} must hold strings; got other values.", field=field)
    if spec_type == "string":
        return array
    try:
        return array.astype("datetime64[ns]")
    except ValueError as exc:
        raise InvalidInput(
            f"{label} must hold ISO 8601 date-times ('2024-05-01T12:00:00'); {exc}.",
            field=field,
        ) from exc


def fit_shape(array: Array, spec: ColumnSpec, field: str, label: str) -> Array:
    """``array`` checked against ``spec.shape`` (-1: any size); a column also takes [N, 1]."""
    shape = array.shape
    if len(spec.shape) == 1 and array.ndim == 2 and shape[1] == 1:
        return array.reshape(-1)
    if not shape_matches(shape, spec.shape):
        raise InvalidInput(
            f"{label} must have shape {format_shape(spec.shape)} (-1: any size); "
            f"got {list(shape)}.",
            field=field,
        )
    return array


def shape_matches(shape: Sequence[int], expected: Sequence[int]) -> bool:
    return len(shape) == len(expected) and all(
        want in (-1, got) for got, want in zip(shape, expected, strict=True)
    )


def format_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_batch(sizes: dict[str, int], field_of: dict[str, str]) -> int:
    """The one batch size shared by every input; refuses none or disagreeing sizes."""
    distinct = set(sizes.values())
    if len(distinct) > 1:
        first = next(iter(sizes))
        other = next(n for n, s in sizes.items() if s != sizes[first])
        raise InvalidInput(
            f"Every input must have the same number of rows: '{first}' has {sizes[first]}, "
            f"'{other}' has {sizes[other]}.",
            field=field_of[other],
        )
    rows = distinct.pop() if distinct else 0
    if rows == 0:
        field = next(iter(field_of.values()), "inputs")
        raise InvalidInput("The request has no rows; send at least one.", field=field)
    return rows


def is_single_tensor(signature: Signature) -> bool:
    """One input with per-row structure (shape [-1, n] ...): the model takes one matrix."""
    return len(signature.inputs) == 1 and len(signature.inputs[0].shape) >= 2


def is_tabular(signature: Signature) -> bool:
    """Every input is a column (shape [-1]): the model reads a table."""
    return bool(signature.inputs) and all(len(s.shape) == 1 for s in signature.inputs)


def missing_inputs(signature: Signature, present: set[str], field: str) -> None:
    missing = [s.name for s in signature.inputs if s.name not in present]
    if missing:
        raise InvalidInput(
            f"The request is missing input {_quoted(missing)}; the model expects "
            f"{_quoted(signature.input_names)}.",
            field=field,
            details={"missing": missing},
        )


def unknown_input(name: str, signature: Signature, field: str) -> InvalidInput:
    return InvalidInput(
        f"The model has no input named '{name}'; it expects {_quoted(signature.input_names)}.",
        field=field,
    )


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def batch_size(array: Array) -> int:
    """The rows of an input: its first dimension (a scalar input counts as one row)."""
    return int(array.shape[0]) if array.ndim else 1


# -- missing values --------------------------------------------------------------------------

# Signature dtypes whose decoded values can be missing: NaN in floats, None or NaN in objects,
# NaT in date-times. Integers, booleans and strings cannot hold one (their decoding refuses it).
_MISSING_DTYPES = frozenset({"float16", "float32", "float64", "object", "datetime64[ns]"})
_FORBIDDEN: dict[tuple[int, bool | None], tuple[Signature, frozenset[str]]] = {}

# Names a field from the input's name and the row of the missing value.
FieldOf = Callable[[str, int], str]


def missing_forbidden(signature: Signature | None, accepts_missing: bool | None) -> frozenset[str]:
    """The inputs that may not hold a missing value (null / NaN): those the signature marks
    ``nullable: false``, and all of them when the model does not accept missing values
    (``LoadedModel.accepts_missing`` is False). Only inputs able to hold one are named.

    The gateway works it out once per deployment revision (``Served.forbid_missing``); the
    answer is also kept per signature object (the entry keeps the Signature alive, so its id is
    not reused while cached).
    """
    if signature is None:
        return frozenset()
    key = (id(signature), accepts_missing)
    found = _FORBIDDEN.get(key)
    if found is not None and found[0] is signature:
        return found[1]
    names = frozenset(
        spec.name
        for spec in signature.inputs
        if spec.dtype in _MISSING_DTYPES and (not spec.nullable or accepts_missing is False)
    )
    if len(_FORBIDDEN) >= 256:
        _FORBIDDEN.clear()
    _FORBIDDEN[key] = (signature, names)
    return names


def refuse_missing(
    block: Array, columns: Mapping[str, Array], forbid: frozenset[str], field_of: FieldOf
) -> None:
    """Refuse a missing value in a column of ``forbid``, naming the input and its first row.

    ``block`` holds every value of ``columns`` (their matrix, or the one buffer they were read
    into, or the column itself): a request without missing values pays one vectorized test
    over it, never a loop over the columns.
    """
    if not forbid or block.dtype.kind not in "fOM" or not _has_missing(block):
        return
    for name, values in columns.items():
        if name in forbid and _has_missing(values):
            mask = _missing_mask(values)
            if mask.ndim > 1:  # a row is missing a value when any of its cells is
                mask = np.asarray(mask.reshape(mask.shape[0], -1).any(axis=1))
            row = int(mask.reshape(-1).argmax())
            raise InvalidInput(
                f"Input '{name}' has a missing value (null/NaN) in row {row}; this model does "
                "not accept missing values.",
                field=field_of(name, row),
                details={"row": row},
            )


def refuse_missing_in(
    columns: Mapping[str, Array], forbid: frozenset[str], field_of: FieldOf
) -> None:
    """``refuse_missing`` for columns decoded one by one: their float values are joined into
    one block for the test (one ``np.concatenate`` costs less than a test per column)."""
    if not forbid:
        return
    floats: dict[str, Array] = {}
    for name, values in columns.items():
        if name not in forbid:
            continue
        if values.dtype.kind == "f":
            floats[name] = values
        else:  # objects and date-times: rare, tested one by one
            refuse_missing(values, {name: values}, forbid, field_of)
    if floats:
        block = np.concatenate(list(floats.values()), axis=None)
        refuse_missing(block, floats, forbid, field_of)


def _has_missing(values: Array) -> bool:
    kind = values.dtype.kind
    if kind == "f":
        return bool(np.isnan(values).any())
    if kind in "OM":
        return bool(_missing_mask(values).any())
    return False


def _missing_mask(values: Array) -> Array:
    kind = values.dtype.kind
    if kind == "f":
        return np.isnan(values)
    if kind == "M":
        return np.isnat(values)
    if kind == "O":
        return np.asarray(np.frompyfunc(_is_missing, 1, 1)(values), dtype=bool)
    return np.zeros(values.shape, dtype=bool)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True, slots=True)
class TablePlan:
    """What decoding a tabular signature needs, worked out once per signature rather than per
    request (it was a quarter of the decoding time)."""

    names: tuple[str, ...]
    tabular: bool
    fields: dict[str, str]
    # dtype -> (positions, names, numpy dtypes) of the columns of that dtype
    groups: tuple[tuple[str, tuple[int, ...], tuple[str, ...], tuple[np.dtype[Any], ...]], ...]
    index: dict[str, int]  # name -> position
    dtype: np.dtype[Any] | None  # the numpy dtype every column converts to, if they share one

    @property
    def uniform(self) -> str | None:
        """The one numeric dtype of every column, if they share one."""
        if len(self.groups) == 1 and self.groups[0][0] not in ("string", "object"):
            return self.groups[0][0]
        return None


_PLANS: dict[int, tuple[Signature, TablePlan]] = {}


def table_plan(signature: Signature) -> TablePlan:
    # Keyed by identity: a served version keeps its Signature object; the entry keeps it alive.
    found = _PLANS.get(id(signature))
    if found is not None and found[0] is signature:
        return found[1]
    grouped: dict[str, list[tuple[int, ColumnSpec]]] = {}
    for j, spec in enumerate(signature.inputs):
        grouped.setdefault(spec.dtype, []).append((j, spec))
    dtypes = {spec_dtype(spec) for spec in signature.inputs}
    table = TablePlan(
        tuple(signature.input_names),
        is_tabular(signature),
        {name: f"instances[*].{name}" for name in signature.input_names},
        tuple(
            (dtype, tuple(j for j, _ in members), tuple(s.name for _, s in members),
             tuple(spec_dtype(s) for _, s in members))
            for dtype, members in grouped.items()
        ),
        {name: j for j, name in enumerate(signature.input_names)},
        dtypes.pop() if len(dtypes) == 1 else None,
    )  # fmt: skip
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[id(signature)] = (signature, table)
    return table
