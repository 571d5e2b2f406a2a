"""The two shapes a column takes before a drift test: sorted numbers, or counts per category.

A column is prepared once (non-finite values dropped and counted, numbers sorted, categories
counted) and every test reads the prepared form. A reference may come from a profile instead of
raw values: then a numeric sample is weighted (each distinct value with its count, exact, or a
quantile sketch's retained items with their weights, approximate), and a categorical one may
carry an ``other`` bucket for the categories the profile stopped tracking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The label of the bucket holding the categories a profile stopped tracking.
OTHER = "__other__"
# Values whose magnitude leaves [2**-400, 2**400] are scaled by a power of two before squaring or
# differencing, so that variances (even times 2**40 rows) and distances of finite inputs stay
# finite; a power of two rescales exactly.
_SAFE_EXPONENT = 400


class Family:
    """A column's storage family; a change of family between reference and current is an
    error, a change within one (int to float) is not."""

    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    STRING = "string"
    DATETIME = "datetime"
    OTHER = "other"


@dataclass(frozen=True)
class NumericSample:
    """Finite values in ascending order; ``weights`` None means each value counts once.

    ``n`` is how many values the sample stands for (the sum of the weights). ``exact`` is False
    for a quantile sketch's items, whose ranks are known within ``rank_error`` (a fraction of
    ``n``). ``distinct`` is the number of distinct values, or None when it is only known to be
    above ``distinct_floor``.
    """

    values: FloatArray
    n: int
    missing: int = 0
    weights: FloatArray | None = None
    integer: bool = False
    exact: bool = True
    rank_error: float = 0.0
    distinct: int | None = None
    distinct_floor: int = 0
    mean: float | None = None
    std: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def count_distinct(self) -> int:
        """The number of distinct values (a lower bound when only that is known)."""
        if self.distinct is not None:
            return self.distinct
        if self.weights is not None or not self.exact:
            return max(self.distinct_floor, int(np.unique(self.values).size))
        cached = self._cache.get("distinct")
        if cached is None:
            v = self.values
            cached = 0 if v.size == 0 else 1 + int(np.count_nonzero(v[1:] != v[:-1]))
            self._cache["distinct"] = cached
        return int(cached)

    def value_counts(self) -> tuple[FloatArray, FloatArray]:
        """Each distinct value once, ascending, with its count (weights summed)."""
        if self.weights is None:
            v = self.values
            starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
            counts = np.diff(np.append(starts, v.size)).astype(np.float64)
            return v[starts], counts
        keys, inverse = np.unique(self.values, return_inverse=True)
        return keys, np.bincount(inverse, weights=self.weights).astype(np.float64)

    def expanded(self) -> FloatArray:
        """The raw sample (each value repeated by its weight); only for exact small samples."""
        if self.weights is None:
            return self.values
        return np.repeat(self.values, np.rint(self.weights).astype(np.int64))

    def population_std(self) -> float:
        """``np.std`` of the values (ddof 0), finite for any finite input."""
        if self.std is not None:
            return self.std
        cached = self._cache.get("std")
        if cached is None:
            scale = safe_scale(self.values)
            cached = float(
                np.std(self.values * scale) / scale if scale != 1.0 else np.std(self.values)
            )
            self._cache["std"] = cached
        return float(cached)

    def low(self) -> float:
        return float(self.values[0]) if self.minimum is None else self.minimum

    def high(self) -> float:
        return float(self.values[-1]) if self.maximum is None else self.maximum


@dataclass(frozen=True)
class CategoricalSample:
    """Counts per category (categories are str, int, float or bool values).

    ``exact`` is False when a profile lumped its rarest categories into the ``OTHER`` bucket;
    ``count_error`` then bounds how much any kept category's count may be too low.
    """

    keys: list[Any]
    counts: IntArray
    missing: int = 0
    exact: bool = True
    count_error: int = 0
    distinct_floor: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def count_distinct(self) -> int:
        present = int(np.count_nonzero(self.counts))
        return max(present, self.distinct_floor)


def safe_scale(values: FloatArray) -> float:
    """A power of two bringing the largest magnitude near 1 when squaring or differencing the
    values could overflow (or underflow); 1.0 otherwise. Multiplying by it is exact."""
    if values.size == 0:
        return 1.0
    peak = float(max(abs(float(np.min(values))), abs(float(np.max(values)))))
    return scale_for(peak)


def scale_for(peak: float) -> float:
    if peak == 0.0 or not np.isfinite(peak):
        return 1.0
    exponent = int(np.frexp(peak)[1])
    if -_SAFE_EXPONENT <= exponent <= _SAFE_EXPONENT:
        return 1.0
    return float(np.ldexp(1.0, -exponent))


def numeric_sample(values: Any, *, integer: bool | None = None) -> NumericSample:
    """Sort the finite values of a 1-D array; nulls (None, NaN) and infinities are dropped and
    counted in ``missing``, as Evidently drops them before testing."""
    arr = np.asarray(values)
    if integer is None:
        integer = arr.dtype.kind in "iu"
    if arr.dtype.kind == "O":
        arr = np.array([np.nan if v is None else v for v in arr.tolist()], dtype=np.float64)
    floats = arr.astype(np.float64, copy=False)
    finite = np.isfinite(floats)
    kept = floats if bool(finite.all()) else floats[finite]
    return NumericSample(
        values=np.sort(kept), n=int(kept.size), missing=int(floats.size - kept.size),
        integer=bool(integer),
    )  # fmt: skip


def categorical_sample(values: Any) -> CategoricalSample:
    """Count the categories of a 1-D array; None and NaN are missing."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        present = arr[~np.isnan(arr)]
    elif arr.dtype.kind == "O":
        present = np.array([v for v in arr.tolist() if not _is_missing(v)], dtype=object)
    else:
        present = arr
    missing = int(arr.size - present.size)
    if present.size == 0:
        return CategoricalSample(keys=[], counts=np.zeros(0, np.int64), missing=missing)
    if present.dtype.kind == "O":
        # np.unique sorts; Python objects of mixed types cannot be ordered, so count by hash
        counter: dict[Any, int] = {}
        for item in present.tolist():
            counter[item] = counter.get(item, 0) + 1
        keys = list(counter)
        counts = np.fromiter(counter.values(), dtype=np.int64, count=len(counter))
        return CategoricalSample(keys=keys, counts=counts, missing=missing)
    uniques, counts = np.unique(present, return_counts=True)
    return CategoricalSample(keys=uniques.tolist(), counts=counts.astype(np.int64), missing=missing)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def family_of(values: Any) -> str:
    """The storage family of a numpy array (object arrays by their first non-null value)."""
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind in "iuf":
        return Family.NUMERIC
    if kind == "b":
        return Family.BOOLEAN
    if kind in "US":
        return Family.STRING
    if kind == "M":
        return Family.DATETIME
    if kind == "O":
        for item in arr.tolist():
            if _is_missing(item):
                continue
            if isinstance(item, bool | np.bool_):
                return Family.BOOLEAN
            if isinstance(item, int | float | np.number):
                return Family.NUMERIC
            if isinstance(item, str):
                return Family.STRING
            return Family.OTHER
        return Family.NUMERIC  # all null: no type to disagree with
    return Family.OTHER
