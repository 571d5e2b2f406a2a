"""Which test each column gets, and the dataset's verdict, against Evidently's rules.

The expectations are computed by transcriptions of Evidently 0.7's own functions
(``infer_column_type`` in evidently/core/datasets.py, ``_get_default_stattest`` in
evidently/legacy/calculations/stattests/registry.py) from the crafted data, not written down.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from steward.domain.drift import ColumnKind, DriftMethod
from steward.errors import InvalidInput
from steward.stats.drift import DriftOptions, choose_method, column_drift, compare


def evidently_kind(values: np.ndarray) -> str:
    """infer_column_type, for the dtypes crafted here."""
    present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if values.dtype.kind == "f":
        return "numerical"
    if values.dtype.kind in "iu":
        return "categorical" if np.unique(values).size <= 10 else "numerical"
    if values.dtype.kind == "b":
        return "categorical"
    return "text" if np.unique(present).size > present.size * 0.5 else "categorical"


def evidently_test(kind: str, n_reference: int, n_values: int) -> str:
    """_get_default_stattest."""
    if n_reference <= 1000:
        if kind == "numerical" and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == "numerical":
        return "jensenshannon" if n_values <= 5 else "wasserstein"
    return "jensenshannon"


def _column(rng: np.random.Generator, dtype: str, distinct: int, n: int) -> np.ndarray:
    codes = rng.integers(0, distinct, n)
    codes[:distinct] = np.arange(distinct)  # every value present
    if dtype == "float":
        return codes * 0.5 + 0.25
    if dtype == "int":
        return codes.astype(np.int64) * 7
    if dtype == "bool":
        return codes.astype(bool)
    return np.array([f"v{c}" for c in codes])


CASES = [
    (dtype, distinct, n)
    for dtype, distincts in (
        ("float", (1, 2, 3, 5, 6, 21, 400)),
        ("int", (2, 5, 10, 11, 40)),
        ("bool", (1, 2)),
        ("str", (1, 2, 3, 8)),
    )
    for distinct in distincts
    for n in (6, 999, 1000, 1001, 2500)
    if distinct <= n
]


@pytest.mark.parametrize(("dtype", "distinct", "n"), CASES)
def test_default_test_follows_evidentlys_rules(dtype: str, distinct: int, n: int) -> None:
    rng = np.random.default_rng(distinct * 10_000 + n)
    ref = _column(rng, dtype, distinct, n)
    cur = _column(rng, dtype, distinct, max(n // 2, distinct))
    kind = evidently_kind(ref)
    result = compare({"c": ref}, {"c": cur}).column("c")
    assert result.kind.value == kind
    if kind == "text":
        assert result.method is None
        assert "free text" in (result.note or "")
        return
    n_values = np.unique(np.concatenate([ref, cur])).size
    assert result.method is not None
    assert result.method.value == evidently_test(kind, ref.size, n_values)


def test_current_values_count_towards_the_distinct_values() -> None:
    """n_values is over both samples: 5 values in the reference and a 6th in the current
    data move a small numeric column from chisquare to ks."""
    ref = np.repeat([1.5, 2.5, 3.5, 4.5, 5.5], 20)
    assert column_drift("x", ref, ref).method is DriftMethod.CHISQUARE
    assert column_drift("x", ref, np.append(ref, 6.5)).method is DriftMethod.KS


def test_nulls_are_dropped_before_counting_the_reference() -> None:
    """n is the count of reference values: 1001 rows of which one is NaN is a small sample."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1001)
    assert column_drift("x", ref, ref).method is DriftMethod.WASSERSTEIN
    ref[0] = np.nan
    result = column_drift("x", ref, ref)
    assert result.method is DriftMethod.KS
    assert (result.n_reference, result.missing_reference) == (1000, 1)


@pytest.mark.parametrize(
    ("kind", "n", "n_values"),
    [(k, n, v) for k in ("numerical", "categorical") for n in (1, 1000, 1001) for v in range(1, 8)],
)
def test_choose_method_is_the_rule(kind: str, n: int, n_values: int) -> None:
    expected = evidently_test(kind, n, n_values)
    assert choose_method(ColumnKind(kind), n, n_values).value == expected


def test_thresholds_decide_as_evidently_compares() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=500), rng.normal(0.05, 1, 400)
    base = column_drift("x", ref, cur)
    assert base.method is DriftMethod.KS
    assert base.threshold == 0.05
    assert base.p_value is not None
    # ks drifts when p <= threshold (chisquare and z: p < threshold)
    assert column_drift("x", ref, cur, threshold=base.p_value).drifted
    big_ref, big_cur = rng.normal(size=5000), rng.normal(0.3, 1, 5000)
    w = column_drift("x", big_ref, big_cur)
    assert w.method is DriftMethod.WASSERSTEIN
    assert w.threshold == 0.1
    assert w.score is not None
    assert column_drift("x", big_ref, big_cur, threshold=w.score).drifted  # distance >= threshold
    assert not column_drift("x", big_ref, big_cur, threshold=w.score * 1.0001).drifted


