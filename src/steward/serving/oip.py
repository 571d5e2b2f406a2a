"""Open Inference Protocol v2 (KServe / Triton REST, JSON form): decode requests, encode answers.

Pure functions, no server. ``decode_infer_request`` validates a request against the version's
signature before any model sees it; every refusal is an ``InvalidInput`` whose ``field`` names
the culprit (``inputs[2].shape``). ``encode_infer_response``, ``model_metadata`` and
``error_body`` write the protocol's other bodies. docs/serving-protocols.md has the rules.

Datatypes are strict, as KServe is, except for lossless widening: a tensor may be sent in a
narrower type that converts exactly to the signature's (INT32 for an int64 input, FP32 for a
float64 one, INT16 for a float32 one); INT64 for a float64 input is refused (above 2**53 it
loses digits), and so is anything narrowing, mixing booleans and numbers, or BYTES for a
number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from itertools import chain
from typing import Any

import numpy as np

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving._tensors import (
    Array,
    batch_size,
    check_batch,
    coerce,
    fit_shape,
    format_shape,
    is_single_tensor,
    is_tabular,
    missing_inputs,
    parse_object,
    request_id,
    spec_dtype,
    to_json,
    unknown_input,
)

# OIP datatype -> the signature dtype its JSON data is read as.
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
_BY_DTYPE = {v: k for k, v in DATATYPES.items()}


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A validated inference request.

    ``inputs`` holds one array per signature input, in the signature's order and dtype, with
    the batch first (columns are 1-D). ``matrix`` is set when the model takes one 2-D tensor
    (a single-tensor signature such as an ONNX export, or a table sent as one [N, k] tensor).
    """

    id: str | None
    inputs: dict[str, Array]
    rows: int
    matrix: Array | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def model_input(self) -> Array | dict[str, Array]:
        """What to hand to ``LoadedModel.predict``."""
        return self.matrix if self.matrix is not None else self.inputs


@dataclass(frozen=True, slots=True)
class _Tensor:
    index: int
    name: str
    datatype: str
    shape: list[int]
    data: object

    def field(self, part: str) -> str:
        return f"inputs[{self.index}].{part}"

    @property
    def label(self) -> str:
        return f"Input '{self.name}'"


def datatype_for(dtype: str) -> str:
    """The OIP datatype of a signature dtype (strings, objects and dates travel as BYTES)."""
    return _BY_DTYPE.get(dtype, "BYTES")


def datatype_of(array: Array) -> str:
    """The OIP datatype of a numpy array."""
    kind = array.dtype.kind
    if kind in "biuf":
        return _BY_DTYPE.get(array.dtype.name, "BYTES")
    return "BYTES"


@cache
def accepts(datatype: str, dtype: str) -> bool:
    """Whether a tensor of ``datatype`` may feed a signature input of ``dtype`` losslessly."""
    if dtype == "object":
        return True
    source = DATATYPES[datatype]
    if source == "string" or dtype in ("string", "datetime64[ns]"):
        return source == "string" and dtype in ("string", "datetime64[ns]")
    src, dst = np.dtype(source), np.dtype(dtype)
    if src == dst:
        return True
    if (src.kind == "b") != (dst.kind == "b") or not np.can_cast(src, dst, "safe"):
        return False
    # numpy calls int64 -> float64 safe; past 2**53 it is not, so ints need a wider float.
    return not (src.kind in "iu" and dst.kind == "f" and src.itemsize >= dst.itemsize)


