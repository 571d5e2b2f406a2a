"""The sample-ratio check against scipy's chi-square."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from steward.errors import InvalidInput
from steward.stats.srm import sample_ratio_mismatch


@pytest.mark.parametrize("seed", range(30))
def test_matches_scipy_chisquare(seed: int) -> None:
    rng = np.random.default_rng(seed)
    arms = int(rng.integers(2, 8))
    weights = rng.uniform(0.5, 3, arms)
    counts = rng.multinomial(int(rng.integers(100, 100_000)), weights / weights.sum())
    result = sample_ratio_mismatch(counts, weights)
    expected = counts.sum() * weights / weights.sum()
    ref = stats.chisquare(counts, expected)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)
    assert result.df == arms - 1
    assert list(result.expected.values()) == pytest.approx(expected)
    assert list(result.observed) == [str(i) for i in range(arms)]
    assert result.mismatch == (ref.pvalue < 0.001)


def test_mapping_input_with_weights_by_name() -> None:
    result = sample_ratio_mismatch({"control": 5000, "b": 5200}, {"b": 1, "control": 1})
    assert result.expected == {"control": 5100.0, "b": 5100.0}
    assert not result.mismatch
    assert sample_ratio_mismatch({"control": 5000, "b": 5600}).mismatch


def test_threshold_is_applied() -> None:
    counts = [1000, 1100]
    p = stats.chisquare(counts).pvalue
    assert 0.01 < p < 0.05
    assert not sample_ratio_mismatch(counts).mismatch
    assert sample_ratio_mismatch(counts, threshold=0.05).mismatch


def test_no_observations_is_not_a_mismatch() -> None:
    result = sample_ratio_mismatch([0, 0, 0])
    assert result.p_value == 1.0
    assert not result.mismatch
    assert result.notes


def test_small_counts_get_a_note() -> None:
    assert "rough" in sample_ratio_mismatch([3, 1]).notes[0]


@pytest.mark.parametrize(
    ("counts", "weights", "field"),
    [
        ([10], None, "counts"),
        ([10, -1], None, "counts"),
        ([10.5, 3], None, "counts"),
        ([10, 3], [1, 0], "weights"),
        ([10, 3], [1, float("nan")], "weights"),
        ([10, 3], [1, 2, 3], "weights"),
        ({"a": 1, "b": 2}, {"a": 1, "c": 1}, "weights"),
    ],
)
def test_bad_input_names_the_field(counts: object, weights: object, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        sample_ratio_mismatch(counts, weights)
    assert err.value.field == field


def test_threshold_must_be_a_probability() -> None:
    with pytest.raises(InvalidInput) as err:
        sample_ratio_mismatch([1, 2], threshold=0)
    assert err.value.field == "threshold"
