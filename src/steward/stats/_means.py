"""Welch's t-test on two summaries: difference, relative lift (delta method), p-value, df.

Conventions (docs/experiments.md, "The statistics"): two-sided; the absolute and the relative
interval both use the t quantile at the Welch-Satterthwaite degrees of freedom.
"""

from __future__ import annotations

import math

from scipy import stats

from steward.errors import InvalidInput
from steward.stats._results import (
    Comparison,
    Interval,
    VariantResult,
    check_alpha,
    finite,
    relative_of,
)
from steward.stats._summary import Summary

# Two zero-variance arms whose means agree to this relative precision have equal means.
_SAME_MEAN = 1e-9


def compare_means(
    control: Summary,
    treatment: Summary,
    *,
    alpha: float = 0.05,
    names: tuple[str, str] = ("control", "treatment"),
) -> Comparison:
    """Welch's unequal-variance t-test of ``treatment`` against ``control``."""
    alpha = check_alpha(alpha)
    for name, summary in zip(names, (control, treatment), strict=True):
        if summary.n == 0:
            raise InvalidInput(
                f"The arm '{name}' has no observations, so it has no mean to compare.",
                field=f"{name}.n",
            )
    notes: list[str] = []
    m_c, m_t = control.mean, treatment.mean
    difference = m_t - m_c
    relative = relative_of(difference, m_c, notes)
    small = [name for name, s in zip(names, (control, treatment), strict=True) if s.n < 2]
    if small:
        notes.append(
            f"The arm(s) {', '.join(repr(s) for s in small)} have a single observation, so "
            "the variance (and any interval or p-value) is undefined; only the point "
            "estimates are reported."
        )
        return _result(control, treatment, names, alpha, difference, relative, notes=notes)
    var_c, var_t = control.variance / control.n, treatment.variance / treatment.n
    se = math.sqrt(var_c + var_t)
    if se == 0.0:
        return _zero_variance(control, treatment, names, alpha, relative, notes)
    share_c, share_t = var_c / (var_c + var_t), var_t / (var_c + var_t)  # no under/overflow
    df = 1.0 / (share_c**2 / (control.n - 1) + share_t**2 / (treatment.n - 1))
    q = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    t_stat = difference / se
    p_value = float(2.0 * stats.t.sf(abs(t_stat), df))
    relative_ci = None
    if relative is not None:
        se_rel = math.sqrt(var_t + (m_t / m_c) ** 2 * var_c) / abs(m_c)
        relative_ci = _interval(relative, q * se_rel)
        if relative_ci is None:
            notes.append("The relative interval overflows (control mean near 0): not reported.")
    return _result(
        control,
        treatment,
        names,
        alpha,
        difference,
        relative,
        difference_ci=_interval(difference, q * se),
        relative_ci=relative_ci,
        statistic=finite(t_stat),
        df=df,
        p_value=p_value,
        notes=notes,
    )


def _zero_variance(
    control: Summary,
    treatment: Summary,
    names: tuple[str, str],
    alpha: float,
    relative: float | None,
    notes: list[str],
) -> Comparison:
    """Both arms constant: the difference is known exactly, so p is 1 (equal) or 0."""
    m_c, m_t = control.mean, treatment.mean
    same = math.isclose(m_c, m_t, rel_tol=_SAME_MEAN, abs_tol=0.0)
    difference = 0.0 if same else m_t - m_c
    if same:
        relative = None if relative is None else 0.0
        notes.append("Both arms are constant with the same value: no difference, p = 1.")
    else:
        notes.append(
            "Both arms are constant with different values: the difference is exact (a "
            "zero-width interval) and p = 0; the t statistic is infinite and not reported."
        )
    return _result(
        control,
        treatment,
        names,
        alpha,
        difference,
        relative,
        difference_ci=Interval(difference, difference),
        relative_ci=None if relative is None else Interval(relative, relative),
        p_value=1.0 if same else 0.0,
        notes=notes,
    )


def _result(
    control: Summary,
    treatment: Summary,
    names: tuple[str, str],
    alpha: float,
    difference: float,
    relative: float | None,
    *,
    difference_ci: Interval | None = None,
    relative_ci: Interval | None = None,
    statistic: float | None = None,
    df: float | None = None,
    p_value: float | None = None,
    notes: list[str],
) -> Comparison:
    return Comparison(
        control=_variant(names[0], control),
        treatment=_variant(names[1], treatment),
        kind="mean",
        test="welch_t",
        alpha=alpha,
        difference=difference,
        difference_ci=difference_ci,
        relative=relative,
        relative_ci=relative_ci,
        relative_ci_log=None,
        statistic=statistic,
        df=df,
        p_value=p_value,
        notes=tuple(notes),
    )


def _variant(name: str, summary: Summary) -> VariantResult:
    se = math.sqrt(summary.variance / summary.n) if summary.n >= 2 else None
    return VariantResult(name, summary.n, summary.mean, se, summary.mean)


def _interval(centre: float, half_width: float) -> Interval | None:
    low, high = centre - half_width, centre + half_width
    return Interval(low, high) if math.isfinite(low) and math.isfinite(high) else None
