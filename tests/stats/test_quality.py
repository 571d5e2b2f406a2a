"""Data quality against a reference profile: every figure checked against a plain-Python count,
raw arrays and prepared columns agreeing, schema violations, and no NaN in the metrics."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from steward.domain.monitoring import AlertRule
from steward.errors import InvalidInput
from steward.stats.drift import prepare
from steward.stats.profile import CategoryProfile, Profile, profile_arrays
from steward.stats.quality import MAX_EXAMPLES, data_quality, metric_segment

N = 5000


def _reference(seed: int = 0, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    x[:2] = [np.inf, -np.inf]
    return {
        "x": x,
        "plan": rng.choice(np.array(["free", "pro", "team", None], dtype=object), n),
        "code": rng.integers(0, 5, n),  # integer with 5 values: categorical
        "flag": rng.random(n) < 0.3,
        "when": np.datetime64("2024-01-01") + rng.integers(0, 10**6, n).astype("timedelta64[s]"),
    }


def _current(seed: int = 1, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.5, n)  # wider: some values fall outside the reference range
    x[rng.random(n) < 0.1] = np.nan
    x[:3] = [np.inf, -np.inf, np.nan]
    when = np.datetime64("2024-02-01") + rng.integers(0, 10**6, n).astype("timedelta64[s]")
    when[:7] = np.datetime64("NaT")
    plans = np.array(["free", "pro", "team", "gold", "trial", None], dtype=object)
    return {
        "x": x,
        "plan": rng.choice(plans, n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05]),
        "code": rng.integers(0, 7, n),
        "flag": rng.random(n) < 0.5,
        "when": when,
    }


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- every figure against a plain count ---------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_match_a_plain_python_count(seed: int) -> None:
    ref, cur = _reference(), _current(seed)
    report = data_quality(profile_arrays(ref), cur)
    finite_ref = ref["x"][np.isfinite(ref["x"])]
    low, high = finite_ref.min(), finite_ref.max()

    x = report.column("x")
    values = cur["x"].tolist()
    nulls = sum(1 for v in values if math.isnan(v))
    outside = sum(1 for v in values if not math.isnan(v) and (v < low or v > high))
    assert (x.nulls, x.out_of_range) == (nulls, outside)
    assert x.null_rate == nulls / N
    assert x.reference_null_rate == int(np.isnan(ref["x"]).sum()) / N  # inf are not null
    assert x.null_rate_increase == pytest.approx(x.null_rate - x.reference_null_rate)
    assert x.out_of_range_share == outside / (N - nulls)
    assert x.unseen_share is None  # a numeric column: its range is checked instead

    plan = report.column("plan")
    seen = {v for v in ref["plan"].tolist() if v is not None}
    present = [v for v in cur["plan"].tolist() if v is not None]
    unseen = Counter(v for v in present if v not in seen)
    assert plan.nulls == N - len(present)
    assert plan.unseen_categories == len(unseen) == 2
    assert plan.unseen_rows == sum(unseen.values())
    assert plan.unseen_share == sum(unseen.values()) / len(present)
    assert plan.unseen_examples == ("gold", "trial")  # most frequent first
    assert plan.out_of_range is None

    code = report.column("code")
    old_codes = set(ref["code"].tolist())
    new_codes = Counter(v for v in cur["code"].tolist() if v not in old_codes)
    assert code.unseen_examples == tuple(sorted(new_codes, key=lambda k: -new_codes[k]))
    assert all(isinstance(k, int) for k in code.unseen_examples)
    assert code.unseen_rows == code.out_of_range == sum(new_codes.values())

    when = report.column("when")
    assert (when.nulls, when.out_of_range, when.unseen_share) == (7, None, None)
    assert report.column("flag").unseen_categories == 0
    assert report.schema_violations == 0


def test_infinity_is_out_of_range_and_nan_is_null() -> None:
    profile = profile_arrays({"x": np.array([0.0, 1.0, 2.0])})
    report = data_quality(profile, {"x": np.array([np.nan, np.inf, -np.inf, 1.0, 2.0, 3.0])})
    x = report.column("x")
    assert (x.nulls, x.out_of_range) == (1, 3)
    assert x.out_of_range_share == 3 / 5  # of the non-null values
    # the bounds themselves are in range
    edge = data_quality(profile, {"x": np.array([0.0, 2.0, np.nextafter(2.0, 3.0)])})
    assert edge.column("x").out_of_range == 1


def test_prepared_columns_agree_with_raw_arrays() -> None:
    ref, cur = _reference(), _current()
    profile = profile_arrays(ref)
    raw = data_quality(profile, cur)
    prepared = data_quality(profile, {name: prepare(values) for name, values in cur.items()})
    for name in ("plan", "code", "flag"):
        assert prepared.column(name) == raw.column(name), name
    x_raw, x_prep = raw.column("x"), prepared.column("x")
    # preparation drops infinities with the nulls: there they count as nulls (documented)
    assert x_prep.nulls == x_raw.nulls + 2
    assert x_prep.out_of_range == x_raw.out_of_range - 2
    # a prepared datetime column carries no null count
    assert prepared.column("when").null_rate is None
    assert "quality.column.when.null_rate" not in prepared.to_metrics()


def test_text_arrays_without_objects_take_the_same_path_result() -> None:
    profile = profile_arrays({"c": np.array(["a", "b", "c"] * 10)})
    current = np.array(["a", "zz", "zz", "b", "yyyyyyy"])
    text = data_quality(profile, {"c": current}).column("c")
    objects = data_quality(profile, {"c": current.astype(object)}).column("c")
    assert text == objects
    assert (text.unseen_categories, text.unseen_rows) == (2, 3)
    assert text.unseen_examples == ("zz", "yyyyyyy")


def test_many_reference_categories_are_matched_exactly() -> None:
    keys = np.array([f"k{i:04d}" for i in range(200)])
    profile = profile_arrays({"c": np.repeat(keys, 3)})
    current = np.concatenate([keys[:150], np.array(["new1", "new2", "new2"])])
    column = data_quality(profile, {"c": current}).column("c")
    assert (column.unseen_categories, column.unseen_rows) == (2, 3)
    assert column.unseen_examples == ("new2", "new1")


def test_examples_are_capped_and_ranked() -> None:
    profile = profile_arrays({"c": np.array(["a"] * 50, dtype=object)})
    current = np.array([f"n{i:02d}" for i in range(30) for _ in range(i + 1)], dtype=object)
    column = data_quality(profile, {"c": current}).column("c")
    assert column.unseen_categories == 30
    assert len(column.unseen_examples) == MAX_EXAMPLES
    assert column.unseen_examples == tuple(f"n{i:02d}" for i in range(29, 19, -1))
    assert column.unseen_share == 1.0


# -- when unseen categories cannot be judged ----------------------------------------------------
def test_a_truncated_reference_does_not_raise_false_alarms() -> None:
    rng = np.random.default_rng(0)
    values = rng.choice(np.array([f"c{i}" for i in range(50)]), 2000)
    profile = profile_arrays({"c": values}, max_categories=10)  # 40 categories lumped
    column = data_quality(profile, {"c": values}).column("c")
    assert column.unseen_share is None
    assert column.unseen_categories is None
    assert column.unseen_note is not None
    assert "kept only its 10" in column.unseen_note
    metrics = data_quality(profile, {"c": values}).to_metrics()
    assert "quality.column.c.unseen_share" not in metrics
    assert "quality.unseen_category_share" not in metrics


def test_free_text_and_empty_references_are_not_judged() -> None:
    ids = np.array([f"user-{i}" for i in range(100)])
    report = data_quality(profile_arrays({"id": ids}), {"id": np.array(["user-1", "other"])})
    assert "free text" in (report.column("id").unseen_note or "")
    blank = Profile(rows=2, columns={"c": CategoryProfile(missing=2)})
    column = data_quality(blank, {"c": np.array(["a", "b"])}).column("c")
    assert column.unseen_share is None
    assert column.unseen_note == "not judged: the reference holds no value"


def test_numeric_reference_without_values_has_no_range() -> None:
    profile = profile_arrays({"x": np.array([np.nan, np.nan])})
    column = data_quality(profile, {"x": np.array([1.0, 2.0])}).column("x")
    assert column.out_of_range is None
    assert column.reference_null_rate == 1.0
    assert column.null_rate_increase == -1.0


# -- types and schema ---------------------------------------------------------------------------
def test_type_mismatches_against_the_signature() -> None:
    profile = profile_arrays(_reference())
    current = _current()
    current["x"] = np.array(["1.5"] * N)  # text where numbers are expected
    current["code"] = current["code"].astype(np.float64)  # int -> float: still numeric
    current["flag"] = np.array([None] * N, dtype=object)  # no values: no type to disagree
    report = data_quality(
        profile, current,
        expected_types={"x": "numeric", "plan": "string", "code": "numeric", "flag": "bool",
                        "when": "datetime", "age": "numeric"},
    )  # fmt: skip
    assert report.type_mismatches == ("x",)
    x = report.column("x")
    assert x.type_mismatch
    assert x.family == "string"
    assert x.expected == "numeric"
    assert x.out_of_range is None
    assert x.null_rate == 0.0
    assert report.missing_columns == ("age",)
    assert report.schema_violations == 2
    assert not report.column("flag").type_mismatch
    assert report.column("flag").null_rate == 1.0


def test_without_a_signature_the_profile_is_the_schema() -> None:
    profile = profile_arrays({"a": np.arange(10.0), "b": np.array(["x"] * 10)})
    current = {"a": np.array([True] * 4), "c": np.zeros(4), "request_id": np.arange(4)}
    report = data_quality(profile, current, ignore=["request_id"])
    assert report.type_mismatches == ("a",)  # booleans are not numbers
    assert report.missing_columns == ("b",)
    assert report.extra_columns == ("c",)
    assert report.schema_violations == 3
    assert [c.name for c in report.columns] == ["a"]
    assert report.to_metrics()["quality.schema_violations"] == 3.0


def test_a_signature_column_missing_from_the_profile_is_measured_without_reference() -> None:
    profile = profile_arrays({"a": np.arange(10.0)})
    report = data_quality(
        profile,
        {"a": np.arange(3.0), "b": np.array([1.0, np.nan, 2.0])},
        expected_types={"a": "numeric", "b": "numeric"},
    )
    b = report.column("b")
    assert b.null_rate == pytest.approx(1 / 3)
    assert b.reference_null_rate is None
    assert b.null_rate_increase is None
    assert report.schema_violations == 0


def test_a_profile_column_outside_the_signature_is_extra() -> None:
    profile = profile_arrays({"a": np.arange(10.0), "b": np.arange(10.0)})
    report = data_quality(
        profile, {"a": np.arange(3.0), "b": np.arange(3.0)}, expected_types={"a": "numeric"}
    )
    assert report.extra_columns == ("b",)
    assert report.column("b").null_rate == 0.0  # still measured against its reference


@pytest.mark.parametrize("kind", ["float", "int64", "", None])
def test_an_unknown_expected_type_is_refused(kind: Any) -> None:
    profile = profile_arrays({"a": np.arange(3.0)})
    with pytest.raises(InvalidInput, match="expected type of column 'a'") as info:
        data_quality(profile, {"a": np.arange(3.0)}, expected_types={"a": kind})
    assert info.value.field == "expected_types"


def test_expected_type_names_are_case_insensitive_and_accept_boolean() -> None:
    profile = profile_arrays({"f": np.array([True, False])})
    report = data_quality(profile, {"f": np.array([True])}, expected_types={"f": "Boolean"})
    assert report.schema_violations == 0


# -- bad input ----------------------------------------------------------------------------------
def test_columns_of_different_lengths_are_refused() -> None:
    profile = profile_arrays({"a": np.arange(3.0), "b": np.arange(3.0)})
    with pytest.raises(InvalidInput, match="Column 'b' has 2 rows") as info:
        data_quality(profile, {"a": np.arange(3.0), "b": np.arange(2.0)})
    assert info.value.field == "b"


def test_a_two_dimensional_column_is_refused() -> None:
    profile = profile_arrays({"a": np.arange(3.0)})
    with pytest.raises(InvalidInput, match="1-D") as info:
        data_quality(profile, {"a": np.zeros((3, 2))})
    assert info.value.field == "a"


def test_an_empty_window_has_schema_but_no_rates() -> None:
    profile = profile_arrays({"a": np.arange(3.0), "c": np.array(["x", "y", "x"])})
    report = data_quality(profile, {"a": np.zeros(0), "c": np.array([], dtype=object)})
    assert report.rows == 0
    assert report.column("a").null_rate is None
    assert report.max_null_rate is None
    metrics = report.to_metrics()
    assert metrics == {
        "quality.schema_violations": 0.0,
        "quality.missing_columns": 0.0,
        "quality.extra_columns": 0.0,
        "quality.type_mismatches": 0.0,
    }
    nothing = data_quality(profile, {})
    assert nothing.missing_columns == ("a", "c")
    assert nothing.rows == 0


# -- metrics ------------------------------------------------------------------------------------
def test_metrics_are_flat_finite_and_usable_by_alert_rules() -> None:
    report = data_quality(profile_arrays(_reference()), _current())
    metrics = report.to_metrics()
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    for name in metrics:
        AlertRule(name="r", metric=name, op=">", threshold=0)  # a valid metric name
    assert metrics["quality.max_null_rate"] == max(
        c.null_rate for c in report.columns if c.null_rate is not None
    )
    assert metrics["quality.out_of_range_share"] == max(
        report.column("x").out_of_range_share or 0, report.column("code").out_of_range_share or 0
    )
    assert metrics["quality.unseen_category_share"] == max(
        report.column("plan").unseen_share or 0, report.column("code").unseen_share or 0
    )
    assert metrics["quality.column.x.null_rate"] == report.column("x").null_rate
    assert "quality.column.x.unseen_share" not in metrics
    assert "quality.column.plan.out_of_range_share" not in metrics
    assert metrics["quality.max_null_rate_increase"] == max(
        c.null_rate_increase for c in report.columns if c.null_rate_increase is not None
    )


def test_column_names_become_safe_metric_segments() -> None:
    assert metric_segment("age") == "age"
    assert metric_segment("income.usd") == "income_usd"
    assert metric_segment("first name/ü") == "first_name_ü"
    assert metric_segment("") == "_"
    profile = profile_arrays({"a.b": np.arange(3.0), "a b": np.arange(3.0)})
    metrics = data_quality(profile, {"a.b": np.arange(3.0), "a b": np.arange(3.0)}).to_metrics()
    assert "quality.column.a_b.null_rate" in metrics
    assert "quality.column.a_b-2.null_rate" in metrics
    for name in metrics:
        AlertRule(name="r", metric=name, op=">", threshold=0)


def test_a_profile_read_back_from_json_gives_the_same_report() -> None:
    ref, cur = _reference(), _current()
    profile = profile_arrays(ref)
    again = Profile.from_json(profile.to_json())
    assert data_quality(again, cur) == data_quality(profile, cur)


def test_unknown_column_lookup_raises_key_error() -> None:
    report = data_quality(profile_arrays({"a": np.arange(3.0)}), {"a": np.arange(3.0)})
    with pytest.raises(KeyError):
        report.column("nope")


def test_object_numbers_with_none_are_numeric() -> None:
    profile = profile_arrays({"a": np.array([1.0, 2.0, 3.0])})
    column = data_quality(profile, {"a": np.array([1, None, 7.5, float("nan")], dtype=object)})
    a = column.column("a")
    assert (a.nulls, a.out_of_range, a.type_mismatch) == (2, 1, False)
    assert not any(_is_null(v) for v in (a.null_rate, a.out_of_range_share))
