"""Two-proportion z-test on conversion summaries, with Wald and log-ratio intervals.

Conventions (docs/experiments.md, "The statistics"): two-sided, normal quantiles throughout;
the test's standard error is unpooled by default (``pooled=True`` for the pooled one), the Wald
interval of the difference always uses the unpooled one. Where an interval would have zero
width only because every rate is 0 or 1, the adjusted interval (Agresti-Caffo for the
difference, log-adjusted for the ratio) is reported instead, with a note. Intervals of the
difference are clipped to [-1, 1].
"""

from __future__ import annotations

import math

from scipy import stats

from steward.errors import InvalidInput
from steward.stats._results import (
    Comparison,
    Interval,
    Test,
    VariantResult,
    check_alpha,
    relative_of,
)
from steward.stats._summary import Summary

# ``sum_sq == sum`` holds exactly for 0/1 values; this allows rounding in very long sums.
_BINARY_TOLERANCE = 1e-9
# Below this many conversions (or non-conversions) in an arm the normal approximation is rough.
_FEW = 5


def compare_proportions(
    control: Summary,
    treatment: Summary,
    *,
    alpha: float = 0.05,
    pooled: bool = False,
    names: tuple[str, str] = ("control", "treatment"),
) -> Comparison:
    """Two-proportion z-test of ``treatment`` against ``control`` (``sum`` = conversions)."""
    alpha = check_alpha(alpha)
    for name, summary in zip(names, (control, treatment), strict=True):
        check_binary(summary, name)
    notes: list[str] = []
    x_c, n_c, x_t, n_t = control.sum, control.n, treatment.sum, treatment.n
    p_c, p_t = x_c / n_c, x_t / n_t
    difference = p_t - p_c
    z = float(stats.norm.isf(alpha / 2.0))
    se_unpooled = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    p_all = (x_c + x_t) / (n_c + n_t)
    se_pooled = math.sqrt(p_all * (1 - p_all) * (1 / n_c + 1 / n_t))
    test: Test = "z_pooled" if pooled else "z_unpooled"
    se = se_pooled if pooled else se_unpooled
    if se == 0.0 and se_pooled > 0.0:
        test, se = "z_pooled", se_pooled
        notes.append(
            "Each arm's rate is 0 or 1, so the unpooled standard error is 0; the pooled one "
            "is used for the test."
        )
    statistic, p_value = None, 1.0
    if se > 0.0:
        statistic = difference / se
        p_value = float(2.0 * stats.norm.sf(abs(statistic)))
    else:
        notes.append("Both arms have the same rate, 0 or 1: no difference, p = 1.")
    if se_unpooled > 0.0:
        difference_ci = _clipped(difference - z * se_unpooled, difference + z * se_unpooled)
    else:
        difference_ci = _agresti_caffo(x_c, n_c, x_t, n_t, z)
        notes.append(
            "The Wald interval has zero width when every rate is 0 or 1; the Agresti-Caffo "
            "interval (one conversion and one non-conversion added to each arm) is reported."
        )
    relative = relative_of(difference, p_c, notes)
    relative_ci = relative_ci_log = None
    if relative is not None:
        relative_ci = _delta_ratio(p_c, n_c, p_t, n_t, z, notes)
        relative_ci_log = _log_ratio(x_c, n_c, x_t, n_t, z, notes)
    _note_small_counts(names, (control, treatment), notes)
    return Comparison(
        control=_variant(names[0], control),
        treatment=_variant(names[1], treatment),
        kind="proportion",
        test=test,
        alpha=alpha,
        difference=difference,
        difference_ci=difference_ci,
        relative=relative,
        relative_ci=relative_ci,
        relative_ci_log=relative_ci_log,
        statistic=statistic,
        df=None,
        p_value=p_value,
        notes=tuple(notes),
    )


