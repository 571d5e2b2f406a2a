"""The simple JSON route's codec: rows, columns, refusals, the response body."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving.predict_json import decode_predict_request, encode_predict_response

TABLE = Signature(
    inputs=[
        ColumnSpec(name="age", dtype="int64"),
        ColumnSpec(name="income", dtype="float64"),
        ColumnSpec(name="city", dtype="string"),
    ]
)
ONNX = Signature(inputs=[ColumnSpec(name="X", dtype="float32", shape=[-1, 3])])
ROWS = [{"age": 31, "income": 1.5, "city": "Paris"}, {"age": 45, "income": 2, "city": "Oslo"}]


def decode(payload: Any, signature: Signature | None = TABLE) -> Any:
    return decode_predict_request(json.dumps(payload).encode(), signature)


def refusal(payload: Any, signature: Signature | None = TABLE) -> InvalidInput:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(InvalidInput) as caught:
        decode_predict_request(raw, signature)
    return caught.value


def assert_table(request: Any) -> None:
    assert list(request.inputs) == ["age", "income", "city"]
    assert request.inputs["age"].dtype == np.int64
    np.testing.assert_array_equal(request.inputs["age"], [31, 45])
    np.testing.assert_array_equal(request.inputs["income"], [1.5, 2.0])
    assert request.inputs["city"].tolist() == ["Paris", "Oslo"]
    assert request.rows == 2
    assert request.matrix is None


def test_rows_as_objects() -> None:
    request = decode({"instances": ROWS, "id": "req-1", "unit_id": "user-9"})
    assert_table(request)
    assert request.id == "req-1"
    assert request.unit_id == "user-9"


def test_rows_as_lists_in_signature_order() -> None:
    assert_table(decode({"instances": [[31, 1.5, "Paris"], [45, 2, "Oslo"]]}))


def test_columns() -> None:
    request = decode({"inputs": {"city": ["Paris", "Oslo"], "age": [31, 45], "income": [1.5, 2]}})
    assert_table(request)
    assert request.id is None


def test_integer_unit_id_is_kept_as_text() -> None:
    assert decode({"instances": ROWS, "unit_id": 1234}).unit_id == "1234"


def test_single_tensor_model_rows() -> None:
    request = decode({"instances": [[1, 2, 3], [4, 5, 6]]}, ONNX)
    assert request.matrix is not None
    assert request.matrix.dtype == np.float32
    np.testing.assert_array_equal(request.model_input, [[1, 2, 3], [4, 5, 6]])


def test_single_tensor_model_other_forms() -> None:
    for payload in (
        {"instances": [{"X": [1, 2, 3]}]},
        {"inputs": {"X": [[1, 2, 3]]}},
        {"inputs": [[1, 2, 3]]},
    ):
        request = decode(payload, ONNX)
        np.testing.assert_array_equal(request.model_input, [[1, 2, 3]])


def test_single_column_model_takes_plain_values() -> None:
    signature = Signature(inputs=[ColumnSpec(name="text", dtype="string")])
    assert decode({"instances": ["a", "b"]}, signature).inputs["text"].tolist() == ["a", "b"]


def test_null_in_float_column_is_missing() -> None:
    rows = [{**ROWS[0], "income": None}, ROWS[1]]
    assert np.isnan(decode({"instances": rows}).inputs["income"][0])


def test_without_signature_values_are_taken_as_sent() -> None:
    request = decode({"instances": [[1.0, 2.0], [3.0, 4.0]]}, None)
    np.testing.assert_array_equal(request.model_input, [[1.0, 2.0], [3.0, 4.0]])
    columns = decode({"instances": [{"a": 1, "b": "x"}]}, None)
    assert columns.inputs["b"].tolist() == ["x"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"nope", "body"),
        (b'"text"', "body"),
        ({}, "body"),
        ({"instances": ROWS, "inputs": {}}, "body"),
        ({"instance": ROWS}, "instance"),
        ({"instances": []}, "instances"),
        ({"instances": {"age": 1}}, "instances"),
        ({"instances": ROWS, "id": 5}, "id"),
        ({"instances": ROWS, "unit_id": ""}, "unit_id"),
        ({"instances": [ROWS[0], [1, 2, 3]]}, "instances[1]"),
        ({"instances": [ROWS[0], {**ROWS[1], "zip": 1}]}, "instances[1].zip"),
        ({"instances": [ROWS[0], {"age": 1, "income": 2.0}]}, "instances[1].city"),
        ({"instances": [[31, 1.5]]}, "instances[0]"),
        ({"instances": [{**ROWS[0], "age": 1.5}]}, "instances[*].age"),
        ({"instances": [{**ROWS[0], "age": None}]}, "instances[*].age"),
        ({"instances": [{**ROWS[0], "income": "high"}]}, "instances[*].income"),
        ({"instances": [{**ROWS[0], "city": 75}]}, "instances[*].city"),
        ({"instances": [[31, "x", "Paris"]]}, "instances[*].income"),
        ({"inputs": {"age": [1], "income": [1.0]}}, "inputs"),
        ({"inputs": {"age": [1], "income": [1.0], "city": ["a"], "zip": [1]}}, "inputs.zip"),
        ({"inputs": {"age": [1, 2], "income": [1.0], "city": ["a"]}}, "inputs.income"),
        ({"inputs": {"age": 1, "income": [1.0], "city": ["a"]}}, "inputs.age"),
        ({"inputs": ["a"]}, "inputs"),
    ],
)
def test_refusals_name_the_field(payload: Any, field: str) -> None:
    error = refusal(payload)
    assert error.field == field
    assert error.message


def test_refusal_messages_say_what_to_do() -> None:
    error = refusal({"instances": [ROWS[0], {"age": 1, "income": 2.0}]})
    assert error.message == "Row 1 is missing input 'city'; every row needs age, income, city."
    error = refusal({"instances": [{**ROWS[0], "age": 1.5}]})
    assert "Input 'age' is an integer input" in error.message


def test_single_tensor_shape_refusals() -> None:
    assert refusal({"instances": [[1, 2]]}, ONNX).field == "instances"
    assert refusal({"instances": [[1, 2, 3], [4, 5]]}, ONNX).field == "instances"
    error = refusal({"instances": [{"X": [1, 2, 3, 4]}]}, ONNX)
    assert error.field == "instances[*].X"
    assert "[-1, 3]" in error.message


def test_several_tensor_inputs_need_objects() -> None:
    signature = Signature(
        inputs=[
            ColumnSpec(name="a", dtype="float32", shape=[-1, 2]),
            ColumnSpec(name="b", dtype="float32", shape=[-1, 2]),
        ]
    )
    assert refusal({"instances": [[[1, 2], [3, 4]]]}, signature).field == "instances[0]"
    request = decode({"instances": [{"a": [1, 2], "b": [3, 4]}]}, signature)
    np.testing.assert_array_equal(request.inputs["b"], [[3, 4]])


def test_encode_response() -> None:
    raw = encode_predict_response(np.array([1, 0]), 3, "req-1", None)
    assert json.loads(raw) == {
        "predictions": [1, 0],
        "version": 3,
        "request_id": "req-1",
        "fallback": None,
    }


def test_encode_response_with_fallback_and_probabilities() -> None:
    predictions = {
        "prediction": np.array(["yes"], dtype=object),
        "probabilities": np.array([[0.25, np.nan]]),
    }
    decoded = json.loads(encode_predict_response(predictions, "2", "r", "timeout"))
    assert decoded["predictions"] == {"prediction": ["yes"], "probabilities": [[0.25, None]]}
    assert decoded["fallback"] == "timeout"
    assert json.loads(encode_predict_response([np.int64(4)], 1, None))["predictions"] == [4]
