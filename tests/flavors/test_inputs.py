"""to_frame: every input shape gives the signature's columns, in order, with its dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steward.domain.signature import ColumnSpec
from steward.errors import InvalidInput
from steward.flavors._inputs import to_frame

NAMES = ["a", "b", "c"]
FLOATS = [ColumnSpec(name=n, dtype="float64") for n in NAMES]


def test_numpy_columns_in_signature_order_become_one_block() -> None:
    frame = to_frame({n: np.array([1.0, 2.0]) for n in NAMES}, NAMES, FLOATS)
    assert list(frame.columns) == NAMES
    assert list(frame.dtypes) == [np.dtype("float64")] * 3
    assert frame["b"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "data",
    [
        {n: np.array([1, 2]) for n in NAMES},  # int arrays for float columns: cast
        {"c": np.array([1.0, 2.0]), "a": np.array([1.0, 2.0]), "b": np.array([1.0, 2.0])},
        {"a": np.array([1.0, 2.0]), "b": np.array([1, 2]), "c": np.array([1.0, 2.0])},
        [{"a": 1, "b": 1.0, "c": 1}, {"a": 2, "b": 2.0, "c": 2}],
        pd.DataFrame({"c": [1, 2], "b": [1.0, 2.0], "a": [1, 2], "extra": ["x", "y"]}),
    ],
    ids=["int-arrays", "reordered", "mixed-dtypes", "rows", "frame-with-extra"],
)
def test_other_inputs_take_the_general_path_to_the_same_frame(data: object) -> None:
    frame = to_frame(data, NAMES, FLOATS)
    assert list(frame.columns) == NAMES
    assert list(frame.dtypes) == [np.dtype("float64")] * 3
    assert frame["a"].tolist() == [1.0, 2.0]


def test_lossy_casts_are_still_refused() -> None:
    ints = [ColumnSpec(name=n, dtype="int64") for n in NAMES]
    with pytest.raises(InvalidInput) as refused:
        to_frame({n: np.array([1.5, 2.0]) for n in NAMES}, NAMES, ints)
    assert refused.value.field == "a"