def check_binary(summary: Summary, name: str) -> None:
    """A conversion summary: n > 0, 0 <= conversions <= n and ``sum_sq == sum``."""
    if summary.n == 0:
        raise InvalidInput(
            f"The arm '{name}' has no observations, so it has no rate to compare.",
            field=f"{name}.n",
        )
    if not 0.0 <= summary.sum <= summary.n:
        raise InvalidInput(
            f"The arm '{name}' has {summary.sum} conversions out of n = {summary.n}: a "
            "proportion needs 0 <= sum <= n.",
            field=f"{name}.sum",
        )
    if abs(summary.sum_sq - summary.sum) > _BINARY_TOLERANCE * max(1.0, summary.sum):
        raise InvalidInput(
            f"The arm '{name}' is not 0/1 data (sum_sq {summary.sum_sq} != sum {summary.sum}). "
            "Use Summary.from_counts(n, conversions), or compare it as a mean.",
            field=f"{name}.sum_sq",
        )


def _delta_ratio(
    p_c: float, n_c: int, p_t: float, n_t: int, z: float, notes: list[str]
) -> Interval:
    """Delta-method interval of ``p_t / p_c - 1`` (``p_c > 0``)."""
    ratio = p_t / p_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + ratio**2 * p_c * (1 - p_c) / n_c) / p_c
    if se > 0.0:
        return Interval(ratio - 1.0 - z * se, ratio - 1.0 + z * se)
    notes.append(
        "The delta-method interval of the relative lift has zero width (rates of 0 or 1 leave "
        "it no variance); the log-adjusted interval is reported in its place."
    )
    return _log_adjusted(p_c * n_c, n_c, p_t * n_t, n_t, z)


def _log_ratio(x_c: float, n_c: int, x_t: float, n_t: int, z: float, notes: list[str]) -> Interval:
    """``exp(log(p_t / p_c) ± z·se) - 1`` with ``se² = 1/x_t - 1/n_t + 1/x_c - 1/n_c``."""
    if x_c > 0 and x_t > 0:
        var = 1 / x_t - 1 / n_t + 1 / x_c - 1 / n_c
        if var > 0.0:
            centre = math.log((x_t / n_t) / (x_c / n_c))
            half = z * math.sqrt(var)
            return Interval(math.exp(centre - half) - 1.0, math.exp(centre + half) - 1.0)
    notes.append(
        "The log-ratio interval needs conversions in both arms and a rate below 1 in one; "
        "the log-adjusted interval (half a conversion and half a non-conversion added to "
        "each arm) is reported instead."
    )
    return _log_adjusted(x_c, n_c, x_t, n_t, z)


def _log_adjusted(x_c: float, n_c: float, x_t: float, n_t: float, z: float) -> Interval:
    """The log-ratio interval after adding half a conversion and half a non-conversion per arm."""
    x_c, n_c, x_t, n_t = x_c + 0.5, n_c + 1.0, x_t + 0.5, n_t + 1.0
    centre = math.log((x_t / n_t) / (x_c / n_c))
    half = z * math.sqrt(1 / x_t - 1 / n_t + 1 / x_c - 1 / n_c)
    # With no treatment conversions the estimate is -100%: the interval reaches down to it.
    lower = -1.0 if x_t == 0.5 else math.exp(centre - half) - 1.0
    return Interval(lower, math.exp(centre + half) - 1.0)


def _agresti_caffo(x_c: float, n_c: int, x_t: float, n_t: int, z: float) -> Interval:
    p_c, p_t = (x_c + 1) / (n_c + 2), (x_t + 1) / (n_t + 2)
    se = math.sqrt(p_c * (1 - p_c) / (n_c + 2) + p_t * (1 - p_t) / (n_t + 2))
    return _clipped(p_t - p_c - z * se, p_t - p_c + z * se)


def _clipped(lower: float, upper: float) -> Interval:
    """A difference of two rates lies in [-1, 1]."""
    return Interval(max(lower, -1.0), min(upper, 1.0))


def _note_small_counts(
    names: tuple[str, str], summaries: tuple[Summary, Summary], notes: list[str]
) -> None:
    few = [n for n, s in zip(names, summaries, strict=True) if min(s.sum, s.n - s.sum) < _FEW]
    if few:
        notes.append(
            f"The arm(s) {', '.join(repr(n) for n in few)} have fewer than {_FEW} conversions "
            "or non-conversions: the normal approximation behind the z-test is rough."
        )


def _variant(name: str, summary: Summary) -> VariantResult:
    rate = summary.sum / summary.n
    return VariantResult(name, summary.n, rate, math.sqrt(rate * (1 - rate) / summary.n), rate)
