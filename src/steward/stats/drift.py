"""Data drift per column and for a dataset, with the tests and defaults of Evidently's
``DataDriftPreset`` (Evidently 0.7), computed on sorted numpy arrays.

    report = compare({"age": ref_age, "plan": ref_plan}, {"age": cur_age, "plan": cur_plan})
    report.dataset_drift, report.column("age").score

**The test per column** is Evidently's default, ``_get_default_stattest`` in
``evidently/legacy/calculations/stattests/registry.py``, where ``n`` is the number of reference
values (nulls, NaN and infinities dropped first, as ``get_one_column_drift`` drops them) and
``n_values`` the number of distinct values of reference and current together:

==============  ======================================  ======================================
kind            n <= 1000                                n > 1000
==============  ======================================  ======================================
numerical       ``n_values <= 5``: chisquare if          ``n_values <= 5``: jensenshannon,
                ``n_values > 2`` else z; else ks         else wasserstein (normed)
categorical     chisquare if ``n_values > 2`` else z     jensenshannon
==============  ======================================  ======================================

**The kind** is inferred from the reference as Evidently's ``infer_column_type``
(``evidently/core/datasets.py``) infers it: floats are numerical; integers are categorical when
they have at most 10 distinct values, else numerical; booleans are categorical; text is free
text (not tested; Evidently runs a text-classifier test there) when it has more distinct values
than half its count, else categorical; datetimes are not tested. Evidently infers the kind from
the *current* data; Steward from the reference, which is the schema the model was trained on.

**Thresholds** default to Evidently's: 0.05 for the p-value tests (ks: drift when
``p <= 0.05``; chisquare and z: ``p < 0.05``) and 0.1 for the distances (drift when
``distance >= 0.1``); each column's method and threshold can be set. The dataset drifts when the
share of drifted columns reaches ``drift_share`` (0.5). Columns that are not tested (free text,
datetimes, no values on one side) are reported with a note and left out of the share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steward.domain.drift import (
    DEFAULT_DRIFT_SHARE,
    DEFAULT_THRESHOLDS,
    P_VALUE_METHODS,
    ColumnDrift,
    ColumnKind,
    DriftMethod,
    DriftReport,
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
from steward.stats.profile import (
    INTEGER_CARDINALITY_LIMIT,
    TEXT_DISTINCT_SHARE,
    CategoryProfile,
    DatetimeProfile,
    Profile,
)

__all__ = [
    "ColumnData",
    "DriftOptions",
    "choose_method",
    "column_drift",
    "compare",
    "compare_with_profile",
    "infer_kind",
    "prepare",
]

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


@dataclass(frozen=True)
class DriftOptions:
    """Per-column overrides (by column name) and the dataset's drift share."""

    methods: Mapping[str, DriftMethod] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    kinds: Mapping[str, ColumnKind] = field(default_factory=dict)
    drift_share: float = DEFAULT_DRIFT_SHARE
    histograms: bool = False  # also bin both sides for a report (steward.stats.histogram)
    workers: int | None = None  # threads testing columns; None: the cores, at most 4


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
    result = _test(name, ref, cur, kind, method, threshold, histograms=False)
    if result.method is None and result.kind in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL):
        raise InvalidInput(f"Column {name!r}: {result.note}.", field=name)
    return result


