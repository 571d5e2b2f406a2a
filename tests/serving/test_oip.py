"""The Open Inference Protocol v2 codec: spec examples, every refusal, round trips."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving.oip import (
    DATATYPES,
    accepts,
    decode_infer_request,
    encode_infer_response,
    error_body,
    model_metadata,
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
NUMERIC = Signature(inputs=[ColumnSpec(name=f"x{i}", dtype="float32") for i in range(3)])
ONNX = Signature(inputs=[ColumnSpec(name="X", dtype="float32", shape=[-1, 3])])


def body(inputs: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def table_request(**overrides: dict[str, Any]) -> list[dict[str, Any]]:
    inputs = {
        "age": tensor("age", [2], "INT64", [31, 45]),
        "income": tensor("income", [2], "FP64", [1.5, 2.5]),
        "city": tensor("city", [2], "BYTES", ["Paris", "Oslo"]),
    }
    for name, change in overrides.items():
        inputs[name] = {**inputs[name], **change}
    return list(inputs.values())


def refusal(raw: bytes | str, signature: Signature | None = TABLE) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(raw, signature)
    return caught.value


# -- decoding what the spec and the clients send -------------------------------------------


def test_spec_example_without_signature() -> None:
    raw = body(
        [
            tensor("input0", [2, 2], "UINT32", [1, 2, 3, 4]),
            tensor("input1", [2], "BOOL", [True, False]),
        ],
        id="42",
        outputs=[{"name": "output0"}],
    )
    request = decode_infer_request(raw, None)
    assert request.id == "42"
    assert request.outputs == ["output0"]
    assert request.rows == 2
    assert request.inputs["input0"].dtype == np.uint32
    np.testing.assert_array_equal(request.inputs["input0"], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(request.inputs["input1"], [True, False])
    assert request.matrix is None


def test_table_as_one_tensor_per_column() -> None:
    request = decode_infer_request(body(table_request(), id="r-7"), TABLE)
    assert list(request.inputs) == ["age", "income", "city"]
    assert request.inputs["age"].dtype == np.int64
    np.testing.assert_array_equal(request.inputs["age"], [31, 45])
    np.testing.assert_array_equal(request.inputs["income"], [1.5, 2.5])
    assert request.inputs["city"].tolist() == ["Paris", "Oslo"]
    assert request.rows == 2
    assert request.model_input is request.inputs


def test_inputs_come_back_in_signature_order() -> None:
    raw = body(list(reversed(table_request())))
    assert list(decode_infer_request(raw, TABLE).inputs) == ["age", "income", "city"]


def test_column_sent_as_n_by_1_tensor() -> None:
    raw = body(table_request(age={"shape": [2, 1], "data": [[31], [45]]}))
    request = decode_infer_request(raw, TABLE)
    assert request.inputs["age"].shape == (2,)


def test_nested_and_flat_data_decode_the_same() -> None:
    flat = body([tensor("X", [2, 3], "FP32", [1, 2, 3, 4, 5, 6])])
    nested = body([tensor("X", [2, 3], "FP32", [[1, 2, 3], [4, 5, 6]])])
    a = decode_infer_request(flat, ONNX)
    b = decode_infer_request(nested, ONNX)
    np.testing.assert_array_equal(a.inputs["X"], b.inputs["X"])
    np.testing.assert_array_equal(a.inputs["X"], [[1, 2, 3], [4, 5, 6]])


def test_single_tensor_model_gets_its_matrix() -> None:
    request = decode_infer_request(body([tensor("X", [1, 3], "FP32", [0.5, 1, 2])]), ONNX)
    assert request.matrix is not None
    assert request.matrix.dtype == np.float32
    assert request.matrix.shape == (1, 3)
    assert request.model_input is request.matrix


def test_table_sent_as_one_matrix_tensor() -> None:
    raw = body([tensor("input-0", [2, 3], "FP32", [[1, 2, 3], [4, 5, 6]])])
    request = decode_infer_request(raw, NUMERIC)
    assert request.matrix is not None
    np.testing.assert_array_equal(request.matrix, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(request.inputs["x1"], [2, 5])
    assert request.rows == 2


def test_lossless_widening_is_accepted() -> None:
    raw = body(table_request(age={"datatype": "INT32"}, income={"datatype": "FP32"}))
    request = decode_infer_request(raw, TABLE)
    assert request.inputs["age"].dtype == np.int64
    assert request.inputs["income"].dtype == np.float64


@pytest.mark.parametrize(
    ("datatype", "dtype", "ok"),
    [
        ("INT32", "int64", True),
        ("INT16", "float32", True),
        ("UINT8", "int16", True),
        ("FP32", "float64", True),
        ("INT64", "float64", False),  # loses digits past 2**53
        ("INT32", "float32", False),
        ("FP64", "float32", False),
        ("INT64", "int32", False),
        ("UINT64", "int64", False),
        ("BOOL", "int64", False),
        ("INT8", "bool", False),
        ("BYTES", "float64", False),
        ("FP32", "string", False),
        ("BYTES", "datetime64[ns]", True),
        ("FP64", "object", True),
    ],
)
def test_datatype_acceptance(datatype: str, dtype: str, ok: bool) -> None:
    assert accepts(datatype, dtype) is ok


def test_null_in_a_float_tensor_is_missing() -> None:
    raw = body(table_request(income={"data": [None, 2.0]}))
    income = decode_infer_request(raw, TABLE).inputs["income"]
    assert np.isnan(income[0])
    assert income[1] == 2.0


def test_tritonclient_request_decodes() -> None:
    http = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.http._utils")
    matrix = np.array([[0.5, 1.5, 2.5], [3.0, 4.0, 5.0]], dtype=np.float32)
    infer_input = http.InferInput("X", list(matrix.shape), "FP32")
    infer_input.set_data_from_numpy(matrix, binary_data=False)
    output = http.InferRequestedOutput("prediction", binary_data=False)
    raw, _ = utils._get_inference_request(
        inputs=[infer_input],
        request_id="triton-1",
        outputs=[output],
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    request = decode_infer_request(raw, ONNX)
    assert request.id == "triton-1"
    assert request.outputs == ["prediction"]
    np.testing.assert_array_equal(request.model_input, matrix)


def test_binary_data_without_the_header_is_refused() -> None:
    inputs = [
        {"name": "X", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}
    ]
    error = refusal(body(inputs), ONNX)
    assert error.field == "body"  # a 400: the body cannot be split without the header
    assert "Inference-Header-Content-Length" in error.message


# -- refusals, each naming its field -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"inputs": []}', "inputs"),
        (b'{"inputs": {"age": [1]}}', "inputs"),
        (b'{"inputs": [5]}', "inputs[0]"),
        (b'{"id": 42, "inputs": []}', "id"),
        (b'{"parameters": [1], "inputs": []}', "parameters"),
    ],
)
def test_malformed_bodies(raw: bytes, field: str) -> None:
    assert refusal(raw).field == field


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"income": {"name": "salary"}}, "inputs[1].name", "no input named 'salary'"),
        ({"income": {"name": ""}}, "inputs[1].name", "non-empty"),
        ({"age": {"datatype": "FP64", "data": [1.0, 2.0]}}, "inputs[0].datatype", "INT64"),
        ({"age": {"datatype": "FLOAT"}}, "inputs[0].datatype", "one of"),
        ({"city": {"datatype": "FP32", "data": [1.0, 2.0]}}, "inputs[2].datatype", "BYTES"),
        ({"income": {"datatype": "BYTES", "data": ["a", "b"]}}, "inputs[1].datatype", "FP64"),
        ({"age": {"shape": [3]}}, "inputs[0].data", "3 values"),
        ({"age": {"shape": [2, 2], "data": [1, 2, 3, 4]}}, "inputs[0].shape", "[-1]"),
        ({"age": {"shape": [-2]}}, "inputs[0].shape", "non-negative"),
        ({"age": {"shape": "2"}}, "inputs[0].shape", "non-negative"),
        ({"age": {"data": [1.5, 2]}}, "inputs[0].data", "non-integer"),
        ({"age": {"data": [float("nan"), 2]}}, "inputs[0].data", "NaN"),
        ({"age": {"data": [True, False]}}, "inputs[0].data", "numbers"),
        ({"age": {"datatype": "INT8", "data": [300, 1]}}, "inputs[0].data", "range"),
        ({"age": {"data": "31,45"}}, "inputs[0].data", "array"),
        ({"age": {"data": [[1], [2, 3]]}}, "inputs[0].data", "different lengths"),
        ({"city": {"data": ["Paris", 7]}}, "inputs[2].data", "strings"),
        ({"income": {"data": ["a", "b"]}}, "inputs[1].data", "numbers"),
        ({"income": {"shape": [3], "data": [1.0, 2.0, 3.0]}}, "inputs[1].shape", "same number"),
        ({"age": {"parameters": "x"}}, "inputs[0].parameters", "object"),
    ],
)
def test_refusals_name_the_field(
    overrides: dict[str, dict[str, Any]], field: str, words: str
) -> None:
    error = refusal(body(table_request(**overrides)))
    assert error.field == field
    assert words in error.message
    assert error.details["field"] == field


def test_missing_data_key() -> None:
    inputs = table_request()
    del inputs[0]["data"]
    assert refusal(body(inputs)).field == "inputs[0].data"


def test_missing_input_is_named() -> None:
    error = refusal(body(table_request()[:2]))
    assert error.field == "inputs"
    assert error.details["missing"] == ["city"]


def test_duplicate_input() -> None:
    inputs = table_request()
    error = refusal(body([*inputs, inputs[0]]))
    assert error.field == "inputs[3].name"
    assert "twice" in error.message


def test_nested_data_must_follow_the_shape() -> None:
    error = refusal(body([tensor("X", [2, 3], "FP32", [[1, 2], [3, 4], [5, 6]])]), ONNX)
    assert error.field == "inputs[0].data"


def test_fixed_dimension_must_match() -> None:
    error = refusal(body([tensor("X", [1, 4], "FP32", [1, 2, 3, 4])]), ONNX)
    assert error.field == "inputs[0].shape"
    assert "[-1, 3]" in error.message


def test_empty_batch_is_refused() -> None:
    error = refusal(body([tensor("X", [0, 3], "FP32", [])]), ONNX)
    assert "no rows" in error.message


def test_unknown_requested_output() -> None:
    error = refusal(body(table_request(), outputs=[{"name": "prediction"}, {"name": "nope"}]))
    assert error.field == "outputs[1].name"


def test_integer_range_for_unsigned() -> None:
    signature = Signature(inputs=[ColumnSpec(name="n", dtype="uint8")])
    error = refusal(body([tensor("n", [2], "UINT8", [1, -1])]), signature)
    assert error.field == "inputs[0].data"


# -- encoding ------------------------------------------------------------------------------


def test_spec_example_response() -> None:
    out = np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]], dtype=np.float64)
    raw = encode_infer_response("mymodel", None, "42", {"output0": out})
    assert json.loads(raw) == {
        "model_name": "mymodel",
        "id": "42",
        "outputs": [
            {
                "name": "output0",
                "shape": [3, 2],
                "datatype": "FP64",
                "data": [1.0, 1.1, 2.0, 2.1, 3.0, 3.1],
            }
        ],
    }


def test_response_keeps_requested_outputs_in_order() -> None:
    outputs = {"prediction": np.array([1, 0]), "probabilities": np.array([[0.2, 0.8]] * 2)}
    raw = encode_infer_response("m", "3", None, outputs, ["probabilities"], {"fallback": "x"})
    decoded = json.loads(raw)
    assert decoded["model_version"] == "3"
    assert "id" not in decoded
    assert decoded["parameters"] == {"fallback": "x"}
    assert [o["name"] for o in decoded["outputs"]] == ["probabilities"]


def test_response_refuses_an_output_the_model_did_not_give() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_infer_response("m", None, None, {"a": np.zeros(1)}, ["b"])
    assert caught.value.field == "outputs[0].name"


def test_response_writes_nan_as_null_and_strings_as_bytes() -> None:
    outputs = {
        "p": np.array([np.nan, 0.5], dtype=np.float32),
        "label": np.array(["yes", "no"], dtype=object),
        "u": np.array(["a"]),
    }
    decoded = json.loads(encode_infer_response("m", None, None, outputs))["outputs"]
    assert decoded[0]["data"] == [None, 0.5]
    assert decoded[1] == {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["yes", "no"]}
    assert decoded[2]["datatype"] == "BYTES"


@pytest.mark.parametrize("datatype", sorted(set(DATATYPES) - {"BYTES"}))
def test_round_trip_per_datatype(datatype: str) -> None:
    dtype = np.dtype(DATATYPES[datatype])
    values = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    if dtype.kind != "b":
        values = np.array([[1, 2, 3], [4, 5, 6]], dtype=dtype)
    signature = Signature(inputs=[ColumnSpec(name="t", dtype=dtype.name, shape=[-1, 3])])
    encoded = encode_infer_response("m", None, None, {"t": values})
    sent = json.loads(encoded)["outputs"][0]
    assert sent["datatype"] == datatype
    assert sent["shape"] == [2, 3]
    request = decode_infer_request(json.dumps({"inputs": [sent]}), signature)
    assert request.inputs["t"].dtype == dtype
    np.testing.assert_array_equal(request.inputs["t"], values)


def test_round_trip_bytes() -> None:
    signature = Signature(inputs=[ColumnSpec(name="t", dtype="string")])
    values = np.array(["é", "b c"], dtype=object)
    sent = json.loads(encode_infer_response("m", None, None, {"t": values}))["outputs"][0]
    request = decode_infer_request(json.dumps({"inputs": [sent]}), signature)
    assert request.inputs["t"].tolist() == ["é", "b c"]


def test_round_trip_dates() -> None:
    signature = Signature(inputs=[ColumnSpec(name="t", dtype="datetime64[ns]")])
    values = np.array(["2024-05-01T12:00:00"], dtype="datetime64[ns]")
    sent = json.loads(encode_infer_response("m", None, None, {"t": values}))["outputs"][0]
    assert sent["datatype"] == "BYTES"
    request = decode_infer_request(json.dumps({"inputs": [sent]}), signature)
    np.testing.assert_array_equal(request.inputs["t"], values)


def test_model_metadata() -> None:
    meta = model_metadata("churn", ["3", "4"], "steward_sklearn", TABLE)
    assert meta["name"] == "churn"
    assert meta["versions"] == ["3", "4"]
    assert meta["inputs"] == [
        {"name": "age", "datatype": "INT64", "shape": [-1]},
        {"name": "income", "datatype": "FP64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["outputs"][1] == {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}
    assert model_metadata("x", [], "onnx", None)["inputs"] == []


def test_error_body() -> None:
    assert json.loads(error_body('bad "input"')) == {"error": 'bad "input"'}
