"""``Partial.merge``: two hour partitions read apart and merged give what reading their rows at
once gives, column by column, so a window's numbers do not depend on how it was split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from steward.domain.signature import ColumnSpec, Signature
from steward.monitoring.window import Partial, local_engine, read_partition, read_window
from steward.stats._column_drift import ColumnData
from steward.stats._samples import CategoricalSample, NumericSample
from steward.store.prediction_log import (
    HOUR_FORMAT,
    PredictionRecord,
    partition_path,
    partitions,
    records_to_table,
)

H0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
START, END = H0, H0 + timedelta(hours=3)
TYPED = Signature(
    inputs=[
        ColumnSpec(name="amount", dtype="float64"),
        ColumnSpec(name="items", dtype="int64"),
        ColumnSpec(name="country", dtype="string"),
        ColumnSpec(name="member", dtype="bool"),
    ]
)
WITHOUT_ITEMS = Signature(inputs=[s for s in TYPED.inputs if s.name != "items"])

Row = Mapping[str, Any] | Sequence[Any]


# -- writing partitions ----------------------------------------------------------------------
def _write(
    root: Path, hour: int, name: str, rows: Sequence[Row], signature: Signature | None = None,
    **fields: Any,
) -> str:  # fmt: skip
    """One Parquet file of ``rows`` (one request each, a minute apart) in hour ``H0 + hour``.

    ``fields`` maps a PredictionRecord field to a list of per-row values (version, shadow, ...).
    """
    records = []
    for i, inputs in enumerate(rows):
        extra = {key: values[i] for key, values in fields.items()}
        extra.setdefault("latency_ms", 1.0 + i)
        extra.setdefault("version", 1)
        at = H0 + timedelta(hours=hour, minutes=i)
        prediction = extra.pop("prediction", i % 2)
        records.append(PredictionRecord(deployment="fraud", request_id=f"{name}-{i:03d}",
                                        timestamp=at, inputs=inputs, prediction=prediction,
                                        **extra))  # fmt: skip
    hour_name = (H0 + timedelta(hours=hour)).strftime(HOUR_FORMAT)
    folder = root / partition_path("fraud", hour_name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{name}.parquet"
    pq.write_table(records_to_table(records, signature), path)
    return str(path)


def _apart_and_at_once(root: Path, first: list[str], second: list[str]) -> tuple[Partial, Partial]:
    """(the two groups of files read apart and merged, all the files read as one partition)."""
    merged = read_partition(str(root), first, START, END).merge(
        read_partition(str(root), second, START, END)
    )
    return merged, read_partition(str(root), first + second, START, END)


# -- comparing partials ----------------------------------------------------------------------
def _counts(sample: CategoricalSample) -> dict[Any, int]:
    assert len(set(sample.keys)) == len(sample.keys), f"a category twice: {sample.keys}"
    return dict(zip(sample.keys, sample.counts.tolist(), strict=True))


def assert_same_column(name: str, got: ColumnData, want: ColumnData) -> None:
    assert (got.family, got.rows) == (want.family, want.rows), name
    a, b = got.sample, want.sample
    assert type(a) is type(b), name
    if isinstance(a, NumericSample):
        assert isinstance(b, NumericSample)
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)
        assert (a.n, a.missing, a.integer) == (b.n, b.missing, b.integer), name
    elif isinstance(a, CategoricalSample):
        assert isinstance(b, CategoricalSample)
        assert _counts(a) == _counts(b), name
        assert a.missing == b.missing, name


def assert_same_partial(got: Partial, want: Partial) -> None:
    assert got.rows == want.rows
    for side in ("inputs", "outputs"):
        columns, expected = getattr(got, side), getattr(want, side)
        assert sorted(columns) == sorted(expected), side
        for name in expected:
            assert_same_column(f"{side}.{name}", columns[name], expected[name])
    np.testing.assert_array_equal(got.latency_ms, want.latency_ms)
    np.testing.assert_array_equal(got.ok, want.ok)
    assert got.versions == want.versions
    assert got.newest == want.newest
    if want.join is None:
        assert got.join is None
    else:
        assert got.join is not None
        assert got.join.equals(want.join)


def _row(i: int, **override: Any) -> dict[str, Any]:
    row = {"amount": 10.0 * i + 0.5, "items": i % 4, "country": "FR DE IT"[3 * (i % 3) :][:2],
           "member": i % 3 == 0}  # fmt: skip
    return row | override


# -- the cases -------------------------------------------------------------------------------
def test_numeric_and_categorical_columns_merge_as_read_at_once(tmp_path: Path) -> None:
    rows_a = [_row(i) for i in range(7)] + [_row(7, amount=None, country=None, member=None)]
    rows_b = [_row(i, amount=float(i % 3)) for i in range(5)] + [_row(5, amount=float("nan"))]
    first = _write(tmp_path, 0, "a", rows_a, TYPED, version=[1, 2] * 4,
                   fallback=[None, "error", None, "rule", None, None, "timeout", None])  # fmt: skip
    second = _write(tmp_path, 1, "b", rows_b, TYPED, version=[2] * 6)
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])

    assert_same_partial(merged, at_once)
    amount = merged.inputs["amount"].sample
    assert isinstance(amount, NumericSample)
    assert (amount.n, amount.missing) == (12, 2)  # a null and a NaN
    assert np.all(np.diff(amount.values) >= 0)  # still sorted
    items = merged.inputs["items"].sample
    assert isinstance(items, NumericSample)
    assert items.integer
    country = merged.inputs["country"].sample
    assert isinstance(country, CategoricalSample)
    assert (_counts(country), country.missing) == ({"FR": 5, "DE": 4, "IT": 4}, 1)
    assert merged.versions == {1: 4, 2: 10}
    assert merged.ok.tolist() == [True, False, True, True, True, True, False, True] + [True] * 6


def test_a_column_only_one_partition_logged_counts_the_others_rows_as_missing(
    tmp_path: Path,
) -> None:
    first = _write(tmp_path, 0, "a", [_row(i) for i in range(4)], TYPED)
    without_items = [{k: v for k, v in _row(i).items() if k != "items"} for i in range(3)]
    second = _write(tmp_path, 1, "b", without_items, WITHOUT_ITEMS)
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)
    items = merged.inputs["items"]
    assert isinstance(items.sample, NumericSample)
    assert (items.rows, items.sample.n, items.sample.missing) == (7, 4, 3)
    assert items.sample.integer

    # JSON-logged inputs: a key only one partition's rows have
    third = _write(tmp_path, 1, "c", [{"amount": 1.5, "note": "x"}, {"amount": 2.5, "note": "y"}])
    fourth = _write(tmp_path, 2, "d", [{"amount": 3.5}, {"amount": 4.5, "note": "x"}, {}])
    merged, at_once = _apart_and_at_once(tmp_path, [third], [fourth])
    assert_same_partial(merged, at_once)
    note = merged.inputs["note"].sample
    assert isinstance(note, CategoricalSample)
    assert (_counts(note), note.missing) == ({"x": 2, "y": 1}, 2)


def test_a_column_numeric_in_one_partition_and_text_in_the_other_merges_as_text(
    tmp_path: Path,
) -> None:
    # JSON inputs (no signature), as pyarrow reads a mixed column at once: as text
    first = _write(tmp_path, 0, "a", [{"code": 1}, {"code": 2.5}, {"code": 7}, {"code": None}])
    second = _write(tmp_path, 1, "b", [{"code": "A"}, {"code": 7}, {"code": "A"}])
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)
    code = merged.inputs["code"]
    assert code.family == "string"
    assert isinstance(code.sample, CategoricalSample)
    assert _counts(code.sample) == {"1": 1, "2.5": 1, "7": 2, "A": 2}
    assert code.sample.missing == 1


def test_typed_columns_of_two_types_merge_as_text(tmp_path: Path) -> None:
    """A signature that changed a column's type between hours: pyarrow cannot read the two
    files at once, the merge compares the window as text."""
    as_text = Signature(inputs=[ColumnSpec(name="amount", dtype="string")])
    first = _write(tmp_path, 0, "a", [_row(1, amount=1.0), _row(2, amount=2.5)], TYPED)
    second = _write(tmp_path, 1, "b", [{"amount": "high"}, {"amount": "1"}], as_text)
    merged = read_window(str(tmp_path), "fraud", START, END)
    assert [len(files) for files in partitions(str(tmp_path), "fraud", START, END)] == [1, 1]
    apart = read_partition(str(tmp_path), [first], START, END).merge(
        read_partition(str(tmp_path), [second], START, END)
    )
    assert_same_partial(merged, apart)
    amount = merged.inputs["amount"]
    assert amount.family == "string"
    assert isinstance(amount.sample, CategoricalSample)
    assert _counts(amount.sample) == {"1": 2, "2.5": 1, "high": 1}


def test_shadow_rows_are_left_out_and_an_all_shadow_partition_adds_nothing(
    tmp_path: Path,
) -> None:
    first = _write(tmp_path, 0, "a", [_row(i) for i in range(4)], TYPED,
                   shadow=[False, True, False, True], version=[1, 9, 1, 9])  # fmt: skip
    second = _write(tmp_path, 1, "b", [_row(i) for i in range(2)], TYPED,
                    shadow=[True, True], version=[9, 9])  # fmt: skip
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)
    assert (merged.rows, merged.versions, merged.ok.size) == (2, {1: 2}, 2)
    only_shadow = read_partition(str(tmp_path), [second], START, END)
    assert (only_shadow.rows, only_shadow.join) == (0, None)
    alone = read_partition(str(tmp_path), [first], START, END)
    assert_same_partial(alone.merge(only_shadow), alone)
    assert_same_partial(Partial().merge(alone), alone)


def test_batched_requests_count_once_for_latency_and_outcome(tmp_path: Path) -> None:
    first = _batched(tmp_path, 0, "a", rows=3, latency=5.0, fallback="timeout")
    second = _batched(tmp_path, 1, "b", rows=2, latency=7.0, fallback=None)
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)
    assert merged.rows == 5
    assert merged.latency_ms.tolist() == [5.0, 7.0]  # one per request, not per row
    assert merged.ok.tolist() == [False, True]


def _batched(
    root: Path, hour: int, name: str, *, rows: int, latency: float, fallback: str | None
) -> str:
    at = H0 + timedelta(hours=hour, minutes=1)
    records = [
        PredictionRecord(
            deployment="fraud", version=1, request_id=name, timestamp=at, latency_ms=latency,
            inputs=_row(i), prediction=0.5, row=i, fallback=fallback,
        )
        for i in range(rows)
    ]  # fmt: skip
    folder = root / partition_path("fraud", (H0 + timedelta(hours=hour)).strftime(HOUR_FORMAT))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{name}.parquet"
    pq.write_table(records_to_table(records, TYPED), path)
    return str(path)


def test_the_local_engine_reads_each_partition_in_order(tmp_path: Path) -> None:
    for hour in range(3):
        _write(tmp_path, hour, f"h{hour}", [_row(i) for i in range(hour + 1)], TYPED)
    parts = partitions(str(tmp_path), "fraud", START, END)
    partials = local_engine(str(tmp_path), parts, START, END)
    assert [p.rows for p in partials] == [1, 2, 3]
    assert [p.newest for p in partials] == [H0 + timedelta(hours=h, minutes=h) for h in range(3)]


# -- columns whose type differs between partitions, or within one ---------------------------
def test_a_column_all_null_in_one_partition_and_text_in_the_other(tmp_path: Path) -> None:
    first = _write(tmp_path, 0, "a", [{"code": None}, {"code": None}])
    second = _write(tmp_path, 1, "b", [{"code": "A"}, {"code": "B"}])
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)


def test_a_column_all_null_in_one_partition_and_integer_in_the_other(tmp_path: Path) -> None:
    first = _write(tmp_path, 0, "a", [{"n": None}, {"n": None}])
    second = _write(tmp_path, 1, "b", [{"n": 1}, {"n": 2}])
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)


def test_a_column_boolean_in_one_partition_and_text_in_the_other(tmp_path: Path) -> None:
    first = _write(tmp_path, 0, "a", [{"flag": True}, {"flag": False}])
    second = _write(tmp_path, 1, "b", [{"flag": "True"}, {"flag": "no"}])
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)


def test_an_integral_float_is_one_category_whichever_partition_logged_it(
    tmp_path: Path,
) -> None:
    first = _write(tmp_path, 0, "a", [{"code": 3.0}, {"code": 4.5}])
    second = _write(tmp_path, 1, "b", [{"code": "A"}, {"code": 3.0}])
    merged = read_partition(str(tmp_path), [first], START, END).merge(
        read_partition(str(tmp_path), [second], START, END)
    )
    code = merged.inputs["code"].sample
    assert isinstance(code, CategoricalSample)
    assert _counts(code) == {"3": 2, "4.5": 1, "A": 1}


def test_one_hour_with_typed_and_json_files_keeps_every_value(tmp_path: Path) -> None:
    typed = _write(tmp_path, 0, "a", [_row(1, amount=1.0), _row(2, amount=2.0)], TYPED)
    as_json = _write(tmp_path, 0, "b", [{"amount": 3.0}, {"amount": 4.0}])
    table = read_partition(str(tmp_path), [typed, as_json], START, END)
    amount = table.inputs["amount"].sample
    assert isinstance(amount, NumericSample)
    assert (amount.values.tolist(), amount.missing) == ([1.0, 2.0, 3.0, 4.0], 0)


# -- values that are missing, and types that changed within an hour ------------------------
def test_non_finite_numbers_are_missing_whichever_partition_logged_them(tmp_path: Path) -> None:
    first = _write(tmp_path, 0, "a", [{"code": 1.5}, {"code": float("nan")}])
    second = _write(tmp_path, 1, "b", [{"code": "A"}, {"code": float("nan")},
                                       {"code": float("inf")}])  # fmt: skip
    merged, at_once = _apart_and_at_once(tmp_path, [first], [second])
    assert_same_partial(merged, at_once)
    code = merged.inputs["code"].sample
    assert isinstance(code, CategoricalSample)
    assert (_counts(code), code.missing) == ({"1.5": 1, "A": 1}, 3)


def test_one_hour_with_a_column_typed_two_ways_reads_as_text(tmp_path: Path) -> None:
    as_text = Signature(inputs=[ColumnSpec(name="amount", dtype="string")])
    first = _write(tmp_path, 0, "a", [_row(1, amount=1.0), _row(2, amount=2.5)], TYPED)
    second = _write(tmp_path, 0, "b", [{"amount": "high"}, {"amount": "1"}], as_text)
    window = read_window(str(tmp_path), "fraud", START, END)
    apart = read_partition(str(tmp_path), [first], START, END).merge(
        read_partition(str(tmp_path), [second], START, END)
    )
    assert_same_partial(window, apart)
    amount = window.inputs["amount"].sample
    assert isinstance(amount, CategoricalSample)
    assert _counts(amount) == {"1": 2, "2.5": 1, "high": 1}
