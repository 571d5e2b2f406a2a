"""The OIP binary tensor data extension in the codec: requests as tritonclient builds them (its
defaults send binary inputs and ask binary outputs), every malformed binary body, and binary
outputs read back by tritonclient's own parser."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving.oip import (
    DATATYPES,
    InferResponse,
    decode_infer_request,
    encode_infer_answer,
    encode_infer_response,
)

TABLE = Signature(
    inputs=[
        ColumnSpec(name="age", dtype="int64"),
        ColumnSpec(name="income", dtype="float64"),
        ColumnSpec(name="city", dtype="string"),
    ],
    outputs=[
        ColumnSpec(name="prediction", dtype="int64"),
        ColumnSpec(name="probabilities", dtype="float64", shape=[-1, 2]),
    ],
)
ONNX = Signature(inputs=[ColumnSpec(name="X", dtype="float32", shape=[-1, 3])])
TEXT = Signature(inputs=[ColumnSpec(name="t", dtype="string")])


def triton(
    inputs: list[tuple[str, np.ndarray[Any, Any], str]],
    outputs: list[InferRequestedOutput] | None = None,
    *,
    binary: bool = True,
    request_id: str = "",
) -> tuple[bytes, str | None]:
    """The body and Inference-Header-Content-Length tritonclient.http sends."""
    infer_inputs = []
    for name, array, datatype in inputs:
        infer_input = InferInput(name, list(array.shape), datatype)
        infer_input.set_data_from_numpy(array, binary_data=binary)
        infer_inputs.append(infer_input)
    body, json_size = _get_inference_request(
        inputs=infer_inputs, request_id=request_id, outputs=outputs, sequence_id=0,
        sequence_start=False, sequence_end=False, priority=0, timeout=None,
        custom_parameters=None,
    )  # fmt: skip
    return body, None if json_size is None else str(json_size)


def by_hand(header: dict[str, Any], *blobs: bytes, pad_to: int = 1) -> tuple[bytes, str]:
    """A binary request written out: the JSON (padded with spaces to a multiple of ``pad_to``
    bytes), then the blobs."""
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % pad_to)
    return text + b"".join(blobs), str(len(text))


def binary_tensor(name: str, shape: list[int], datatype: str, size: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype,
            "parameters": {"binary_data_size": size}}  # fmt: skip


def strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def refusal(raw: bytes, header: str | None, signature: Signature | None = ONNX) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(raw, signature, header_length=header)
    return caught.value


# -- requests as tritonclient sends them ----------------------------------------------------


@pytest.mark.parametrize("datatype", sorted(set(DATATYPES) - {"BYTES"}))
def test_every_numeric_datatype_decodes(datatype: str) -> None:
    dtype = np.dtype(DATATYPES[datatype])
    values = np.array([[1, 0, 1], [0, 1, 1]] if dtype.kind == "b" else [[1, 2, 3], [4, 5, 6]])
    values = values.astype(dtype)
    signature = Signature(inputs=[ColumnSpec(name="t", dtype=dtype.name, shape=[-1, 3])])
    raw, header = triton([("t", values, datatype)])
    assert header is not None
    request = decode_infer_request(raw, signature, header_length=header)
    assert request.inputs["t"].dtype == dtype
    np.testing.assert_array_equal(request.inputs["t"], values)
    assert request.matrix is not None
    assert request.rows == 2


def test_a_table_of_binary_columns() -> None:
    raw, header = triton(
        [
            ("city", np.array(["Köln", "Oslo", ""], dtype=object), "BYTES"),
            ("age", np.array([31, 45, 60], dtype=np.int32), "INT32"),  # widened to int64
            ("income", np.array([1.5, np.nan, 3.0]), "FP64"),
        ],
        request_id="t-1",
    )
    request = decode_infer_request(raw, TABLE, header_length=header)
    assert request.id == "t-1"
    assert list(request.inputs) == ["age", "income", "city"]
    assert request.inputs["age"].dtype == np.int64
    np.testing.assert_array_equal(request.inputs["age"], [31, 45, 60])
    np.testing.assert_array_equal(request.inputs["income"], [1.5, np.nan, 3.0])
    assert request.inputs["city"].tolist() == ["Köln", "Oslo", ""]
    # no outputs named: tritonclient asks every output back as binary data
    assert request.outputs is None
    assert request.wants_binary("prediction")


NUMERIC = Signature(inputs=[ColumnSpec(name=f"x{i}", dtype="float64") for i in range(3)])


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "INT32"])
def test_a_table_of_binary_columns_of_one_datatype(datatype: str) -> None:
    dtype = np.dtype(DATATYPES[datatype])
    columns = {f"x{i}": np.array([i, 10 + i], dtype=dtype) for i in (2, 0, 1)}  # any order
    raw, header = triton([(name, values, datatype) for name, values in columns.items()])
    request = decode_infer_request(raw, NUMERIC, header_length=header)
    assert list(request.inputs) == ["x0", "x1", "x2"]
    for name, values in columns.items():
        assert request.inputs[name].dtype == np.float64
        np.testing.assert_array_equal(request.inputs[name], values)
    assert request.rows == 2


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"x1": np.array([1.0, 2.0, 3.0])}, "inputs[1].shape", "same number of rows"),
        ({"x1": np.array([1, 2], dtype=np.int64)}, "inputs[1].datatype", "INT64"),
        ({"x3": np.array([1.0, 2.0])}, "inputs[2].name", "no input named 'x3'"),
    ],
)
def test_binary_columns_with_a_fault_are_named(
    change: dict[str, np.ndarray[Any, Any]], field: str, words: str
) -> None:
    columns = {"x0": np.array([1.0, 2.0]), "x1": np.array([3.0, 4.0]), "x2": np.array([5.0, 6.0])}
    if "x3" in change:
        del columns["x1"]
    columns = {**columns, **change}
    types = {"f": "FP64", "i": "INT64"}
    raw, header = triton([(n, v, types[v.dtype.kind]) for n, v in columns.items()])
    error = refusal(raw, header, NUMERIC)
    assert error.field == field
    assert words in error.message


def test_a_table_sent_as_one_binary_matrix() -> None:
    numeric = Signature(inputs=[ColumnSpec(name=f"x{i}", dtype="float64") for i in range(3)])
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw, header = triton([("input-0", matrix, "FP32")])
    request = decode_infer_request(raw, numeric, header_length=header)
    assert request.matrix is not None
    assert request.matrix.dtype == np.float64
    np.testing.assert_array_equal(request.matrix, matrix)
    np.testing.assert_array_equal(request.inputs["x2"], [2, 5])


def test_binary_and_json_inputs_mix() -> None:
    header = {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 45]},
            binary_tensor("income", [2], "FP64", 16),
            binary_tensor("city", [2], "BYTES", 17),
        ]
    }
    raw, length = by_hand(header, np.array([1.5, 2.5]).tobytes(), strings(b"Paris", b"Oslo"))
    request = decode_infer_request(raw, TABLE, header_length=length)
    np.testing.assert_array_equal(request.inputs["income"], [1.5, 2.5])
    assert request.inputs["city"].tolist() == ["Paris", "Oslo"]


def test_numbers_are_read_in_place_from_the_body() -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw, header = by_hand(
        {"inputs": [binary_tensor("X", [2, 3], "FP32", 24)]}, matrix.tobytes(), pad_to=8
    )
    request = decode_infer_request(raw, ONNX, header_length=header)
    assert np.shares_memory(request.inputs["X"], np.frombuffer(raw, dtype=np.uint8))
    np.testing.assert_array_equal(request.inputs["X"], matrix)


def test_misaligned_numbers_are_copied_aligned() -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    text = json.dumps({"inputs": [binary_tensor("X", [2, 3], "FP32", 24)]}).encode()
    text += b" " * (-len(text) % 8 + 1)  # one byte past a multiple of 8
    request = decode_infer_request(text + matrix.tobytes(), ONNX, header_length=str(len(text)))
    assert request.inputs["X"].flags.aligned
    np.testing.assert_array_equal(request.inputs["X"], matrix)


def test_a_bool_byte_other_than_zero_is_true() -> None:
    signature = Signature(inputs=[ColumnSpec(name="b", dtype="bool")])
    raw, header = by_hand({"inputs": [binary_tensor("b", [3], "BOOL", 3)]}, b"\x00\x01\x02")
    assert decode_infer_request(raw, signature, header_length=header).inputs["b"].tolist() == [
        False, True, True,
    ]  # fmt: skip
    flags = Signature(inputs=[ColumnSpec(name=n, dtype="bool") for n in ("p", "q")])
    header_obj = {"inputs": [binary_tensor(n, [2], "BOOL", 2) for n in ("q", "p")]}
    raw, header = by_hand(header_obj, b"\x00\x07", b"\x01\x00")
    request = decode_infer_request(raw, flags, header_length=header)
    assert (request.inputs["p"].tolist(), request.inputs["q"].tolist()) == (
        [True, False], [False, True],
    )  # fmt: skip


def test_a_header_covering_the_whole_body_is_plain_json() -> None:
    raw, _ = triton([("X", np.ones((1, 3), dtype=np.float32), "FP32")], binary=False)
    request = decode_infer_request(raw, ONNX, header_length=str(len(raw)))
    np.testing.assert_array_equal(request.inputs["X"], [[1, 1, 1]])


def test_a_body_without_json_is_the_one_inputs_raw_data() -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    request = decode_infer_request(matrix.tobytes(), ONNX, header_length="0")
    np.testing.assert_array_equal(request.inputs["X"], matrix)
    assert request.rows == 2
    assert request.wants_binary("prediction")  # as Triton does: every output back binary


@pytest.mark.parametrize(
    ("raw", "signature", "words"),
    [
        (np.zeros(5, dtype=np.float32).tobytes(), ONNX, "not a whole number"),
        (b"\x00" * 8, TABLE, "one numeric input"),
        (b"\x00" * 8, TEXT, "one numeric input"),
        (b"\x00" * 8, None, "one numeric input"),
    ],
)
def test_a_body_without_json_that_cannot_be_read(
    raw: bytes, signature: Signature | None, words: str
) -> None:
    error = refusal(raw, "0", signature)
    assert error.field == "body"
    assert words in error.message


# -- malformed binary requests: each refused, naming the input ------------------------------

FP32_1x3 = np.array([0.5, 1.5, 2.5], dtype=np.float32).tobytes()


def _case(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, str]:
    return by_hand(header, *blobs)


def _binary_x(size: Any = 12, **changes: Any) -> dict[str, Any]:
    return {"inputs": [{**binary_tensor("X", [1, 3], "FP32", size), **changes}]}


_GOOD = _case(_binary_x(), FP32_1x3)
MALFORMED: dict[str, tuple[bytes, str | None, str, str]] = {
    # (body, Inference-Header-Content-Length, field, words in the message)
    "header not a number": (_GOOD[0], "abc", "body", "Inference-Header-Content-Length"),
    "header negative": (_GOOD[0], "-1", "body", "Inference-Header-Content-Length"),
    "header past the body": (_GOOD[0], str(len(_GOOD[0]) + 1), "body", "between 0 and"),
    "header cuts the JSON": (_GOOD[0], str(int(_GOOD[1]) - 3), "body", "not valid JSON"),
    "leftover bytes": (_GOOD[0] + b"\x00" * 8, _GOOD[1], "body", "8 bytes after"),
    "binary past the end": (
        *_case(_binary_x(16), FP32_1x3), "body", "Input 'X' (16 bytes from byte 0",
    ),
    "size does not match the shape": (
        *_case(_binary_x(8), FP32_1x3[:8]), "inputs[0].parameters.binary_data_size",
        "Input 'X' declares shape [1, 3] of FP32 (12 bytes) but its binary_data_size is 8",
    ),
    "size not a number": (
        *_case(_binary_x("12"), FP32_1x3), "inputs[0].parameters.binary_data_size", "'X'",
    ),
    "size negative": (
        *_case(_binary_x(-12), FP32_1x3), "inputs[0].parameters.binary_data_size", "'X'",
    ),
    "size a boolean": (
        *_case(_binary_x(True), FP32_1x3), "inputs[0].parameters.binary_data_size", "'X'",
    ),
    "data and binary": (
        *_case(_binary_x(data=[1, 2, 3]), FP32_1x3), "inputs[0].data", "Input 'X' has both",
    ),
    "unknown datatype": (
        *_case(_binary_x(datatype="FLOAT32"), FP32_1x3), "inputs[0].datatype",
        "Input 'X' has datatype 'FLOAT32'",
    ),
    "datatype the input does not take": (
        *_case(_binary_x(24, datatype="FP64"), FP32_1x3 * 2), "inputs[0].datatype",
        "Input 'X' has datatype FP64 but the model expects FP32",
    ),
    "shape the input does not take": (
        *_case(_binary_x(16, shape=[1, 4]), FP32_1x3 + FP32_1x3[:4]), "inputs[0].shape",
        "Input 'X' must have shape [-1, 3]",
    ),
    "binary without the header": (json.dumps(_binary_x()).encode(), None, "body",
                                  "Input 'X' is sent as binary data"),
    "unknown input": (
        *_case({"inputs": [binary_tensor("Y", [1, 3], "FP32", 12)]}, FP32_1x3),
        "inputs[0].name", "no input named 'Y'",
    ),
}  # fmt: skip
_T = "inputs[0].parameters.binary_data_size"
MALFORMED_TEXT: dict[str, tuple[bytes, str, str]] = {
    "length cut short": (strings(b"ab") + b"\x01\x00", _T, "ends inside the length of element 1"),
    "element past the end": (strings(b"ab") + b"\x09\x00\x00\x00abc", _T, "element 1 is 9 bytes"),
    "not UTF-8": (strings(b"ab", b"\xff\xfe"), _T, "element 1 is not UTF-8"),
    "fewer elements than the shape": (strings(b"ab"), _T, "declares shape [2] (2 values)"),
    "more elements than the shape": (strings(b"a", b"b", b"c"), _T, "its binary data holds 3"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_binary_requests(case: str) -> None:
    raw, header, field, words = MALFORMED[case]
    error = refusal(raw, header)
    assert error.field == field
    assert words in error.message


@pytest.mark.parametrize("case", list(MALFORMED_TEXT))
def test_malformed_binary_strings(case: str) -> None:
    blob, field, words = MALFORMED_TEXT[case]
    raw, header = by_hand({"inputs": [binary_tensor("t", [2], "BYTES", len(blob))]}, blob)
    error = refusal(raw, header, TEXT)
    assert error.field == field
    assert "Input 't'" in error.message
    assert words in error.message


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"parameters": {"binary_data_output": 1}}, "parameters.binary_data_output"),
        ({"outputs": [{"name": "prediction", "parameters": {"binary_data": "yes"}}]},
         "outputs[0].parameters.binary_data"),
        ({"outputs": [{"name": "prediction", "parameters": []}]}, "outputs[0].parameters"),
        ({"outputs": [{"name": "prediction", "parameters": {"classification": 2}}]},
         "outputs[0].parameters.classification"),
    ],
)  # fmt: skip
def test_malformed_output_choices(extra: dict[str, Any], field: str) -> None:
    raw = json.dumps(
        {"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
         **extra}
    ).encode()  # fmt: skip
    assert refusal(raw, None).field == field


# -- outputs: which go back binary, read back by tritonclient -------------------------------

OUTPUTS = {
    "prediction": np.array([1, 0, 1]),
    "probabilities": np.array([[0.2, 0.8], [0.9, 0.1], [np.nan, 1.0]]),
    "half": np.array([0.5, 1.5, -2.0], dtype=np.float16),
    "flag": np.array([True, False, True]),
    "label": np.array(["yes", "no", "Köln"], dtype=object),
    "when": np.array(["2024-05-01T12:00:00"] * 3, dtype="datetime64[ns]"),
}


def parsed(answer: InferResponse) -> InferResult:
    """The response as tritonclient reads it, with the header it would get."""
    return InferResult.from_response_body(answer.body, header_length=answer.header_length)


def test_binary_outputs_read_back_by_tritonclient() -> None:
    answer = encode_infer_answer("m", "1", "r", OUTPUTS, binary=lambda name: True)
    assert answer.header_length is not None
    assert answer.headers == {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(answer.header_length),
    }
    result = parsed(answer)
    header = json.loads(answer.body[: answer.header_length])
    assert all("data" not in o for o in header["outputs"])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [
        24, 48, 6, 3, 3 * 4 + 3 + 2 + 5, 3 * (4 + 29),
    ]  # fmt: skip
    for name in ("prediction", "probabilities", "half", "flag"):
        got = result.as_numpy(name)
        assert got.dtype == OUTPUTS[name].dtype, name
        np.testing.assert_array_equal(got, OUTPUTS[name])  # NaN travels as NaN, not null
    assert result.as_numpy("label").tolist() == [s.encode() for s in OUTPUTS["label"]]
    assert result.as_numpy("when").tolist() == [b"2024-05-01T12:00:00.000000000"] * 3


def test_outputs_asked_for_one_way_each() -> None:
    raw = json.dumps(
        {
            "inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "prediction", "parameters": {"binary_data": False}},
                {"name": "probabilities"},
            ],
        }
    ).encode()
    request = decode_infer_request(raw, ONNX)  # a JSON request asking binary outputs
    assert (request.wants_binary("prediction"), request.wants_binary("probabilities")) == (
        False, True,
    )  # fmt: skip
    answer = encode_infer_answer(
        "m", "1", None, OUTPUTS, request.outputs, None, request.wants_binary
    )
    header = json.loads(answer.body[: answer.header_length])["outputs"]
    assert [o["name"] for o in header] == ["prediction", "probabilities"]
    assert header[0]["data"] == [1, 0, 1]
    assert header[1]["parameters"] == {"binary_data_size": 48}
    result = parsed(answer)
    np.testing.assert_array_equal(result.as_numpy("prediction"), OUTPUTS["prediction"])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), OUTPUTS["probabilities"])


def test_binary_request_asking_json_outputs() -> None:
    outputs = [InferRequestedOutput("prediction", binary_data=False)]
    raw, header = triton([("X", np.ones((3, 3), dtype=np.float32), "FP32")], outputs)
    request = decode_infer_request(raw, ONNX, header_length=header)
    answer = encode_infer_answer(
        "m", "1", None, OUTPUTS, request.outputs, None, request.wants_binary
    )
    assert (answer.header_length, answer.headers) == (None, {})
    assert answer.body == encode_infer_response("m", "1", None, OUTPUTS, ["prediction"])
    np.testing.assert_array_equal(parsed(answer).as_numpy("prediction"), OUTPUTS["prediction"])


def test_values_only_json_carries_stay_json() -> None:
    outputs = {"prediction": np.array([None, "a"], dtype=object), "p": np.array([0.5, 0.5])}
    answer = encode_infer_answer("m", None, None, outputs, binary=lambda name: True)
    header = json.loads(answer.body[: answer.header_length])["outputs"]
    assert header[0]["data"] == [None, "a"]
    assert header[1]["parameters"] == {"binary_data_size": 16}
    np.testing.assert_array_equal(parsed(answer).as_numpy("p"), [0.5, 0.5])


def test_no_binary_output_is_the_json_response() -> None:
    answer = encode_infer_answer("m", "2", "r", OUTPUTS, ["prediction"], {"version": 2})
    assert answer.body == encode_infer_response("m", "2", "r", OUTPUTS, ["prediction"], {
        "version": 2
    })  # fmt: skip
    assert answer.header_length is None
