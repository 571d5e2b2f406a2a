"""The exact Beta-Binomial analysis against hand-worked cases, 40-digit references, scipy and
Monte Carlo."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from scipy import integrate, stats

import steward.stats.bayesian as bayesian
from steward.errors import InvalidInput
from steward.stats.ab import Summary
from steward.stats.bayesian import (
    BayesResult,
    BetaPosterior,
    beta_chance_to_be_best,
    beta_chance_to_beat,
    beta_compare,
    beta_posterior,
    prob_greater,
)

# 40-digit references computed with mpmath (mp.dps = 40): P(T > C) by Miller's sum in exact
# recurrence and by mp.quad of f_C(x) (1 - I_x(a_T, b_T)); the losses by mp.quad of
# f_T(t) (E[C] (1 - I_t(a_C + 1, b_C)) - t (1 - I_t(a_C, b_C))), and the mirror image.
REFERENCES = [
    # (control n, conversions), (treatment n, conversions), prior, P(T > C), loss_T, loss_C
    ((500, 30), (500, 40), (1, 1), 0.8909930975838913, 8.556915608051423e-4, 2.077601028590474e-2),
    ((200, 7), (200, 15), (0.5, 0.5), 0.961397058693249, 3.618614575281474e-4, 4.01628564824038e-2),
]  # fmt: skip
REF_200 = ((200, 12), (200, 21), 0.9472255919875980)  # closed form
REF_1000 = ((1000, 100), (1000, 120), 0.9231834389735598)  # integration
REF_10M = ((10_000_000, 500_000), (10_000_000, 501_000), 0.8474345099094134)


def arm(n: int, conversions: float) -> Summary:
    return Summary.from_counts(n, conversions)


def assert_no_nan(result: BayesResult) -> None:
    for f in fields(result):
        value = getattr(result, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, float):
                assert math.isfinite(item), f.name


def random_posteriors(
    rng: np.random.Generator, max_n: int = 3000
) -> tuple[BetaPosterior, BetaPosterior]:
    n_c, n_t = rng.integers(0, max_n, size=2)
    p = rng.uniform(0.005, 0.6)
    c = int(rng.binomial(n_c, p))
    t = int(rng.binomial(n_t, p * rng.uniform(0.8, 1.25)))
    prior = (1.0, 1.0) if rng.random() < 0.5 else tuple(rng.uniform(0.3, 5.0, size=2))
    return (
        beta_posterior(arm(int(n_c), c), prior),  # type: ignore[arg-type]
        beta_posterior(arm(int(n_t), t), prior),  # type: ignore[arg-type]
    )


def scipy_prob_greater(x: BetaPosterior, y: BetaPosterior) -> float:
    """P(X > Y) by plain quad over [0, 1] with breakpoints around Y's mass."""
    lo, hi = stats.beta.ppf([1e-14, 1 - 1e-14], y.alpha, y.beta)
    pts = np.linspace(lo, hi, 9)[1:-1]
    value, _ = integrate.quad(
        lambda u: stats.beta.pdf(u, y.alpha, y.beta) * stats.beta.sf(u, x.alpha, x.beta),
        0.0,
        1.0,
        points=pts,
        limit=400,
        epsabs=1e-13,
    )
    return float(value)


# -- hand-worked cases ----------------------------------------------------------------------


def test_hand_worked_uniform_posteriors() -> None:
    # Two uniforms: P = 1/2, E[max(U1 - U2, 0)] = 1/6, D = U1 - U2 is triangular and
    # U1 / U2 has CDF r/2 below 1 and 1 - 1/(2r) above.
    result = beta_chance_to_beat(arm(0, 0), arm(0, 0))
    assert result.chance_to_beat_control == pytest.approx(0.5, abs=1e-15)
    assert result.expected_loss_treatment == pytest.approx(1 / 6, abs=1e-14)
    assert result.expected_loss_control == pytest.approx(1 / 6, abs=1e-14)
    assert result.difference_interval.upper == pytest.approx(1 - math.sqrt(0.05), abs=1e-9)
    assert result.difference_interval.lower == pytest.approx(math.sqrt(0.05) - 1, abs=1e-9)
    assert result.lift_interval.lower == pytest.approx(0.05 - 1, abs=1e-9)
    assert result.lift_interval.upper == pytest.approx(20 - 1, rel=1e-9)
    assert result.lift_median == pytest.approx(0.0, abs=1e-9)
    assert len(result.notes) == 2


