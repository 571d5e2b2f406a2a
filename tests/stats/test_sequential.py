"""Always-valid inference: the formulas against scipy, and the guarantee itself in simulated
experiments watched at many looks, next to a fixed-horizon z-test that loses it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion

from steward.errors import InvalidInput
from steward.stats._results import Interval
from steward.stats.ab import Summary
from steward.stats.sequential import (
    DEFAULT_TUNING_N,
    SequentialResult,
    confidence_sequence,
    cumulative,
    default_tau,
    msprt,
    sequential_rho,
)

ALPHA = 0.05
EXPERIMENTS = 500
LOOKS = 20
PER_LOOK = 250  # rows per arm between looks: the last look has 5,000 per arm
# One-sided bound on a share of EXPERIMENTS simulated experiments, 3 standard errors.
MC_SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)


def summary(values: np.ndarray) -> Summary:
    return Summary.from_values(values)


def assert_no_nan(result: SequentialResult) -> None:
    for f in fields(result):
        value = getattr(result, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, float):
                assert math.isfinite(item), f.name


def two_arms(seed: int, n_c: int = 400, n_t: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(10.0, 3.0, n_c), rng.normal(10.4, 4.0, n_t)


# -- the formulas ---------------------------------------------------------------------------


def test_rho_is_waudby_smith_eq_161() -> None:
    # rho² = (-2 log alpha + log(1 - 2 log alpha)) / N: 7.936156 / 5000 at alpha = 0.05.
    assert sequential_rho(0.05, 5000) == pytest.approx(math.sqrt(7.9361560 / 5000), rel=1e-7)
    assert DEFAULT_TUNING_N == 5000


def test_confidence_sequence_matches_the_paper_from_raw_values() -> None:
    c, t = two_arms(1)
    result = confidence_sequence(summary(c), summary(t))
    n = c.size + t.size
    se2 = c.var(ddof=1) / c.size + t.var(ddof=1) / t.size
    rho2 = sequential_rho(ALPHA, DEFAULT_TUNING_N) ** 2
    # Theorem 2.2 with sigma² = N se²: sigma sqrt(2(N rho² + 1) / (N² rho²) log(sqrt(..)/alpha))
    half = math.sqrt(
        n * se2 * 2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / ALPHA)
    )
    diff = t.mean() - c.mean()
    assert result.estimate == pytest.approx(diff, rel=1e-12)
    assert result.std_error == pytest.approx(math.sqrt(se2), rel=1e-12)
    assert result.interval == pytest.approx((diff - half, diff + half), rel=1e-12)


def test_confidence_sequence_is_wider_than_the_fixed_horizon_interval() -> None:
    for n in (20, 200, 2000, 20000, 200000):
        c, t = two_arms(n, n, n)
        result = confidence_sequence(summary(c), summary(t))
        assert result.interval is not None
        assert result.std_error is not None
        z_half = stats.norm.ppf(1 - ALPHA / 2) * result.std_error
        assert result.interval.upper - result.interval.lower > 2 * z_half


def test_p_value_is_the_alpha_at_which_the_sequence_touches_zero() -> None:
    c, t = two_arms(2, 1500, 1500)
    result = confidence_sequence(summary(c), summary(t))
    assert result.p_value is not None
    assert 1e-6 < result.p_value < 1
    # rho stays the one chosen for the reported alpha (GrowthBook's convention)
    at_p = confidence_sequence(summary(c), summary(t), alpha=result.p_value, rho=result.tuning)
    assert at_p.interval is not None
    assert min(abs(at_p.interval.lower), abs(at_p.interval.upper)) == pytest.approx(0, abs=1e-9)
    for alpha in (0.01, 0.05, 0.2):
        other = confidence_sequence(summary(c), summary(t), alpha=alpha, rho=result.tuning)
        assert other.interval is not None
        excludes_zero = not other.interval.lower <= 0 <= other.interval.upper
        assert excludes_zero == (result.p_value < alpha)


def test_relative_interval_uses_the_delta_method() -> None:
    c, t = two_arms(3)
    result = confidence_sequence(summary(c), summary(t))
    m_c, m_t = c.mean(), t.mean()
    cov = np.diag([c.var(ddof=1) / c.size, t.var(ddof=1) / t.size])
    h = 1e-6
    grad = np.array(
        [
            ((m_t - m_c - h) / abs(m_c + h) - (m_t - m_c + h) / abs(m_c - h)) / (2 * h),
            1 / abs(m_c),
        ]
    )
    se_rel = math.sqrt(grad @ cov @ grad)
    assert result.relative == pytest.approx((m_t - m_c) / abs(m_c), rel=1e-12)
    assert result.relative_interval is not None
    assert result.interval is not None
    ratio = (result.relative_interval.upper - result.relative_interval.lower) / (
        result.interval.upper - result.interval.lower
    )
    assert ratio == pytest.approx(se_rel / math.sqrt(cov.trace()), rel=1e-6)


def test_tuning_n_and_rho_overrides() -> None:
    c, t = two_arms(4)
    small = confidence_sequence(summary(c), summary(t), tuning_n=1000)
    by_rho = confidence_sequence(summary(c), summary(t), rho=sequential_rho(ALPHA, 1000))
    assert small.interval == by_rho.interval
    assert small.tuning == pytest.approx(sequential_rho(ALPHA, 1000))
    with pytest.raises(InvalidInput, match="not both"):
        confidence_sequence(summary(c), summary(t), tuning_n=1000, rho=0.1)


def test_msprt_is_the_normal_mixture_likelihood_ratio() -> None:
    c, t = two_arms(5, 2000, 2000)
    tau = 0.3
    result = msprt(summary(c), summary(t), tau=tau)
    assert result.std_error is not None
    assert result.estimate is not None
    se, d = result.std_error, result.estimate

    def likelihood_ratio(theta: float) -> float:
        # ∫ N(d; theta + x, se²) N(x; 0, tau²) dx / N(d; theta, se²)
        mixture = stats.norm.pdf(d - theta, scale=math.hypot(se, tau))
        return float(mixture / stats.norm.pdf(d - theta, scale=se))

    assert result.p_value == pytest.approx(min(1.0, 1 / likelihood_ratio(0.0)), rel=1e-10)
    assert result.interval is not None
    for end in result.interval:
        assert likelihood_ratio(end) == pytest.approx(1 / ALPHA, rel=1e-9)
    assert likelihood_ratio(d) < 1 / ALPHA
    assert result.relative is not None
    assert result.relative_interval is None


def test_msprt_strong_effect_is_detected() -> None:
    c, t = two_arms(6, 5000, 5000)
    result = msprt(summary(c), summary(t), tau=0.4)
    assert result.p_value is not None
    assert result.p_value < 0.01
    assert result.significant


def test_default_tau_is_the_expected_lift_of_the_baseline() -> None:
    assert default_tau(20.0) == pytest.approx(1.0)
    assert default_tau(-20.0, expected_lift=0.1) == pytest.approx(2.0)
    with pytest.raises(InvalidInput, match="baseline_mean"):
        default_tau(0.0)
    with pytest.raises(InvalidInput, match="expected_lift"):
        default_tau(1.0, expected_lift=0)


# -- the guarantee, simulated ---------------------------------------------------------------


def simulate(
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]], seed: int
) -> list[list[tuple[Summary, Summary]]]:
    """EXPERIMENTS experiments, each a list of LOOKS cumulative (control, treatment)."""
    rng = np.random.default_rng(seed)
    sums = np.zeros((2, 2, EXPERIMENTS))  # arm, (sum, sum_sq), experiment
    looks: list[list[tuple[Summary, Summary]]] = [[] for _ in range(EXPERIMENTS)]
    for look in range(1, LOOKS + 1):
        for arm, values in enumerate(draw(rng, PER_LOOK)):
            sums[arm, 0] += values.sum(axis=1)
            sums[arm, 1] += (values * values).sum(axis=1)
        n = look * PER_LOOK
        for e in range(EXPERIMENTS):
            looks[e].append(
                (Summary(n, sums[0, 0, e], sums[0, 1, e]), Summary(n, sums[1, 0, e], sums[1, 1, e]))
            )
    return looks


def normal_arms(mu_t: float) -> Callable[[np.random.Generator, int], tuple[np.ndarray, ...]]:
    def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
        return (
            rng.normal(1.0, 1.0, (EXPERIMENTS, size)),
            rng.normal(mu_t, 2.0, (EXPERIMENTS, size)),
        )

    return draw


def bernoulli_arms(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    shape = (EXPERIMENTS, size)
    return ((rng.random(shape) < 0.1).astype(float), (rng.random(shape) < 0.1).astype(float))


def share_ever(
    experiments: list[list[tuple[Summary, Summary]]], rejects: Callable[..., bool]
) -> float:
    return float(np.mean([any(rejects(c, t) for c, t in looks) for looks in experiments]))


def cs_excludes(value: float, **kwargs: object) -> Callable[[Summary, Summary], bool]:
    def rejects(c: Summary, t: Summary) -> bool:
        result = confidence_sequence(c, t, **kwargs)  # type: ignore[arg-type]
        assert result.interval is not None
        return not result.interval.lower <= value <= result.interval.upper

    return rejects


def welch_rejects(c: Summary, t: Summary) -> bool:
    """The fixed-horizon test, scipy's Welch t-test on the summaries."""
    sd_c, sd_t = math.sqrt(c.variance), math.sqrt(t.variance)
    test = stats.ttest_ind_from_stats(c.mean, sd_c, c.n, t.mean, sd_t, t.n, equal_var=False)
    return bool(test.pvalue < ALPHA)