def decode_infer_request(body: bytes | str, signature: Signature | None) -> InferRequest:
    """Parse and validate an OIP inference request; refusals are ``InvalidInput``."""
    obj = parse_object(body)
    rid = request_id(obj.get("id"))
    parameters = _parameters(obj.get("parameters"), "parameters")
    requested = _requested_outputs(obj.get("outputs"), signature)
    if signature is not None and is_tabular(signature):
        fast = _fast_columns(obj.get("inputs"), signature)
        if fast is not None:
            return InferRequest(rid, fast[0], fast[1], None, requested, parameters)
    tensors = _read_tensors(obj.get("inputs"))
    if signature is None or not signature.inputs:
        return _unchecked(tensors, rid, requested, parameters)
    if _is_matrix_form(tensors, signature):
        return _matrix_form(tensors[0], signature, rid, requested, parameters)
    by_name = {spec.name: spec for spec in signature.inputs}
    arrays: dict[str, Array] = {}
    fields: dict[str, str] = {}
    for tensor in tensors:
        spec = by_name.get(tensor.name)
        if spec is None:
            raise unknown_input(tensor.name, signature, tensor.field("name"))
        arrays[tensor.name] = _bind(tensor, spec)
        fields[tensor.name] = tensor.field("shape")
    missing_inputs(signature, set(arrays), "inputs")
    inputs = {spec.name: arrays[spec.name] for spec in signature.inputs}
    rows = check_batch({n: batch_size(a) for n, a in inputs.items()}, fields)
    matrix = next(iter(inputs.values())) if is_single_tensor(signature) else None
    return InferRequest(rid, inputs, rows, matrix, requested, parameters)


_Groups = dict[tuple[str, str], list[tuple[ColumnSpec, list[Any]]]]


def _fast_columns(raw: object, signature: Signature) -> tuple[dict[str, Array], int] | None:
    """A table sent as one flat [N] (or [N, 1]) tensor per column, converted in one numpy call
    per datatype; None when anything is unusual, and the careful path then names the fault."""
    specs = {spec.name: spec for spec in signature.inputs}
    if not isinstance(raw, list) or len(raw) != len(specs):
        return None
    groups: _Groups = {}
    rows = len(raw[0].get("data") or ()) if type(raw[0]) is dict else 0
    if rows == 0 or not all(_fast_member(item, specs, rows, groups) for item in raw):
        return None
    arrays: dict[str, Array] = {}
    for (_, read_as), members in groups.items():
        try:
            block = coerce(list(chain.from_iterable(d for _, d in members)), read_as, "", "")
        except InvalidInput:
            return None
        if block.ndim != 1 or block.size != rows * len(members):
            return None
        for values, (spec, _) in zip(block.reshape(len(members), rows), members, strict=True):
            arrays[spec.name] = values.astype(spec_dtype(spec), copy=False)
    if len(arrays) != len(specs):  # a column given twice, another missing
        return None
    return {name: arrays[name] for name in specs}, rows


def _fast_member(item: object, specs: dict[str, ColumnSpec], rows: int, groups: _Groups) -> bool:
    if type(item) is not dict:
        return False
    name = item.get("name")
    spec = specs.get(name) if isinstance(name, str) else None
    if spec is None:
        return False
    datatype, data, shape = item.get("datatype"), item.get("data"), item.get("shape")
    if type(data) is not list or len(data) != rows or datatype not in DATATYPES:
        return False
    if not accepts(datatype, spec.dtype) or item.get("parameters") is not None:
        return False
    if shape != [rows] and shape != [rows, 1]:
        return False
    read_as = DATATYPES[datatype]
    if datatype == "BYTES" and spec.dtype != "object":
        read_as = spec.dtype
    groups.setdefault((datatype, read_as), []).append((spec, data))
    return True


def _parameters(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(
            f"'{field}' must be a JSON object of name/value pairs; got {value!r:.80}.",
            field=field,
        )
    return value


def _read_tensors(value: object) -> list[_Tensor]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            "The request must have 'inputs': a non-empty array of tensors "
            '({"name", "shape", "datatype", "data"}).',
            field="inputs",
        )
    tensors = [_read_tensor(item, i) for i, item in enumerate(value)]
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise InvalidInput(
                f"Input '{tensor.name}' is given twice; send each input once.",
                field=tensor.field("name"),
            )
        seen.add(tensor.name)
    return tensors


