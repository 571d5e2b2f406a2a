"""Each drift statistic against its reference implementation (scipy; Evidently's formulas),
on random samples and on the inputs that break naive code: ties, constants, one row, huge and
tiny magnitudes, a weighted (profiled) reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from steward.stats import _drift_stats as ds
from steward.stats._samples import NumericSample, categorical_sample, numeric_sample

SIZES = [(1, 1), (1, 7), (5, 3), (50, 70), (1000, 20_000), (12_000, 30_001), (40_000, 40_000)]


def _pair(seed: int, n1: int, n2: int, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, 1.0, n1), rng.normal(0.1, 1.2, n2)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


@pytest.mark.parametrize(("n1", "n2"), SIZES)
@pytest.mark.parametrize("ties", [False, True])
def test_ks_matches_scipy(n1: int, n2: int, ties: bool) -> None:
    a, b = _pair(n1 + n2, n1, n2, ties=ties)
    expected = stats.ks_2samp(a, b)  # method="auto", as Evidently calls it
    d, p = ds.ks_test(numeric_sample(a), numeric_sample(b))
    assert d == pytest.approx(float(expected.statistic), abs=1e-15)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2"), SIZES)
@pytest.mark.parametrize("ties", [False, True])
def test_ks_statistic_from_the_merge_is_scipys(n1: int, n2: int, ties: bool) -> None:
    """The merge computes D itself (used above scipy's exact-p-value sizes)."""
    a, b = _pair(7 * n1 + n2, n1, n2, ties=ties)
    assert ds.ks_statistic(numeric_sample(a), numeric_sample(b)) == pytest.approx(
        float(stats.ks_2samp(a, b).statistic), abs=1e-15
    )


def test_ks_asymptotic_branch_is_scipys_asymp() -> None:
    a, b = _pair(3, 20_000, 15_000)
    expected = stats.ks_2samp(a, b, method="asymp")
    d, p = ds.ks_test(numeric_sample(a), numeric_sample(b))
    assert (d, p) == pytest.approx((float(expected.statistic), float(expected.pvalue)), rel=1e-12)


@pytest.mark.parametrize(("n1", "n2"), SIZES)
@pytest.mark.parametrize("ties", [False, True])
def test_wasserstein_matches_scipy(n1: int, n2: int, ties: bool) -> None:
    a, b = _pair(n1 * 3 + n2, n1, n2, ties=ties)
    expected = stats.wasserstein_distance(a, b)
    assert ds.wasserstein(numeric_sample(a), numeric_sample(b)) == pytest.approx(
        expected, rel=1e-12, abs=1e-15
    )


def test_wasserstein_normed_is_evidentlys_formula() -> None:
    a, b = _pair(11, 3000, 2000)
    norm = max(float(np.std(a)), 0.001)  # evidently: wasserstein_distance_norm.py
    expected = stats.wasserstein_distance(a, b) / norm
    assert ds.wasserstein_normed(numeric_sample(a), numeric_sample(b)) == pytest.approx(
        expected, rel=1e-12
    )


def test_wasserstein_with_a_weighted_reference_matches_scipy_weights() -> None:
    rng = np.random.default_rng(5)
    values = np.sort(rng.normal(size=300))
    weights = rng.integers(1, 20, 300).astype(float)
    current = rng.normal(0.2, 1.0, 5000)
    ref = NumericSample(values=values, weights=weights, n=int(weights.sum()))
    expected = stats.wasserstein_distance(values, current, u_weights=weights)
    assert ds.wasserstein(ref, numeric_sample(current)) == pytest.approx(expected, rel=1e-12)
    # ... and D from weights equals D on the expanded sample
    expanded = np.repeat(values, weights.astype(int))
    assert ds.ks_statistic(ref, numeric_sample(current)) == pytest.approx(
        float(stats.ks_2samp(expanded, current).statistic), abs=1e-12
    )


def test_constant_columns() -> None:
    same = numeric_sample(np.full(100, 3.0))
    other = numeric_sample(np.full(80, 4.0))
    assert ds.ks_test(same, same) == (0.0, 1.0)
    assert ds.wasserstein_normed(same, same) == 0.0
    # std 0 is floored at 0.001, as Evidently floors it: a unit shift is 1000 stds
    assert ds.wasserstein_normed(same, other) == pytest.approx(1.0 / 0.001)
    assert ds.ks_test(same, other)[0] == 1.0


@pytest.mark.parametrize("exponent", [300, -300])
def test_huge_and_tiny_magnitudes_scale_exactly(exponent: int) -> None:
    """Finite inputs give finite answers: 1e300 squared would overflow, 1e-300 underflow."""
    a, b = _pair(9, 2000, 1500)
    factor = 10.0**exponent
    plain = ds.wasserstein_normed(numeric_sample(a), numeric_sample(b))
    scaled = ds.wasserstein_normed(numeric_sample(a * factor), numeric_sample(b * factor))
    assert np.isfinite(scaled)
    if exponent > 0:
        assert scaled == pytest.approx(plain, rel=1e-9)
    else:  # the std (~1e-300) is below Evidently's floor: the distance is divided by 0.001
        assert scaled == pytest.approx(stats.wasserstein_distance(a, b) * factor / 0.001, rel=1e-9)
    w = ds.wasserstein(numeric_sample(a * factor), numeric_sample(b * factor))
    assert w == pytest.approx(stats.wasserstein_distance(a, b) * factor, rel=1e-9)
    assert ds.ks_test(numeric_sample(a * factor), numeric_sample(b * factor)) == ds.ks_test(
        numeric_sample(a), numeric_sample(b)
    )


def test_values_spanning_the_whole_float_range() -> None:
    a = numeric_sample(np.array([-1.7e308, 0.0, 1.7e308]))
    b = numeric_sample(np.array([-1.7e308, 1.0, 1.7e308]))
    assert np.isfinite(ds.wasserstein(a, b))
    assert np.isfinite(ds.wasserstein_normed(a, b))


def test_numeric_sample_drops_and_counts_non_finite_values() -> None:
    sample = numeric_sample(np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 0.5]))
    assert sample.values.tolist() == [0.5, 1.0, 2.0]
    assert (sample.n, sample.missing) == (3, 3)
    objects = numeric_sample(np.array([1, None, 3], dtype=object))
    assert (objects.n, objects.missing) == (2, 1)


