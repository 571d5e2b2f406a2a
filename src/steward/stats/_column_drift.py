"""One column's drift test: preparing each side, inferring the kind, choosing the test (see
``steward.stats.drift`` for Evidently's rules), running it, and the defined answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.domain.drift import (
    DEFAULT_THRESHOLDS,
    P_VALUE_METHODS,
    ColumnDrift,
    ColumnKind,
    DriftMethod,
    Histogram,
)
from steward.errors import InvalidInput
from steward.stats import _drift_stats as ds
from steward.stats._samples import (
    CategoricalSample,
    Family,
    NumericSample,
    categorical_sample,
    family_of,
    numeric_sample,
)
from steward.stats.histogram import histogram
from steward.stats.profile import INTEGER_CARDINALITY_LIMIT, TEXT_DISTINCT_SHARE

# Evidently's sample-size boundary between its small- and large-sample tests.
SMALL_REFERENCE = 1000
# Evidently: at most this many distinct values make a numeric column "low cardinality".
LOW_CARDINALITY = 5
# Evidently: at most this many distinct values call for the tests of a binary column.
BINARY = 2
_METHOD_KINDS = {
    DriftMethod.KS: {ColumnKind.NUMERICAL},
    DriftMethod.WASSERSTEIN: {ColumnKind.NUMERICAL},
    DriftMethod.PSI: {ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL},
    DriftMethod.JENSENSHANNON: {ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL},
    DriftMethod.CHISQUARE: {ColumnKind.CATEGORICAL},
    DriftMethod.Z: {ColumnKind.CATEGORICAL},
}

Sample = NumericSample | CategoricalSample


@dataclass(frozen=True)
class ColumnData:
    """One side of one column, prepared: its storage family, its rows, and its values as a
    sorted numeric sample or category counts (None for datetimes and unsupported types)."""

    family: str
    rows: int
    sample: Sample | None


def prepare(values: Any) -> ColumnData:
    """A 1-D array (numbers, booleans, text, datetimes; None/NaN as nulls) as a ColumnData."""
    if isinstance(values, ColumnData):
        return values
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"A column must be 1-D; got shape {arr.shape}.", field="values")
    family = family_of(arr)
    sample: Sample | None
    if family == Family.NUMERIC:
        sample = numeric_sample(arr)
    elif family in (Family.STRING, Family.BOOLEAN):
        sample = categorical_sample(arr)
    else:
        sample = None
    return ColumnData(family=family, rows=int(arr.size), sample=sample)


# -- choosing --------------------------------------------------------------------------------
def infer_kind(data: ColumnData) -> ColumnKind | None:
    """Evidently's ``infer_column_type`` on the reference; None for an unsupported type."""
    sample = data.sample
    if data.family == Family.DATETIME:
        return ColumnKind.DATETIME
    if sample is None:
        return None
    if data.family == Family.BOOLEAN:
        return ColumnKind.CATEGORICAL
    if isinstance(sample, NumericSample):
        if sample.integer and sample.count_distinct() <= INTEGER_CARDINALITY_LIMIT:
            return ColumnKind.CATEGORICAL
        return ColumnKind.NUMERICAL
    if sample.count_distinct() > sample.n * TEXT_DISTINCT_SHARE:
        return ColumnKind.TEXT
    return ColumnKind.CATEGORICAL


def choose_method(kind: ColumnKind, n_reference: int, n_values: int) -> DriftMethod:
    """Evidently's default test (``_get_default_stattest``): see the module docstring."""
    if kind not in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL):
        raise InvalidInput(f"Columns of kind {kind.value!r} are not tested for drift.")
    binary = DriftMethod.CHISQUARE if n_values > BINARY else DriftMethod.Z
    if n_reference <= SMALL_REFERENCE:
        if kind is ColumnKind.NUMERICAL and n_values > LOW_CARDINALITY:
            return DriftMethod.KS
        return binary
    if kind is ColumnKind.NUMERICAL and n_values > LOW_CARDINALITY:
        return DriftMethod.WASSERSTEIN
    return DriftMethod.JENSENSHANNON