def _read_tensor(item: object, index: int) -> _Tensor:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(
            f"{where} must be a JSON object with name, shape, datatype and data.", field=where
        )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where} needs a 'name' (a non-empty string).", field=f"{where}.name")
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"Input '{name}' has datatype {datatype!r:.40}; use one of: {', '.join(DATATYPES)}.",
            field=f"{where}.datatype",
        )
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        type(d) is int and d >= 0
        for d in shape  # bool is an int: excluded on purpose
    ):
        raise InvalidInput(
            f"Input '{name}' needs a 'shape': an array of non-negative integers, such as "
            f"[1, 20]; got {shape!r:.80}.",
            field=f"{where}.shape",
        )
    params = _parameters(item.get("parameters"), f"{where}.parameters")
    if "binary_data_size" in params:
        raise InvalidInput(
            f"Input '{name}' uses the binary tensor extension, which this server does not "
            "accept; send the data as JSON (tritonclient: set_data_from_numpy(array, "
            "binary_data=False)).",
            field=f"{where}.parameters",
        )
    if "data" not in item:
        raise InvalidInput(f"Input '{name}' has no 'data'.", field=f"{where}.data")
    return _Tensor(index, name, datatype, shape, item["data"])


def _requested_outputs(value: object, signature: Signature | None) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput(
            "The 'outputs' must be an array of {\"name\": ...} objects.", field="outputs"
        )
    known = [s.name for s in signature.outputs] if signature else []
    names: list[str] = []
    for j, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"outputs[{j}].name"
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"outputs[{j}] needs a 'name' (a non-empty string).", field=where)
        if known and name not in known:
            raise InvalidInput(
                f"The model has no output named '{name}'; it returns "
                f"{', '.join(repr(n) for n in known)}.",
                field=where,
            )
        if name in names:
            raise InvalidInput(f"Output '{name}' is requested twice.", field=where)
        names.append(name)
    return names


def _read_data(tensor: _Tensor, read_as: str) -> Array:
    """The tensor's data as ``read_as``, checked against its declared shape and reshaped."""
    array = coerce(tensor.data, read_as, tensor.field("data"), tensor.label)
    expected = math.prod(tensor.shape)
    if array.size != expected:
        raise InvalidInput(
            f"{tensor.label} declares shape {format_shape(tensor.shape)} ({expected} values) "
            f"but its data holds {array.size}.",
            field=tensor.field("data"),
        )
    if array.ndim > 1 and list(array.shape) != tensor.shape:
        raise InvalidInput(
            f"{tensor.label} has nested data of shape {list(array.shape)} but declares shape "
            f"{format_shape(tensor.shape)}; send flat data or nest it as the shape says.",
            field=tensor.field("data"),
        )
    return array.reshape(tensor.shape)


def _check_datatype(tensor: _Tensor, spec: ColumnSpec) -> None:
    if not accepts(tensor.datatype, spec.dtype):
        want = datatype_for(spec.dtype)
        raise InvalidInput(
            f"{tensor.label} has datatype {tensor.datatype} but the model expects {want} "
            f"({spec.dtype}); send {want}, or a narrower type that converts without loss.",
            field=tensor.field("datatype"),
        )


def _bind(tensor: _Tensor, spec: ColumnSpec) -> Array:
    _check_datatype(tensor, spec)
    text = tensor.datatype == "BYTES" and spec.dtype != "object"
    array = _read_data(tensor, spec.dtype if text else DATATYPES[tensor.datatype])
    array = fit_shape(array, spec, tensor.field("shape"), tensor.label)
    return array.astype(spec_dtype(spec), copy=False)


