"""Data quality of a window of traffic against the reference profile.

    report = data_quality(profile, {"age": ages, "plan": plans},
                          expected_types={"age": "numeric", "plan": "string"})
    report.schema_violations, report.column("age").out_of_range_share
    window_metrics.update(report.to_metrics())          # quality.* names

Current columns are what ``steward.stats.drift.compare_with_profile`` takes: raw 1-D arrays
(numbers, booleans, text, datetimes; None / NaN / NaT as nulls) or prepared
:class:`~steward.stats.drift.ColumnData` (as ``steward.monitoring`` reads Parquet columns).

Per column (docs/monitoring-statistics.md gives every convention):

- **nulls**: None, NaN and NaT are null; **±inf is not null, it is out of range**. A prepared
  numeric column has already dropped its infinities together with its nulls
  (``NumericSample.missing``), so there they count as nulls. A prepared datetime column carries
  no null count: its null rate is unknown (None). The reference null rate is the profile's
  ``missing / (count + missing + infinite)``.
- **out of range** (numeric): values below the reference's minimum or above its maximum
  (finite values only), ±inf included; the share is of the column's non-null values.
- **unseen categories** (categorical: text, booleans, and integers the profile treats as
  categories): values the reference never held; the share is of the non-null values, with up
  to ``MAX_EXAMPLES`` of the most frequent. Not judged (None, with ``unseen_note``) when the
  profile stopped counting categories (more than its ``max_categories``: a value missing from
  it may well have been in the reference), when the reference column is free text, or when it
  holds no value.
- **type mismatch**: the column's storage family differs from the expected type (the model
  signature's, else the reference profile's). Integers and floats are both numeric; a column
  with no non-null value has no type to disagree with.

The schema violations are the expected columns missing from the window, the type mismatches
and the unexpected extra columns (``ignore`` lists columns that are not features: ids,
timestamps, the prediction). A rate that cannot be measured is None and left out of
``to_metrics()``, never NaN.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from steward.domain.drift import ColumnKind
from steward.errors import InvalidInput
from steward.stats._column_drift import ColumnData
from steward.stats._samples import CategoricalSample, Family, NumericSample, family_of
from steward.stats.profile import CategoryProfile, ColumnProfile, NumericProfile, Profile

__all__ = [
    "EXPECTED_TYPES",
    "MAX_EXAMPLES",
    "ColumnQuality",
    "QualityReport",
    "data_quality",
    "metric_segment",
]

MAX_EXAMPLES = 10
# The model signature's dtype families, as Steward's storage families.
EXPECTED_TYPES: dict[str, str] = {
    "numeric": Family.NUMERIC,
    "string": Family.STRING,
    "bool": Family.BOOLEAN,
    "boolean": Family.BOOLEAN,
    "datetime": Family.DATETIME,
}
# Up to this many reference categories, text is matched by np.isin's per-key comparison (a few
# ms per key on 1M rows); beyond, the window's distinct values are found once by sorting.
_FEW_KEYS = 16
_UNSAFE = re.compile(r"[^\w\-]")
_NONE = np.array(None, dtype=object)

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class ColumnQuality:
    """One column of the window. Rates are None where they cannot be measured."""

    name: str
    family: str  # the window's storage family
    expected: str | None  # the expected family (signature, else reference); None: unknown
    rows: int
    nulls: int | None  # None: unknown (a prepared datetime column)
    null_rate: float | None
    reference_null_rate: float | None
    null_rate_increase: float | None  # current - reference; negative when fewer nulls
    out_of_range: int | None = None  # numeric: values outside the reference [min, max]
    out_of_range_share: float | None = None
    unseen_categories: int | None = None  # distinct values the reference never held
    unseen_rows: int | None = None
    unseen_share: float | None = None
    unseen_examples: tuple[Any, ...] = ()
    unseen_note: str | None = None  # why unseen categories were not judged
    type_mismatch: bool = False


@dataclass(frozen=True)
class QualityReport:
    rows: int
    columns: tuple[ColumnQuality, ...]
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    type_mismatches: tuple[str, ...]
    max_null_rate: float | None
    max_null_rate_increase: float | None
    out_of_range_share: float | None  # the largest over columns
    unseen_category_share: float | None  # the largest over columns

    @property
    def schema_violations(self) -> int:
        return len(self.missing_columns) + len(self.type_mismatches) + len(self.extra_columns)

    def column(self, name: str) -> ColumnQuality:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_metrics(self) -> dict[str, float]:
        """Flat ``quality.*`` metrics; unmeasured rates are left out. Column names are made
        safe for a metric name with :func:`metric_segment`."""
        out: dict[str, float] = {
            "quality.schema_violations": float(self.schema_violations),
            "quality.missing_columns": float(len(self.missing_columns)),
            "quality.extra_columns": float(len(self.extra_columns)),
            "quality.type_mismatches": float(len(self.type_mismatches)),
        }
        _put(out, "quality.max_null_rate", self.max_null_rate)
        _put(out, "quality.max_null_rate_increase", self.max_null_rate_increase)
        _put(out, "quality.out_of_range_share", self.out_of_range_share)
        _put(out, "quality.unseen_category_share", self.unseen_category_share)
        for segment, column in _segments(self.columns):
            prefix = f"quality.column.{segment}"
            _put(out, f"{prefix}.null_rate", column.null_rate)
            _put(out, f"{prefix}.out_of_range_share", column.out_of_range_share)
            _put(out, f"{prefix}.unseen_share", column.unseen_share)
        return out


def _put(out: dict[str, float], name: str, value: float | None) -> None:
    if value is not None:
        out[name] = float(value)


def metric_segment(name: str) -> str:
    """A column name as one segment of a dotted metric name: every character other than a
    letter, digit, ``_`` or ``-`` (dots and spaces included) becomes ``_``."""
    return _UNSAFE.sub("_", name) or "_"


def _segments(columns: Iterable[ColumnQuality]) -> list[tuple[str, ColumnQuality]]:
    """Each column's metric segment; a segment already taken gets ``-2``, ``-3`` ..."""
    taken: set[str] = set()
    out = []
    for column in columns:
        base = segment = metric_segment(column.name)
        suffix = 1
        while segment in taken:
            suffix += 1
            segment = f"{base}-{suffix}"
        taken.add(segment)
        out.append((segment, column))
    return out


