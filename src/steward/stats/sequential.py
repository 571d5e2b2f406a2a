"""Sequential (always-valid) inference for the difference of two means: results that can be
read every day without inflating false positives.

    result = confidence_sequence(control, treatment)            # GrowthBook's default
    result = msprt(control, treatment, tau=default_tau(baseline_mean))
    path = cumulative([day1, day2, day3])      # running min of p, running intersection

Two procedures, both on ``Summary`` statistics (a conversion metric is a ``Summary`` whose
``sum`` counts conversions; pass ``kind="proportion"``). ``d`` is the difference of means
(treatment minus control), ``se`` its standard error, ``N = n_C + n_T``:

- **Asymptotic confidence sequence** (Waudby-Smith, Arnold, Wu, Wang, Ramdas, "Time-uniform
  central limit theory and asymptotic confidence sequences", Annals of Statistics 2024,
  arXiv:2103.06476, Theorem 2.2), parameterised as GrowthBook's ``gbstats`` does: with
  ``s² = N se²`` and ``v = N rho²``, the interval is
  ``d ± sqrt(s² · 2(v + 1) / (N v) · log(sqrt(v + 1) / alpha))``. The mixing parameter
  ``rho`` makes the sequence tightest at ``N = tuning_n`` total units (eq. 161):
  ``rho² = (-2 log alpha + log(1 - 2 log alpha)) / tuning_n``, ``tuning_n`` defaulting to
  GrowthBook's 5,000. The always-valid p-value is the smallest ``alpha`` whose interval
  excludes 0 (eq. 155): ``min(1, sqrt(v + 1) · exp(-v z² / (2(v + 1))))``, ``z = d / se``.
  The relative lift gets the same boundary around its delta-method standard error.
- **mSPRT** with a normal mixture (Johari, Pekelis, Walsh, "Always valid inference:
  continuous monitoring of A/B tests", Operations Research 70(3), 2022; Johari, Koomen,
  Pekelis, Walsh, "Peeking at A/B tests", KDD 2017): ``d`` is observed as ``N(theta, se²)``;
  against ``theta ~ N(0, tau²)`` its mixture likelihood ratio is
  ``LR = sqrt(se² / (se² + tau²)) · exp(tau² d² / (2 se² (se² + tau²)))``, the papers'
  formula with ``V/n`` replaced by ``se²`` so that the arms may differ in size. The p-value
  of one look is ``min(1, 1/LR)``; the always-valid p-value is its running minimum over
  looks (``cumulative``). The interval is the set of ``theta`` with ``LR(theta) < 1/alpha``.

Variances are plug-in estimates, as in both papers' A/B applications: the sample variance
(ddof=1) for means, ``p(1 - p)`` for proportions. Each arm needs ``n >= 2``; a standard error
of zero (both arms constant) leaves the interval and p-value undefined. Undefined values are
``None`` with a sentence in ``notes``, never NaN. Conventions: docs/experiments.md,
"Sequential and Bayesian analysis".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from steward.errors import InvalidInput
from steward.stats._results import Interval, Kind, check_alpha, relative_of
from steward.stats.ab import Summary

__all__ = [
    "DEFAULT_EXPECTED_LIFT",
    "DEFAULT_TUNING_N",
    "SequentialResult",
    "confidence_sequence",
    "cumulative",
    "default_tau",
    "msprt",
    "sequential_rho",
]

Method = Literal["confidence_sequence", "msprt"]

# GrowthBook's default: the confidence sequence is narrowest at 5,000 units in total, where it
# is ~1.55x the fixed-horizon z interval. Reading at 10x the tuning size costs ~7% of width
# and at a tenth of it ~27%, so erring low is cheaper than erring high; set it near the total
# sample size at which the experiment will be decided.
DEFAULT_TUNING_N = 5000.0
# mSPRT's mixing sd is the effect one expects: a 5% relative lift of the baseline mean.
DEFAULT_EXPECTED_LIFT = 0.05


@dataclass(frozen=True)
class SequentialResult:
    """One look at a treatment against the control, valid whenever it is taken.

    ``estimate`` is treatment mean minus control mean; ``interval`` its always-valid interval at
    level ``1 - alpha``; ``p_value`` the always-valid p-value of a zero difference at this look.
    ``relative`` is the difference over the control's absolute mean, with ``relative_interval``
    (confidence sequences only). ``tuning`` is ``rho`` (confidence sequence) or ``tau`` (mSPRT).
    """

    method: Method
    kind: Kind
    alpha: float
    tuning: float
    n_control: int
    n_treatment: int
    estimate: float | None
    std_error: float | None
    interval: Interval | None
    p_value: float | None
    relative: float | None = None
    relative_interval: Interval | None = None
    notes: tuple[str, ...] = ()

    @property
    def significant(self) -> bool | None:
        """Whether 0 is outside the interval (``p_value < alpha``); None when undefined."""
        return None if self.p_value is None else self.p_value < self.alpha


@dataclass(frozen=True)
class _Moments:
    """What both procedures read: the difference, its standard error, the arms' moments."""

    mean_c: float
    mean_t: float
    var_c: float
    var_t: float
    n_c: int
    n_t: int

    @property
    def difference(self) -> float:
        return self.mean_t - self.mean_c

    @property
    def std_error(self) -> float:
        return math.sqrt(self.var_c / self.n_c + self.var_t / self.n_t)

    def relative_std_error(self) -> float:
        """Delta method for ``(m_T - m_C) / |m_C|`` (GrowthBook's ``TTest.variance``), in an
        order that overflows to inf rather than raising."""
        ratio = self.mean_t / self.mean_c
        spread = math.sqrt(self.var_t / self.n_t + self.var_c * ratio * ratio / self.n_c)
        return spread / abs(self.mean_c)