def _is_matrix_form(tensors: list[_Tensor], signature: Signature) -> bool:
    """A table sent as one [N, k] tensor whose name is not one of the k column names."""
    if len(tensors) != 1 or not is_tabular(signature) or len(signature.inputs) < 2:
        return False
    tensor = tensors[0]
    return (
        tensor.name not in signature.input_names
        and len(tensor.shape) == 2
        and tensor.shape[1] == len(signature.inputs)
    )


def _matrix_form(
    tensor: _Tensor,
    signature: Signature,
    rid: str | None,
    requested: list[str] | None,
    parameters: dict[str, Any],
) -> InferRequest:
    for spec in signature.inputs:
        _check_datatype(tensor, spec)
    array = _read_data(tensor, DATATYPES[tensor.datatype])
    rows = check_batch({tensor.name: array.shape[0]}, {tensor.name: tensor.field("shape")})
    inputs = {
        spec.name: array[:, j].astype(spec_dtype(spec), copy=False)
        for j, spec in enumerate(signature.inputs)
    }
    dtypes = {spec_dtype(spec) for spec in signature.inputs}
    matrix = array.astype(dtypes.pop(), copy=False) if len(dtypes) == 1 else array
    return InferRequest(rid, inputs, rows, matrix, requested, parameters)


def _unchecked(
    tensors: list[_Tensor],
    rid: str | None,
    requested: list[str] | None,
    parameters: dict[str, Any],
) -> InferRequest:
    """No signature to check against: take each tensor as it declares itself."""
    inputs: dict[str, Array] = {}
    fields: dict[str, str] = {}
    for tensor in tensors:
        if not tensor.shape:
            raise InvalidInput(
                f"{tensor.label} needs at least one dimension (the batch).",
                field=tensor.field("shape"),
            )
        inputs[tensor.name] = _read_data(tensor, DATATYPES[tensor.datatype])
        fields[tensor.name] = tensor.field("shape")
    rows = check_batch({n: batch_size(a) for n, a in inputs.items()}, fields)
    only = next(iter(inputs.values()))
    matrix = only if len(inputs) == 1 and only.ndim >= 2 else None
    return InferRequest(rid, inputs, rows, matrix, requested, parameters)


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: dict[str, Array],
    requested: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> bytes:
    """The OIP inference response: each output's datatype, shape and row-major data.

    ``requested`` (from the request) picks and orders the outputs; None returns them all.
    NaN and infinities are written as null (JSON has no spelling for them).
    """
    names = list(outputs) if requested is None else requested
    tensors = []
    for j, name in enumerate(names):
        if name not in outputs:
            raise InvalidInput(
                f"The model returned no output named '{name}'; it returns "
                f"{', '.join(repr(n) for n in outputs)}.",
                field=f"outputs[{j}].name",
            )
        tensors.append(_output_tensor(name, np.asarray(outputs[name])))
    body: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        body["model_version"] = model_version
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    body["outputs"] = tensors
    return to_json(body)


def _output_tensor(name: str, array: Array) -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype_of(array),
        "data": flat_values(array),
    }


def flat_values(array: Array) -> list[Any]:
    """``array`` flattened row-major into JSON-ready Python values (dates as ISO strings)."""
    flat = array.reshape(-1)
    kind = array.dtype.kind
    if kind == "M":
        return list(np.datetime_as_string(flat).tolist())
    if kind == "S":
        return [v.decode("utf-8", "replace") for v in flat.tolist()]
    values: list[Any] = flat.tolist()
    return values


def model_metadata(
    name: str, versions: list[str], platform: str, signature: Signature | None
) -> dict[str, Any]:
    """The OIP model metadata object (``GET /v2/models/{name}``)."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [_tensor_metadata(s) for s in signature.inputs] if signature else [],
        "outputs": [_tensor_metadata(s) for s in signature.outputs] if signature else [],
    }


def _tensor_metadata(spec: ColumnSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_for(spec.dtype), "shape": list(spec.shape)}


def error_body(message: str) -> bytes:
    """The OIP error object, ``{"error": message}``."""
    return to_json({"error": message})