def test_per_column_methods_thresholds_and_kinds() -> None:
    rng = np.random.default_rng(2)
    ref = {"a": rng.normal(size=3000), "b": rng.integers(0, 4, 3000), "c": rng.normal(size=3000)}
    cur = {"a": rng.normal(size=2000), "b": rng.integers(0, 4, 2000), "c": rng.normal(size=2000)}
    options = DriftOptions(
        methods={"a": DriftMethod.KS, "c": DriftMethod.PSI},
        thresholds={"a": 0.01},
        kinds={"b": ColumnKind.NUMERICAL},
    )
    report = compare(ref, cur, options=options)
    assert report.column("a").method is DriftMethod.KS
    assert report.column("a").threshold == 0.01
    assert report.column("b").kind is ColumnKind.NUMERICAL
    assert report.column("b").method is DriftMethod.JENSENSHANNON  # numeric, <= 5 values, n > 1000
    assert report.column("c").method is DriftMethod.PSI


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DriftOptions(methods={"s": DriftMethod.KS}), "'ks' test applies to numerical"),
        (DriftOptions(thresholds={"x": 1.5}), "between 0 and 1"),
        (DriftOptions(thresholds={"x": float("nan")}), "between 0 and 1"),
        (DriftOptions(drift_share=2.0), "'drift_share' must be between 0 and 1"),
        (DriftOptions(kinds={"s": ColumnKind.NUMERICAL}), "cannot be tested as numerical"),
    ],
)
def test_bad_options_are_invalid_input(options: DriftOptions, message: str) -> None:
    data = {"x": np.arange(50.0), "s": np.array(["a", "b"] * 25)}
    with pytest.raises(InvalidInput, match=message):
        compare(data, data, options=options)


def _report_share(drifted: int, tested: int, share: float) -> Any:
    rng = np.random.default_rng(drifted)
    ref = {f"c{i}": rng.normal(size=300) for i in range(tested)}
    cur = {f"c{i}": rng.normal(5.0 if i < drifted else 0.0, 1, 300) for i in range(tested)}
    return compare(ref, cur, options=DriftOptions(drift_share=share))


def test_dataset_drift_when_the_share_reaches_drift_share() -> None:
    at = _report_share(2, 4, 0.5)
    assert (at.n_drifted, at.n_tested, at.share_drifted, at.dataset_drift) == (2, 4, 0.5, True)
    below = _report_share(1, 4, 0.5)
    assert (below.share_drifted, below.dataset_drift) == (0.25, False)
    assert below.drifted_columns == ["c0"]


def test_untested_columns_are_left_out_of_the_share() -> None:
    rng = np.random.default_rng(3)
    ref = {
        "x": rng.normal(size=200),
        "id": np.array([f"user{i}" for i in range(200)]),  # free text by Evidently's rule
        "when": np.arange(200).astype("datetime64[s]"),
        "empty": np.full(200, np.nan),
    }
    cur = {**ref, "x": rng.normal(3.0, 1, 200)}
    report = compare(ref, cur)
    assert report.n_tested == 1
    assert report.n_drifted == 1
    assert report.dataset_drift
    notes = {c.column: c.note for c in report.columns if c.method is None}
    assert notes == {
        "id": "not tested: free text",
        "when": "not tested: a datetime",
        "empty": "not tested: no values in the reference (200 rows, all missing)",
    }


def test_all_null_current_column_is_reported_not_raised() -> None:
    ref = {"x": np.arange(100.0), "y": np.arange(100.0)}
    cur = {"x": np.full(30, np.nan), "y": np.arange(30.0)}
    result = compare(ref, cur).column("x")
    assert result.method is None
    assert result.note == "not tested: no values in the current data (30 rows, all missing)"
    assert result.missing_current == 30
    with pytest.raises(InvalidInput, match="Column 'x': not tested: no values in the current"):
        column_drift("x", ref["x"], cur["x"])


def test_empty_current_window_is_invalid_input_naming_the_column() -> None:
    with pytest.raises(InvalidInput, match=r"current data has no rows.*column 'x'") as raised:
        compare({"x": np.arange(10.0)}, {"x": np.array([])})
    assert raised.value.field == "x"


def test_one_row_on_each_side() -> None:
    result = column_drift("x", np.array([1.0]), np.array([2.0]))
    assert result.method is DriftMethod.Z  # two values in all: Evidently's binary test
    assert result.p_value is not None
    numeric = column_drift("x", np.array([1.0]), np.array([2.0]), method=DriftMethod.KS)
    assert (numeric.statistic, numeric.p_value) == (1.0, 1.0)


def test_changed_type_is_invalid_input_naming_the_column() -> None:
    with pytest.raises(InvalidInput, match="Column 'x' changed type: numeric in the reference, "
                       "string in the current data") as raised:  # fmt: skip
        compare({"x": np.arange(10.0)}, {"x": np.array(["a"] * 10)})
    assert raised.value.field == "x"


def test_column_selection_errors() -> None:
    data = {"x": np.arange(10.0)}
    with pytest.raises(InvalidInput, match="no column in common"):
        compare(data, {"y": np.arange(10.0)})
    with pytest.raises(InvalidInput, match="Column 'z' is not in the reference nor the current"):
        compare(data, data, columns=["z"])
    report = compare({**data, "gone": data["x"]}, {**data, "new": data["x"]})
    assert (report.missing_columns, report.extra_columns) == (["gone"], ["new"])
    assert [c.column for c in report.columns] == ["x"]


def test_threads_give_the_same_report() -> None:
    rng = np.random.default_rng(9)
    ref = {f"c{i}": rng.normal(size=3000) for i in range(6)}
    cur = {f"c{i}": rng.normal(0.1 * i, 1, 2000) for i in range(6)}
    one = compare(ref, cur, options=DriftOptions(workers=1))
    four = compare(ref, cur, options=DriftOptions(workers=4))
    assert one == four