# -- public API -----------------------------------------------------------------------------


def confidence_sequence(
    control: Summary,
    treatment: Summary,
    *,
    alpha: float = 0.05,
    kind: Kind = "mean",
    tuning_n: float | None = None,
    rho: float | None = None,
) -> SequentialResult:
    """The asymptotic confidence sequence of Waudby-Smith et al. (2024) for the difference of
    means (and for the relative lift), with GrowthBook's parameterisation.

    ``tuning_n`` (default ``DEFAULT_TUNING_N`` = 5,000) is the total sample size, both arms
    together, at which the sequence is narrowest; ``rho`` sets the mixing parameter directly.
    Give one or neither.
    """
    alpha = check_alpha(alpha)
    rho = _resolve_rho(alpha, tuning_n, rho)
    notes: list[str] = []
    moments, estimate = _moments(control, treatment, kind, notes)
    base = SequentialResult(
        "confidence_sequence", kind, alpha, rho, control.n, treatment.n, estimate, None, None, None
    )
    if moments is None:
        return _finite(replace(base, notes=tuple(notes)))
    n_total = moments.n_c + moments.n_t
    se = moments.std_error
    half = _cs_halfwidth(se, n_total, rho, alpha)
    relative = relative_of(moments.difference, moments.mean_c, notes)
    relative_interval = None
    if relative is not None:
        rel_half = _cs_halfwidth(moments.relative_std_error(), n_total, rho, alpha)
        relative_interval = Interval(relative - rel_half, relative + rel_half)
    result = replace(
        base,
        std_error=se,
        interval=Interval(moments.difference - half, moments.difference + half),
        p_value=_cs_p_value(moments.difference / se, n_total, rho),
        relative=relative,
        relative_interval=relative_interval,
        notes=tuple(notes),
    )
    return _finite(result)


def msprt(
    control: Summary,
    treatment: Summary,
    *,
    tau: float,
    alpha: float = 0.05,
    kind: Kind = "mean",
) -> SequentialResult:
    """The mixture SPRT of Johari, Pekelis and Walsh with mixing distribution ``N(0, tau²)``.

    ``tau`` is in the metric's units: the size of effect one expects. ``default_tau`` gives the
    default, ``DEFAULT_EXPECTED_LIFT`` (5%) of a baseline mean fixed before the experiment; a
    team that knows its typical effects passes its own. The p-value of this look is
    ``min(1, 1/LR)``; pass the looks to ``cumulative`` for the always-valid running minimum.
    """
    alpha = check_alpha(alpha)
    tau = _check_positive(tau, "tau")
    notes: list[str] = []
    moments, estimate = _moments(control, treatment, kind, notes)
    base = SequentialResult(
        "msprt", kind, alpha, tau, control.n, treatment.n, estimate, None, None, None
    )
    if moments is None:
        return _finite(replace(base, notes=tuple(notes)))
    se = moments.std_error
    half = _msprt_halfwidth(se, tau, alpha)
    result = replace(
        base,
        std_error=se,
        interval=Interval(moments.difference - half, moments.difference + half),
        p_value=_msprt_p_value(moments.difference, se, tau),
        relative=relative_of(moments.difference, moments.mean_c, notes),
        notes=tuple(notes),
    )
    return _finite(result)


