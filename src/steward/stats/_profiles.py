"""The per-column parts of a profile: numbers, categories, datetimes (see ``profile``)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

from steward.domain.drift import ColumnKind
from steward.stats._samples import (
    OTHER,
    CategoricalSample,
    Family,
    FloatArray,
    IntArray,
    NumericSample,
    scale_for,
)

SKETCH_K = 1024
EXACT_VALUES = 1024
MAX_CATEGORIES = 4096
# Evidently: integer columns with at most this many distinct values are categorical.
INTEGER_CARDINALITY_LIMIT = 10
# Evidently: text columns with more distinct values than this share of their count are free text.
TEXT_DISTINCT_SHARE = 0.5
# A batch whose first values already hold more distinct values than EXACT_VALUES is not counted.
_PROBE = 4 * EXACT_VALUES
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


# -- what update() takes -----------------------------------------------------------------------
@dataclass(frozen=True)
class NumericBatch:
    """Numbers of one batch; NaN marks a null. ``integer``: the column's type is an integer."""

    values: FloatArray
    integer: bool = False


@dataclass(frozen=True)
class CategoryBatch:
    """Categories of one batch, already counted (``family`` is string or boolean)."""

    keys: list[Any]
    counts: IntArray
    missing: int
    family: str = Family.STRING


@dataclass(frozen=True)
class DatetimeBatch:
    nanoseconds: IntArray  # non-null values only
    missing: int


ColumnBatch = NumericBatch | CategoryBatch | DatetimeBatch


