"""Drift between two tables, or between a reference profile and a table; profiles of tables.

    report = compare("reference.parquet", "current.parquet")
    profile = build_profile("reference.parquet")          # streamed in record batches
    Path("reference.profile.json").write_text(profile.to_json())
    report = compare("reference.profile.json", current_frame)   # never re-reads the reference

Tables are Parquet or CSV files, pyarrow Tables or pandas DataFrames (a mapping of column name
to numpy array works too). The statistics are ``steward.stats.drift``'s; this module reads the
tables and names the file in every error. docs/drift.md describes the tests and the profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from steward.domain.drift import DriftReport
from steward.errors import InvalidInput
from steward.monitoring._tables import (
    DEFAULT_BATCH_ROWS,
    ColumnReader,
    batches,
    column_batch,
    source,
)
from steward.stats import drift as stats_drift
from steward.stats.drift import DriftOptions
from steward.stats.profile import (
    MAX_CATEGORIES,
    SKETCH_K,
    ColumnBatch,
    Profile,
)

__all__ = [
    "DriftOptions",
    "Profile",
    "build_profile",
    "compare",
    "is_profile_path",
    "read_profile",
]

PROFILE_SUFFIX = ".json"


def compare(
    reference: Any,
    current: Any,
    *,
    columns: Iterable[str] | None = None,
    options: DriftOptions | None = None,
) -> DriftReport:
    """Drift of ``current`` from ``reference``; the reference may be a Profile or the path of
    a profile's JSON file, then it is never read again."""
    cur = _columns(current, "current data")
    _require_rows(cur, "current data")
    if isinstance(reference, Profile) or is_profile_path(reference):
        profile = reference if isinstance(reference, Profile) else read_profile(reference)
        return stats_drift.compare_with_profile(profile, cur, columns=columns, options=options)
    ref = _columns(reference, "reference")
    _require_rows(ref, "reference")
    return stats_drift.compare(ref, cur, columns=columns, options=options)


def _columns(data: Any, role: str) -> Mapping[str, Any]:
    if isinstance(data, Mapping) and not isinstance(data, Profile):
        return data  # column name -> array: the stats layer prepares them
    return ColumnReader(source(data, role), role)


def _require_rows(columns: Mapping[str, Any], role: str) -> None:
    label = columns.src.label if isinstance(columns, ColumnReader) else f"the {role}"
    if not len(columns):
        raise InvalidInput(f"The {role} {label} has no columns.", field=role)
    rows = columns.rows if isinstance(columns, ColumnReader) else None
    if rows == 0:
        raise InvalidInput(
            f"The {role} {label} has no rows: there is nothing to compare.", field=role
        )


def is_profile_path(data: Any) -> bool:
    return isinstance(data, str | Path) and Path(data).suffix.lower() == PROFILE_SUFFIX


def read_profile(path: str | Path) -> Profile:
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"The profile file {str(file)!r} does not exist.", field="reference")
    try:
        return Profile.from_json(file.read_bytes())
    except InvalidInput as exc:
        raise InvalidInput(f"{str(file)!r}: {exc.message}", field="reference") from exc


def build_profile(
    data: Any,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    sketch_k: int = SKETCH_K,
    max_categories: int = MAX_CATEGORIES,
) -> Profile:
    """The profile of a table, read in record batches of ``batch_rows`` rows: memory holds one
    batch plus the profile itself (bounded per column, see ``steward.stats.profile``)."""
    if batch_rows < 1:
        raise InvalidInput(
            f"'batch_rows' must be at least 1. Got {batch_rows}.", field="batch_rows"
        )
    if isinstance(data, Mapping):
        from steward.stats.profile import profile_arrays

        return profile_arrays(data, sketch_k=sketch_k, max_categories=max_categories)
    src = source(data, "data")
    profile = Profile(sketch_k=sketch_k, max_categories=max_categories)
    for batch in batches(src, "data", batch_rows):
        profile.update(_batch_columns(batch), rows=batch.num_rows)
    if profile.rows == 0:
        raise InvalidInput(f"The data {src.label} has no rows: nothing to profile.", field="data")
    return profile


def _batch_columns(batch: Any) -> dict[str, ColumnBatch]:
    out: dict[str, ColumnBatch] = {}
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        column = column_batch(array)
        if column is not None:  # lists, structs, binary: nothing to summarise
            out[name] = column
    return out
