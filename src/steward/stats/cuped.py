"""CUPED (Deng, Xu, Kohavi & Walker, 2013): variance reduction with a pre-experiment covariate.

Each row's metric ``y`` is replaced by ``y - θ·(x - x̄)``, where ``x`` is the same unit's
value before the experiment and ``x̄`` its mean over all arms. With ``θ = cov(x, y) / var(x)``
estimated on the pooled sample of all arms (the OLS slope of ``y`` on ``x``), the adjusted
metric has the same expected difference between arms (``x`` is independent of assignment)
and variance ``var(y)·(1 - ρ²)``. Everything here works from the ``Summary`` sums: no raw data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from steward.errors import InvalidInput
from steward.stats._summary import Summary, pooled


@dataclass(frozen=True)
class CupedFit:
    """The adjustment estimated on the pooled sample of all arms."""

    theta: float
    covariate_mean: float  # x̄ over all arms
    variance_reduction: float  # pooled: 1 - var(adjusted y) / var(y), i.e. ρ²
    notes: tuple[str, ...] = ()


def fit_cuped(summaries: Mapping[str, Summary]) -> CupedFit:
    """Estimate θ from all arms together; every summary must carry the covariate sums."""
    for name, summary in summaries.items():
        if not summary.has_covariate:
            raise InvalidInput(
                f"CUPED needs the covariate sums of every arm; the arm '{name}' has none. Build "
                "its summary with Summary.from_values(values, covariate=...).",
                field=f"summaries['{name}'].cov_sum",
            )
    if not summaries:
        raise InvalidInput("CUPED needs at least one arm.", field="summaries")
    total = pooled(list(summaries.values()))
    if total.n < 2:
        mean = total.cov_mean if total.n else 0.0
        note = "Fewer than 2 rows across the arms: theta cannot be estimated and is 0."
        return CupedFit(0.0, mean, 0.0, (note,))
    var_x = total.cov_variance
    if var_x == 0.0:
        note = (
            "The covariate is constant across all rows, so it explains nothing: theta = 0 and "
            "the metric is analysed unadjusted."
        )
        return CupedFit(0.0, total.cov_mean, 0.0, (note,))
    theta = total.covariance / var_x
    var_y = total.variance
    notes: tuple[str, ...] = ()
    if var_y == 0.0:
        reduction = 0.0
        notes = ("The metric is constant across all rows: there is no variance to reduce.",)
    else:
        reduction = min(max(1.0 - _adjusted_variance(total, theta) / var_y, 0.0), 1.0)
    return CupedFit(theta, total.cov_mean, reduction, notes)


def adjust(summary: Summary, fit: CupedFit) -> Summary:
    """The summary of ``y - θ·(x - x̄)`` over the arm's rows (covariate sums dropped)."""
    if not summary.has_covariate:
        raise InvalidInput("The summary has no covariate sums to adjust with.", field="cov_sum")
    if summary.n == 0:
        return Summary(0, 0.0, 0.0)
    mean = summary.mean - fit.theta * (summary.cov_mean - fit.covariate_mean)
    if summary.n < 2:
        return Summary.from_moments(1, mean, 0.0)
    return Summary.from_moments(summary.n, mean, _adjusted_variance(summary, fit.theta))


def variance_reduction(raw: float, adjusted: float) -> float:
    """``1 - adjusted / raw``; 0 when there was nothing to reduce. Negative when it hurt."""
    return 0.0 if raw == 0.0 else 1.0 - adjusted / raw


def _adjusted_variance(summary: Summary, theta: float) -> float:
    """``var(y) - 2θ·cov(x, y) + θ²·var(x)`` (ddof=1), never negative."""
    var = summary.variance - 2.0 * theta * summary.covariance + theta**2 * summary.cov_variance
    return max(var, 0.0)
