"""Per-variant sufficient statistics: ``Summary`` and the vectorised builders.

A ``Summary`` is what every A/B estimator reads: the count, the sum and the sum of squares of a
metric, plus (for CUPED) the sum and sum of squares of a pre-experiment covariate and the sum
of the cross-products. Summaries of disjoint row sets merge by addition, so a warehouse query,
a Parquet scan or a Ray task per partition can produce them and the driver adds them up.

A ``Summary`` checks itself when built (a negative count or a sum of squares smaller than the
sum allows cannot describe any data), so every estimator can trust one; the exception names the
field. This departs from "``__init__`` validates nothing" on purpose: a value object with no
setters is cheaper to check once than at each of its many uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from steward.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

# Rounding in long float sums can make ``sum_sq - sum**2 / n`` slightly negative; beyond this
# share of ``sum_sq`` the numbers cannot come from real data.
_ROUNDING = 1e-7
# A centred sum of squares below this share of the raw one is the sums' rounding noise (a
# metric whose sd is under 1e-7 of its mean): its variance is taken as exactly zero.
_NOISE = 1e-14


@dataclass(frozen=True)
class Summary:
    """Sufficient statistics of one metric in one variant.

    ``n`` rows with metric values ``y`` (and, optionally, covariate values ``x``):
    ``sum = Σy``, ``sum_sq = Σy²``, ``cov_sum = Σx``, ``cov_sum_sq = Σx²``,
    ``cross_sum = Σxy``. For a conversion metric (0/1 values) ``sum`` is the number of
    conversions and ``sum_sq == sum``; ``Summary.from_counts(n, conversions)`` builds one.
    The three covariate sums are given together or not at all.
    """

    n: int
    sum: float
    sum_sq: float
    cov_sum: float | None = None
    cov_sum_sq: float | None = None
    cross_sum: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _check_count(self.n))
        for name in ("sum", "sum_sq"):
            object.__setattr__(self, name, _check_finite(getattr(self, name), name))
        _check_squares(self.n, self.sum, self.sum_sq, "sum_sq")
        covariate = (self.cov_sum, self.cov_sum_sq, self.cross_sum)
        if all(value is None for value in covariate):
            return
        if any(value is None for value in covariate):
            raise InvalidInput(
                "'cov_sum', 'cov_sum_sq' and 'cross_sum' go together: give all three "
                "covariate sums or none.",
                field="cov_sum",
            )
        for name in ("cov_sum", "cov_sum_sq", "cross_sum"):
            object.__setattr__(self, name, _check_finite(getattr(self, name), name))
        _check_squares(
            self.n, float(self.cov_sum or 0.0), float(self.cov_sum_sq or 0.0), "cov_sum_sq"
        )
        if self.n == 0 and self.cross_sum != 0.0:
            raise InvalidInput(
                f"A summary with n = 0 must have zero sums. Got cross_sum = {self.cross_sum}.",
                field="cross_sum",
            )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_values(cls, values: Any, covariate: Any = None) -> Summary:
        """Summarise raw metric values (and optional covariate values, row-aligned)."""
        y = _as_finite_vector(values, "values")
        if covariate is None:
            return cls(n=int(y.size), sum=float(np.sum(y)), sum_sq=float(np.dot(y, y)))
        x = _as_finite_vector(covariate, "covariate")
        if x.size != y.size:
            raise InvalidInput(
                f"'covariate' must have one value per row of 'values' ({y.size}). Got {x.size}.",
                field="covariate",
            )
        return cls(
            n=int(y.size),
            sum=float(np.sum(y)),
            sum_sq=float(np.dot(y, y)),
            cov_sum=float(np.sum(x)),
            cov_sum_sq=float(np.dot(x, x)),
            cross_sum=float(np.dot(x, y)),
        )

    @classmethod
    def from_counts(cls, n: int, conversions: float) -> Summary:
        """A conversion metric: ``conversions`` of ``n`` rows had the value 1, the rest 0."""
        conversions = _check_finite(conversions, "conversions")
        if not 0.0 <= conversions <= _check_count(n):
            raise InvalidInput(
                f"'conversions' must be between 0 and n ({n}). Got {conversions}.",
                field="conversions",
            )
        return cls(n=n, sum=conversions, sum_sq=conversions)

    @classmethod
    def from_moments(cls, n: int, mean: float, variance: float) -> Summary:
        """The summary of ``n`` rows with this mean and sample variance (ddof=1)."""
        n = _check_count(n)
        spread = max(n - 1, 0) * max(float(variance), 0.0)
        return cls(n=n, sum=n * float(mean), sum_sq=spread + n * float(mean) ** 2)

    def merge(self, other: Summary) -> Summary:
        """The summary of both row sets together (covariate sums kept only if both have them)."""
        if self.has_covariate != other.has_covariate:
            raise InvalidInput(
                "Cannot merge a summary with covariate sums and one without.", field="cov_sum"
            )
        if not self.has_covariate:
            return Summary(self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)
        return Summary(
            n=self.n + other.n,
            sum=self.sum + other.sum,
            sum_sq=self.sum_sq + other.sum_sq,
            cov_sum=_add(self.cov_sum, other.cov_sum),
            cov_sum_sq=_add(self.cov_sum_sq, other.cov_sum_sq),
            cross_sum=_add(self.cross_sum, other.cross_sum),
        )

    # -- moments --------------------------------------------------------------------------

    @property
    def has_covariate(self) -> bool:
        return self.cov_sum is not None

    @property
    def mean(self) -> float:
        """The metric's mean; an empty summary has none (``InvalidInput``)."""
        self._require(1, "mean")
        return self.sum / self.n

    @property
    def variance(self) -> float:
        """The metric's sample variance (ddof=1), never negative; needs n >= 2."""
        self._require(2, "variance")
        return _centred(self.n, self.sum, self.sum_sq) / (self.n - 1)

    @property
    def cov_mean(self) -> float:
        self._require(1, "cov_mean", covariate=True)
        return float(self.cov_sum or 0.0) / self.n

    @property
    def cov_variance(self) -> float:
        """The covariate's sample variance (ddof=1); needs n >= 2."""
        self._require(2, "cov_variance", covariate=True)
        s, ss = float(self.cov_sum or 0.0), float(self.cov_sum_sq or 0.0)
        return _centred(self.n, s, ss) / (self.n - 1)

    @property
    def covariance(self) -> float:
        """The sample covariance (ddof=1) of the covariate and the metric; needs n >= 2."""
        self._require(2, "covariance", covariate=True)
        s_x, s_xy = float(self.cov_sum or 0.0), float(self.cross_sum or 0.0)
        return (s_xy - s_x * self.sum / self.n) / (self.n - 1)

    def _require(self, min_n: int, what: str, *, covariate: bool = False) -> None:
        if covariate and not self.has_covariate:
            raise InvalidInput(
                f"The summary has no covariate sums, so its '{what}' is undefined. Build it with "
                "a covariate (Summary.from_values(values, covariate=...)).",
                field="cov_sum",
            )
        if self.n < min_n:
            raise InvalidInput(
                f"The '{what}' of a summary needs n >= {min_n}. Got n = {self.n}.", field="n"
            )