# -- binned tests ------------------------------------------------------------------------------
@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (30, 40), (5000, 3000), (100_000, 7)])
def test_sturges_edges_match_numpy(n1: int, n2: int) -> None:
    a, b = _pair(n1, n1, n2)
    expected = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
    found = ds.sturges_edges(numeric_sample(a), numeric_sample(b))
    np.testing.assert_array_equal(found, expected)


def test_sturges_edges_of_integers_are_at_least_one_wide() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 30, 50_000), rng.integers(0, 30, 40_000)
    expected = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
    np.testing.assert_array_equal(ds.sturges_edges(numeric_sample(a), numeric_sample(b)), expected)


def _evidently_binned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data (stattests/utils.py) for a numerical column, transcribed."""
    if np.unique(a).size > 20:
        bins = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
        return np.histogram(a, bins)[0] / a.size, np.histogram(b, bins)[0] / b.size
    keys = np.union1d(a, b)
    return (
        np.array([np.sum(a == k) for k in keys]) / a.size,
        np.array([np.sum(b == k) for k in keys]) / b.size,
    )


@pytest.mark.parametrize("distinct", [3, 20, 21, 500])
def test_numeric_shares_are_evidentlys_bins(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    a = rng.integers(0, distinct, 4000).astype(float)
    b = rng.integers(0, distinct, 3000).astype(float) + (rng.random(3000) < 0.1)
    ref_shares, cur_shares = ds.numeric_shares(numeric_sample(a), numeric_sample(b))
    expected_ref, expected_cur = _evidently_binned(a, b)
    np.testing.assert_allclose(ref_shares, expected_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(cur_shares, expected_cur, rtol=0, atol=1e-15)


def test_jensenshannon_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    p, q = rng.random(12), rng.random(12)
    p, q = p / p.sum(), q / q.sum()
    assert ds.jensenshannon(p, q) == pytest.approx(float(distance.jensenshannon(p, q)), rel=1e-14)
    assert ds.jensenshannon(p, p) == 0.0


def test_psi_is_evidentlys_formula() -> None:
    ref = np.array([0.5, 0.3, 0.2, 0.0])
    cur = np.array([0.4, 0.3, 0.0, 0.3])
    # evidently/legacy/calculations/stattests/psi.py with feel_zeroes: zeros become 0.0001
    r = np.where(ref == 0, 0.0001, ref)
    c = np.where(cur == 0, 0.0001, cur)
    assert ds.psi(ref, cur) == pytest.approx(float(np.sum((r - c) * np.log(r / c))), rel=1e-14)
    # a smallest share below 0.0001 fills zeros with a millionth of it instead
    tiny = np.array([0.99995, 0.00005, 0.0])
    filled = np.where(tiny == 0, 0.00005 / 1e6, tiny)
    even = np.array([0.5, 0.25, 0.25])
    expected = float(np.sum((filled - even) * np.log(filled / even)))
    assert ds.psi(tiny, even) == pytest.approx(expected, rel=1e-14)


# -- categorical -------------------------------------------------------------------------------
def test_chisquare_matches_scipy_with_evidentlys_expected_counts() -> None:
    rng = np.random.default_rng(8)
    ref = categorical_sample(rng.choice(list("abcd"), 900, p=[0.4, 0.3, 0.2, 0.1]))
    cur = categorical_sample(rng.choice(list("abcd"), 700))
    keys, ref_counts, cur_counts = ds.aligned_counts(ref, cur)
    expected = stats.chisquare(cur_counts, ref_counts * (cur_counts.sum() / ref_counts.sum()))
    assert ds.chisquare_test(ref_counts, cur_counts) == pytest.approx(
        (float(expected.statistic), float(expected.pvalue)), rel=1e-12
    )
    assert sorted(keys) == ["a", "b", "c", "d"]


def test_chisquare_defined_answers() -> None:
    # one category on both sides: no drift (scipy: NaN with 0 degrees of freedom)
    assert ds.chisquare_test(np.array([10.0]), np.array([7.0])) == (0.0, 1.0)
    # a category the reference never had: infinite statistic, p = 0
    stat, p = ds.chisquare_test(np.array([10.0, 0.0]), np.array([5.0, 5.0]))
    assert (stat, p) == (np.inf, 0.0)


def _evidently_z(ref: list[str], cur: list[str]) -> float:
    """evidently/legacy/calculations/stattests/z_stattest.py, transcribed."""
    if len(set(ref)) == 1 and len(set(cur)) == 1 and ref[0] == cur[0]:
        return 1.0
    first = sorted(set(ref) | set(cur))[0]
    r = np.array([0 if x == first else 1 for x in ref])
    c = np.array([0 if x == first else 1 for x in cur])
    p1, p2 = r.mean(), c.mean()
    pooled = (p1 * r.size + p2 * c.size) / (r.size + c.size)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / r.size + 1 / c.size))
    return float(2 * (1 - stats.norm.cdf(abs(z))))


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        (["y"] * 60 + ["n"] * 40, ["y"] * 45 + ["n"] * 55),
        (["y"] * 10, ["y"] * 20),
        (["y"] * 10, ["n"] * 20),
        (["b"] * 3 + ["a"] * 9, ["a"] * 5),
    ],
)
def test_z_test_matches_evidentlys(ref: list[str], cur: list[str]) -> None:
    keys, ref_counts, cur_counts = ds.aligned_counts(
        categorical_sample(ref), categorical_sample(cur)
    )
    _, p = ds.z_test(keys, ref_counts, cur_counts)
    assert p == pytest.approx(_evidently_z(ref, cur), rel=1e-12, abs=1e-15)


def test_categorical_sample_counts_nulls_as_missing() -> None:
    sample = categorical_sample(np.array(["a", None, "b", "a", float("nan")], dtype=object))
    assert dict(zip(sample.keys, sample.counts.tolist(), strict=True)) == {"a": 2, "b": 1}
    assert sample.missing == 2


def test_wasserstein_of_two_weighted_samples_and_the_merge_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(12)
    u, v = np.sort(rng.normal(size=400)), np.sort(rng.normal(0.3, 2, 700))
    wu, wv = rng.integers(1, 9, 400).astype(float), rng.integers(1, 5, 700).astype(float)
    a = NumericSample(values=u, weights=wu, n=int(wu.sum()))
    b = NumericSample(values=v, weights=wv, n=int(wv.sum()))
    expected = stats.wasserstein_distance(u, v, u_weights=wu, v_weights=wv)
    assert ds.wasserstein(a, b) == pytest.approx(expected, rel=1e-12)
    # past int64's common scale, the merge computes it (the same figure)
    from steward.stats import _wasserstein

    monkeypatch.setattr(_wasserstein, "MAX_SCALE", 1)
    assert ds.wasserstein(a, b) == pytest.approx(expected, rel=1e-12)
    x, y = _pair(13, 3000, 2000)
    assert ds.wasserstein(numeric_sample(x), numeric_sample(y)) == pytest.approx(
        stats.wasserstein_distance(x, y), rel=1e-12
    )
