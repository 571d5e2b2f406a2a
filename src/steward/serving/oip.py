"""Open Inference Protocol v2 (KServe / Triton REST): decode requests, encode answers.

Pure functions, no server. ``decode_infer_request`` validates a request against the version's
signature before any model sees it; every refusal is an ``InvalidInput`` whose ``field`` names
the culprit (``inputs[2].shape``). ``encode_infer_answer`` (``encode_infer_response`` for JSON
alone), ``model_metadata`` and ``error_body`` write the protocol's other bodies. Tensor data
travels as JSON or, with Triton's binary tensor data extension (tritonclient's default), as
raw bytes after the JSON (``steward.serving._binary``). docs/serving-protocols.md has the rules.

Datatypes are strict, as KServe is, except for lossless widening: a tensor may be sent in a
narrower type that converts exactly to the signature's (INT32 for an int64 input, FP32 for a
float64 one, INT16 for a float32 one); INT64 for a float64 input is refused (above 2**53 it
loses digits), and so is anything narrowing, mixing booleans and numbers, or BYTES for a
number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving._binary import (
    HEADER,
    Binary,
    attach,
    output_bytes,
    raw_request,
    read_array,
    read_strings,
    split_body,
)
from steward.serving._datatypes import DATATYPES, accepts, datatype_for, datatype_of
from steward.serving._oip_fast import fast_binary_columns, fast_columns, fast_matrix
from steward.serving._tensors import (
    Array,
    ColumnView,
    batch_size,
    check_batch,
    coerce,
    fit_shape,
    format_shape,
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

__all__ = [  # the protocol's names, some defined in the private modules this one uses
    "DATATYPES", "HEADER", "InferRequest", "InferResponse", "accepts", "datatype_for",
    "datatype_of", "decode_infer_request", "encode_infer_answer", "encode_infer_response",
    "error_body", "flat_values", "model_metadata",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A validated inference request.

    ``inputs`` holds one array per signature input, in the signature's order and dtype, with
    the batch first (columns are 1-D). ``matrix`` is set when the model takes one 2-D tensor
    (a single-tensor signature such as an ONNX export, or a table sent as one [N, k] tensor).
    ``binary_outputs`` holds each requested output's ``binary_data`` choice, and
    ``binary_default`` the request's ``binary_data_output``, the choice for the others.
    """

    id: str | None
    inputs: Mapping[str, Array]
    rows: int
    matrix: Array | None = None
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary_outputs: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False

    @property
    def model_input(self) -> Array | Mapping[str, Array]:
        """What to hand to ``LoadedModel.predict``."""
        return self.matrix if self.matrix is not None else self.inputs

    def wants_binary(self, output: str) -> bool:
        """Whether ``output`` goes back as binary data (the binary tensor data extension)."""
        return self.binary_outputs.get(output, self.binary_default)


