"""The fast path for a table sent as one [N, k] tensor decodes exactly as the careful path.

Every request below is decoded twice, with `fast_matrix` and with it switched off: the same
arrays, dtypes, rows and matrix, or the same refusal (message and field). The usual form must
take the fast path, else the comparison proves nothing.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving import oip
from steward.serving._oip_fast import fast_matrix

FLOATS = Signature(inputs=[ColumnSpec(name=f"x{i}", dtype="float64") for i in range(3)])
INTS = Signature(inputs=[ColumnSpec(name=f"n{i}", dtype="int32") for i in range(2)])
STRICT = Signature(
    inputs=[ColumnSpec(name=f"x{i}", dtype="float32", nullable=False) for i in range(2)]
)
MIXED = Signature(
    inputs=[ColumnSpec(name="a", dtype="float64"), ColumnSpec(name="b", dtype="int64")]
)
NOT_NULL = frozenset({"x0", "x1"})


def _decode(raw: bytes, signature: Signature, forbid: frozenset[str]) -> Any:
    try:
        return oip.decode_infer_request(raw, signature, forbid_missing=forbid)
    except InvalidInput as error:
        return error


def _both(
    monkeypatch: pytest.MonkeyPatch, tensor: Any, signature: Signature, forbid: frozenset[str]
) -> tuple[Any, Any]:
    raw = json.dumps({"inputs": [tensor] if isinstance(tensor, dict) else tensor}).encode()
    fast = _decode(raw, signature, forbid)
    with monkeypatch.context() as patch:
        patch.setattr(oip, "fast_matrix", lambda *_: None)
        careful = _decode(raw, signature, forbid)
    return fast, careful


def _same(fast: Any, careful: Any) -> None:
    if isinstance(careful, InvalidInput):
        assert isinstance(fast, InvalidInput)
        assert (fast.message, fast.field) == (careful.message, careful.field)
        return
    assert not isinstance(fast, InvalidInput), fast.message
    assert fast.rows == careful.rows
    assert list(fast.inputs) == list(careful.inputs)
    for name in careful.inputs:
        assert fast.inputs[name].dtype == careful.inputs[name].dtype
        np.testing.assert_array_equal(fast.inputs[name], careful.inputs[name])
    assert fast.matrix.dtype == careful.matrix.dtype
    np.testing.assert_array_equal(fast.matrix, careful.matrix)


BASE = {"name": "X", "shape": [2, 3], "datatype": "FP64", "data": [1, 2.5, 3, 4, 5, 6]}
CASES: list[tuple[str, Any, Signature, frozenset[str]]] = [
    ("usual", BASE, FLOATS, frozenset()),
    ("one row", {**BASE, "shape": [1, 3], "data": [1, 2, 3]}, FLOATS, frozenset()),
    ("ints widened", {**BASE, "datatype": "INT32"}, FLOATS, frozenset()),
    ("nested rows", {**BASE, "data": [[1, 2, 3], [4, 5, 6]]}, FLOATS, frozenset()),
    ("nulls as NaN", {**BASE, "data": [1, None, 3, 4, 5, 6]}, FLOATS, frozenset()),
    (
        "int model",
        {"name": "X", "shape": [1, 2], "datatype": "INT32", "data": [7, 8]},
        INTS,
        frozenset(),
    ),
    (
        "fraction for ints",
        {"name": "X", "shape": [1, 2], "datatype": "INT32", "data": [7, 8.5]},
        INTS,
        frozenset(),
    ),
    (
        "too wide for int32",
        {"name": "X", "shape": [1, 2], "datatype": "INT64", "data": [7, 2**40]},
        INTS,
        frozenset(),
    ),
    (
        "float for ints",
        {"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [7, 8]},
        INTS,
        frozenset(),
    ),
    (
        "missing refused",
        {"name": "X", "shape": [2, 2], "datatype": "FP32", "data": [1, None, 3, 4]},
        STRICT,
        NOT_NULL,
    ),
    (
        "missing allowed",
        {"name": "X", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
        STRICT,
        NOT_NULL,
    ),
    (
        "mixed dtypes",
        {"name": "X", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
        MIXED,
        frozenset(),
    ),
    ("too few values", {**BASE, "data": [1, 2, 3, 4, 5]}, FLOATS, frozenset()),
    ("shape of floats", {**BASE, "shape": [2.0, 3]}, FLOATS, frozenset()),
    ("width as float", {**BASE, "shape": [2, 3.0]}, FLOATS, frozenset()),
    ("zero rows", {**BASE, "shape": [0, 3], "data": []}, FLOATS, frozenset()),
    ("empty name", {**BASE, "name": ""}, FLOATS, frozenset()),
    ("named as a column", {**BASE, "name": "x0"}, FLOATS, frozenset()),
    ("strings", {**BASE, "datatype": "BYTES", "data": ["a"] * 6}, FLOATS, frozenset()),
    ("booleans", {**BASE, "datatype": "BOOL", "data": [True] * 6}, FLOATS, frozenset()),
    ("unknown datatype", {**BASE, "datatype": "FP99"}, FLOATS, frozenset()),
    ("with parameters", {**BASE, "parameters": {"binary_data_size": 48}}, FLOATS, frozenset()),
    ("text in data", {**BASE, "data": [1, "2", 3, 4, 5, 6]}, FLOATS, frozenset()),
    ("no data", {k: v for k, v in BASE.items() if k != "data"}, FLOATS, frozenset()),
    ("two tensors", [BASE, {**BASE, "name": "Y"}], FLOATS, frozenset()),
]


@pytest.mark.parametrize(
    ("tensor", "signature", "forbid"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_fast_and_careful_paths_agree(
    monkeypatch: pytest.MonkeyPatch, tensor: Any, signature: Signature, forbid: frozenset[str]
) -> None:
    _same(*_both(monkeypatch, tensor, signature, forbid))


def test_the_usual_forms_take_the_fast_path() -> None:
    for tensor, signature, forbid in [(BASE, FLOATS, frozenset()),
                                      (CASES[9][1], STRICT, frozenset())]:  # fmt: skip
        assert fast_matrix([tensor], signature, forbid) is not None
    refused = {"name": "X", "shape": [2, 2], "datatype": "FP32", "data": [1, None, 3, 4]}
    with pytest.raises(InvalidInput) as error:
        fast_matrix([refused], STRICT, NOT_NULL)
    assert error.value.field == "inputs[0].data"