# -- the dataset ------------------------------------------------------------------------------
def data_quality(
    profile: Profile,
    current: Mapping[str, Any],
    *,
    expected_types: Mapping[str, str] | None = None,
    ignore: Iterable[str] = (),
) -> QualityReport:
    """The quality of ``current`` (column name -> 1-D array or ColumnData) against ``profile``.

    ``expected_types`` (column -> ``numeric`` / ``string`` / ``bool`` / ``datetime``) is the
    model signature: when given, it is the schema (its columns are expected, others are extra);
    otherwise the profile's columns and types are. Columns in ``ignore`` are neither measured
    nor extra.
    """
    expected = _expected(profile, expected_types)
    skipped = set(ignore)
    names = [n for n in current if n not in skipped]
    known = set(expected) | set(profile.columns)
    rows = _rows(current, names)
    measured = [
        _column(name, current[name], profile.columns.get(name), expected.get(name))
        for name in names
        if name in known
    ]
    present = set(names)
    return _report(
        rows,
        measured,
        tuple(n for n in expected if n not in present and n not in skipped),
        tuple(n for n in names if n not in expected),
    )


def _expected(profile: Profile, expected_types: Mapping[str, str] | None) -> dict[str, str]:
    if expected_types is None:
        return {name: column.family for name, column in profile.columns.items()}
    out = {}
    for name, kind in expected_types.items():
        family = EXPECTED_TYPES.get(str(kind).lower())
        if family is None:
            raise InvalidInput(
                f"The expected type of column {name!r} must be one of "
                f"{', '.join(sorted(EXPECTED_TYPES))}. Got {kind!r}.",
                field="expected_types",
            )
        out[name] = family
    return out


def _rows(current: Mapping[str, Any], names: list[str]) -> int:
    rows: int | None = None
    for name in names:
        value = current[name]
        n = value.rows if isinstance(value, ColumnData) else len(value)
        if rows is not None and n != rows:
            raise InvalidInput(
                f"Column {name!r} has {n} rows, the columns before it {rows}; every column of "
                "a window must have one value per row.",
                field=name,
            )
        rows = n
    return rows or 0