# -- numeric -----------------------------------------------------------------------------------
@dataclass
class NumericProfile:
    sketch_k: int = SKETCH_K
    integer: bool = True
    count: int = 0
    missing: int = 0
    infinite: int = 0
    minimum: float | None = None
    maximum: float | None = None
    mean: float = 0.0
    std: float = 0.0
    values: dict[float, int] | None = field(default_factory=dict)
    distinct_floor: int = 0
    sketch: Any = None
    family: str = Family.NUMERIC

    def __post_init__(self) -> None:
        if self.sketch is None:
            self.sketch = kll_doubles_sketch(self.sketch_k)

    def update(self, batch: NumericBatch) -> None:
        raw = np.asarray(batch.values, dtype=np.float64)
        finite_mask = np.isfinite(raw)
        finite = raw if bool(finite_mask.all()) else raw[finite_mask]
        nan = int(np.count_nonzero(np.isnan(raw))) if finite.size != raw.size else 0
        self.integer = self.integer and batch.integer
        self.missing += nan
        self.infinite += int(raw.size - finite.size - nan)
        if finite.size == 0:
            return
        self._add_moments(finite)
        low, high = float(finite.min()), float(finite.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        self._count_values(finite)
        # the sketch's binding takes writable arrays only (Arrow's zero-copy views are not)
        self.sketch.update(finite if finite.flags.writeable else finite.copy())

    def _add_moments(self, finite: FloatArray) -> None:
        scale = scale_for(float(np.max(np.abs(finite))))
        scaled = finite * scale if scale != 1.0 else finite
        mean = float(np.mean(scaled)) / scale
        std = float(np.std(scaled)) / scale
        self.count, self.mean, self.std = merge_moments(
            (self.count, self.mean, self.std), (int(finite.size), mean, std)
        )

    def _count_values(self, finite: FloatArray) -> None:
        if self.values is None:
            return
        if np.unique(finite[:_PROBE]).size > EXACT_VALUES:
            self._overflow(EXACT_VALUES + 1)
            return
        keys, counts = np.unique(finite, return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            self.values[key] = self.values.get(key, 0) + count
        if len(self.values) > EXACT_VALUES:
            self._overflow(len(self.values))

    def _overflow(self, seen: int) -> None:
        self.values = None
        self.distinct_floor = max(self.distinct_floor, seen)

    def merge(self, other: NumericProfile) -> NumericProfile:
        out = NumericProfile(sketch_k=self.sketch_k, integer=self.integer and other.integer)
        out.missing = self.missing + other.missing
        out.infinite = self.infinite + other.infinite
        out.count, out.mean, out.std = merge_moments(
            (self.count, self.mean, self.std), (other.count, other.mean, other.std)
        )
        out.minimum = _merge_extreme(self.minimum, other.minimum, min)
        out.maximum = _merge_extreme(self.maximum, other.maximum, max)
        out.distinct_floor = max(self.distinct_floor, other.distinct_floor)
        if self.values is None or other.values is None:
            out._overflow(out.distinct_floor)
        else:
            out.values = dict(self.values)
            for key, count in other.values.items():
                out.values[key] = out.values.get(key, 0) + count
            if len(out.values) > EXACT_VALUES:
                out._overflow(len(out.values))
        out.sketch = kll_doubles_sketch.deserialize(self.sketch.serialize())
        out.sketch.merge(other.sketch)
        return out

    @property
    def distinct(self) -> int | None:
        return None if self.values is None else len(self.values)

    def kind(self) -> ColumnKind:
        distinct = self.distinct
        if self.integer and distinct is not None and distinct <= INTEGER_CARDINALITY_LIMIT:
            return ColumnKind.CATEGORICAL
        return ColumnKind.NUMERICAL

    @property
    def rank_error(self) -> float:
        if self.values is not None or not self.sketch.is_estimation_mode():
            return 0.0
        return float(kll_doubles_sketch.get_normalized_rank_error(self.sketch_k, False))

    def sample(self) -> NumericSample:
        """The reference as a weighted sample: the exact value counts, else the sketch."""
        common: dict[str, Any] = {
            "n": self.count, "missing": self.missing + self.infinite, "integer": self.integer,
            "mean": self.mean, "std": self.std, "minimum": self.minimum, "maximum": self.maximum,
        }  # fmt: skip
        if self.values is not None:
            keys = np.array(sorted(self.values), dtype=np.float64)
            weights = np.array([self.values[k] for k in keys.tolist()], dtype=np.float64)
            return NumericSample(values=keys, weights=weights, distinct=len(keys), **common)
        items = np.array(list(self.sketch), dtype=np.float64).reshape(-1, 2)
        order = np.argsort(items[:, 0], kind="stable")
        return NumericSample(
            values=items[order, 0], weights=items[order, 1], exact=self.rank_error == 0.0,
            rank_error=self.rank_error, distinct_floor=self.distinct_floor, **common,
        )  # fmt: skip

    def categories(self) -> CategoricalSample:
        """An integer column with few values, as categories (Evidently's rule)."""
        values = self.values or {}
        keys = sorted(values)
        return CategoricalSample(
            keys=[int(k) if self.integer else k for k in keys],
            counts=np.array([values[k] for k in keys], dtype=np.int64),
            missing=self.missing + self.infinite,
        )

    def quantiles(self) -> dict[str, float] | None:
        if self.count == 0:
            return None
        found = self.sketch.get_quantiles(list(_QUANTILES))
        return {f"{q:g}": float(v) for q, v in zip(_QUANTILES, found, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        values = None
        if self.values is not None:
            keys = sorted(self.values)
            values = [keys, [self.values[k] for k in keys]]
        return {
            "family": self.family, "kind": self.kind().value, "integer": self.integer,
            "count": self.count, "missing": self.missing, "infinite": self.infinite,
            "min": self.minimum, "max": self.maximum, "mean": self.mean, "std": self.std,
            "quantiles": self.quantiles(), "rank_error": self.rank_error,
            "distinct": self.distinct, "distinct_floor": self.distinct_floor, "values": values,
            "sketch": base64.b64encode(self.sketch.serialize()).decode("ascii"),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], sketch_k: int) -> NumericProfile:
        out = cls(sketch_k=sketch_k, integer=bool(data["integer"]))
        out.count, out.missing = int(data["count"]), int(data["missing"])
        out.infinite = int(data["infinite"])
        out.minimum, out.maximum = _optional_float(data["min"]), _optional_float(data["max"])
        out.mean, out.std = float(data["mean"]), float(data["std"])
        out.distinct_floor = int(data["distinct_floor"])
        values = data["values"]
        out.values = None if values is None else {
            float(k): int(c) for k, c in zip(values[0], values[1], strict=True)}  # fmt: skip
        out.sketch = kll_doubles_sketch.deserialize(base64.b64decode(data["sketch"]))
        return out


def merge_moments(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> tuple[int, float, float]:
    """(count, mean, population std) of two parts combined (Chan et al.), in units scaled by a
    power of two so that the sums of squares cannot overflow."""
    n1, mean1, std1 = a
    n2, mean2, std2 = b
    if n1 == 0:
        return b
    if n2 == 0:
        return a
    scale = scale_for(max(abs(mean1), abs(mean2), std1, std2))
    m1, m2 = mean1 * scale, mean2 * scale
    n = n1 + n2
    delta = m2 - m1
    mean = m1 + delta * (n2 / n)
    sq = (std1 * scale) ** 2 * n1 + (std2 * scale) ** 2 * n2 + delta**2 * (n1 * n2 / n)
    return n, mean / scale, math.sqrt(sq / n) / scale


def _merge_extreme(a: float | None, b: float | None, pick: Any) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(pick(a, b))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- categories --------------------------------------------------------------------------------
@dataclass
class CategoryProfile:
    max_categories: int = MAX_CATEGORIES
    family: str = Family.STRING
    count: int = 0
    missing: int = 0
    counts: dict[Any, int] = field(default_factory=dict)
    other: int = 0  # values of the categories lumped together past max_categories
    distinct_floor: int = 0

    def update(self, batch: CategoryBatch) -> None:
        self.missing += batch.missing
        counts = np.asarray(batch.counts, dtype=np.int64)
        self.count += int(counts.sum())
        keys = batch.keys
        if len(keys) > self.max_categories:
            # keep the batch's most frequent categories only: a Python loop over a million
            # distinct values (an id column) would cost more than the rest of the profile
            top = np.argpartition(-counts, self.max_categories)[: self.max_categories]
            dropped = np.ones(len(keys), dtype=bool)
            dropped[top] = False
            self.other += int(counts[dropped].sum())
            self.distinct_floor = max(self.distinct_floor, len(keys))
            keys, counts = [keys[i] for i in top.tolist()], counts[top]
        for key, count in zip(keys, counts.tolist(), strict=True):
            self.counts[key] = self.counts.get(key, 0) + count
        self._truncate()

    def _truncate(self) -> None:
        if len(self.counts) <= self.max_categories:
            return
        self.distinct_floor = max(self.distinct_floor, len(self.counts))
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        self.counts = dict(ranked[: self.max_categories])
        self.other += sum(count for _, count in ranked[self.max_categories :])

    def merge(self, other: CategoryProfile) -> CategoryProfile:
        out = CategoryProfile(max_categories=self.max_categories, family=self.family)
        out.count, out.missing = self.count + other.count, self.missing + other.missing
        out.other = self.other + other.other
        out.distinct_floor = max(self.distinct_floor, other.distinct_floor)
        out.counts = dict(self.counts)
        for key, count in other.counts.items():
            out.counts[key] = out.counts.get(key, 0) + count
        out._truncate()
        return out

    @property
    def exact(self) -> bool:
        return self.other == 0

    @property
    def distinct(self) -> int | None:
        return len(self.counts) if self.exact else None

    def kind(self) -> ColumnKind:
        if self.family == Family.BOOLEAN:
            return ColumnKind.CATEGORICAL
        distinct = max(len(self.counts), self.distinct_floor)
        if distinct > self.count * TEXT_DISTINCT_SHARE:
            return ColumnKind.TEXT
        return ColumnKind.CATEGORICAL

    def sample(self) -> CategoricalSample:
        keys = list(self.counts)
        counts = list(self.counts.values())
        if self.other:
            keys.append(OTHER)
            counts.append(self.other)
        return CategoricalSample(
            keys=keys, counts=np.array(counts, dtype=np.int64), missing=self.missing,
            exact=self.exact, count_error=self.other,
            distinct_floor=self.distinct_floor,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        return {
            "family": self.family, "kind": self.kind().value, "count": self.count,
            "missing": self.missing, "distinct": self.distinct,
            "distinct_floor": self.distinct_floor, "other": self.other,
            "categories": [[k for k, _ in ranked], [c for _, c in ranked]],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_categories: int) -> CategoryProfile:
        out = cls(max_categories=max_categories, family=str(data["family"]))
        out.count, out.missing = int(data["count"]), int(data["missing"])
        out.other, out.distinct_floor = int(data["other"]), int(data["distinct_floor"])
        keys, counts = data["categories"]
        out.counts = {_key(k): int(c) for k, c in zip(keys, counts, strict=True)}
        return out


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# -- datetimes ---------------------------------------------------------------------------------
@dataclass
class DatetimeProfile:
    count: int = 0
    missing: int = 0
    minimum: int | None = None
    maximum: int | None = None
    family: str = Family.DATETIME

    def update(self, batch: DatetimeBatch) -> None:
        self.missing += batch.missing
        values = np.asarray(batch.nanoseconds, dtype=np.int64)
        self.count += int(values.size)
        if values.size:
            low, high = int(values.min()), int(values.max())
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)

    def merge(self, other: DatetimeProfile) -> DatetimeProfile:
        out = DatetimeProfile(count=self.count + other.count, missing=self.missing + other.missing)
        ends = [v for v in (self.minimum, other.minimum) if v is not None]
        out.minimum = min(ends) if ends else None
        ends = [v for v in (self.maximum, other.maximum) if v is not None]
        out.maximum = max(ends) if ends else None
        return out

    def kind(self) -> ColumnKind:
        return ColumnKind.DATETIME

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "kind": "datetime", "count": self.count,
                "missing": self.missing, "min": self.minimum, "max": self.maximum}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatetimeProfile:
        return cls(count=int(data["count"]), missing=int(data["missing"]),
                   minimum=data["min"], maximum=data["max"])  # fmt: skip


ColumnProfile = NumericProfile | CategoryProfile | DatetimeProfile
