"""Column profiles: what monitoring keeps of a reference instead of the reference itself.

    profile = Profile()
    for batch in batches:                       # e.g. Parquet record batches, as numpy columns
        profile.update(batch, rows=len_of_batch)
    text = profile.to_json()                    # stored with the model version
    merged = Profile.from_json(text).merge(other_profile)

Per column: its storage family, the count of values, of missing ones (null, NaN) and of
infinities, and then by family:

- **numeric**: min, max, mean and standard deviation (merged with Chan's formula), each distinct
  value with its count while there are at most ``EXACT_VALUES`` of them, and a KLL quantile
  sketch (Apache DataSketches, ``k = sketch_k``) of every value;
- **string / boolean**: the count of each category, up to ``max_categories`` of them; beyond,
  the rarest are lumped into one ``other`` count;
- **datetime**: min and max (nanoseconds since the epoch).

Exactness (docs/drift.md): counts, missing counts, min, max, the distinct values and category
counts are exact and merge exactly (``a.merge(b)`` equals the profile of both tables) as long as
the caps are not reached; mean and std agree with numpy's to floating-point rounding. Quantiles
and CDFs read from the sketch are within ``rank_error`` of the true ranks (a fraction of the
count, 99% confidence; about 0.27% for ``k = 1024``), after merges too. Past ``max_categories``,
a kept category's count is low by at most ``other``.

Why a sketch and an exact-value map: a drift test against a profile needs the reference's CDF.
While a column has at most ``EXACT_VALUES`` distinct values (which covers every column with at
most 1000 values, the only size at which Evidently's default test is Kolmogorov-Smirnov, and
every low-cardinality column), the map *is* the reference, so every default test on it is exact.
Larger columns get the Wasserstein distance by default, computed against the sketch's items with
their weights; the error that costs is bounded and reported per result.

Memory is bounded per column: ``EXACT_VALUES`` map entries, ``max_categories`` categories, and
the sketch (~3 k doubles for ``k = 1024`` at any row count).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steward.domain.drift import ColumnKind
from steward.errors import InvalidInput
from steward.stats._profiles import (
    EXACT_VALUES,
    INTEGER_CARDINALITY_LIMIT,
    MAX_CATEGORIES,
    SKETCH_K,
    TEXT_DISTINCT_SHARE,
    CategoryBatch,
    CategoryProfile,
    ColumnBatch,
    ColumnProfile,
    DatetimeBatch,
    DatetimeProfile,
    NumericBatch,
    NumericProfile,
    merge_moments,
)
from steward.stats._samples import Family, FloatArray, categorical_sample, family_of

__all__ = [
    "EXACT_VALUES",
    "FORMAT",
    "INTEGER_CARDINALITY_LIMIT",
    "MAX_CATEGORIES",
    "SKETCH_K",
    "TEXT_DISTINCT_SHARE",
    "CategoryBatch",
    "CategoryProfile",
    "ColumnBatch",
    "ColumnProfile",
    "DatetimeBatch",
    "DatetimeProfile",
    "NumericBatch",
    "NumericProfile",
    "Profile",
    "merge_all",
    "merge_moments",
    "profile_arrays",
]

FORMAT = "steward.profile/1"


# -- the dataset ------------------------------------------------------------------------------
@dataclass
class Profile:
    """The profile of a table: its row count and one profile per column, in column order."""

    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    sketch_k: int = SKETCH_K
    max_categories: int = MAX_CATEGORIES

    def update(self, batch: Mapping[str, ColumnBatch], rows: int) -> None:
        """Add a batch of ``rows`` rows: one entry per column (a column absent from this batch
        counts its rows as missing)."""
        for name, column in batch.items():
            self._column(name, column).update(column)  # type: ignore[arg-type]
        for name, profile in self.columns.items():
            if name not in batch:
                profile.missing += rows
        self.rows += rows

    def _column(self, name: str, column: ColumnBatch) -> ColumnProfile:
        existing = self.columns.get(name)
        family = _batch_family(column)
        if existing is None:
            created = self._new(family)
            created.missing += self.rows  # rows seen before the column appeared
            self.columns[name] = created
            return created
        if existing.family != family:
            raise InvalidInput(
                f"Column {name!r} changed type within the data: {existing.family} first, then "
                f"{family}. Cast it to one type.",
                field=name,
            )
        return existing

    def _new(self, family: str) -> ColumnProfile:
        if family == Family.NUMERIC:
            return NumericProfile(sketch_k=self.sketch_k)
        if family == Family.DATETIME:
            return DatetimeProfile()
        return CategoryProfile(max_categories=self.max_categories, family=family)

    def merge(self, other: Profile) -> Profile:
        """The profile of both tables' rows (the merge of two partitions)."""
        out = Profile(rows=self.rows + other.rows, sketch_k=self.sketch_k,
                      max_categories=min(self.max_categories, other.max_categories))  # fmt: skip
        for name in [*self.columns, *(n for n in other.columns if n not in self.columns)]:
            mine, theirs = self.columns.get(name), other.columns.get(name)
            if mine is None or theirs is None:
                present = mine if mine is not None else theirs
                absent_rows = other.rows if mine is not None else self.rows
                out.columns[name] = _with_missing(present, absent_rows)  # type: ignore[arg-type]
                continue
            if mine.family != theirs.family:
                raise InvalidInput(
                    f"Column {name!r} is {mine.family} in one profile and {theirs.family} in "
                    "the other; profiles of different schemas cannot be merged.",
                    field=name,
                )
            out.columns[name] = mine.merge(theirs)  # type: ignore[arg-type]
        return out

    def kind(self, name: str) -> ColumnKind:
        return self.columns[name].kind()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "rows": self.rows, "sketch_k": self.sketch_k,
            "max_categories": self.max_categories,
            "columns": {name: c.to_dict() for name, c in self.columns.items()},
        }  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInput(
                f"Not a Steward profile: expected format {FORMAT!r}, found {found!r}.",
                field="profile",
            )
        try:
            out = cls(rows=int(data["rows"]), sketch_k=int(data["sketch_k"]),
                      max_categories=int(data["max_categories"]))  # fmt: skip
            for name, column in data["columns"].items():
                out.columns[name] = _column_from_dict(column, out)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InvalidInput(f"The profile is malformed: {exc!r}.", field="profile") from exc
        return out

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"The profile is not JSON: {exc}.", field="profile") from exc
        return cls.from_dict(data)