def _report(
    rows: int, columns: list[ColumnQuality], missing: tuple[str, ...], extra: tuple[str, ...]
) -> QualityReport:
    def largest(values: Iterable[float | None]) -> float | None:
        defined = [v for v in values if v is not None]
        return max(defined) if defined else None

    return QualityReport(
        rows=rows,
        columns=tuple(columns),
        missing_columns=missing,
        extra_columns=extra,
        type_mismatches=tuple(c.name for c in columns if c.type_mismatch),
        max_null_rate=largest(c.null_rate for c in columns),
        max_null_rate_increase=largest(c.null_rate_increase for c in columns),
        out_of_range_share=largest(c.out_of_range_share for c in columns),
        unseen_category_share=largest(c.unseen_share for c in columns),
    )


# -- one column -------------------------------------------------------------------------------
def _column(
    name: str, values: Any, reference: ColumnProfile | None, expected: str | None
) -> ColumnQuality:
    data = values if isinstance(values, ColumnData) else _array(name, values)
    family = data.family if isinstance(data, ColumnData) else family_of(data)
    rows = data.rows if isinstance(data, ColumnData) else int(data.size)
    nulls = _nulls(data)
    present = None if nulls is None else rows - nulls
    wanted = expected if expected is not None or reference is None else reference.family
    mismatch = wanted is not None and family != wanted and present != 0
    null_rate = None if nulls is None or rows == 0 else nulls / rows
    ref_rate = None if reference is None else _reference_null_rate(reference)
    base = ColumnQuality(
        name=name, family=family, expected=wanted, rows=rows, nulls=nulls, null_rate=null_rate,
        reference_null_rate=ref_rate,
        null_rate_increase=None if null_rate is None or ref_rate is None else null_rate - ref_rate,
        type_mismatch=mismatch,
    )  # fmt: skip
    if mismatch or reference is None or reference.family != family or not present:
        return base
    return _with_values(base, data, reference, present)


def _array(name: str, values: Any) -> Array:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(
            f"Column {name!r} must be 1-D (one value per row). Got shape {arr.shape}.", field=name
        )
    return arr


def _nulls(data: Array | ColumnData) -> int | None:
    if isinstance(data, ColumnData):
        return None if data.sample is None else int(data.sample.missing)
    kind = data.dtype.kind
    if kind in "fc":
        return int(np.count_nonzero(np.isnan(data)))
    if kind in "mM":
        return int(np.count_nonzero(np.isnat(data)))
    if kind == "O":
        return int(np.count_nonzero(_object_nulls(data)))
    return 0


def _object_nulls(data: Array) -> npt.NDArray[np.bool_]:
    # elementwise in C: None, and NaN (the one value not equal to itself)
    return np.asarray(np.equal(data, _NONE) | np.not_equal(data, data), dtype=np.bool_)


def _reference_null_rate(reference: ColumnProfile) -> float | None:
    infinite = reference.infinite if isinstance(reference, NumericProfile) else 0
    total = reference.count + reference.missing + infinite
    return reference.missing / total if total else None


def _with_values(
    base: ColumnQuality, data: Array | ColumnData, reference: ColumnProfile, present: int
) -> ColumnQuality:
    """The out-of-range and unseen-category figures of a column of the reference's family."""
    changes: dict[str, Any] = {}
    if isinstance(reference, NumericProfile) and reference.minimum is not None:
        low, high = reference.minimum, reference.maximum
        outside = _out_of_range(data, low, low if high is None else high)
        changes.update(out_of_range=outside, out_of_range_share=outside / present)
    if not _categorical(reference):
        return replace(base, **changes)
    note = _unjudged(reference)
    if note is not None:
        return replace(base, **changes, unseen_note=note)
    keys, counts = _unseen(data, _categories(reference))
    order = sorted(range(len(keys)), key=lambda i: (-int(counts[i]), str(keys[i])))
    unseen_rows = int(counts.sum())
    changes.update(
        unseen_categories=len(keys), unseen_rows=unseen_rows, unseen_share=unseen_rows / present,
        unseen_examples=tuple(keys[i] for i in order[:MAX_EXAMPLES]),
    )  # fmt: skip
    return replace(base, **changes)


def _categorical(reference: ColumnProfile) -> bool:
    """Whether the column holds categories: text and booleans, and the integer columns with few
    values the profile counts exactly (its kind is categorical)."""
    if isinstance(reference, NumericProfile):
        return reference.values is not None and reference.kind() is ColumnKind.CATEGORICAL
    return isinstance(reference, CategoryProfile)


