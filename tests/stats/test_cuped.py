"""CUPED from sums against an OLS regression and a t-test on the raw adjusted values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from steward.errors import InvalidInput
from steward.stats.ab import Summary, analyze, compare_means, summaries_by_group
from steward.stats.cuped import adjust, fit_cuped


def experiment(seed: int, arms: int = 3, rho: float = 0.7) -> tuple[np.ndarray, ...]:
    """Rows with a pre-period covariate correlated ``rho`` with the metric; arm k adds k/10."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 3000))
    groups = rng.integers(0, arms, n)
    x = rng.normal(20, 4, n)
    noise = rng.normal(0, 4, n)
    y = 5 + rho * x + np.sqrt(1 - rho**2) * noise + groups / 10
    return groups, y, x


@pytest.mark.parametrize("seed", range(20))
def test_theta_and_adjusted_means_match_ols(seed: int) -> None:
    groups, y, x = experiment(seed)
    summaries = {str(g): s for g, s in enumerate(summaries_by_group(groups, y, x))}
    fit = fit_cuped(summaries)
    design = np.column_stack([np.ones_like(x), x])
    (_, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    assert fit.theta == pytest.approx(slope, rel=1e-9)
    assert fit.covariate_mean == pytest.approx(x.mean(), rel=1e-12)
    adjusted_rows = y - slope * (x - x.mean())
    for g, summary in summaries.items():
        rows = adjusted_rows[groups == int(g)]
        got = adjust(summary, fit)
        assert got.mean == pytest.approx(rows.mean(), rel=1e-10)
        assert got.variance == pytest.approx(rows.var(ddof=1), rel=1e-8)
    reduction = 1 - adjusted_rows.var() / y.var()
    assert fit.variance_reduction == pytest.approx(reduction, rel=1e-8)
    assert fit.variance_reduction == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-8)


@pytest.mark.parametrize("seed", range(10))
def test_cuped_analysis_is_welch_on_the_adjusted_rows(seed: int) -> None:
    groups, y, x = experiment(seed)
    summaries = {str(g): s for g, s in enumerate(summaries_by_group(groups, y, x))}
    analysis = analyze(summaries, "0", cuped=True)
    theta = analysis.cuped.theta
    adjusted_rows = y - theta * (x - x.mean())
    for g, comparison in analysis.comparisons.items():
        control, treatment = adjusted_rows[groups == 0], adjusted_rows[groups == int(g)]
        ref = stats.ttest_ind(treatment, control, equal_var=False)
        assert comparison.p_value == pytest.approx(ref.pvalue, rel=1e-6)
        assert comparison.df == pytest.approx(ref.df, rel=1e-8)
        assert comparison.treatment.mean == pytest.approx(treatment.mean(), rel=1e-10)
        assert comparison.treatment.raw_mean == pytest.approx(y[groups == int(g)].mean())
        raw = compare_means(summaries["0"], summaries[g])
        width = comparison.difference_ci.upper - comparison.difference_ci.lower
        raw_width = raw.difference_ci.upper - raw.difference_ci.lower
        assert width < raw_width
        expected = 1 - (width / raw_width) ** 2  # same df-free ratio of variances, near enough
        assert comparison.cuped.variance_reduction == pytest.approx(expected, rel=0.02)
        assert comparison.cuped.theta == theta


def test_constant_covariate_means_no_adjustment() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    a = Summary.from_values(y[:100], np.ones(100))
    b = Summary.from_values(y[100:], np.ones(100))
    fit = fit_cuped({"a": a, "b": b})
    assert fit.theta == 0.0
    assert fit.variance_reduction == 0.0
    assert "constant" in fit.notes[0]
    analysis = analyze({"a": a, "b": b}, "a", cuped=True)
    plain = compare_means(a, b, names=("a", "b"))
    assert analysis.comparisons["b"].p_value == pytest.approx(plain.p_value, rel=1e-12)
    assert analysis.comparisons["b"].cuped.variance_reduction == pytest.approx(0.0, abs=1e-12)
    assert analysis.notes == fit.notes


def test_constant_metric_has_nothing_to_reduce() -> None:
    a = Summary.from_values(np.full(10, 3.0), np.arange(10.0))
    b = Summary.from_values(np.full(12, 3.0), np.arange(12.0))
    fit = fit_cuped({"a": a, "b": b})
    assert fit.theta == 0.0
    assert fit.variance_reduction == 0.0
    comparison = analyze({"a": a, "b": b}, "a", cuped=True).comparisons["b"]
    assert comparison.p_value == 1.0


def test_single_row_arm_has_no_reduction() -> None:
    a = Summary.from_values([1.0, 2.0, 3.0], [1.0, 2.5, 2.0])
    b = Summary.from_values([4.0], [3.0])
    comparison = analyze({"a": a, "b": b}, "a", cuped=True).comparisons["b"]
    assert comparison.p_value is None
    assert comparison.cuped.variance_reduction is None


def test_cuped_on_conversions_uses_welch_with_a_note() -> None:
    rng = np.random.default_rng(3)
    x = rng.poisson(2, 4000).astype(float)
    y = (rng.random(4000) < 0.05 + 0.03 * np.minimum(x, 4)).astype(float)
    groups = rng.integers(0, 2, 4000)
    summaries = dict(zip("ab", summaries_by_group(groups, y, x), strict=True))
    comparison = analyze(summaries, "a", kind="proportion", cuped=True).comparisons["b"]
    assert comparison.test == "welch_t"
    assert comparison.kind == "proportion"
    assert comparison.relative_ci_log is None
    assert any("no longer 0/1" in note for note in comparison.notes)


def test_too_few_rows_leave_theta_at_zero() -> None:
    fit = fit_cuped(
        {"a": Summary.from_values([1.0], [2.0]), "b": Summary(0, 0.0, 0.0, 0.0, 0.0, 0.0)}
    )
    assert (fit.theta, fit.covariate_mean, fit.variance_reduction) == (0.0, 2.0, 0.0)
    assert "Fewer than 2 rows" in fit.notes[0]


def test_cuped_needs_covariate_sums() -> None:
    with pytest.raises(InvalidInput) as err:
        fit_cuped(
            {"a": Summary.from_values([1.0, 2.0], [1.0, 2.0]), "b": Summary.from_values([1.0])}
        )
    assert err.value.field == "summaries['b'].cov_sum"
    with pytest.raises(InvalidInput):
        adjust(
            Summary.from_values([1.0, 2.0]),
            fit_cuped({"a": Summary.from_values([1.0, 2.0], [1.0, 3.0])}),
        )