def _column_from_dict(data: Mapping[str, Any], profile: Profile) -> ColumnProfile:
    family = data["family"]
    if family == Family.NUMERIC:
        return NumericProfile.from_dict(data, profile.sketch_k)
    if family == Family.DATETIME:
        return DatetimeProfile.from_dict(data)
    if family in (Family.STRING, Family.BOOLEAN):
        return CategoryProfile.from_dict(data, profile.max_categories)
    raise ValueError(f"unknown column family {family!r}")


def _with_missing(column: ColumnProfile, rows: int) -> ColumnProfile:
    empty: ColumnProfile
    if isinstance(column, NumericProfile):
        empty = NumericProfile(sketch_k=column.sketch_k, integer=column.integer)
    elif isinstance(column, DatetimeProfile):
        empty = DatetimeProfile()
    else:
        empty = CategoryProfile(max_categories=column.max_categories, family=column.family)
    empty.missing = rows
    return column.merge(empty)  # type: ignore[arg-type]


def _batch_family(column: ColumnBatch) -> str:
    if isinstance(column, NumericBatch):
        return Family.NUMERIC
    if isinstance(column, DatetimeBatch):
        return Family.DATETIME
    return column.family


def profile_arrays(columns: Mapping[str, Any], *, sketch_k: int = SKETCH_K,
                   max_categories: int = MAX_CATEGORIES) -> Profile:  # fmt: skip
    """The profile of in-memory columns (numpy arrays or lists), in one batch."""
    profile = Profile(sketch_k=sketch_k, max_categories=max_categories)
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput("Every column must have the same number of rows.", field="columns")
    rows = lengths.pop() if lengths else 0
    batch: dict[str, ColumnBatch] = {}
    for name, values in columns.items():
        arr = np.asarray(values)
        family = family_of(arr)
        if family == Family.NUMERIC:
            floats = arr if arr.dtype.kind in "iuf" else _object_floats(arr)
            batch[name] = NumericBatch(floats.astype(np.float64), integer=arr.dtype.kind in "iu")
        elif family == Family.DATETIME:
            present = arr[~np.isnat(arr)]
            batch[name] = DatetimeBatch(present.astype("datetime64[ns]").view(np.int64),
                                        missing=int(arr.size - present.size))  # fmt: skip
        else:
            counted = categorical_sample(arr)
            kept = family if family == Family.BOOLEAN else Family.STRING
            batch[name] = CategoryBatch(counted.keys, counted.counts, counted.missing, kept)
    profile.update(batch, rows)
    return profile


def _object_floats(arr: Any) -> FloatArray:
    return np.array([np.nan if v is None else float(v) for v in arr.tolist()], dtype=np.float64)


def merge_all(profiles: Iterable[Profile]) -> Profile:
    """The merge of several profiles (e.g. one per partition), in order."""
    merged: Profile | None = None
    for profile in profiles:
        merged = profile if merged is None else merged.merge(profile)
    return merged if merged is not None else Profile()