def _union_distinct(ref: Sample, cur: Sample) -> int:
    """Distinct values of both sides together; exact up to LOW_CARDINALITY + 1, which is all
    the choice of test needs (beyond, a lower bound)."""
    if isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
        present = {k for k, c in zip(ref.keys, ref.counts.tolist(), strict=True) if c}
        present.update(k for k, c in zip(cur.keys, cur.counts.tolist(), strict=True) if c)
        return max(len(present), ref.distinct_floor, cur.distinct_floor)
    ref_n, cur_n = ref.count_distinct(), cur.count_distinct()
    if max(ref_n, cur_n) > LOW_CARDINALITY or not (
        isinstance(ref, NumericSample) and isinstance(cur, NumericSample)
    ):
        return max(ref_n, cur_n)
    return int(np.union1d(ref.value_counts()[0], cur.value_counts()[0]).size)


# -- testing one column -------------------------------------------------------------------------
def column_drift(
    name: str,
    reference: Any,
    current: Any,
    *,
    kind: ColumnKind | None = None,
    method: DriftMethod | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Test one column (raw arrays or ColumnData). A side with no values is an InvalidInput
    naming the column."""
    ref, cur = prepare(reference), prepare(current)
    result = column_result(name, ref, cur, kind, method, threshold, histograms=False)
    if result.method is None and result.kind in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL):
        raise InvalidInput(f"Column {name!r}: {result.note}.", field=name)
    return result


def column_result(
    name: str,
    ref: ColumnData,
    cur: ColumnData,
    kind: ColumnKind | None,
    method: DriftMethod | None,
    threshold: float | None,
    *,
    histograms: bool,
) -> ColumnDrift:
    _check_family(name, ref, cur)
    inferred = kind or infer_kind(ref)
    counts = _counts(ref, cur)
    if inferred is None:
        return ColumnDrift(column=name, kind=ColumnKind.CATEGORICAL, method=None, **counts,
                           note=f"not tested: unsupported type ({ref.family})")  # fmt: skip
    if inferred in (ColumnKind.TEXT, ColumnKind.DATETIME):
        why = "free text" if inferred is ColumnKind.TEXT else "a datetime"
        return ColumnDrift(column=name, kind=inferred, method=None, note=f"not tested: {why}",
                           **counts)  # fmt: skip
    ref_s, cur_s = _as_kind(name, ref.sample, inferred), _as_kind(name, cur.sample, inferred)
    if ref_s is None or cur_s is None or ref_s.n == 0 or cur_s.n == 0:
        return ColumnDrift(column=name, kind=inferred, method=None, note=_empty_note(ref, cur),
                           **counts)  # fmt: skip
    chosen = method or choose_method(inferred, ref_s.n, _union_distinct(ref_s, cur_s))
    if method is not None and inferred not in _METHOD_KINDS[method]:
        # Evidently refuses these too; its own default choice does give a numeric column
        # with at most 5 values the chisquare or z test, on its values as categories
        raise InvalidInput(
            f"Column {name!r} is {inferred.value}; the {chosen.value!r} test applies to "
            f"{' and '.join(sorted(k.value for k in _METHOD_KINDS[chosen]))} columns only.",
            field=name,
        )
    limit = _threshold(name, chosen, threshold)
    if chosen in (DriftMethod.CHISQUARE, DriftMethod.Z):
        ref_s, cur_s = _categories(ref_s), _categories(cur_s)
    result = _run(chosen, ref_s, cur_s, limit)
    histogram = _histogram(ref_s, cur_s) if histograms else None
    return ColumnDrift(column=name, kind=inferred, method=chosen, threshold=limit, **result,
                       **counts, histogram=histogram)  # fmt: skip


def _threshold(name: str, method: DriftMethod, threshold: float | None) -> float:
    if threshold is None:
        return DEFAULT_THRESHOLDS[method]
    value = float(threshold)
    if not np.isfinite(value) or value < 0 or (method in P_VALUE_METHODS and value > 1):
        bound = "between 0 and 1" if method in P_VALUE_METHODS else "a non-negative number"
        raise InvalidInput(
            f"The threshold of column {name!r} ({method.value}) must be {bound}. Got {threshold}.",
            field=name,
        )
    return value


def _check_family(name: str, ref: ColumnData, cur: ColumnData) -> None:
    if ref.family == cur.family or _no_values(ref) or _no_values(cur):
        return  # an all-null side has no type to disagree with
    raise InvalidInput(
        f"Column {name!r} changed type: {ref.family} in the reference, {cur.family} in the "
        "current data. Cast it back, or leave it out of the comparison.",
        field=name,
    )


def _no_values(data: ColumnData) -> bool:
    return data.rows == 0 or (data.sample is not None and data.sample.n == 0)


def _empty_note(ref: ColumnData, cur: ColumnData) -> str:
    side, data = ("reference", ref) if _no_values(ref) or ref.sample is None else (
        "current data", cur)  # fmt: skip
    return f"not tested: no values in the {side} ({data.rows} rows, all missing)"


def _counts(ref: ColumnData, cur: ColumnData) -> dict[str, int]:
    def n(data: ColumnData) -> tuple[int, int]:
        if data.sample is None:
            return 0, 0
        return data.sample.n, data.sample.missing

    (nr, mr), (nc, mc) = n(ref), n(cur)
    return {"n_reference": nr, "n_current": nc, "missing_reference": mr, "missing_current": mc}


def _as_kind(name: str, sample: Sample | None, kind: ColumnKind) -> Sample | None:
    """A numeric sample tested as categories (an integer column with few values), or the
    sample as it is."""
    if kind is ColumnKind.CATEGORICAL and sample is not None:
        return _categories(sample)
    if kind is ColumnKind.NUMERICAL and isinstance(sample, CategoricalSample):
        raise InvalidInput(
            f"Column {name!r} holds text or booleans: it cannot be tested as numerical.",
            field=name,
        )
    return sample


def _categories(sample: Sample) -> CategoricalSample:
    """Each distinct value of a numeric sample as a category."""
    if isinstance(sample, CategoricalSample):
        return sample
    keys, counts = sample.value_counts()
    as_int = sample.integer or bool(np.all(np.mod(keys, 1) == 0))
    return CategoricalSample(
        keys=[int(k) if as_int else float(k) for k in keys.tolist()],
        counts=np.rint(counts).astype(np.int64), missing=sample.missing, exact=sample.exact,
    )  # fmt: skip


def _run(method: DriftMethod, ref: Sample, cur: Sample, threshold: float) -> dict[str, Any]:
    """statistic, p_value, score, drifted, exact and error_bound of one test."""
    if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
        return _run_numeric(method, ref, cur, threshold)
    if not (isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample)):
        raise TypeError("both sides of a test must be numeric samples or both category counts")
    keys, ref_counts, cur_counts = ds.aligned_counts(ref, cur)
    exact = ref.exact
    if method is DriftMethod.CHISQUARE:
        stat, p = ds.chisquare_test(ref_counts, cur_counts)
        return _p_result(stat, p, p < threshold, exact)
    if method is DriftMethod.Z:
        stat, p = ds.z_test(keys, ref_counts, cur_counts)
        return _p_result(stat, p, p < threshold, exact)
    ref_shares, cur_shares = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    value = (
        ds.jensenshannon(ref_shares, cur_shares)
        if method is DriftMethod.JENSENSHANNON
        else ds.psi(ref_shares, cur_shares)
    )
    return _distance_result(value, threshold, exact, None)


def _run_numeric(
    method: DriftMethod, ref: NumericSample, cur: NumericSample, threshold: float
) -> dict[str, Any]:
    if method is DriftMethod.KS:
        d, p = ds.ks_test(ref, cur)
        bound = None if ref.exact else ref.rank_error
        return _p_result(d, p, p <= threshold, ref.exact, bound)
    if method is DriftMethod.WASSERSTEIN:
        value = ds.wasserstein_normed(ref, cur)
        bound = None if ref.exact else ds.wasserstein_error_bound(ref, cur)
        return _distance_result(value, threshold, ref.exact, bound)
    ref_shares, cur_shares = ds.numeric_shares(ref, cur)
    value = (
        ds.jensenshannon(ref_shares, cur_shares)
        if method is DriftMethod.JENSENSHANNON
        else ds.psi(ref_shares, cur_shares)
    )
    return _distance_result(value, threshold, ref.exact, None)


def _p_result(
    statistic: float, p: float, drifted: bool, exact: bool, bound: float | None = None
) -> dict[str, Any]:
    return {"statistic": _finite(statistic), "p_value": p, "score": p, "drifted": bool(drifted),
            "exact": exact, "error_bound": bound}  # fmt: skip


def _distance_result(
    value: float, threshold: float, exact: bool, bound: float | None
) -> dict[str, Any]:
    return {"statistic": _finite(value), "p_value": None, "score": _finite(value),
            "drifted": bool(value >= threshold), "exact": exact, "error_bound": bound}  # fmt: skip


def _finite(value: float) -> float | None:
    """JSON has no infinity: an infinite statistic (a category absent from the reference) is
    reported as None, its p-value (0) still decides."""
    return float(value) if np.isfinite(value) else None


def _histogram(ref: Sample, cur: Sample) -> Histogram:
    return histogram(ref, cur)
