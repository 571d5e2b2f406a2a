"""The simple JSON route, ``POST /predict/{deployment}``: decode requests, encode answers.

A request holds rows, ``{"instances": [{"age": 31, ...}, ...]}`` (or rows as lists, in the
signature's input order), or columns, ``{"inputs": {"age": [31, ...], ...}}``, plus an optional
``"id"`` (the request id the prediction log keeps) and ``"unit_id"`` (the A/B unit). It is
validated against the version's signature with the same rules as the Open Inference Protocol
route, but JSON carries no datatypes: numbers fit numeric inputs, true/false boolean ones,
strings string and date-time ones. Inputs named in ``forbid_missing`` (see
``_tensors.missing_forbidden``) refuse null / NaN. docs/serving-protocols.md has the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving._tensors import (
    MAX_REQUEST_ID_LENGTH,
    Array,
    ColumnView,
    batch_size,
    check_batch,
    coerce,
    fit_shape,
    is_single_tensor,
    missing_inputs,
    parse_object,
    refuse_missing,
    refuse_missing_in,
    request_id,
    spec_dtype,
    table_plan,
    to_json,
    unknown_input,
)

_KEYS = ("instances", "inputs", "id", "unit_id")


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A validated ``/predict`` request; ``inputs`` as in ``oip.InferRequest``."""

    id: str | None
    unit_id: str | None
    inputs: Mapping[str, Array]
    rows: int
    matrix: Array | None = None

    @property
    def model_input(self) -> Array | Mapping[str, Array]:
        """What to hand to ``LoadedModel.predict``."""
        return self.matrix if self.matrix is not None else self.inputs


def decode_predict_request(
    body: bytes | str, signature: Signature | None, forbid_missing: frozenset[str] = frozenset()
) -> PredictRequest:
    """Parse and validate a ``/predict`` body; refusals are ``InvalidInput`` naming the field.

    ``forbid_missing``: the inputs refused when they hold null / NaN (``missing_forbidden``).
    """
    obj = parse_object(body)
    unknown = [key for key in obj if key not in _KEYS]
    if unknown:
        raise InvalidInput(
            f"The request has an unknown key '{unknown[0]}'; use 'instances' (rows) or "
            "'inputs' (columns), and optionally 'id' and 'unit_id'.",
            field=unknown[0],
        )
    if ("instances" in obj) == ("inputs" in obj):
        raise InvalidInput(
            "The request must have exactly one of 'instances' (a list of rows) or 'inputs' "
            "(an object of columns).",
            field="body",
        )
    rid = request_id(obj.get("id"))
    unit = _unit_id(obj.get("unit_id"))
    if signature is None or not signature.inputs:
        inputs, fields = _unchecked(obj)
    elif "instances" in obj:
        inputs, fields = _from_instances(obj["instances"], signature, forbid_missing)
    else:
        inputs, fields = _from_columns(obj["inputs"], signature, forbid_missing)
    if isinstance(fields, _Matrix):  # a table of one numeric dtype, decoded as one block
        return PredictRequest(rid, unit, inputs, len(fields.block), fields.block)
    rows = check_batch({n: batch_size(a) for n, a in inputs.items()}, fields)
    single = signature is not None and is_single_tensor(signature)
    matrix = next(iter(inputs.values())) if single else None
    if signature is None and len(inputs) == 1 and next(iter(inputs.values())).ndim >= 2:
        matrix = next(iter(inputs.values()))
    return PredictRequest(rid, unit, inputs, rows, matrix)


def _unit_id(value: object) -> str | None:
    """The A/B unit: a string, or an integer (user ids often are), kept as a string."""
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
        return value
    raise InvalidInput(
        f"The 'unit_id' must be a string of 1 to {MAX_REQUEST_ID_LENGTH} characters or an "
        f"integer; got {value!r:.80}.",
        field="unit_id",
    )


class _Matrix(dict[str, str]):
    """The fields of a table decoded as one matrix (rows x columns, the signature's order),
    which the model can take as is."""

    def __init__(self, fields: dict[str, str], block: Array) -> None:
        super().__init__(fields)
        self.block = block