@dataclass(frozen=True, slots=True)
class InferResponse:
    """An encoded inference response; ``header_length`` is the length of its JSON part when
    binary output data follows it."""

    body: bytes
    header_length: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers it needs besides a JSON body's (Triton's, when binary data follows)."""
        if self.header_length is None:
            return {}
        return {"content-type": "application/octet-stream", HEADER: str(self.header_length)}


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


def decode_infer_request(
    body: bytes | str,
    signature: Signature | None,
    *,
    header_length: str | None = None,
    forbid_missing: frozenset[str] = frozenset(),
) -> InferRequest:
    """Parse and validate an OIP inference request; refusals are ``InvalidInput``.

    ``header_length`` is the request's ``Inference-Header-Content-Length`` header: when given,
    the body is the JSON and then its inputs' binary data (0: the body is the raw data of the
    model's one input). ``forbid_missing`` names the inputs refused when they hold null / NaN
    (``_tensors.missing_forbidden``).
    """
    tail = None  # the bytes after the JSON
    if header_length is None:
        obj = parse_object(body)
    else:
        raw = body.encode() if isinstance(body, str) else body
        obj, tail = _with_binary_data(raw, header_length, signature)
    rid = request_id(obj.get("id"))
    parameters = _parameters(obj.get("parameters"), "parameters")
    binary_default = _flag(
        parameters.get("binary_data_output", False), "parameters.binary_data_output"
    )
    requested, binary = _requested_outputs(obj.get("outputs"), signature)
    inputs, rows, matrix = _decode_inputs(obj.get("inputs"), signature, forbid_missing, tail)
    return InferRequest(rid, inputs, rows, matrix, requested, parameters, binary, binary_default)


_Decoded = tuple[Mapping[str, Array], int, Array | None]  # inputs, rows, the model's matrix


def _decode_inputs(
    raw: object, signature: Signature | None, forbid: frozenset[str], binary: memoryview | None
) -> _Decoded:
    if signature is not None and table_plan(signature).tabular:
        if binary is None:
            one_tensor = fast_matrix(raw, signature, forbid)
            if one_tensor is not None:
                return one_tensor
            fast = fast_columns(raw, signature, forbid)
        else:
            fast = fast_binary_columns(raw, signature, forbid, binary)
        if fast is not None:
            return fast[0], fast[1], None
    tensors = _read_tensors(raw)
    if signature is None or not signature.inputs:
        return _unchecked(tensors)
    if _is_matrix_form(tensors, signature):
        return _matrix_form(tensors[0], signature, forbid)
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
    if forbid:
        index = {tensor.name: tensor.index for tensor in tensors}
        refuse_missing_in(inputs, forbid, lambda name, row: f"inputs[{index[name]}].data")
    rows = check_batch({n: batch_size(a) for n, a in inputs.items()}, fields)
    matrix = next(iter(inputs.values())) if is_single_tensor(signature) else None
    return inputs, rows, matrix


def _with_binary_data(
    body: bytes, header_length: str, signature: Signature | None
) -> tuple[dict[str, Any], memoryview]:
    """The request object, each binary input's data cut from the bytes after the JSON, and
    those bytes."""
    header, binary = split_body(body, header_length)
    if not header:
        return raw_request(binary, signature), binary
    obj = parse_object(header)
    attach(obj.get("inputs"), binary)
    return obj, binary


def _flag(value: object, field: str) -> bool:
    if type(value) is not bool:
        raise InvalidInput(f"'{field}' must be true or false; got {value!r:.40}.", field=field)
    return value


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
    if "binary_data_size" in params and not isinstance(item.get("data"), Binary):
        raise InvalidInput(
            f"Input '{name}' is sent as binary data (binary_data_size) but the request has no "
            "Inference-Header-Content-Length header giving the length of its JSON part; send "
            "the header (tritonclient does), or the data as JSON.",
            field="body",
        )
    if "data" not in item:
        raise InvalidInput(f"Input '{name}' has no 'data'.", field=f"{where}.data")
    return _Tensor(index, name, datatype, shape, item["data"])


def _requested_outputs(
    value: object, signature: Signature | None
) -> tuple[list[str] | None, dict[str, bool]]:
    """The outputs asked for, in order (None: all of them), and each one's binary_data."""
    if value is None:
        return None, {}
    if not isinstance(value, list):
        raise InvalidInput(
            "The 'outputs' must be an array of {\"name\": ...} objects.", field="outputs"
        )
    known = [s.name for s in signature.outputs] if signature else []
    names: list[str] = []
    binary: dict[str, bool] = {}
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
        params = _parameters(item.get("parameters"), f"outputs[{j}].parameters")
        if "classification" in params:
            raise InvalidInput(
                "The classification extension (class_count) is not supported; ask for the "
                "'probabilities' output instead.",
                field=f"outputs[{j}].parameters.classification",
            )
        if "binary_data" in params:
            binary[name] = _flag(params["binary_data"], f"outputs[{j}].parameters.binary_data")
    return names, binary