def default_tau(baseline_mean: float, *, expected_lift: float = DEFAULT_EXPECTED_LIFT) -> float:
    """mSPRT's mixing sd: ``expected_lift x |baseline_mean|``.

    For an observed difference ``d`` the mixture likelihood ratio is largest at
    ``tau² = d² - se²``, which tends to ``d²`` as data accrue: ``tau`` should be the effect one
    expects to see. ``baseline_mean`` is the control's mean before the experiment (a
    pre-period or the previous experiment), fixed in advance: a ``tau`` read off the running
    data would make the test's guarantee depend on the data it is testing.
    """
    baseline = _check_finite(baseline_mean, "baseline_mean")
    lift = _check_positive(expected_lift, "expected_lift")
    if baseline == 0.0:
        raise InvalidInput(
            "'baseline_mean' is 0, so a relative 'expected_lift' gives no effect size. Pass "
            "'tau' to msprt directly, in the metric's units.",
            field="baseline_mean",
        )
    return lift * abs(baseline)


def sequential_rho(alpha: float, tuning_n: float) -> float:
    """The mixing parameter that makes the confidence sequence tightest at ``tuning_n`` total
    units (Waudby-Smith et al., eq. 161):
    ``sqrt((-2 log alpha + log(1 - 2 log alpha)) / tuning_n)``.
    """
    alpha = check_alpha(alpha)
    tuning_n = _check_positive(tuning_n, "tuning_n")
    log_alpha = math.log(alpha)
    return math.sqrt((-2.0 * log_alpha + math.log(1.0 - 2.0 * log_alpha)) / tuning_n)


def cumulative(results: Sequence[SequentialResult]) -> list[SequentialResult]:
    """The always-valid reading of successive looks, oldest first: each look's p-value
    becomes the minimum so far and each interval the intersection so far.

    Both are valid because the guarantee holds uniformly over looks: with probability
    ``1 - alpha`` the true difference is inside every look's interval at once. Looks with an
    undefined interval or p-value leave the running values unchanged.
    """
    path: list[SequentialResult] = []
    p_min: float | None = None
    running: Interval | None = None
    running_rel: Interval | None = None
    for result in results:
        notes = list(result.notes)
        if result.p_value is not None:
            p_min = result.p_value if p_min is None else min(p_min, result.p_value)
        running = _intersect(running, result.interval, notes)
        running_rel = _intersect(running_rel, result.relative_interval, notes)
        path.append(
            replace(
                result,
                p_value=p_min,
                interval=running,
                relative_interval=running_rel,
                notes=tuple(notes),
            )
        )
    return path


# -- the two boundaries ---------------------------------------------------------------------


def _cs_halfwidth(se: float, n_total: int, rho: float, alpha: float) -> float:
    """``sqrt(s² 2(v + 1) / (N v) log(sqrt(v + 1) / alpha))`` with ``s² = N se²`` and
    ``v = N rho²``, written as ``se sqrt(2(v + 1) / v log(...))`` so that ``se²`` never
    overflows."""
    v = n_total * rho * rho
    return se * math.sqrt(2.0 * (v + 1.0) / v * (0.5 * math.log1p(v) - math.log(alpha)))


def _cs_p_value(z: float, n_total: int, rho: float) -> float:
    v = n_total * rho * rho
    log_p = 0.5 * math.log1p(v) - v * z * z / (2.0 * (v + 1.0))
    return math.exp(min(log_p, 0.0))


def _msprt_halfwidth(se: float, tau: float, alpha: float) -> float:
    """``sqrt(2 se² (se² + tau²) / tau² log(sqrt(1 + tau²/se²) / alpha))``, in units of
    ``se``."""
    r = se / tau
    log_term = 0.5 * math.log1p(1.0 / (r * r)) - math.log(alpha)
    if r > 1.0:  # se sqrt(1 + r²) as se r sqrt(1 + 1/r²): r² may overflow
        return se * r * math.sqrt(2.0 * (1.0 + 1.0 / (r * r)) * log_term)
    return se * math.sqrt(2.0 * (1.0 + r * r) * log_term)


def _msprt_p_value(difference: float, se: float, tau: float) -> float:
    """``min(1, 1/LR)``: ``log LR = -log(1 + tau²/se²)/2 + z²/2 · tau²/(se² + tau²)``."""
    r, z = se / tau, difference / se
    log_lr = -0.5 * math.log1p(1.0 / (r * r)) + 0.5 * z * z / (1.0 + r * r)
    return math.exp(min(-log_lr, 0.0))


# -- inputs ---------------------------------------------------------------------------------