Decoded = tuple[Mapping[str, Array], dict[str, str]]


def _from_instances(instances: object, signature: Signature, forbid: frozenset[str]) -> Decoded:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(
            "'instances' must be a non-empty array of rows (objects keyed by input name, or "
            "lists in the model's input order).",
            field="instances",
        )
    if isinstance(instances[0], Mapping):
        return _from_objects(instances, signature, forbid)
    if len(signature.inputs) == 1:  # the rows are the one input's values
        spec = signature.inputs[0]
        one = {spec.name: _column(instances, spec, "instances")}
        refuse_missing_in(one, forbid, lambda name, row: f"instances[{row}]")
        return one, {spec.name: "instances"}
    if table_plan(signature).tabular:
        return _from_lists(instances, signature, forbid)
    raise InvalidInput(
        "This model takes several tensor inputs; send each row as an object keyed by input "
        f"name ({', '.join(signature.input_names)}).",
        field="instances[0]",
    )


def _from_objects(rows: list[Any], signature: Signature, forbid: frozenset[str]) -> Decoded:
    names = signature.input_names
    expected = set(names)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInput(
                f"Row {i} is not an object; send every row the same way.",
                field=f"instances[{i}]",
            )
        if row.keys() != expected:
            _refuse_row_keys(row, i, signature)
    fast = _grouped(rows, signature, forbid, by_position=False)
    if fast is not None:
        return fast
    inputs: dict[str, Array] = {}
    fields: dict[str, str] = {}
    for spec in signature.inputs:
        where = f"instances[*].{spec.name}"
        inputs[spec.name] = _column([row[spec.name] for row in rows], spec, where)
        fields[spec.name] = where
    refuse_missing_in(inputs, forbid, _in_row)
    return inputs, fields


def _grouped(
    rows: list[Any], signature: Signature, forbid: frozenset[str], *, by_position: bool
) -> Decoded | None:
    """Columns of a table read in one numpy call per dtype; None (then the column-by-column
    path names the fault) when a value does not fit or the model has non-column inputs.
    A missing value where ``forbid`` refuses one is refused here, one test per block."""
    table = table_plan(signature)
    if not table.tabular:
        return None
    uniform = table.uniform
    if uniform is not None and by_position:
        # Rows of lists, one numeric dtype: the rows are the model's matrix already.
        try:
            block = coerce(rows, uniform, "", "")
        except InvalidInput:
            return None
        if block.shape != (len(rows), len(table.names)):
            return None
        columns = ColumnView(block, table.index)
        refuse_missing(block, columns, forbid, _in_row)
        return columns, _Matrix(table.fields, block)
    inputs: dict[str, Array] = {}
    for dtype, positions, names, dtypes in table.groups:
        keys = positions if by_position else names
        try:
            block = coerce([row[k] for row in rows for k in keys], dtype, "", "")
        except InvalidInput:
            return None
        if block.ndim != 1:
            return None
        block = block.reshape(len(rows), len(names))
        group = {name: block[:, i] for i, name in enumerate(names)}
        refuse_missing(block, group, forbid, _in_row)
        for name, target in zip(names, dtypes, strict=True):
            inputs[name] = group[name].astype(target, copy=False)
    ordered = {name: inputs[name] for name in table.names}
    if uniform is not None:
        return ordered, _Matrix(table.fields, np.column_stack(list(ordered.values())))
    return ordered, table.fields


def _refuse_row_keys(row: Mapping[str, Any], index: int, signature: Signature) -> None:
    for key in row:
        if key not in signature.input_names:
            raise unknown_input(key, signature, f"instances[{index}].{key}")
    missing = [n for n in signature.input_names if n not in row]
    raise InvalidInput(
        f"Row {index} is missing input '{missing[0]}'; every row needs "
        f"{', '.join(signature.input_names)}.",
        field=f"instances[{index}].{missing[0]}",
        details={"missing": missing},
    )


def _in_row(name: str, row: int) -> str:
    return f"instances[{row}].{name}"


