import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from steward.errors import InvalidInput
from steward.lineage import ReferenceSample, read_reference_sample, reference_sample


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x": rng.normal(size=rows), "k": rng.integers(0, 5, size=rows)})


def test_sample_is_bounded_and_deterministic() -> None:
    frame = _frame(5_000)
    first = reference_sample(frame, max_rows=100)
    assert first == reference_sample(frame, max_rows=100)
    assert first != reference_sample(frame, max_rows=100, seed=1)
    sample = read_reference_sample(first)
    assert len(sample) == 100
    assert list(sample.columns) == ["x", "k"]
    assert not sample.duplicated().any()  # without replacement
    assert set(sample["x"]).issubset(set(frame["x"]))


def test_small_data_is_kept_whole() -> None:
    frame = _frame(20)
    sample = read_reference_sample(reference_sample(frame))
    pd.testing.assert_frame_equal(sample, frame)


def test_arrow_and_numpy_inputs() -> None:
    table = pa.Table.from_pandas(_frame(300), preserve_index=False)
    assert len(read_reference_sample(reference_sample(table, max_rows=50))) == 50
    array = np.arange(200.0).reshape(50, 4)
    sample = read_reference_sample(reference_sample(array, max_rows=10))
    assert list(sample.columns) == ["x0", "x1", "x2", "x3"]
    assert len(sample) == 10
    named = read_reference_sample(reference_sample(array, columns=["a", "b", "c", "d"]))
    assert list(named.columns) == ["a", "b", "c", "d"]


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidInput) as info:
        reference_sample(_frame(5), max_rows=0)
    assert info.value.field == "max_rows"
    with pytest.raises(InvalidInput) as info:
        reference_sample([1, 2, 3])
    assert info.value.field == "data"
    with pytest.raises(InvalidInput) as info:
        reference_sample(np.zeros((3, 2)), columns=["only-one"])
    assert info.value.field == "columns"


def test_reference_sample_record() -> None:
    frame = _frame(1_000)
    record = ReferenceSample.from_data(frame, max_rows=10, seed=3)
    assert record.fingerprint.startswith("sha256:")
    assert record.source_fingerprint.startswith("sha256:")
    assert record == ReferenceSample.from_data(frame, max_rows=10, seed=3)
    assert len(record.to_pandas()) == 10