def _test(
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


def _histogram(ref: Sample, cur: Sample) -> Any:
    from steward.stats.histogram import histogram

    return histogram(ref, cur)


# -- datasets ---------------------------------------------------------------------------------
def compare(
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    columns: Iterable[str] | None = None,
    options: DriftOptions | None = None,
) -> DriftReport:
    """Test every column the two tables share (or ``columns``), in the reference's order.

    Values may be raw arrays or ColumnData; a Mapping that prepares a column when it is read
    keeps only one column of each side in memory at a time.
    """
    opts = options or DriftOptions()
    ref_rows, cur_rows = _rows(reference), _rows(current)
    names, missing, extra = _columns(list(reference), list(current), columns)
    _check_current(cur_rows, names)

    def one(name: str) -> ColumnDrift:
        return _test(name, prepare(reference[name]), prepare(current[name]),
                     opts.kinds.get(name), opts.methods.get(name), opts.thresholds.get(name),
                     histograms=opts.histograms)  # fmt: skip

    results = _each(names, one, opts.workers)
    return _report(results, opts, ref_rows, cur_rows, missing, extra, from_profile=False)


def compare_with_profile(
    profile: Profile,
    current: Mapping[str, Any],
    *,
    columns: Iterable[str] | None = None,
    options: DriftOptions | None = None,
) -> DriftReport:
    """``compare`` with the reference given by its profile: never re-reads the reference."""
    opts = options or DriftOptions()
    cur_rows = _rows(current)
    names, missing, extra = _columns(list(profile.columns), list(current), columns)
    _check_current(cur_rows, names)

    def one(name: str) -> ColumnDrift:
        kind = opts.kinds.get(name) or profile.kind(name)
        return _test(name, profile_column(profile, name), prepare(current[name]), kind,
                     opts.methods.get(name), opts.thresholds.get(name),
                     histograms=opts.histograms)  # fmt: skip

    results = _each(names, one, opts.workers)
    return _report(results, opts, profile.rows, cur_rows, missing, extra, from_profile=True)


def _each(names: list[str], test: Callable[[str], ColumnDrift], workers: int | None) -> list[
        ColumnDrift]:  # fmt: skip
    """``test`` on every column, on up to ``workers`` threads (default: the cores, at most 4).

    The work per column is numpy sorting and arithmetic, which release the GIL, so columns run
    in parallel; results keep the columns' order, and a column's figures do not depend on the
    thread that computed them. Memory holds one column of each side per thread.
    """
    count = workers if workers is not None else min(4, os.cpu_count() or 1)
    if count <= 1 or len(names) <= 1:
        return [test(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(count, len(names))) as pool:
        return list(pool.map(test, names))


def profile_column(profile: Profile, name: str) -> ColumnData:
    """A profiled column as the reference side of a test."""
    column = profile.columns[name]
    rows = profile.rows
    if isinstance(column, DatetimeProfile):
        return ColumnData(family=column.family, rows=rows, sample=None)
    if isinstance(column, CategoryProfile):
        return ColumnData(family=column.family, rows=rows, sample=column.sample())
    if column.kind() is ColumnKind.CATEGORICAL:
        return ColumnData(family=column.family, rows=rows, sample=column.categories())
    return ColumnData(family=column.family, rows=rows, sample=column.sample())


def _rows(table: Mapping[str, Any]) -> int:
    rows = getattr(table, "rows", None)
    if isinstance(rows, int):
        return rows
    for name in table:
        value = table[name]
        return value.rows if isinstance(value, ColumnData) else len(value)
    return 0


def _columns(
    ref: list[str], cur: list[str], wanted: Iterable[str] | None
) -> tuple[list[str], list[str], list[str]]:
    cur_set, ref_set = set(cur), set(ref)
    missing = [c for c in ref if c not in cur_set]
    extra = [c for c in cur if c not in ref_set]
    if wanted is not None:
        names = list(dict.fromkeys(wanted))
        for name in names:
            where = [side for side, have in (("reference", ref_set), ("current data", cur_set))
                     if name not in have]  # fmt: skip
            if where:
                raise InvalidInput(
                    f"Column {name!r} is not in the {' nor the '.join(where)}.", field=name
                )
        return names, missing, extra
    names = [c for c in ref if c in cur_set]
    if not names:
        raise InvalidInput(
            "The reference and the current data have no column in common "
            f"(reference: {_few(ref)}; current: {_few(cur)}).",
            field="columns",
        )
    return names, missing, extra


def _few(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else "none"


def _check_current(rows: int, names: list[str]) -> None:
    if not names:
        raise InvalidInput("No column to compare: 'columns' is empty.", field="columns")
    if rows == 0:
        raise InvalidInput(
            f"The current data has no rows: nothing to compare for column {names[0]!r}"
            + (f" and {len(names) - 1} others" if len(names) > 1 else "")
            + ". A window without traffic is a freshness problem, not drift.",
            field=names[0],
        )


def _report(
    results: list[ColumnDrift],
    opts: DriftOptions,
    ref_rows: int,
    cur_rows: int,
    missing: list[str],
    extra: list[str],
    *,
    from_profile: bool,
) -> DriftReport:
    share_limit = float(opts.drift_share)
    if not 0.0 <= share_limit <= 1.0:
        raise InvalidInput(
            f"'drift_share' must be between 0 and 1. Got {opts.drift_share}.", field="drift_share"
        )
    tested = [r for r in results if r.method is not None]
    drifted = sum(1 for r in tested if r.drifted)
    share = drifted / len(tested) if tested else 0.0
    return DriftReport(
        columns=results, drift_share=share_limit, n_tested=len(tested), n_drifted=drifted,
        share_drifted=share, dataset_drift=bool(tested) and share >= share_limit,
        reference_rows=ref_rows, current_rows=cur_rows, reference_from_profile=from_profile,
        missing_columns=missing, extra_columns=extra,
    )  # fmt: skip
