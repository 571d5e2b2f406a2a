"""Planning numbers against statsmodels' power classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower, normal_power_het
from statsmodels.stats.proportion import power_proportions_2indep

from steward.errors import InvalidInput
from steward.stats.power import (
    mde_means,
    mde_proportions,
    power_means,
    power_proportions,
    sample_size_means,
    sample_size_proportions,
)


def draw_means(seed: int) -> tuple[float, float, float, float, float]:
    rng = np.random.default_rng(seed)
    baseline, sd = rng.uniform(-50, 50), rng.uniform(0.5, 30)
    mde = float(rng.choice([-1, 1]) * rng.uniform(0.01, 0.5))
    return baseline, sd, mde, float(rng.choice([0.01, 0.05, 0.1])), float(rng.uniform(0.5, 0.95))


@pytest.mark.parametrize("seed", range(25))
def test_means_match_statsmodels(seed: int) -> None:
    baseline, sd, mde, alpha, power = draw_means(seed)
    d = abs(baseline * mde) / sd
    n_t = TTestIndPower().solve_power(d, alpha=alpha, power=power)
    n_z = NormalIndPower().solve_power(d, alpha=alpha, power=power)
    assert sample_size_means(baseline, sd, mde, alpha=alpha, power=power) == max(
        2, math.ceil(n_t - 1e-6)
    )
    assert sample_size_means(baseline, sd, mde, alpha=alpha, power=power, method="z") == max(
        2, math.ceil(n_z - 1e-6)
    )
    n = int(np.random.default_rng(seed).integers(5, 5000))
    ref = TTestIndPower().power(d, n, alpha)
    if math.isnan(ref):  # scipy's non-central t fails deep in a tail; ours falls back
        ref = NormalIndPower().power(d, n, alpha)
        assert ref == pytest.approx(1.0, abs=1e-12)
    assert power_means(n, baseline, sd, mde, alpha=alpha) == pytest.approx(ref, rel=1e-9)
    assert power_means(n, baseline, sd, mde, alpha=alpha, method="z") == pytest.approx(
        NormalIndPower().power(d, n, alpha), rel=1e-9
    )
    mde_found = mde_means(n, baseline, sd, alpha=alpha, power=power)
    d_found = mde_found * abs(baseline) / sd
    # statsmodels' own solver stops early (~1e-5); its power function checks ours exactly
    assert TTestIndPower().power(d_found, n, alpha) == pytest.approx(power, rel=1e-9)
    d_ref = TTestIndPower().solve_power(nobs1=n, alpha=alpha, power=power)
    assert d_found == pytest.approx(d_ref, rel=1e-4)


def draw_rates(seed: int) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(seed)
    p1 = float(rng.uniform(0.005, 0.6))
    mde = float(rng.uniform(0.02, 0.5) * rng.choice([-1, 1]))
    return p1, mde, float(rng.choice([0.01, 0.05, 0.1])), float(rng.uniform(0.5, 0.95))


@pytest.mark.parametrize("seed", range(25))
def test_proportions_match_statsmodels(seed: int) -> None:
    p1, mde, alpha, power = draw_rates(seed)
    p2 = p1 * (1 + mde)
    n = int(np.random.default_rng(seed).integers(50, 50_000))
    pooled = power_proportions_2indep(p2 - p1, p1, n, alpha=alpha).power
    assert power_proportions(n, p1, mde, alpha=alpha, pooled=True) == pytest.approx(
        pooled, rel=1e-9
    )
    std = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    unpooled = normal_power_het(p2 - p1, n, alpha, std_null=std, std_alternative=std)
    assert power_proportions(n, p1, mde, alpha=alpha) == pytest.approx(unpooled, rel=1e-9)
    es = abs(p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    n_ref = NormalIndPower().solve_power(es, alpha=alpha, power=power)
    assert sample_size_proportions(p1, mde, alpha=alpha, power=power) == math.ceil(n_ref - 1e-6)
    n_pooled = sample_size_proportions(p1, mde, alpha=alpha, power=power, pooled=True)
    assert power_proportions_2indep(p2 - p1, p1, n_pooled, alpha=alpha).power >= power
    assert power_proportions_2indep(p2 - p1, p1, n_pooled - 1, alpha=alpha).power < power


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("decrease", [False, True])
def test_mde_and_sample_size_are_inverse(pooled: bool, decrease: bool) -> None:
    mde = mde_proportions(20_000, 0.08, pooled=pooled, decrease=decrease)
    assert (mde < 0) == decrease
    assert power_proportions(20_000, 0.08, mde, pooled=pooled) == pytest.approx(0.8, rel=1e-9)
    assert sample_size_proportions(0.08, mde * 1.0001, pooled=pooled) <= 20_000


def test_huge_effects_need_two_rows_and_tiny_ones_are_refused() -> None:
    assert sample_size_means(10, 0.01, 1.0) == 2
    with pytest.raises(InvalidInput) as err:
        sample_size_means(10, 1000, 1e-9)
    assert err.value.field == "relative_mde"
    with pytest.raises(InvalidInput) as err:
        mde_proportions(2, 0.5)
    assert err.value.field == "n_per_arm"


def test_power_grows_with_n_and_has_no_nan_far_out() -> None:
    powers = [power_means(n, 10, 5, 0.5) for n in (10, 100, 1000, 10_000)]
    assert powers == sorted(powers)
    assert powers[-1] == 1.0
    assert mde_means(1000, 10, 5) == pytest.approx(
        TTestIndPower().solve_power(nobs1=1000, alpha=0.05, power=0.8) * 0.5, rel=1e-6
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: sample_size_means(0, 1, 0.1), "baseline_mean"),
        (lambda: sample_size_means(1, 0, 0.1), "sd"),
        (lambda: sample_size_means(1, 1, 0), "relative_mde"),
        (lambda: sample_size_means(1, 1, 0.1, power=1.0), "power"),
        (lambda: sample_size_means(1, 1, 0.1, power=0.01), "power"),
        (lambda: sample_size_means(1, 1, 0.1, alpha=0), "alpha"),
        (lambda: sample_size_means(1, 1, 0.1, method="exact"), "method"),
        (lambda: sample_size_proportions(0, 0.1), "baseline_rate"),
        (lambda: sample_size_proportions(0.6, 1.0), "relative_mde"),
        (lambda: sample_size_proportions(0.5, float("nan")), "relative_mde"),
        (lambda: power_means(1, 1, 1, 0.1), "n_per_arm"),
        (lambda: mde_means(10.5, 1, 1), "n_per_arm"),
    ],
)
def test_bad_plans_name_the_field(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        call()
    assert err.value.field == field