def _from_lists(rows: list[Any], signature: Signature, forbid: frozenset[str]) -> Decoded:
    width = len(signature.inputs)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidInput(
                f"Row {i} must be a list of {width} values in the model's input order "
                f"({', '.join(signature.input_names)}), or an object keyed by input name.",
                field=f"instances[{i}]",
            )
    fast = _grouped(rows, signature, forbid, by_position=True)
    if fast is not None:
        return fast
    inputs: dict[str, Array] = {}
    fields: dict[str, str] = {}
    for spec, values in zip(signature.inputs, zip(*rows, strict=True), strict=True):
        where = f"instances[*].{spec.name}"
        inputs[spec.name] = _column(list(values), spec, where)
        fields[spec.name] = where
    refuse_missing_in(inputs, forbid, _in_row)
    return inputs, fields


def _from_columns(columns: object, signature: Signature, forbid: frozenset[str]) -> Decoded:
    if isinstance(columns, list) and len(signature.inputs) == 1:
        spec = signature.inputs[0]  # the one input's values, as TensorFlow Serving takes them
        one = {spec.name: _column(columns, spec, "inputs")}
        refuse_missing_in(one, forbid, lambda name, row: "inputs")
        return one, {spec.name: "inputs"}
    if not isinstance(columns, dict) or not columns:
        raise InvalidInput(
            "'inputs' must be an object of columns: "
            f"{{{', '.join(repr(n) + ': [...]' for n in signature.input_names)}}}.",
            field="inputs",
        )
    for key in columns:
        if key not in signature.input_names:
            raise unknown_input(key, signature, f"inputs.{key}")
    missing_inputs(signature, set(columns), "inputs")
    inputs: dict[str, Array] = {}
    fields: dict[str, str] = {}
    for spec in signature.inputs:
        where = f"inputs.{spec.name}"
        inputs[spec.name] = _column(columns[spec.name], spec, where)
        fields[spec.name] = where
    refuse_missing_in(inputs, forbid, lambda name, row: f"inputs.{name}")
    return inputs, fields


def _column(values: object, spec: ColumnSpec, field: str) -> Array:
    label = f"Input '{spec.name}'"
    array = coerce(values, spec.dtype, field, label)
    return fit_shape(array, spec, field, label).astype(spec_dtype(spec), copy=False)


def _unchecked(obj: dict[str, Any]) -> Decoded:
    """No signature: numbers, booleans or strings as JSON gives them, one array per input."""
    if "instances" in obj:
        rows = obj["instances"]
        if isinstance(rows, list) and rows and all(isinstance(r, Mapping) for r in rows):
            names = list(rows[0])
            if any(r.keys() != rows[0].keys() for r in rows):
                raise InvalidInput("Every row must have the same keys.", field="instances")
            columns: object = {n: [r[n] for r in rows] for n in names}
        else:
            columns = {"instances": rows}
    else:
        columns = obj["inputs"]
        if isinstance(columns, list):
            columns = {"inputs": columns}
    if not isinstance(columns, dict) or not columns:
        raise InvalidInput("'inputs' must be a non-empty object of columns.", field="inputs")
    inputs = {str(n): _guess(v, str(n)) for n, v in columns.items()}
    return inputs, {n: n for n in inputs}


def _guess(values: object, name: str) -> Array:
    if not isinstance(values, list):
        raise InvalidInput(f"Input '{name}' must be a JSON array.", field=name)
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise InvalidInput(f"Input '{name}' could not be read: {exc}.", field=name) from exc
    if array.dtype.kind == "U":
        return array.astype(object)
    return array


def encode_predict_response(
    predictions: object,
    version: int | str | None,
    request_id: str | None,
    fallback: str | None = None,
) -> bytes:
    """``{"predictions", "version", "request_id", "fallback"}``; ``fallback`` names the reason
    a fallback answered (None when the model did). Arrays are written row by row; a dict of
    arrays (``{"prediction": ..., "probabilities": ...}``) as a dict of lists."""
    return to_json(
        {
            "predictions": _json_ready(predictions),
            "version": version,
            "request_id": request_id,
            "fallback": fallback,
        }
    )


def _json_ready(value: object) -> object:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "M":
            return np.datetime_as_string(value).tolist()
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return value