def test_hand_worked_one_trial_each() -> None:
    # One conversion in one trial against none in one: T ~ Beta(2, 1), C ~ Beta(1, 2).
    # P(T > C) = ∫ 2(1 - c)(1 - c²) dc = 5/6; E[max(C - T, 0)] = 1/30; E[T - C] = 1/3.
    result = beta_chance_to_beat(arm(1, 0), arm(1, 1))
    assert result.control == BetaPosterior(1.0, 2.0)
    assert result.treatment == BetaPosterior(2.0, 1.0)
    assert result.chance_to_beat_control == pytest.approx(5 / 6, abs=1e-15)
    assert result.expected_loss_treatment == pytest.approx(1 / 30, abs=1e-15)
    assert result.expected_loss_control == pytest.approx(11 / 30, abs=1e-15)
    assert result.difference == pytest.approx(1 / 3, abs=1e-15)
    assert result.method == "closed_form"


def test_prob_greater_small_closed_forms() -> None:
    assert prob_greater(BetaPosterior(2, 1), BetaPosterior(1, 1)) == pytest.approx(2 / 3)
    assert prob_greater(BetaPosterior(1, 2), BetaPosterior(1, 1)) == pytest.approx(1 / 3)
    assert prob_greater(BetaPosterior(3, 1), BetaPosterior(1, 1)) == pytest.approx(3 / 4)
    # ∫ 12 y (1 - y)² (1 - F_X(y)) dy with F_X(y) = 4y³ - 3y⁴ for Beta(3, 2): 53/70.
    assert prob_greater(BetaPosterior(3, 2), BetaPosterior(2, 3)) == pytest.approx(53 / 70)


# -- high-precision references --------------------------------------------------------------


@pytest.mark.parametrize(("control", "treatment", "prior", "p", "loss_t", "loss_c"), REFERENCES)
def test_against_40_digit_references(
    control: tuple[int, int],
    treatment: tuple[int, int],
    prior: tuple[float, float],
    p: float,
    loss_t: float,
    loss_c: float,
) -> None:
    result = beta_chance_to_beat(arm(*control), arm(*treatment), prior=prior)
    assert result.chance_to_beat_control == pytest.approx(p, abs=1e-14)
    assert result.expected_loss_treatment == pytest.approx(loss_t, abs=1e-14)
    assert result.expected_loss_control == pytest.approx(loss_c, abs=1e-14)


def test_u_shaped_prior_references() -> None:
    # A Beta(0.01, 0.01) prior puts most of its mass within 1e-16 of 0 and 1. References:
    # the loss of two such laws is ∫ F(1 - F) (mpmath, 30 digits, breakpoints down to 1e-300);
    # the one-row case by mp.quad, its loss_T through loss_C + E[C] - E[T].
    prior = (0.01, 0.01)
    flat = beta_chance_to_beat(arm(0, 0), arm(0, 0), prior=prior)
    assert flat.chance_to_beat_control == pytest.approx(0.5, abs=1e-14)
    assert flat.expected_loss_treatment == pytest.approx(0.2499212437992075, abs=1e-14)
    one = beta_chance_to_beat(arm(1, 1), arm(1, 0), prior=prior)
    assert one.chance_to_beat_control == pytest.approx(1.5751240158500825e-4, abs=1e-15)
    assert one.expected_loss_control == pytest.approx(3.405363630369289e-5, abs=1e-15)
    assert one.expected_loss_treatment == pytest.approx(3.405363630369289e-5 + 1 / 1.02, abs=1e-14)
    assert_no_nan(one)


def test_closed_form_reference_at_200_units() -> None:
    control, treatment, p = REF_200
    result = beta_chance_to_beat(arm(*control), arm(*treatment))
    assert result.method == "closed_form"
    assert result.chance_to_beat_control == pytest.approx(p, abs=1e-13)


def test_integration_reference_at_1000_units() -> None:
    control, treatment, p = REF_1000
    result = beta_chance_to_beat(arm(*control), arm(*treatment))
    assert result.method == "integration"
    assert result.chance_to_beat_control == pytest.approx(p, abs=1e-14)


def test_ten_million_units_per_arm_is_exact() -> None:
    control, treatment, p = REF_10M
    c, t = arm(*control), arm(*treatment)
    chance = prob_greater(beta_posterior(t), beta_posterior(c))
    result = beta_chance_to_beat(c, t)
    assert result.method == "integration"
    assert chance == pytest.approx(p, abs=1e-13)
    assert result.chance_to_beat_control == pytest.approx(p, abs=1e-13)
    assert_no_nan(result)


# -- scipy ----------------------------------------------------------------------------------