def z_test_rejects(c: Summary, t: Summary) -> bool:
    """The fixed-horizon test for conversions, statsmodels' Wald z-test."""
    test = sm_proportion.test_proportions_2indep(
        t.sum, t.n, c.sum, c.n, method="wald", compare="diff"
    )
    return bool(test.pvalue < ALPHA)


def test_a_a_experiments_watched_20_times_keep_alpha_while_peeking_t_test_does_not() -> None:
    experiments = simulate(normal_arms(1.0), seed=100)
    sequential = share_ever(experiments, cs_excludes(0.0))
    peeking = share_ever(experiments, welch_rejects)
    final_only = float(np.mean([welch_rejects(*looks[-1]) for looks in experiments]))
    assert sequential <= ALPHA + MC_SLACK
    assert final_only <= ALPHA + MC_SLACK  # the t-test is fine when read once...
    assert peeking > 2 * ALPHA  # ...and inflated when read at every look (~20% here)
    assert peeking > sequential + 0.1


def test_a_a_proportions_watched_20_times_keep_alpha() -> None:
    experiments = simulate(bernoulli_arms, seed=101)
    sequential = share_ever(experiments, cs_excludes(0.0, kind="proportion"))
    peeking = share_ever(experiments, z_test_rejects)
    assert sequential <= ALPHA + MC_SLACK
    assert peeking > 2 * ALPHA