def summaries_by_group(
    groups: Any, values: Any, covariate: Any = None, *, n_groups: int | None = None
) -> list[Summary]:
    """One ``Summary`` per group ``0 .. n_groups-1``, in one pass of ``np.bincount`` per sum.

    ``groups`` holds each row's variant index (non-negative integers); ``values`` and the
    optional ``covariate`` are row-aligned floats. ``n_groups`` defaults to ``max(groups) + 1``;
    groups with no rows get an empty summary. A non-finite value anywhere is rejected, found
    through the per-group sums so that clean data pays nothing for the check.
    """
    keys = _as_group_keys(groups, n_groups)
    size = int(keys.max()) + 1 if n_groups is None else n_groups
    y = _as_vector(values, "values", len(keys))
    counts = np.bincount(keys, minlength=size)
    inputs = {"values": y}
    if covariate is not None:
        inputs["covariate"] = _as_vector(covariate, "covariate", len(keys))
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite sums are reported below
        table = np.vstack([np.bincount(keys, w, minlength=size) for w in _products(inputs)])
    if not np.isfinite(table).all():
        for field, arr in inputs.items():
            _raise_not_finite(arr, field)
        raise InvalidInput(
            "The values are too large: their squared sums overflow. Rescale the metric.",
            field="values",
        )
    return [
        Summary(int(count), *(float(v) for v in sums))
        for count, sums in zip(counts, table.T, strict=True)
    ]


