"""Missing values (null / NaN) where the model cannot take them: which inputs refuse them, and
the refusal on every decoding path of both codecs, naming the input and the row."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving._tensors import missing_forbidden
from steward.serving.oip import decode_infer_request
from steward.serving.predict_json import decode_predict_request

TABLE = Signature(
    inputs=[
        ColumnSpec(name="age", dtype="int64"),
        ColumnSpec(name="income", dtype="float64"),
        ColumnSpec(name="city", dtype="string"),
    ]
)
NUMERIC = Signature(inputs=[ColumnSpec(name=f"x{i}", dtype="float64") for i in range(3)])
ONNX = Signature(inputs=[ColumnSpec(name="X", dtype="float32", shape=[-1, 3])])
EVERYTHING = frozenset({"income", "x0", "x1", "x2", "X", "v", "w", "o", "when"})
MESSAGE = (
    "Input '{}' has a missing value (null/NaN) in row {}; this model does not accept missing "
    "values."
)


def refused_predict(payload: bytes, signature: Signature, forbid: frozenset[str]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode_predict_request(payload, signature, forbid)
    return caught.value


def refused_oip(payload: bytes, signature: Signature, forbid: frozenset[str]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(payload, signature, forbid_missing=forbid)
    return caught.value


def tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


# -- which inputs refuse a missing value ----------------------------------------------------


def test_a_model_without_missing_values_forbids_them_where_they_can_occur() -> None:
    signature = Signature(
        inputs=[
            ColumnSpec(name="f", dtype="float32"),
            ColumnSpec(name="n", dtype="int64"),  # an integer cannot hold one anyway
            ColumnSpec(name="b", dtype="bool"),
            ColumnSpec(name="s", dtype="string"),  # strings must be strings
            ColumnSpec(name="o", dtype="object"),
            ColumnSpec(name="d", dtype="datetime64[ns]"),
        ]
    )
    assert missing_forbidden(signature, False) == {"f", "o", "d"}
    assert missing_forbidden(signature, True) == frozenset()
    assert missing_forbidden(signature, None) == frozenset()
    assert missing_forbidden(None, False) == frozenset()


def test_nullable_false_forbids_whatever_the_model_takes() -> None:
    signature = Signature(
        inputs=[
            ColumnSpec(name="a", dtype="float64", nullable=False),
            ColumnSpec(name="b", dtype="float64"),
        ]
    )
    assert missing_forbidden(signature, True) == {"a"}
    assert missing_forbidden(signature, None) == {"a"}
    assert missing_forbidden(signature, False) == {"a", "b"}


def test_the_answer_is_kept_per_signature_object() -> None:
    first = missing_forbidden(NUMERIC, False)
    assert missing_forbidden(NUMERIC, False) is first
    same_fields = Signature.model_validate(NUMERIC.model_dump())
    assert missing_forbidden(same_fields, False) == first


def test_nullable_is_stored_only_when_false() -> None:
    assert ColumnSpec(name="a", dtype="float64").model_dump() == {
        "name": "a", "dtype": "float64", "shape": [-1],
    }  # fmt: skip
    strict = ColumnSpec(name="a", dtype="float64", nullable=False)
    assert strict.model_dump()["nullable"] is False
    assert ColumnSpec.model_validate_json(strict.model_dump_json()) == strict
    assert ColumnSpec.model_validate({"name": "a", "dtype": "float64"}).nullable is True


# -- /predict -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "name", "row"),
    [
        # rows as objects, columns of several dtypes: one block per dtype
        (b'{"instances": [{"age": 1, "income": 2.0, "city": "a"},'
         b' {"age": 2, "income": null, "city": "b"}]}', "instances[1].income", "income", 1),
        (b'{"instances": [{"age": 1, "income": NaN, "city": "a"}]}', "instances[0].income",
         "income", 0),
        # columns
        (b'{"inputs": {"age": [1, 2], "income": [1.0, null], "city": ["a", "b"]}}',
         "inputs.income", "income", 1),
    ],
)  # fmt: skip
def test_predict_refuses_a_missing_value(payload: bytes, field: str, name: str, row: int) -> None:
    error = refused_predict(payload, TABLE, EVERYTHING)
    assert error.message == MESSAGE.format(name, row)
    assert error.field == field
    assert error.details["row"] == row


@pytest.mark.parametrize(
    ("payload", "field", "name"),
    [
        (b'{"instances": [[1, 2, 3], [4, null, 6]]}', "instances[1].x1", "x1"),  # one matrix
        (b'{"instances": [{"x0": 1, "x1": 2, "x2": NaN}]}', "instances[0].x2", "x2"),
        (b'{"inputs": {"x0": [1], "x1": [2], "x2": [null]}}', "inputs.x2", "x2"),
    ],
)
def test_predict_refuses_in_a_numeric_table(payload: bytes, field: str, name: str) -> None:
    error = refused_predict(payload, NUMERIC, EVERYTHING)
    assert error.field == field
    assert f"Input '{name}'" in error.message


def test_predict_single_tensor_rows() -> None:
    error = refused_predict(b'{"instances": [[1, 2, 3], [1, NaN, 3]]}', ONNX, EVERYTHING)
    assert (error.field, error.details["row"]) == ("instances[1]", 1)
    error = refused_predict(b'{"inputs": [[1, 2, null]]}', ONNX, EVERYTHING)
    assert error.field == "inputs"


def test_predict_column_by_column_path() -> None:
    # a non-column input: decoded one column at a time
    signature = Signature(
        inputs=[ColumnSpec(name="w", dtype="float64"), ColumnSpec(name="v", dtype="float64",
                                                                   shape=[-1, 2])]
    )  # fmt: skip
    payload = b'{"instances": [{"w": 1, "v": [1, 2]}, {"w": 2, "v": [3, null]}]}'
    error = refused_predict(payload, signature, EVERYTHING)
    assert (error.field, error.details["row"]) == ("instances[1].v", 1)


def test_predict_object_and_datetime_inputs() -> None:
    signature = Signature(
        inputs=[ColumnSpec(name="o", dtype="object"), ColumnSpec(name="when",
                                                                 dtype="datetime64[ns]")]
    )  # fmt: skip
    payload = b'{"inputs": {"o": ["a", null], "when": ["2024-01-01", "2024-01-02"]}}'
    assert refused_predict(payload, signature, EVERYTHING).field == "inputs.o"
    payload = b'{"inputs": {"o": ["a", "b"], "when": ["2024-01-01", "NaT"]}}'
    assert refused_predict(payload, signature, EVERYTHING).details["row"] == 1


def test_predict_takes_missing_values_where_allowed() -> None:
    payload = b'{"instances": [[1, null, 3]]}'
    request = decode_predict_request(payload, NUMERIC, frozenset({"x0", "x2"}))
    assert np.isnan(request.inputs["x1"][0])
    assert np.isnan(decode_predict_request(payload, NUMERIC).inputs["x1"][0])
    error = refused_predict(b'{"instances": [[null, 1, 3]]}', NUMERIC, frozenset({"x0"}))
    assert error.field == "instances[0].x0"


# -- OIP, JSON and binary -------------------------------------------------------------------


def test_oip_tensor_per_column() -> None:
    inputs = [
        tensor("age", [2], "INT64", [1, 2]),
        tensor("income", [2], "FP64", [1.0, None]),
        tensor("city", [2], "BYTES", ["a", "b"]),
    ]
    error = refused_oip(json.dumps({"inputs": inputs}).encode(), TABLE, EVERYTHING)
    assert error.message == MESSAGE.format("income", 1)
    assert error.field == "inputs[1].data"
    # the careful path ([N, 1] columns) refuses the same way
    inputs[1] = tensor("income", [2, 1], "FP64", [[1.0], [None]])
    assert refused_oip(json.dumps({"inputs": inputs}).encode(), TABLE, EVERYTHING).field == (
        "inputs[1].data"
    )


def test_oip_matrix_and_single_tensor() -> None:
    matrix = json.dumps({"inputs": [tensor("in", [2, 3], "FP64", [1, 2, 3, 4, 5, None])]})
    error = refused_oip(matrix.encode(), NUMERIC, EVERYTHING)
    assert (error.field, error.message) == ("inputs[0].data", MESSAGE.format("x2", 1))
    single = json.dumps({"inputs": [tensor("X", [2, 3], "FP32", [1, 2, 3, None, 5, 6])]})
    error = refused_oip(single.encode(), ONNX, EVERYTHING)
    assert (error.field, error.details["row"]) == ("inputs[0].data", 1)


def test_oip_binary_data() -> None:
    values = np.array([[1, 2, 3], [4, np.nan, 6]], dtype=np.float32)
    header = json.dumps(
        {"inputs": [{"name": "X", "shape": [2, 3], "datatype": "FP32",
                     "parameters": {"binary_data_size": 24}}]}
    ).encode()  # fmt: skip
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(
            header + values.tobytes(), ONNX, header_length=str(len(header)),
            forbid_missing=EVERYTHING,
        )  # fmt: skip
    assert caught.value.message == MESSAGE.format("X", 1)
    request = decode_infer_request(header + values.tobytes(), ONNX, header_length=str(len(header)))
    assert np.isnan(request.inputs["X"][1, 1])


def test_oip_takes_missing_values_where_allowed() -> None:
    inputs = [tensor(f"x{i}", [1], "FP64", [None if i == 1 else 1.0]) for i in range(3)]
    raw = json.dumps({"inputs": inputs}).encode()
    assert np.isnan(decode_infer_request(raw, NUMERIC, forbid_missing=frozenset({"x0"})).inputs[
        "x1"
    ][0])  # fmt: skip
    assert refused_oip(raw, NUMERIC, frozenset({"x1"})).field == "inputs[1].data"


def test_oip_binary_columns() -> None:
    header = json.dumps(
        {"inputs": [{"name": f"x{i}", "shape": [2], "datatype": "FP64",
                     "parameters": {"binary_data_size": 16}} for i in (2, 1, 0)]}
    ).encode()  # fmt: skip
    blobs = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]]).tobytes()
    with pytest.raises(InvalidInput) as caught:
        decode_infer_request(
            header + blobs, NUMERIC, header_length=str(len(header)), forbid_missing=EVERYTHING
        )
    assert (caught.value.field, caught.value.message) == ("inputs[1].data", MESSAGE.format("x1", 1))