def _unjudged(reference: ColumnProfile) -> str | None:
    """Why unseen categories cannot be judged against this reference (None: they can)."""
    if isinstance(reference, CategoryProfile):
        if not reference.exact:
            return (
                f"not judged: the reference profile kept only its {len(reference.counts)} most "
                f"frequent categories (of at least {reference.distinct_floor}), so a value "
                "missing from it may have been in the reference"
            )
        if reference.kind() is ColumnKind.TEXT:
            return "not judged: the reference column is free text (most values are distinct)"
    return None if reference.count else "not judged: the reference holds no value"


def _categories(reference: ColumnProfile) -> list[Any]:
    if isinstance(reference, NumericProfile):
        return list((reference.values or {}).keys())
    if isinstance(reference, CategoryProfile):
        return list(reference.counts)
    return []


# -- out of range -----------------------------------------------------------------------------
def _out_of_range(data: Array | ColumnData, low: float, high: float) -> int:
    if isinstance(data, ColumnData):
        sample = data.sample
        if not isinstance(sample, NumericSample):
            return 0
        values = sample.values  # sorted, finite
        below = int(np.searchsorted(values, low, side="left"))
        above = int(np.searchsorted(values, high, side="right"))
        if sample.weights is None:
            return below + values.size - above
        weights = sample.weights
        return round(float(weights[:below].sum() + weights[above:].sum()))
    floats = _floats(data)
    # NaN compares False both ways: nulls are never out of range; ±inf always are
    return int(np.count_nonzero((floats < low) | (floats > high)))


def _floats(data: Array) -> Array:
    if data.dtype.kind in "iufb":
        return data
    return np.array([np.nan if v is None else float(v) for v in data.tolist()], dtype=np.float64)


# -- unseen categories ------------------------------------------------------------------------
def _unseen(data: Array | ColumnData, known: list[Any]) -> tuple[list[Any], Array]:
    """The window's values absent from ``known``, each once, and their row counts."""
    if not isinstance(data, ColumnData):
        return _raw_unseen(data, known)
    sample = data.sample
    if isinstance(sample, CategoricalSample):
        return _filter(sample.keys, sample.counts, set(known))
    if isinstance(sample, NumericSample):
        values, weights = sample.value_counts()
        return _numeric_unseen(values, np.rint(weights).astype(np.int64), known)
    return [], np.zeros(0, np.int64)


def _raw_unseen(data: Array, known: list[Any]) -> tuple[list[Any], Array]:
    kind = data.dtype.kind
    if kind in "iuf":
        floats = data[np.isfinite(data)] if kind == "f" else data
        outside = floats[~np.isin(floats, np.asarray(known, dtype=np.float64))]
        values, counts = np.unique(outside, return_counts=True)
        return _numeric_unseen(values, counts, known)
    if kind in "US":
        return _text_unseen(data, known)
    if kind == "b":
        flags, flag_counts = np.unique(data, return_counts=True)
        return _filter(flags.tolist(), flag_counts, set(known))
    counted = Counter(data[~_object_nulls(data)].tolist())
    return _filter(list(counted), np.fromiter(counted.values(), np.int64, len(counted)), set(known))


def _numeric_unseen(
    keys: Array, counts: Array, known: list[Any]
) -> tuple[list[Any], npt.NDArray[Any]]:
    unseen = ~np.isin(keys, np.asarray(known, dtype=np.float64))
    as_int = bool(np.all(np.mod(keys[unseen], 1) == 0))
    values = keys[unseen].tolist()
    return [int(v) if as_int else float(v) for v in values], np.asarray(counts)[unseen]


def _text_unseen(data: Array, known: list[Any]) -> tuple[list[Any], npt.NDArray[Any]]:
    texts = [k for k in known if isinstance(k, str if data.dtype.kind == "U" else bytes)]
    if len(texts) <= _FEW_KEYS:
        rest = data[~np.isin(data, np.asarray(texts))] if texts else data
        keys, counts = np.unique(rest, return_counts=True)
        return keys.tolist(), counts
    keys, counts = np.unique(data, return_counts=True)
    return _filter(keys.tolist(), counts, set(known))


def _filter(keys: list[Any], counts: Array, known: set[Any]) -> tuple[list[Any], Array]:
    unseen = [i for i, key in enumerate(keys) if key not in known]
    return [keys[i] for i in unseen], np.asarray(counts)[unseen]