def test_sequence_covers_a_real_difference_and_lift_uniformly() -> None:
    experiments = simulate(normal_arms(1.1), seed=102)
    assert share_ever(experiments, cs_excludes(0.1)) <= ALPHA + MC_SLACK

    def misses_lift(c: Summary, t: Summary) -> bool:
        interval = confidence_sequence(c, t).relative_interval
        assert interval is not None
        return not interval.lower <= 0.1 <= interval.upper

    assert share_ever(experiments, misses_lift) <= ALPHA + MC_SLACK


def test_msprt_a_a_experiments_keep_alpha() -> None:
    experiments = simulate(normal_arms(1.0), seed=103)

    def rejects(c: Summary, t: Summary) -> bool:
        p = msprt(c, t, tau=0.1).p_value
        assert p is not None
        assert 0.0 <= p <= 1.0
        return p < ALPHA

    assert share_ever(experiments, rejects) <= ALPHA + MC_SLACK


def test_cumulative_p_values_never_increase_and_intervals_nest() -> None:
    experiments = simulate(normal_arms(1.05), seed=104)
    for looks in experiments[:50]:
        for method in ("cs", "msprt"):
            results = [
                confidence_sequence(c, t) if method == "cs" else msprt(c, t, tau=0.1)
                for c, t in looks
            ]
            path = cumulative(results)
            p_values = [r.p_value for r in path]
            assert all(p is not None and 0.0 <= p <= 1.0 for p in p_values)
            assert all(a >= b for a, b in itertools.pairwise(p_values))  # type: ignore[operator]
            widths = [r.interval.upper - r.interval.lower for r in path if r.interval]
            assert all(a >= b for a, b in itertools.pairwise(widths))


def test_cumulative_skips_undefined_looks_and_notes_disjoint_ones() -> None:
    def look(p: float | None, interval: Interval | None) -> SequentialResult:
        return SequentialResult("msprt", "mean", ALPHA, 0.1, 10, 10, 0.0, None, interval, p)

    path = cumulative(
        [look(None, None), look(0.5, Interval(-1, 1)), look(None, None), look(0.7, Interval(2, 3))]
    )
    assert [r.p_value for r in path] == [None, 0.5, 0.5, 0.5]
    assert [r.interval for r in path] == [None, (-1, 1), (-1, 1), (2, 3)]
    assert any("does not meet" in note for note in path[-1].notes)


# -- degenerate inputs ----------------------------------------------------------------------


