"""Profiles: exact where documented, mergeable, round-tripped through JSON, and usable as the
reference of a drift test."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from steward.domain.drift import DriftMethod
from steward.errors import InvalidInput
from steward.stats.drift import compare, compare_with_profile
from steward.stats.profile import (
    CategoryBatch,
    CategoryProfile,
    NumericBatch,
    NumericProfile,
    Profile,
    merge_all,
    profile_arrays,
)

ROWS = 6000


def _table(seed: int, n: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 3.0, n)
    x[rng.random(n) < 0.05] = np.nan
    x[:3] = [np.inf, -np.inf, np.nan]
    return {
        "x": x,  # continuous: sketched
        "rounded": np.round(rng.normal(0, 1, n), 1),  # ~70 values: counted exactly
        "count": rng.integers(0, 7, n),  # integer, <= 10 values: categorical
        "plan": rng.choice(np.array(["free", "pro", "team", None], dtype=object), n),
        "flag": rng.random(n) < 0.3,
        "when": (np.datetime64("2024-01-01") + rng.integers(0, 10**6, n).astype("timedelta64[s]")),
    }


def _split(table: dict[str, np.ndarray], cuts: list[int]) -> list[dict[str, np.ndarray]]:
    edges = [0, *cuts, len(next(iter(table.values())))]
    return [{k: v[a:b] for k, v in table.items()} for a, b in itertools.pairwise(edges)]


def _exact_part(column: dict[str, Any]) -> dict[str, Any]:
    """What must merge exactly: everything but the sketch and the floating-point moments."""
    skip = {"sketch", "quantiles", "mean", "std", "rank_error", "distinct_floor"}  # a bound
    return {k: v for k, v in column.items() if k not in skip}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_merge_equals_the_profile_of_the_union(seed: int) -> None:
    table = _table(seed)
    rng = np.random.default_rng(seed + 100)
    cuts = sorted(rng.choice(np.arange(1, ROWS), size=int(rng.integers(1, 5)), replace=False))
    merged = merge_all(profile_arrays(part) for part in _split(table, list(cuts)))
    whole = profile_arrays(table)
    assert merged.rows == whole.rows == ROWS
    for name, column in whole.to_dict()["columns"].items():
        got = merged.to_dict()["columns"][name]
        assert _exact_part(got) == _exact_part(column), name
        if column["family"] == "numeric":
            assert got["mean"] == pytest.approx(column["mean"], rel=1e-12)
            assert got["std"] == pytest.approx(column["std"], rel=1e-12)


def test_counts_and_moments_are_numpys() -> None:
    table = _table(4)
    x = table["x"]
    finite = x[np.isfinite(x)]
    column = profile_arrays(table).columns["x"]
    assert isinstance(column, NumericProfile)
    assert (column.count, column.missing, column.infinite) == (
        finite.size, int(np.isnan(x).sum()), 2)  # fmt: skip
    assert (column.minimum, column.maximum) == (finite.min(), finite.max())
    assert column.mean == pytest.approx(float(finite.mean()), rel=1e-12)
    assert column.std == pytest.approx(float(finite.std()), rel=1e-12)
    assert column.values is None  # thousands of distinct values: the sketch carries them
    rounded = profile_arrays(table).columns["rounded"]
    assert isinstance(rounded, NumericProfile)
    assert rounded.values is not None
    keys, counts = np.unique(table["rounded"], return_counts=True)
    assert rounded.values == dict(zip(keys.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("parts", [1, 7])
def test_sketch_quantiles_are_within_the_rank_error(parts: int) -> None:
    rng = np.random.default_rng(parts)
    x = rng.lognormal(0, 1, 200_000)
    profile = merge_all(profile_arrays({"x": p}) for p in np.array_split(x, parts))
    column = profile.columns["x"]
    assert isinstance(column, NumericProfile)
    epsilon = column.rank_error
    assert 0 < epsilon < 0.005
    ordered = np.sort(x)
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        estimate = column.sketch.get_quantile(q)
        true_rank = np.searchsorted(ordered, estimate, side="right") / x.size
        assert abs(true_rank - q) <= epsilon, q


def test_categories_past_the_cap_go_to_other() -> None:
    values = np.array(list("aaaaabbbbcccdde") * 10, dtype=object)
    profile = profile_arrays({"c": values}, max_categories=3)
    column = profile.columns["c"]
    assert isinstance(column, CategoryProfile)
    assert column.counts == {"a": 50, "b": 40, "c": 30}
    assert (column.other, column.count, column.exact) == (30, 150, False)
    # merged in pieces: totals stay exact, a kept count is low by at most `other`
    pieces = merge_all(
        profile_arrays({"c": p}, max_categories=3) for p in np.array_split(values, 5)
    )
    kept = pieces.columns["c"]
    assert isinstance(kept, CategoryProfile)
    assert kept.count == 150
    assert sum(kept.counts.values()) + kept.other == 150
    true = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 10}
    for key, count in kept.counts.items():
        assert true[key] - kept.other <= count <= true[key]


def test_json_round_trip() -> None:
    profile = profile_arrays(_table(5))
    text = profile.to_json()
    again = Profile.from_json(text)
    assert again.to_dict() == profile.to_dict()
    assert again.to_json() == text
    assert '"format":"steward.profile/1"' in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"format": "other"}', "Not a Steward profile"),
        ('{"format": "steward.profile/1", "rows": 1}', "malformed"),
    ],
)
def test_bad_profile_json_is_invalid_input(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Profile.from_json(text)


def test_a_column_that_changes_type_between_batches() -> None:
    profile = Profile()
    profile.update({"x": NumericBatch(np.arange(3.0))}, rows=3)
    with pytest.raises(InvalidInput, match="Column 'x' changed type within the data"):
        profile.update({"x": CategoryBatch(["a"], np.array([3]), 0)}, rows=3)


def test_columns_missing_from_a_batch_or_a_profile_count_as_missing() -> None:
    profile = Profile()
    profile.update({"x": NumericBatch(np.arange(3.0))}, rows=3)
    profile.update({"y": NumericBatch(np.arange(2.0))}, rows=2)
    assert profile.columns["x"].missing == 2
    assert profile.columns["y"].missing == 3
    other = profile_arrays({"z": np.arange(4.0)})
    merged = profile.merge(other)
    assert merged.rows == 9
    assert {n: c.missing for n, c in merged.columns.items()} == {"x": 6, "y": 7, "z": 5}


# -- drift against a profile -------------------------------------------------------------------
def _drifted(seed: int, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    ref, cur = _table(seed, n), _table(seed + 50, n)
    cur["x"] = cur["x"] + 1.5
    cur["plan"] = np.where(np.arange(n) % 3 == 0, "free", cur["plan"])
    return ref, cur


def test_drift_from_a_small_profile_is_exact() -> None:
    """At most 1000 reference values (Evidently's KS size) the profile keeps every value."""
    ref, cur = _drifted(6, 900)
    from_raw = compare(ref, cur)
    from_profile = compare_with_profile(profile_arrays(ref), cur)
    assert from_profile.reference_from_profile
    for raw, prof in zip(from_raw.columns, from_profile.columns, strict=True):
        assert (prof.column, prof.kind, prof.method) == (raw.column, raw.kind, raw.method)
        assert prof.exact
        if raw.score is not None:
            assert prof.score == pytest.approx(raw.score, rel=1e-9, abs=1e-12), raw.column
        assert prof.drifted == raw.drifted
    assert from_profile.column("x").method is DriftMethod.KS


def test_drift_from_a_large_profile_is_within_its_bound() -> None:
    ref, cur = _drifted(7, 60_000)
    from_raw = compare(ref, cur)
    from_profile = compare_with_profile(profile_arrays(ref), cur)
    for raw, prof in zip(from_raw.columns, from_profile.columns, strict=True):
        assert (prof.method, prof.drifted) == (raw.method, raw.drifted), raw.column
        if prof.exact:
            if raw.score is not None:
                assert prof.score == pytest.approx(raw.score, rel=1e-9, abs=1e-12), raw.column
            continue
        assert prof.method is DriftMethod.WASSERSTEIN
        assert prof.error_bound is not None
        assert raw.score is not None
        assert prof.score is not None
        assert abs(prof.score - raw.score) <= prof.error_bound
    assert not from_profile.column("x").exact
    assert from_profile.column("rounded").exact  # few distinct values: exact counts


def test_forced_ks_on_a_sketched_reference_is_within_the_rank_error() -> None:
    rng = np.random.default_rng(8)
    ref, cur = rng.normal(size=50_000), rng.normal(0.02, 1, 20_000)
    from steward.stats.drift import DriftOptions

    options = DriftOptions(methods={"x": DriftMethod.KS})
    raw = compare({"x": ref}, {"x": cur}, options=options).column("x")
    prof = compare_with_profile(profile_arrays({"x": ref}), {"x": cur}, options=options).column("x")
    assert not prof.exact
    assert prof.error_bound is not None
    assert raw.statistic is not None
    assert prof.statistic is not None
    assert abs(prof.statistic - raw.statistic) <= prof.error_bound
