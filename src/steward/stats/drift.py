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

from steward.domain.drift import (
    DEFAULT_DRIFT_SHARE,
    ColumnDrift,
    ColumnKind,
    DriftMethod,
    DriftReport,
)
from steward.errors import InvalidInput
from steward.stats._column_drift import (
    ColumnData,
    choose_method,
    column_drift,
    column_result,
    infer_kind,
    prepare,
)
from steward.stats.profile import CategoryProfile, DatetimeProfile, Profile

__all__ = [
    "ColumnData",
    "DriftOptions",
    "choose_method",
    "column_drift",
    "compare",
    "compare_with_profile",
    "infer_kind",
    "prepare",
    "profile_column",
]


@dataclass(frozen=True)
class DriftOptions:
    """Per-column overrides (by column name) and the dataset's drift share."""

    methods: Mapping[str, DriftMethod] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    kinds: Mapping[str, ColumnKind] = field(default_factory=dict)
    drift_share: float = DEFAULT_DRIFT_SHARE
    histograms: bool = False  # also bin both sides for a report (steward.stats.histogram)
    workers: int | None = None  # threads testing columns; None: the cores, at most 4


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
        return column_result(name, prepare(reference[name]), prepare(current[name]),
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
        return column_result(name, profile_column(profile, name), prepare(current[name]), kind,
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
