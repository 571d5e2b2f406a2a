"""The A/B engine's result types, and the argument checks every estimator shares.

Undefined quantities are ``None`` with a sentence in ``notes`` saying why; no field of a result
is ever NaN or infinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from steward.errors import InvalidInput

Kind = Literal["mean", "proportion"]
Test = Literal["welch_t", "z_unpooled", "z_pooled"]


class Interval(NamedTuple):
    """A two-sided confidence interval; unpacks as ``low, high = interval``."""

    lower: float
    upper: float


@dataclass(frozen=True)
class VariantResult:
    """One arm as the comparison saw it."""

    name: str
    n: int
    mean: float  # the analysed mean: the conversion rate, or the CUPED-adjusted mean
    std_error: float | None  # of ``mean``; None when the arm's variance is undefined (n < 2)
    raw_mean: float  # before CUPED; equal to ``mean`` without it


@dataclass(frozen=True)
class CupedDetail:
    """What CUPED did to one comparison."""

    theta: float
    # 1 - Var(adjusted difference) / Var(raw difference); None when an arm has n < 2
    variance_reduction: float | None


@dataclass(frozen=True)
class Comparison:
    """A treatment against the control on one metric.

    ``difference`` is treatment minus control. ``relative`` is the difference over the
    control's absolute mean (``treatment / control - 1`` for a positive control); its interval
    ``relative_ci`` comes from the delta method, and for proportions ``relative_ci_log`` from
    the log of the rate ratio. ``p_value`` tests a zero difference (two-sided);
    ``p_value_adjusted`` is set by ``analyze`` (across arms) or ``adjust_across_metrics``.
    """

    control: VariantResult
    treatment: VariantResult
    kind: Kind
    test: Test
    alpha: float
    difference: float
    difference_ci: Interval | None
    relative: float | None
    relative_ci: Interval | None
    relative_ci_log: Interval | None
    statistic: float | None
    df: float | None  # Welch-Satterthwaite degrees of freedom (t-tests only)
    p_value: float | None
    p_value_adjusted: float | None = None
    cuped: CupedDetail | None = None
    notes: tuple[str, ...] = ()

    @property
    def control_mean(self) -> float:
        return self.control.mean

    @property
    def treatment_mean(self) -> float:
        return self.treatment.mean

    @property
    def significant(self) -> bool | None:
        """Whether the (adjusted, when set) p-value is below ``alpha``; None if undefined."""
        p = self.p_value_adjusted if self.p_value_adjusted is not None else self.p_value
        return None if p is None else p < self.alpha


def check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise InvalidInput(
            f"'alpha' must be a number between 0 and 1. Got {alpha!r}.", field="alpha"
        )
    if not 0.0 < float(alpha) < 1.0:
        raise InvalidInput(
            f"'alpha' must be between 0 and 1 (e.g. 0.05). Got {alpha}.", field="alpha"
        )
    return float(alpha)


def relative_of(difference: float, control_mean: float, notes: list[str]) -> float | None:
    """``difference / |control|``, or None (with a note) when the control's mean is zero."""
    if control_mean == 0.0:
        notes.append(
            "The control's mean is 0, so the relative lift is undefined; the absolute "
            "difference and its interval still hold."
        )
        return None
    return difference / abs(control_mean)


def finite(value: float) -> float | None:
    """A float for a report, or None where it is not finite."""
    return value if math.isfinite(value) else None