def _products(inputs: dict[str, FloatArray]) -> Iterator[FloatArray]:
    """The per-row terms of each sum, one array at a time (bounded memory)."""
    y = inputs["values"]
    yield y
    yield y * y
    x = inputs.get("covariate")
    if x is not None:
        yield x
        yield x * x
        yield x * y


def pooled(summaries: Sequence[Summary]) -> Summary:
    """All variants' rows together."""
    total = summaries[0]
    for summary in summaries[1:]:
        total = total.merge(summary)
    return total


# -- checks ---------------------------------------------------------------------------------


def _check_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer | float | np.floating):
        raise InvalidInput(f"'n' must be a non-negative integer. Got {n!r}.", field="n")
    if not math.isfinite(float(n)) or float(n) < 0 or float(n) != int(n):
        raise InvalidInput(f"'n' must be a non-negative integer. Got {n!r}.", field="n")
    return int(n)


def _check_finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InvalidInput(f"'{field}' must be a number. Got {value!r}.", field=field)
    if not math.isfinite(float(value)):
        raise InvalidInput(f"'{field}' must be a finite number. Got {value!r}.", field=field)
    return float(value)


def _check_squares(n: int, total: float, squares: float, field: str) -> None:
    """Cauchy-Schwarz: ``Σy² >= (Σy)² / n``, and an empty summary sums to zero."""
    if n == 0:
        if total != 0.0 or squares != 0.0:
            raise InvalidInput(
                f"A summary with n = 0 must have zero sums. Got {field.removesuffix('_sq')} = "
                f"{total}, {field} = {squares}.",
                field=field,
            )
        return
    floor = total * total / n
    if squares < floor - _ROUNDING * max(abs(squares), floor) or squares < 0.0:
        raise InvalidInput(
            f"'{field}' ({squares}) is smaller than (sum)^2 / n ({floor}), which no data can "
            "produce: check that it is the sum of squared values, not a variance.",
            field=field,
        )


def _as_finite_vector(values: Any, field: str) -> FloatArray:
    arr = _as_vector(values, field, None)
    _raise_not_finite(arr, field)
    return arr


def _as_vector(values: Any, field: str, length: int | None) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"'{field}' must be numbers. {exc}", field=field) from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(f"'{field}' must be 1-D. Got shape {arr.shape}.", field=field)
    if length is not None and arr.size != length:
        raise InvalidInput(
            f"'{field}' must have one value per row of 'groups' ({length}). Got {arr.size}.",
            field=field,
        )
    return arr


def _as_group_keys(groups: Any, n_groups: int | None) -> npt.NDArray[np.intp]:
    arr = np.asarray(groups)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInput(
            "'groups' must be a non-empty 1-D array of integer variant indices.", field="groups"
        )
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise InvalidInput(f"'groups' must be non-negative. Got {low}.", field="groups")
    if n_groups is not None and (_check_count(n_groups) < 1 or high >= n_groups):
        raise InvalidInput(
            f"'n_groups' ({n_groups}) must exceed every group index (max {high}).",
            field="n_groups",
        )
    return arr.astype(np.intp, copy=False)


def _raise_not_finite(arr: FloatArray, field: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidInput(
            f"'{field}' must be finite numbers. Row {bad} is {arr[bad]}: drop or impute missing "
            "values before summarising.",
            field=field,
        )


def _centred(n: int, total: float, squares: float) -> float:
    """``Σ(y - ȳ)²`` from the raw sums, zero when it is below their rounding noise."""
    centred = squares - total * total / n
    return centred if centred > _NOISE * squares else 0.0


def _add(a: float | None, b: float | None) -> float:
    return float(a or 0.0) + float(b or 0.0)
