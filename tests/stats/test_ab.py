"""The A/B engine's estimators against scipy and statsmodels, and its degenerate cases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats._delta_method import NonlinearDeltaCov
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from steward.errors import InvalidInput
from steward.stats.ab import (
    Analysis,
    Comparison,
    Summary,
    adjust_across_metrics,
    analyze,
    compare_means,
    compare_proportions,
    summaries_by_group,
)

SEEDS = range(40)


def assert_clean(result: Comparison | Analysis) -> None:
    """No NaN or infinity anywhere in a result."""

    def walk(value: object) -> None:
        if isinstance(value, float):
            assert math.isfinite(value), result
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                walk(getattr(value, field.name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)

    walk(result)


def draw_means(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_c, n_t = rng.integers(2, 400, size=2)
    mean, sd = rng.normal(0, 20), rng.uniform(0.1, 10)
    control = rng.normal(mean, sd, n_c)
    treatment = rng.normal(mean + rng.normal(0, sd / 3), sd * rng.uniform(0.3, 3), n_t)
    return control, treatment


# -- Summary --------------------------------------------------------------------------------


def test_summary_moments_match_numpy() -> None:
    rng = np.random.default_rng(1)
    y, x = rng.normal(5, 2, 1000), rng.normal(3, 1, 1000)
    s = Summary.from_values(y, covariate=x)
    assert s.n == 1000
    assert s.mean == pytest.approx(y.mean(), rel=1e-13)
    assert s.variance == pytest.approx(y.var(ddof=1), rel=1e-11)
    assert s.cov_mean == pytest.approx(x.mean(), rel=1e-13)
    assert s.cov_variance == pytest.approx(x.var(ddof=1), rel=1e-11)
    assert s.covariance == pytest.approx(np.cov(x, y)[0, 1], rel=1e-10)


def test_merge_equals_summary_of_the_union() -> None:
    rng = np.random.default_rng(2)
    y, x = rng.normal(size=300), rng.normal(size=300)
    merged = Summary.from_values(y[:100], x[:100]).merge(Summary.from_values(y[100:], x[100:]))
    whole = Summary.from_values(y, x)
    assert merged.n == whole.n
    for name in ("sum", "sum_sq", "cov_sum", "cov_sum_sq", "cross_sum"):
        assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    with pytest.raises(InvalidInput) as err:
        Summary.from_values(y).merge(whole)
    assert err.value.field == "cov_sum"


def test_summaries_by_group_match_per_group_summaries() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 4, 5000)
    y, x = rng.normal(size=5000), rng.normal(size=5000)
    out = summaries_by_group(groups, y, x, n_groups=6)
    assert len(out) == 6
    for g in range(4):
        ref = Summary.from_values(y[groups == g], x[groups == g])
        assert out[g].n == ref.n
        assert out[g].mean == pytest.approx(ref.mean, rel=1e-12)
        assert out[g].variance == pytest.approx(ref.variance, rel=1e-10)
        assert out[g].covariance == pytest.approx(ref.covariance, rel=1e-10)
    assert out[4] == Summary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert [s.n for s in summaries_by_group(groups, y)] == [
        int((groups == g).sum()) for g in range(4)
    ]


def test_from_counts_and_from_moments() -> None:
    s = Summary.from_counts(200, 30)
    assert (s.n, s.sum, s.sum_sq) == (200, 30.0, 30.0)
    m = Summary.from_moments(50, 2.5, 4.0)
    assert m.mean == pytest.approx(2.5)
    assert m.variance == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": -1, "sum": 0.0, "sum_sq": 0.0}, "n"),
        ({"n": 2.5, "sum": 0.0, "sum_sq": 0.0}, "n"),
        ({"n": True, "sum": 0.0, "sum_sq": 0.0}, "n"),
        ({"n": 3, "sum": float("nan"), "sum_sq": 1.0}, "sum"),
        ({"n": 3, "sum": 1.0, "sum_sq": float("inf")}, "sum_sq"),
        ({"n": 3, "sum": 30.0, "sum_sq": 4.0}, "sum_sq"),  # a variance passed as sum_sq
        ({"n": 0, "sum": 1.0, "sum_sq": 1.0}, "sum_sq"),
        ({"n": 3, "sum": 3.0, "sum_sq": 5.0, "cov_sum": 1.0}, "cov_sum"),
        (
            {"n": 3, "sum": 3.0, "sum_sq": 5.0, "cov_sum": 9, "cov_sum_sq": 1, "cross_sum": 0},
            "cov_sum_sq",
        ),
        (
            {"n": 0, "sum": 0, "sum_sq": 0, "cov_sum": 0, "cov_sum_sq": 0, "cross_sum": 1},
            "cross_sum",
        ),
    ],
)
def test_summary_rejects_impossible_sums(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        Summary(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_raw_input_errors_name_the_field_and_row() -> None:
    with pytest.raises(InvalidInput, match="Row 2 is nan") as err:
        Summary.from_values([1.0, 2.0, np.nan])
    assert err.value.field == "values"
    with pytest.raises(InvalidInput) as err:
        Summary.from_values([1.0, 2.0], covariate=[1.0])
    assert err.value.field == "covariate"
    with pytest.raises(InvalidInput, match="Row 1 is inf") as err:
        summaries_by_group(np.array([0, 1, 1]), np.ones(3), np.array([0.0, np.inf, 1.0]))
    assert err.value.field == "covariate"
    with pytest.raises(InvalidInput) as err:
        summaries_by_group(np.array([0, -1]), np.ones(2))
    assert err.value.field == "groups"
    with pytest.raises(InvalidInput) as err:
        summaries_by_group(np.array([0.0, 1.0]), np.ones(2))
    assert err.value.field == "groups"
    with pytest.raises(InvalidInput) as err:
        summaries_by_group(np.array([0, 3]), np.ones(2), n_groups=3)
    assert err.value.field == "n_groups"
    with pytest.raises(InvalidInput, match="overflow"):
        summaries_by_group(np.array([0, 1]), np.array([1e200, 1.0]))


def test_undefined_moments_raise_instead_of_nan() -> None:
    with pytest.raises(InvalidInput) as err:
        _ = Summary(0, 0.0, 0.0).mean
    assert err.value.field == "n"
    with pytest.raises(InvalidInput):
        _ = Summary(1, 2.0, 4.0).variance
    with pytest.raises(InvalidInput) as err:
        _ = Summary(3, 2.0, 4.0).covariance
    assert err.value.field == "cov_sum"


# -- means ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_welch_matches_scipy_and_statsmodels(seed: int) -> None:
    control, treatment = draw_means(seed)
    alpha = [0.05, 0.01, 0.1, 0.2][seed % 4]
    result = compare_means(
        Summary.from_values(control), Summary.from_values(treatment), alpha=alpha
    )
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.test == "welch_t"
    assert result.difference == pytest.approx(
        treatment.mean() - control.mean(), rel=1e-9, abs=1e-12
    )
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-8)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-300)
    assert result.df == pytest.approx(ref.df, rel=1e-9)
    ci = ref.confidence_interval(1 - alpha)
    assert result.difference_ci == pytest.approx((ci.low, ci.high), rel=1e-8, abs=1e-10)
    sm = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    assert result.difference_ci == pytest.approx(
        sm.tconfint_diff(alpha=alpha, usevar="unequal"), rel=1e-8, abs=1e-10
    )
    assert result.control.std_error == pytest.approx(stats.sem(control), rel=1e-9)
    assert_clean(result)


@pytest.mark.parametrize("seed", SEEDS)
def test_relative_lift_is_the_delta_method(seed: int) -> None:
    control, treatment = draw_means(seed)
    result = compare_means(Summary.from_values(control), Summary.from_values(treatment))
    m_c, m_t = control.mean(), treatment.mean()
    assert result.relative == pytest.approx((m_t - m_c) / abs(m_c), rel=1e-9)
    sign = np.sign(m_c)  # a constant: statsmodels differentiates by complex step, not abs()
    delta = NonlinearDeltaCov(
        lambda p: np.atleast_1d(sign * (p[1] - p[0]) / p[0]),
        np.array([m_c, m_t]),
        np.diag([stats.sem(control) ** 2, stats.sem(treatment) ** 2]),
    )
    q = stats.t.ppf(0.975, result.df)
    half = q * float(delta.se_vectorized()[0])
    assert result.relative_ci == pytest.approx(
        (result.relative - half, result.relative + half), rel=1e-5, abs=1e-9
    )


def test_relative_interval_covers_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    truth, covered = 0.1, 0
    for _ in range(1000):
        c, t = rng.normal(10, 3, 300), rng.normal(11, 3, 300)
        lo, hi = compare_means(Summary.from_values(c), Summary.from_values(t)).relative_ci
        covered += lo <= truth <= hi
    assert 0.93 <= covered / 1000 <= 0.97


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference, not us
def test_one_constant_arm_is_an_ordinary_welch_test() -> None:
    control, treatment = np.full(20, 3.0), np.random.default_rng(0).normal(3.5, 1, 30)
    result = compare_means(Summary.from_values(control), Summary.from_values(treatment))
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert result.df == pytest.approx(29.0)


def test_constant_arms_with_equal_means_give_p_one() -> None:
    for value in (0.1, 7.0, 0.0):
        result = compare_means(
            Summary.from_values(np.full(3, value)), Summary.from_values(np.full(7, value))
        )
        assert result.p_value == 1.0
        assert result.difference == 0.0
        assert result.difference_ci == (0.0, 0.0)
        assert result.statistic is None
        assert result.notes
        assert_clean(result)


def test_constant_arms_with_different_means_are_certain() -> None:
    result = compare_means(Summary.from_values([2.0, 2.0]), Summary.from_values([5.0, 5.0, 5.0]))
    assert result.p_value == 0.0
    assert result.difference_ci == (3.0, 3.0)
    assert result.relative == pytest.approx(1.5)
    assert result.relative_ci == pytest.approx((1.5, 1.5))
    assert result.statistic is None
    assert "exact" in result.notes[0]
    assert_clean(result)


def test_single_observation_reports_point_estimates_only() -> None:
    result = compare_means(Summary.from_values([4.0]), Summary.from_values([5.0, 6.0, 7.0]))
    assert result.difference == pytest.approx(2.0)
    assert result.relative == pytest.approx(0.5)
    assert result.p_value is None
    assert result.difference_ci is None
    assert result.df is None
    assert result.control.std_error is None
    assert "single observation" in result.notes[0]
    assert result.significant is None
    assert_clean(result)


def test_zero_control_mean_leaves_the_difference_but_not_the_lift() -> None:
    control, treatment = np.array([-1.0, 1.0, -2.0, 2.0]), np.array([0.5, 1.5, 1.0])
    result = compare_means(Summary.from_values(control), Summary.from_values(treatment))
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.p_value == pytest.approx(ref.pvalue)
    assert result.relative is None
    assert result.relative_ci is None
    assert any("control's mean is 0" in note for note in result.notes)
    assert_clean(result)


def test_negative_control_mean_keeps_the_lift_sign() -> None:
    result = compare_means(
        Summary.from_values([-10.0, -11, -9]), Summary.from_values([-5.0, -6, -4])
    )
    assert result.difference > 0
    assert result.relative == pytest.approx(0.5)


def test_empty_arm_is_an_error_naming_it() -> None:
    with pytest.raises(InvalidInput) as err:
        compare_means(Summary.from_values([1.0, 2.0]), Summary(0, 0.0, 0.0))
    assert err.value.field == "treatment.n"
    with pytest.raises(InvalidInput) as err:
        compare_means(Summary.from_values([1.0, 2.0]), Summary.from_values([1.0]), alpha=1.5)
    assert err.value.field == "alpha"


# -- proportions ----------------------------------------------------------------------------


def draw_counts(seed: int) -> tuple[int, int, int, int]:
    rng = np.random.default_rng(seed)
    n_c, n_t = (int(v) for v in rng.integers(20, 5000, size=2))
    p = rng.uniform(0.02, 0.9)
    return (
        int(rng.binomial(n_c, p)),
        n_c,
        int(rng.binomial(n_t, min(p * rng.uniform(0.8, 1.25), 0.98))),
        n_t,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_unpooled_z_and_intervals_match_statsmodels(seed: int) -> None:
    x_c, n_c, x_t, n_t = draw_counts(seed)
    alpha = [0.05, 0.01, 0.1][seed % 3]
    result = compare_proportions(
        Summary.from_counts(n_c, x_c), Summary.from_counts(n_t, x_t), alpha=alpha
    )
    ref = sm_proportion.test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    assert result.test == "z_unpooled"
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)
    wald = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=alpha
    )
    assert result.difference_ci == pytest.approx(wald, rel=1e-9)
    log = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="log", compare="ratio", alpha=alpha)
    assert result.relative_ci_log == pytest.approx(np.asarray(log) - 1, rel=1e-9, abs=1e-12)
    assert result.relative == pytest.approx((x_t / n_t) / (x_c / n_c) - 1, rel=1e-12)
    assert_clean(result)


@pytest.mark.parametrize("seed", SEEDS)
def test_pooled_z_matches_statsmodels(seed: int) -> None:
    x_c, n_c, x_t, n_t = draw_counts(seed)
    result = compare_proportions(
        Summary.from_counts(n_c, x_c), Summary.from_counts(n_t, x_t), pooled=True
    )
    statistic, p_value = proportions_ztest([x_t, x_c], [n_t, n_c])
    assert result.test == "z_pooled"
    assert result.statistic == pytest.approx(statistic, rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("seed", SEEDS)
def test_proportion_relative_lift_is_the_delta_method(seed: int) -> None:
    x_c, n_c, x_t, n_t = draw_counts(seed)
    result = compare_proportions(Summary.from_counts(n_c, x_c), Summary.from_counts(n_t, x_t))
    p_c, p_t = x_c / n_c, x_t / n_t
    delta = NonlinearDeltaCov(
        lambda p: np.atleast_1d(p[1] / p[0] - 1),
        np.array([p_c, p_t]),
        np.diag([p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t]),
    )
    half = stats.norm.ppf(0.975) * float(delta.se_vectorized()[0])
    assert result.relative_ci == pytest.approx(
        (result.relative - half, result.relative + half), rel=1e-5, abs=1e-9
    )


def test_proportions_from_raw_zero_one_values() -> None:
    rng = np.random.default_rng(4)
    c, t = (rng.random(500) < 0.2).astype(float), (rng.random(600) < 0.25).astype(float)
    raw = compare_proportions(Summary.from_values(c), Summary.from_values(t))
    counts = compare_proportions(
        Summary.from_counts(500, c.sum()), Summary.from_counts(600, t.sum())
    )
    assert raw == counts


def test_all_zero_both_arms_give_p_one_and_an_adjusted_interval() -> None:
    result = compare_proportions(Summary.from_counts(1000, 0), Summary.from_counts(800, 0))
    assert result.difference == 0.0
    assert result.p_value == 1.0
    assert result.statistic is None
    ac = confint_proportions_2indep(0, 800, 0, 1000, method="agresti-caffo", compare="diff")
    assert result.difference_ci == pytest.approx(ac, rel=1e-12)
    assert result.relative is None
    assert result.relative_ci is None
    assert result.relative_ci_log is None
    assert any("Agresti" in note for note in result.notes)
    assert_clean(result)


def test_all_one_both_arms_give_zero_lift_with_a_real_interval() -> None:
    result = compare_proportions(Summary.from_counts(100, 100), Summary.from_counts(120, 120))
    assert result.p_value == 1.0
    assert result.relative == 0.0
    low, high = result.relative_ci_log
    assert low < 0.0 < high
    ref = confint_proportions_2indep(120.5, 121, 100.5, 101, method="log", compare="ratio")
    assert (low, high) == pytest.approx(np.asarray(ref) - 1, rel=1e-12)
    assert result.relative_ci == result.relative_ci_log
    assert_clean(result)


def test_zero_versus_one_uses_the_pooled_error() -> None:
    result = compare_proportions(Summary.from_counts(50, 0), Summary.from_counts(40, 40))
    statistic, p_value = proportions_ztest([40, 0], [40, 50])
    assert result.test == "z_pooled"
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p_value)
    assert -1.0 <= result.difference_ci.lower <= result.difference_ci.upper <= 1.0
    assert any("pooled one is used" in note for note in result.notes)
    assert_clean(result)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference, not us
def test_treatment_without_conversions_reaches_minus_one() -> None:
    result = compare_proportions(Summary.from_counts(1000, 100), Summary.from_counts(980, 0))
    assert result.relative == -1.0
    assert result.relative_ci_log.lower == -1.0
    assert result.relative_ci_log.upper < 0.0
    p = sm_proportion.test_proportions_2indep(0, 980, 100, 1000, method="wald").pvalue
    assert result.p_value == pytest.approx(p)
    assert_clean(result)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference, not us
def test_control_without_conversions_has_no_lift() -> None:
    result = compare_proportions(Summary.from_counts(1000, 0), Summary.from_counts(1000, 9))
    assert result.relative is None
    assert result.p_value == pytest.approx(
        sm_proportion.test_proportions_2indep(9, 1000, 0, 1000, method="wald").pvalue
    )
    assert_clean(result)


@pytest.mark.parametrize(
    ("summary", "field"),
    [
        (Summary(10, -2.0, 2.0), "treatment.sum"),
        (Summary(10, 3.0, 5.0), "treatment.sum_sq"),
        (Summary(0, 0.0, 0.0), "treatment.n"),
    ],
)
def test_proportions_reject_non_binary_summaries(summary: Summary, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        compare_proportions(Summary.from_counts(10, 3), summary)
    assert err.value.field == field


@pytest.mark.parametrize(
    "counts",
    [
        (0, 1, 0, 1),
        (1, 1, 1, 1),
        (0, 1, 1, 1),
        (1, 2, 0, 2),
        (0, 5, 5, 5),
        (3, 3, 0, 7),
        (2, 2, 1, 3),
    ],
)
@pytest.mark.parametrize("pooled", [False, True])
def test_tiny_proportions_are_never_nan(counts: tuple[int, int, int, int], pooled: bool) -> None:
    x_c, n_c, x_t, n_t = counts
    result = compare_proportions(
        Summary.from_counts(n_c, x_c), Summary.from_counts(n_t, x_t), pooled=pooled
    )
    assert result.p_value is not None
    assert 0.0 <= result.p_value <= 1.0
    assert result.difference_ci is not None
    assert_clean(result)


# -- analyze --------------------------------------------------------------------------------


def three_arms(seed: int = 0) -> dict[str, Summary]:
    rng = np.random.default_rng(seed)
    return {
        "control": Summary.from_values(rng.normal(10, 2, 1000)),
        "b": Summary.from_values(rng.normal(10.2, 2, 1010)),
        "c": Summary.from_values(rng.normal(10.0, 2.5, 990)),
    }


def test_analyze_compares_every_arm_and_adjusts_across_them() -> None:
    arms = three_arms()
    analysis = analyze(arms, "control")
    assert list(analysis.comparisons) == ["b", "c"]
    assert not analysis.srm.mismatch
    assert analysis.trustworthy
    for name, comparison in analysis.comparisons.items():
        alone = compare_means(arms["control"], arms[name], names=("control", name))
        assert dataclasses.replace(comparison, p_value_adjusted=None) == alone
    p = [c.p_value for c in analysis.comparisons.values()]
    holm = multipletests(p, method="holm")[1]
    assert [c.p_value_adjusted for c in analysis.comparisons.values()] == list(holm)
    assert_clean(analysis)


def test_analyze_reports_srm_first_and_still_answers() -> None:
    arms = three_arms()
    arms["b"] = Summary.from_values(np.random.default_rng(9).normal(10, 2, 1300))
    analysis = analyze(arms, "control")
    assert analysis.srm.mismatch
    assert not analysis.trustworthy
    assert "Sample-ratio mismatch" in analysis.notes[0]
    assert dataclasses.fields(Analysis)[0].name == "srm"
    assert set(analysis.comparisons) == {"b", "c"}
    weighted = analyze(arms, "control", weights={"control": 1000, "b": 1300, "c": 990})
    assert not weighted.srm.mismatch


def test_analyze_skips_an_empty_arm_with_a_note() -> None:
    arms = three_arms()
    arms["c"] = Summary(0, 0.0, 0.0)
    analysis = analyze(arms, "control")
    assert list(analysis.comparisons) == ["b"]
    assert any("'c' has no observations" in note for note in analysis.notes)


def test_analyze_proportions_pooled_and_unpooled() -> None:
    arms = {"a": Summary.from_counts(2000, 200), "b": Summary.from_counts(2000, 260)}
    assert analyze(arms, "a", kind="proportion").comparisons["b"].test == "z_unpooled"
    assert analyze(arms, "a", kind="proportion", pooled=True).comparisons["b"].test == "z_pooled"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda arms: analyze(arms, "nope"), "control"),
        (lambda arms: analyze({"control": arms["control"]}, "control"), "summaries"),
        (lambda arms: analyze(arms, "control", kind="median"), "kind"),
        (lambda arms: analyze(arms, "control", kind="proportion"), "control.sum"),
        (lambda arms: analyze(arms, "control", cuped=True), "summaries['control'].cov_sum"),
        (lambda arms: analyze(arms, "control", correction="sidak"), "correction"),
        (lambda arms: analyze(arms, "control", weights={"control": 1}), "weights"),
    ],
)
def test_analyze_errors_name_the_field(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        call(three_arms())
    assert err.value.field == field


def test_adjust_across_metrics_pools_every_arm_of_every_metric() -> None:
    analyses = {
        "revenue": analyze(three_arms(1), "control"),
        "time": analyze(three_arms(2), "control"),
    }
    adjusted = adjust_across_metrics(analyses, "benjamini_hochberg")
    p = [c.p_value for a in analyses.values() for c in a.comparisons.values()]
    expected = multipletests(p, method="fdr_bh")[1]
    got = [c.p_value_adjusted for a in adjusted.values() for c in a.comparisons.values()]
    assert got == list(expected)
    assert all(a.correction == "benjamini_hochberg" for a in adjusted.values())
