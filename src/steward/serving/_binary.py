"""The Open Inference Protocol's binary tensor data extension (Triton's ``binary_data``).

A request may carry tensor data as raw bytes after its JSON: the HTTP header
``Inference-Header-Content-Length`` gives the JSON's length, each binary input says
``"parameters": {"binary_data_size": n}``, and the inputs' bytes follow the JSON in input
order. Numbers are little-endian, row-major, without padding; a BOOL is one byte (0 or 1); a
BYTES element is a 4-byte little-endian length and then its bytes. Outputs asked for as binary
come back the same way (``parameters.binary_data_size`` on each, the header on the response).

This module cuts and reads the bytes; ``steward.serving.oip`` checks datatypes and shapes
against the signature as it does for JSON data. Numeric data is read with ``np.frombuffer``
over the request body, not copied (unless misaligned: some model runtimes need aligned data).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.domain.signature import Signature
from steward.errors import InvalidInput
from steward.serving._datatypes import DATATYPES, datatype_for
from steward.serving._tensors import Array, format_shape

HEADER = "inference-header-content-length"
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Binary:
    """One input's binary data, a slice of the request body."""

    view: memoryview


def split_body(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON part of ``body`` and the binary part after it, as the header's length says."""
    value = header_length.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > len(body):
        raise InvalidInput(
            f"The Inference-Header-Content-Length header must be the length in bytes of the "
            f"request's JSON part, between 0 and the body's {len(body)} bytes; got {value!r:.40}.",
            field="body",
        )
    length = int(value)
    return body[:length], memoryview(body)[length:]


def attach(items: object, binary: memoryview) -> None:
    """Give each binary input of ``items`` (the request's ``inputs``) its slice of ``binary``,
    in order, as its ``data``; refuses sizes that do not add up to ``binary`` exactly."""
    offset = 0
    for index, item in enumerate(items if isinstance(items, list) else ()):
        parameters = item.get("parameters") if isinstance(item, dict) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        size = _size(parameters["binary_data_size"], item, index)
        if "data" in item:
            raise InvalidInput(
                f"{_label(item, index)} has both 'data' and a binary_data_size; send its data "
                "one way.",
                field=f"inputs[{index}].data",
            )
        if offset + size > len(binary):
            raise InvalidInput(
                f"The binary data of {_label(item, index)} ({size} bytes from byte {offset} "
                f"after the JSON) runs past the end of the body, which has {len(binary)} bytes "
                "after the JSON; the Inference-Header-Content-Length or a binary_data_size is "
                "wrong.",
                field="body",
            )
        item["data"] = Binary(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise InvalidInput(
            f"The body has {len(binary) - offset} bytes after the JSON and the binary data of "
            "its inputs; the binary_data_size of each binary input must add up to the bytes "
            "after the JSON (Inference-Header-Content-Length gives the JSON's length).",
            field="body",
        )


def _size(value: object, item: dict[str, Any], index: int) -> int:
    if type(value) is not int or value < 0:  # bool is an int: excluded on purpose
        raise InvalidInput(
            f"{_label(item, index)} has binary_data_size {value!r:.40}; it must be the number "
            "of bytes of its binary data.",
            field=f"inputs[{index}].parameters.binary_data_size",
        )
    return value


def _label(item: dict[str, Any], index: int) -> str:
    name = item.get("name")
    return f"Input '{name}'" if isinstance(name, str) and name else f"inputs[{index}]"


def raw_request(binary: memoryview, signature: Signature | None) -> dict[str, Any]:
    """A body without JSON (Inference-Header-Content-Length: 0) is the raw data of the model's
    one input, its free dimension worked out from the byte count; every output goes back
    binary, as Triton does."""
    spec = signature.inputs[0] if signature is not None and len(signature.inputs) == 1 else None
    datatype = datatype_for(spec.dtype) if spec is not None else "BYTES"
    if spec is None or datatype == "BYTES" or spec.shape.count(-1) > 1:
        raise InvalidInput(
            "A body without JSON (Inference-Header-Content-Length: 0) is read only for a model "
            "with one numeric input of at most one free dimension; send the JSON inference "
            "request with the binary data after it.",
            field="body",
        )
    width = math.prod(d for d in spec.shape if d != -1) * np.dtype(DATATYPES[datatype]).itemsize
    if len(binary) % width:
        raise InvalidInput(
            f"The body's {len(binary)} bytes are not a whole number of values of input "
            f"'{spec.name}' ({datatype}, shape {format_shape(spec.shape)}: {width} bytes each).",
            field="body",
        )
    shape = [len(binary) // width if d == -1 else d for d in spec.shape]
    tensor = {"name": spec.name, "shape": shape, "datatype": datatype, "data": Binary(binary),
              "parameters": {"binary_data_size": len(binary)}}  # fmt: skip
    return {"inputs": [tensor], "parameters": {"binary_data_output": True}}


def read_array(
    data: Binary, dtype: np.dtype[Any], datatype: str, shape: Sequence[int], label: str, field: str
) -> Array:
    """A numeric tensor's binary data as an array of ``shape``, over the body's bytes."""
    wire = dtype.newbyteorder("<")
    expected = math.prod(shape) * wire.itemsize
    if len(data.view) != expected:
        raise InvalidInput(
            f"{label} declares shape {format_shape(shape)} of {datatype} ({expected} bytes) but "
            f"its binary_data_size is {len(data.view)}.",
            field=field,
        )
    if wire.kind == "b":  # any non-zero byte is true, as numpy and Triton's clients read it
        return np.asarray(np.frombuffer(data.view, dtype=np.uint8).reshape(shape) != 0)
    array = np.frombuffer(data.view, dtype=wire).reshape(shape)
    if not array.flags.aligned:  # the JSON's length decides the offset; runtimes want aligned
        array = array.copy()
    return array.astype(dtype, copy=False)  # a no-op on little-endian machines


def read_strings(data: Binary, shape: Sequence[int], label: str, field: str) -> list[str]:
    """A BYTES tensor's elements (each a 4-byte little-endian length, then UTF-8 bytes)."""
    view, offset = data.view, 0
    values: list[str] = []
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInput(
                f"{label}'s binary data ends inside the length of element {len(values)}.",
                field=field,
            )
        (size,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise InvalidInput(
                f"{label}'s element {len(values)} is {size} bytes long but only "
                f"{len(view) - offset} bytes of its binary data are left.",
                field=field,
            )
        try:
            values.append(str(view[offset : offset + size], "utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{label}'s element {len(values)} is not UTF-8 text ({exc.reason}).", field=field
            ) from exc
        offset += size
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidInput(
            f"{label} declares shape {format_shape(shape)} ({expected} values) but its binary "
            f"data holds {len(values)}.",
            field=field,
        )
    return values


def output_bytes(array: Array) -> memoryview | bytes | None:
    """``array`` in the extension's binary form (row-major, little-endian; BYTES elements
    length-prefixed), or None when it has values only JSON can carry (None in an object array):
    that output is then written as JSON, which clients read as well."""
    kind = array.dtype.kind
    if kind in "biuf":
        flat = np.ascontiguousarray(array).reshape(-1)
        return flat.astype(flat.dtype.newbyteorder("<"), copy=False).view(np.uint8).data
    if kind == "M":
        return _length_prefixed(np.datetime_as_string(array.reshape(-1)).tolist())
    values = array.reshape(-1).tolist()
    if not all(isinstance(v, str | bytes) for v in values):
        return None
    return _length_prefixed(values)


def _length_prefixed(values: list[Any]) -> bytes:
    parts: list[bytes] = []
    for value in values:
        raw = value.encode("utf-8") if isinstance(value, str) else value
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)