def _moments(
    control: Summary, treatment: Summary, kind: Kind, notes: list[str]
) -> tuple[_Moments | None, float | None]:
    """The arms' moments, or None (with a note) when the interval is undefined; and the
    point estimate, defined whenever both arms have a row."""
    _check_kind(kind)
    for name, arm in (("control", control), ("treatment", treatment)):
        if kind == "proportion":
            _check_proportion(arm, name)
    estimate = treatment.mean - control.mean if control.n and treatment.n else None
    small = [name for name, arm in (("control", control), ("treatment", treatment)) if arm.n < 2]
    if small:
        what = "The control and the treatment have" if len(small) == 2 else f"The {small[0]} has"
        notes.append(
            f"{what} fewer than 2 rows, so the variance is undefined: no interval or p-value "
            "yet. They appear once each arm has 2 rows."
        )
        return None, estimate
    moments = _Moments(
        control.mean,
        treatment.mean,
        _variance(control, kind),
        _variance(treatment, kind),
        control.n,
        treatment.n,
    )
    if moments.var_c == 0.0 and moments.var_t == 0.0:
        notes.append(
            "Both arms have zero variance (every value within each arm is the same, e.g. no "
            "conversions at all), so the standard error is 0: no interval or p-value. They "
            "appear once either arm varies."
        )
        return None, estimate
    for name, var in (("control", moments.var_c), ("treatment", moments.var_t)):
        if var == 0.0:
            notes.append(
                f"The {name} has zero variance; its plug-in standard error is 0, so the "
                "interval rests on the other arm's spread alone."
            )
    return moments, estimate


def _variance(arm: Summary, kind: Kind) -> float:
    if kind == "proportion":
        p = arm.mean
        return p * (1.0 - p)
    return arm.variance


def _check_proportion(arm: Summary, name: str) -> None:
    binary = abs(arm.sum_sq - arm.sum) <= 1e-9 * max(1.0, arm.sum)
    if not (0.0 <= arm.sum <= arm.n and binary):
        raise InvalidInput(
            f"The {name} is not a conversion metric: a proportion needs 0 <= sum <= n and "
            f"sum_sq == sum (0/1 values). Got n={arm.n}, sum={arm.sum}, sum_sq={arm.sum_sq}. "
            "Build it with Summary.from_counts(n, conversions), or use kind='mean'.",
            field=f"{name}.sum_sq" if 0.0 <= arm.sum <= arm.n else f"{name}.sum",
        )


def _check_kind(kind: Any) -> None:
    if kind not in ("mean", "proportion"):
        raise InvalidInput(f"'kind' must be 'mean' or 'proportion'. Got {kind!r}.", field="kind")


def _resolve_rho(alpha: float, tuning_n: float | None, rho: float | None) -> float:
    if tuning_n is not None and rho is not None:
        raise InvalidInput(
            "Give 'tuning_n' or 'rho', not both: 'rho' is derived from 'tuning_n'.", field="rho"
        )
    if rho is not None:
        return _check_positive(rho, "rho")
    return sequential_rho(alpha, DEFAULT_TUNING_N if tuning_n is None else tuning_n)


def _check_finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"'{field}' must be a number. Got {value!r}.", field=field)
    if not math.isfinite(float(value)):
        raise InvalidInput(f"'{field}' must be a finite number. Got {value!r}.", field=field)
    return float(value)


def _check_positive(value: Any, field: str) -> float:
    number = _check_finite(value, field)
    if number <= 0.0:
        raise InvalidInput(f"'{field}' must be positive. Got {value!r}.", field=field)
    return number


def _finite(result: SequentialResult) -> SequentialResult:
    """Values that overflow a float (a control mean within rounding of 0, sums near 1e308)
    become None, with a note: a report never shows inf or NaN."""
    changes: dict[str, Any] = {}
    for name in ("estimate", "std_error", "p_value", "relative"):
        value = getattr(result, name)
        if value is not None and not math.isfinite(value):
            changes[name] = None
    for name in ("interval", "relative_interval"):
        interval = getattr(result, name)
        if interval is not None and not all(math.isfinite(end) for end in interval):
            changes[name] = None
    if not changes:
        return result
    verb = "is" if len(changes) == 1 else "are"
    note = (
        f"The {', '.join(changes)} overflowed double precision (a control mean within rounding "
        f"of 0, or values near 1e308) and {verb} left undefined: rescale the metric."
    )
    return replace(result, **changes, notes=(*result.notes, note))


def _intersect(running: Interval | None, new: Interval | None, notes: list[str]) -> Interval | None:
    if new is None:
        return running
    if running is None:
        return new
    lower, upper = max(running.lower, new.lower), min(running.upper, new.upper)
    if lower > upper:
        notes.append(
            "This look's interval does not meet the earlier ones: the data are not behaving as "
            "one stable difference (a changing effect or an assignment problem); the latest "
            "interval is kept."
        )
        return new
    return Interval(lower, upper)