def both(*args: Summary, **kwargs: object) -> list[SequentialResult]:
    return [
        confidence_sequence(*args, **kwargs),  # type: ignore[arg-type]
        msprt(*args, tau=0.05, **kwargs),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("kind", ["mean", "proportion"])
def test_all_zero_and_all_one_arms_have_no_interval(kind: str) -> None:
    for value in (0, 1):
        arm = Summary.from_counts(1000, 1000 * value)
        for result in both(arm, arm, kind=kind):
            assert result.estimate == 0.0
            assert result.interval is None
            assert result.p_value is None
            assert result.significant is None
            assert any("zero variance" in note for note in result.notes)
            assert_no_nan(result)


def test_one_constant_arm_is_computed_with_a_note() -> None:
    control, treatment = Summary.from_counts(1000, 0), Summary.from_counts(1000, 30)
    for result in both(control, treatment, kind="proportion"):
        assert result.interval is not None
        assert result.p_value is not None
        assert any("control has zero variance" in note for note in result.notes)
    assert confidence_sequence(control, treatment, kind="proportion").relative is None


@pytest.mark.parametrize(("n_c", "n_t"), [(0, 0), (0, 5), (1, 1), (1, 50), (50, 1)])
def test_fewer_than_two_rows_gives_a_defined_answer(n_c: int, n_t: int) -> None:
    rng = np.random.default_rng(n_c * 100 + n_t)
    control, treatment = summary(rng.normal(size=n_c)), summary(rng.normal(size=n_t))
    for result in both(control, treatment):
        assert result.interval is None
        assert result.p_value is None
        assert (result.estimate is None) == (n_c == 0 or n_t == 0)
        assert any("fewer than 2 rows" in note for note in result.notes)
        assert_no_nan(result)


def test_equal_arms_have_p_value_one() -> None:
    arm = Summary.from_moments(10_000, 3.0, 4.0)
    for result in both(arm, arm):
        assert result.estimate == 0.0
        assert result.p_value == 1.0
        assert result.interval is not None
        assert result.interval.lower < 0 < result.interval.upper


def test_zero_control_mean_has_no_relative_lift() -> None:
    control = summary(np.array([-1.0, 1.0] * 50))
    treatment = summary(np.array([-1.0, 1.5] * 50))
    result = confidence_sequence(control, treatment)
    assert result.interval is not None
    assert result.relative is None
    assert result.relative_interval is None
    assert any("relative lift is undefined" in note for note in result.notes)


def test_values_that_overflow_are_left_undefined() -> None:
    tiny_control = summary(np.array([2e-308, -1e-308, 3e-308]))
    result = confidence_sequence(tiny_control, summary(np.array([1.0, 2.0, 3.0])))
    assert result.interval is not None
    assert result.relative_interval is None
    assert any("overflowed" in note for note in result.notes)
    huge = summary(np.array([1e153, 0.0, -1e153]))
    for outcome in both(summary(np.array([1e150, -1e150, 3e150])), huge):
        assert_no_nan(outcome)
        assert outcome.interval is not None


def test_huge_samples_stay_finite() -> None:
    control = Summary.from_counts(10_000_000, 500_000)
    treatment = Summary.from_counts(10_000_000, 510_000)
    for result in both(control, treatment, kind="proportion"):
        assert_no_nan(result)
        assert result.p_value is not None
        assert result.p_value < 0.01


def test_proportion_kind_uses_bernoulli_variance() -> None:
    control, treatment = Summary.from_counts(40, 8), Summary.from_counts(50, 20)
    result = confidence_sequence(control, treatment, kind="proportion")
    se = math.sqrt(0.2 * 0.8 / 40 + 0.4 * 0.6 / 50)
    assert result.std_error == pytest.approx(se, rel=1e-12)
    wald = sm_proportion.test_proportions_2indep(20, 50, 8, 40, method="wald", compare="diff")
    assert result.estimate is not None
    assert result.estimate / result.std_error == pytest.approx(wald.statistic, rel=1e-12)
    mean_kind = confidence_sequence(control, treatment)
    assert mean_kind.std_error is not None
    assert mean_kind.std_error > se  # ddof=1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c, t: msprt(c, t, tau=0.0), "tau"),
        (lambda c, t: msprt(c, t, tau=math.nan), "tau"),
        (lambda c, t: confidence_sequence(c, t, alpha=1.5), "alpha"),
        (lambda c, t: confidence_sequence(c, t, rho=-1.0), "rho"),
        (lambda c, t: confidence_sequence(c, t, tuning_n=0), "tuning_n"),
        (lambda c, t: confidence_sequence(c, t, kind="ratio"), "kind"),
    ],
)
def test_bad_arguments_are_refused(
    call: Callable[[Summary, Summary], SequentialResult], field: str
) -> None:
    arm = Summary.from_counts(100, 10)
    with pytest.raises(InvalidInput) as info:
        call(arm, arm)
    assert info.value.field == field


def test_proportion_kind_refuses_a_revenue_metric() -> None:
    revenue = summary(np.array([0.0, 0.5, 0.7]))  # sum <= n, but not 0/1
    with pytest.raises(InvalidInput, match="not a conversion metric") as info:
        confidence_sequence(revenue, revenue, kind="proportion")
    assert info.value.field == "control.sum_sq"