def test_closed_form_is_scipy_beta_negative_binomial_cdf() -> None:
    # Miller's terms are the beta-negative-binomial pmf:
    # P(Beta(a, b) > Beta(c, d)) = betanbinom.cdf(a - 1, n=b, a=d, b=c).
    rng = np.random.default_rng(7)
    for _ in range(40):
        a, b = rng.integers(1, 200, size=2)  # betanbinom's n (our b) must be an integer
        c, d = rng.uniform(0.5, 200, size=2)
        expected = stats.betanbinom.cdf(a - 1, b, d, c)
        got = bayesian._miller_sum(float(a), float(b), float(c), float(d))
        assert got == pytest.approx(expected, abs=1e-12)


def test_random_inputs_against_scipy_quad() -> None:
    rng = np.random.default_rng(11)
    for _ in range(40):
        c, t = random_posteriors(rng)
        assert prob_greater(t, c) == pytest.approx(scipy_prob_greater(t, c), abs=1e-10)


def test_closed_form_and_integration_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    pairs = []
    while len(pairs) < 25:
        c, t = random_posteriors(rng, max_n=450)
        if float(t.alpha).is_integer():
            pairs.append((c, t))
    closed = [bayesian._prob_greater(t, c) for c, t in pairs]
    monkeypatch.setattr(bayesian, "CLOSED_FORM_MAX_COUNT", 0)
    integrated = [bayesian._prob_greater(t, c) for c, t in pairs]
    for (p_closed, m_closed), (p_int, m_int) in zip(closed, integrated, strict=True):
        assert (m_closed, m_int) == ("closed_form", "integration")
        assert p_closed == pytest.approx(p_int, abs=1e-12)


def test_the_four_closed_forms_agree() -> None:
    x, y = BetaPosterior(37.0, 412.0), BetaPosterior(29.0, 420.0)
    forms = [
        bayesian._miller_sum(x.alpha, x.beta, y.alpha, y.beta),
        bayesian._miller_sum(y.beta, y.alpha, x.beta, x.alpha),
        1 - bayesian._miller_sum(y.alpha, y.beta, x.alpha, x.beta),
        1 - bayesian._miller_sum(x.beta, x.alpha, y.beta, y.alpha),
    ]
    assert max(forms) - min(forms) < 1e-12


def test_complement_and_loss_identity() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        c, t = random_posteriors(rng)
        assert prob_greater(t, c) + prob_greater(c, t) == pytest.approx(1.0, abs=1e-12)
        loss_t = bayesian._expected_shortfall(c, t)
        loss_c = bayesian._expected_shortfall(t, c)
        assert loss_c - loss_t == pytest.approx(t.mean - c.mean, abs=1e-12)


# -- Monte Carlo ----------------------------------------------------------------------------

DRAWS = 400_000


def test_against_monte_carlo() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(8):
        n_c, n_t = (int(v) for v in rng.integers(20, 5000, size=2))
        p = rng.uniform(0.01, 0.5)
        control = arm(n_c, int(rng.binomial(n_c, p)))
        treatment = arm(n_t, int(rng.binomial(n_t, p * 1.1)))
        result = beta_chance_to_beat(control, treatment)
        c_draws = rng.beta(result.control.alpha, result.control.beta, DRAWS)
        t_draws = rng.beta(result.treatment.alpha, result.treatment.beta, DRAWS)
        assert_close_to_mc(t_draws > c_draws, result.chance_to_beat_control)
        assert_close_to_mc(np.maximum(c_draws - t_draws, 0), result.expected_loss_treatment)
        assert_close_to_mc(np.maximum(t_draws - c_draws, 0), result.expected_loss_control)
        diff, lift = t_draws - c_draws, t_draws / c_draws - 1
        for interval, draws in ((result.difference_interval, diff), (result.lift_interval, lift)):
            assert_close_to_mc(draws < interval.lower, 0.025)
            assert_close_to_mc(draws > interval.upper, 0.025)
        assert_close_to_mc(lift < result.lift_median, 0.5)


def assert_close_to_mc(samples: np.ndarray, exact: float) -> None:
    """Within 5 Monte Carlo standard errors (a false alarm about once in 3.5 million)."""
    samples = samples.astype(np.float64)
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - exact) <= 5 * se + 1e-12


def test_chance_to_be_best_against_monte_carlo() -> None:
    rng = np.random.default_rng(99)
    arms = [arm(2000, 200), arm(2000, 215), arm(1900, 210), arm(2100, 190)]
    chances = beta_chance_to_be_best(arms)
    assert sum(chances) == pytest.approx(1.0, abs=1e-10)
    posteriors = [beta_posterior(a) for a in arms]
    draws = np.column_stack([rng.beta(p.alpha, p.beta, DRAWS) for p in posteriors])
    best = draws.argmax(axis=1)
    for k, chance in enumerate(chances):
        assert_close_to_mc(best == k, chance)