def _read_data(tensor: _Tensor, read_as: str) -> Array:
    """The tensor's data as ``read_as``, checked against its declared shape and reshaped.
    Binary numbers come as their datatype's array (read_as is that datatype), sized exactly."""
    data = tensor.data
    if isinstance(data, Binary):
        where, shape = tensor.field("parameters.binary_data_size"), tensor.shape
        if tensor.datatype != "BYTES":
            dtype = np.dtype(DATATYPES[tensor.datatype])
            return read_array(data, dtype, tensor.datatype, shape, tensor.label, where)
        data = read_strings(data, shape, tensor.label, where)
    array = coerce(data, read_as, tensor.field("data"), tensor.label)
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
    if len(tensors) != 1:
        return False
    plan = table_plan(signature)
    if not plan.tabular or len(plan.names) < 2:
        return False
    tensor = tensors[0]
    return (
        tensor.name not in plan.index
        and len(tensor.shape) == 2
        and tensor.shape[1] == len(plan.names)
    )


def _matrix_form(tensor: _Tensor, signature: Signature, forbid: frozenset[str]) -> _Decoded:
    plan = table_plan(signature)
    for _, positions, _, _ in plan.groups:  # one check per dtype: its columns agree
        _check_datatype(tensor, signature.inputs[positions[0]])
    array = _read_data(tensor, DATATYPES[tensor.datatype])
    rows = check_batch({tensor.name: array.shape[0]}, {tensor.name: tensor.field("shape")})
    columns: Mapping[str, Array] = ColumnView(array, plan.index)
    if forbid:
        where = tensor.field("data")
        refuse_missing(array, columns, forbid, lambda name, row: where)
    if plan.dtype is not None:  # one dtype: the matrix is the model's input as it is
        matrix = array.astype(plan.dtype, copy=False)
        return ColumnView(matrix, plan.index), rows, matrix
    inputs = {
        spec.name: columns[spec.name].astype(spec_dtype(spec), copy=False)
        for spec in signature.inputs
    }
    return inputs, rows, array


def _unchecked(tensors: list[_Tensor]) -> _Decoded:
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
    return inputs, rows, matrix


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: dict[str, Array],
    requested: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> bytes:
    """The OIP inference response in JSON; see ``encode_infer_answer``."""
    answer = encode_infer_answer(
        model_name, model_version, request_id, outputs, requested, parameters
    )
    return answer.body


def encode_infer_answer(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: dict[str, Array],
    requested: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    binary: Callable[[str], bool] | None = None,
) -> InferResponse:
    """The OIP inference response: each output's datatype, shape and row-major data.

    ``requested`` (from the request) picks and orders the outputs; None returns them all.
    ``binary`` (``InferRequest.wants_binary``) says which outputs go back as binary data after
    the JSON; the others, and any holding values only JSON can carry, are written in the JSON,
    where NaN and infinities are written as null (JSON has no spelling for them).
    """
    names = list(outputs) if requested is None else requested
    tensors = []
    blobs: list[memoryview | bytes] = []
    for j, name in enumerate(names):
        if name not in outputs:
            raise InvalidInput(
                f"The model returned no output named '{name}'; it returns "
                f"{', '.join(repr(n) for n in outputs)}.",
                field=f"outputs[{j}].name",
            )
        array = np.asarray(outputs[name])
        data = output_bytes(array) if binary is not None and binary(name) else None
        if data is None:
            tensors.append(_output_tensor(name, array))
            continue
        tensors.append({"name": name, "shape": list(array.shape), "datatype": datatype_of(array),
                        "parameters": {"binary_data_size": len(data)}})  # fmt: skip
        blobs.append(data)
    body: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        body["model_version"] = model_version
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    body["outputs"] = tensors
    header = to_json(body)
    if not blobs:
        return InferResponse(header)
    return InferResponse(b"".join([header, *blobs]), len(header))


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