def test_two_arms_best_is_chance_to_beat() -> None:
    control, treatment = arm(800, 40), arm(820, 52)
    best = beta_chance_to_be_best([control, treatment])
    chance = beta_chance_to_beat(control, treatment).chance_to_beat_control
    assert best[1] == pytest.approx(chance, abs=1e-12)
    assert best[0] == pytest.approx(1 - chance, abs=1e-12)


def test_compare_many_arms() -> None:
    control = arm(1000, 100)
    treatments = [arm(1000, 110), arm(1000, 95)]
    result = beta_compare(control, treatments)
    assert len(result.arms) == 2
    assert len(result.chance_to_be_best) == 3
    assert result.arms[0] == beta_chance_to_beat(control, treatments[0])
    assert result.arms[0].chance_to_beat_control > 0.5 > result.arms[1].chance_to_beat_control


# -- edge cases -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((0, 0), (0, 0)),  # no data: the prior
        ((1, 0), (1, 1)),  # one row each
        ((500, 0), (500, 0)),  # no conversions anywhere
        ((500, 500), (500, 500)),  # everyone converts
        ((500, 0), (500, 3)),  # a control mean of zero
        ((10_000_000, 0), (10_000_000, 1)),  # huge n, nothing happening
        ((10_000_000, 10_000_000), (10_000_000, 9_999_999)),
        ((3, 1), (4_000_000, 2_000_000)),  # wildly unequal arms
    ],
)
def test_degenerate_inputs_are_defined(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = beta_chance_to_beat(arm(*control), arm(*treatment))
    assert_no_nan(result)
    assert 0.0 <= result.chance_to_beat_control <= 1.0
    assert result.expected_loss_treatment >= 0.0
    assert result.expected_loss_control >= 0.0
    assert result.difference_interval.lower <= result.difference <= result.difference_interval.upper
    assert -1.0 <= result.lift_interval.lower <= result.lift_median <= result.lift_interval.upper
    if control == treatment:
        assert result.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
        assert result.expected_loss_treatment == pytest.approx(result.expected_loss_control)


def test_zero_control_conversions_has_a_note() -> None:
    result = beta_chance_to_beat(arm(500, 0), arm(500, 3))
    assert any("no conversions" in note for note in result.notes)
    assert result.chance_to_beat_control > 0.9


def test_equal_arms_give_one_half_exactly_enough() -> None:
    result = beta_chance_to_beat(arm(123_456, 7_890), arm(123_456, 7_890))
    assert result.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
    assert result.lift_median == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("prior", [(0, 1), (1, -1), (1,), "flat", (math.inf, 1), (True, 1)])
def test_bad_prior_is_refused(prior: object) -> None:
    with pytest.raises(InvalidInput, match="prior") as info:
        beta_chance_to_beat(arm(10, 1), arm(10, 2), prior=prior)  # type: ignore[arg-type]
    assert info.value.field == "prior"


def test_non_conversion_summary_is_refused() -> None:
    revenue = Summary.from_values([0.0, 0.5, 0.7])  # sum <= n, but not 0/1
    with pytest.raises(InvalidInput, match="conversion metric") as info:
        beta_chance_to_beat(revenue, arm(3, 1))
    assert info.value.field == "control.sum_sq"
    with pytest.raises(InvalidInput) as info:
        beta_chance_to_be_best([arm(3, 1), Summary(3, 4.0, 6.0)])
    assert info.value.field == "arms[1].sum"


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "95%"])
def test_bad_credible_level_is_refused(level: object) -> None:
    with pytest.raises(InvalidInput, match="credible_level"):
        beta_chance_to_beat(arm(10, 1), arm(10, 2), credible_level=level)  # type: ignore[arg-type]


def test_chance_to_be_best_needs_two_arms() -> None:
    with pytest.raises(InvalidInput, match="at least 2 arms"):
        beta_chance_to_be_best([arm(10, 1)])
    with pytest.raises(InvalidInput, match="treatments"):
        beta_compare(arm(10, 1), [])


def test_credible_level_widens_the_interval() -> None:
    control, treatment = arm(1000, 100), arm(1000, 115)
    narrow = beta_chance_to_beat(control, treatment, credible_level=0.8)
    wide = beta_chance_to_beat(control, treatment, credible_level=0.99)
    assert wide.lift_interval.lower < narrow.lift_interval.lower
    assert wide.lift_interval.upper > narrow.lift_interval.upper
    assert narrow.chance_to_beat_control == wide.chance_to_beat_control
