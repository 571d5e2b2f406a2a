"""The A/B engine's frequentist estimators: the public entry.

From per-arm ``Summary`` sums (or raw arrays through ``Summary.from_values`` and
``summaries_by_group``), for any number of arms against a control:

- ``compare_means``: Welch's t-test, the difference with its t interval, the relative lift with
  a delta-method interval, the Welch-Satterthwaite degrees of freedom;
- ``compare_proportions``: the two-proportion z-test (unpooled or pooled), the Wald interval,
  the relative lift with delta-method and log-ratio intervals;
- ``analyze``: every treatment against the control on one metric, after the sample-ratio
  check (``srm``), optionally with CUPED (``cuped``), with p-values adjusted across arms;
- ``adjust_across_metrics``: the same adjustment across every arm of several metrics.

Every convention and every degenerate case is in docs/experiments.md, "The statistics". Results
hold no NaN: an undefined quantity is ``None`` and ``notes`` says why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from steward.errors import InvalidInput
from steward.stats import cuped as _cuped
from steward.stats._means import compare_means
from steward.stats._proportions import check_binary, compare_proportions
from steward.stats._results import (
    Comparison,
    CupedDetail,
    Interval,
    Kind,
    Test,
    VariantResult,
    check_alpha,
)
from steward.stats._summary import Summary, summaries_by_group
from steward.stats.corrections import Method, adjust_p_values
from steward.stats.cuped import CupedFit
from steward.stats.srm import DEFAULT_THRESHOLD, SrmResult, sample_ratio_mismatch

__all__ = [
    "Analysis",
    "Comparison",
    "CupedDetail",
    "CupedFit",
    "Interval",
    "Kind",
    "SrmResult",
    "Summary",
    "Test",
    "VariantResult",
    "adjust_across_metrics",
    "analyze",
    "compare_means",
    "compare_proportions",
    "summaries_by_group",
]

KINDS: tuple[Kind, ...] = ("mean", "proportion")


@dataclass(frozen=True)
class Analysis:
    """One metric's experiment read: the sample-ratio check first, then the comparisons.

    ``comparisons`` maps each treatment arm to its comparison with ``control``, in the order of
    the summaries given; their ``p_value_adjusted`` is corrected across those arms with
    ``correction``. ``notes`` opens with the sample-ratio warning when there is a mismatch.
    """

    srm: SrmResult
    control: str
    kind: Kind
    alpha: float
    correction: Method
    comparisons: dict[str, Comparison]
    cuped: CupedFit | None = None
    notes: tuple[str, ...] = ()

    @property
    def trustworthy(self) -> bool:
        """False when the arms' sizes do not match the design: read nothing else then."""
        return not self.srm.mismatch


def analyze(
    summaries: Mapping[str, Summary],
    control: str,
    *,
    kind: Kind = "mean",
    alpha: float = 0.05,
    cuped: bool = False,
    pooled: bool = False,
    weights: Mapping[str, float] | None = None,
    correction: Method = "holm",
    srm_threshold: float = DEFAULT_THRESHOLD,
) -> Analysis:
    """Compare every arm of ``summaries`` with ``control`` on one metric.

    ``weights`` are the design's traffic shares per arm (None: an equal split), used by the
    sample-ratio check. ``pooled`` selects the pooled z-test for proportions. With ``cuped``,
    every summary must carry covariate sums and the metric is analysed CUPED-adjusted.
    """
    _check_arms(summaries, control, kind)
    alpha = check_alpha(alpha)
    srm = sample_ratio_mismatch(
        {name: s.n for name, s in summaries.items()}, weights, threshold=srm_threshold
    )
    notes = _srm_notes(srm)
    fit = _cuped.fit_cuped(summaries) if cuped else None
    if fit is not None:
        notes += fit.notes
    comparisons: dict[str, Comparison] = {}
    for name, summary in summaries.items():
        if name == control:
            continue
        empty = [arm for arm in (control, name) if summaries[arm].n == 0]
        if empty:
            notes += (f"No comparison for '{name}': the arm '{empty[0]}' has no observations.",)
            continue
        comparisons[name] = _compare(
            summaries[control], summary, (control, name), kind, alpha, pooled, fit
        )
    comparisons = _adjust(comparisons, correction)
    return Analysis(srm, control, kind, alpha, correction, comparisons, fit, notes)


def adjust_across_metrics(
    analyses: Mapping[str, Analysis], correction: Method = "holm"
) -> dict[str, Analysis]:
    """Re-adjust every comparison's p-value across all metrics and arms together."""
    flat = [(metric, arm) for metric, a in analyses.items() for arm in a.comparisons]
    adjusted = adjust_p_values(
        [analyses[metric].comparisons[arm].p_value for metric, arm in flat], correction
    )
    lookup = dict(zip(flat, adjusted, strict=True))
    return {
        metric: dataclasses.replace(
            analysis,
            correction=correction,
            comparisons={
                arm: dataclasses.replace(c, p_value_adjusted=lookup[(metric, arm)])
                for arm, c in analysis.comparisons.items()
            },
        )
        for metric, analysis in analyses.items()
    }


def _compare(
    control: Summary,
    treatment: Summary,
    names: tuple[str, str],
    kind: Kind,
    alpha: float,
    pooled: bool,
    fit: CupedFit | None,
) -> Comparison:
    if kind == "proportion":
        for name, summary in zip(names, (control, treatment), strict=True):
            check_binary(summary, name)
        if fit is None:
            return compare_proportions(control, treatment, alpha=alpha, pooled=pooled, names=names)
    if fit is None:
        return compare_means(control, treatment, alpha=alpha, names=names)
    return _compare_cuped(control, treatment, names, kind, alpha, fit)


def _compare_cuped(
    control: Summary,
    treatment: Summary,
    names: tuple[str, str],
    kind: Kind,
    alpha: float,
    fit: CupedFit,
) -> Comparison:
    """Welch's test on the adjusted arms; the means reported are the adjusted ones."""
    result = compare_means(
        _cuped.adjust(control, fit), _cuped.adjust(treatment, fit), alpha=alpha, names=names
    )
    notes = result.notes
    if kind == "proportion":
        notes += (
            "CUPED-adjusted conversions are no longer 0/1: they are compared with Welch's "
            "t-test on the adjusted values, and no log-ratio interval is given.",
        )
    return dataclasses.replace(
        result,
        kind=kind,
        control=_with_raw_mean(result.control, control),
        treatment=_with_raw_mean(result.treatment, treatment),
        cuped=CupedDetail(fit.theta, _difference_reduction(control, treatment, result)),
        notes=notes,
    )


def _difference_reduction(control: Summary, treatment: Summary, result: Comparison) -> float | None:
    """``1 - Var(adjusted difference) / Var(raw difference)``."""
    if control.n < 2 or treatment.n < 2:
        return None
    raw = control.variance / control.n + treatment.variance / treatment.n
    se_c, se_t = result.control.std_error or 0.0, result.treatment.std_error or 0.0
    return _cuped.variance_reduction(raw, se_c**2 + se_t**2)


def _with_raw_mean(variant: VariantResult, raw: Summary) -> VariantResult:
    return dataclasses.replace(variant, raw_mean=raw.mean)


def _adjust(comparisons: dict[str, Comparison], correction: Method) -> dict[str, Comparison]:
    adjusted = adjust_p_values([c.p_value for c in comparisons.values()], correction)
    return {
        arm: dataclasses.replace(c, p_value_adjusted=p)
        for (arm, c), p in zip(comparisons.items(), adjusted, strict=True)
    }


def _srm_notes(srm: SrmResult) -> tuple[str, ...]:
    if not srm.mismatch:
        return ()
    shares = ", ".join(
        f"{arm} {srm.observed[arm]:,} (expected {srm.expected[arm]:,.0f})" for arm in srm.observed
    )
    return (
        f"Sample-ratio mismatch: p = {srm.p_value:.2g} < {srm.threshold:g} ({shares}). The "
        "assignment or the logging is broken; do not trust the results below until the "
        "cause is found.",
    )


def _check_arms(summaries: Mapping[str, Summary], control: str, kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"'kind' must be one of {', '.join(KINDS)}. Got {kind!r}.", field="kind")
    if control not in summaries:
        raise InvalidInput(
            f"The control arm '{control}' is not among the summaries "
            f"({', '.join(map(str, summaries))}).",
            field="control",
        )
    if len(summaries) < 2:
        raise InvalidInput(
            "An analysis needs the control and at least one treatment arm. Got "
            f"{len(summaries)} arm(s).",
            field="summaries",
        )
    for name, summary in summaries.items():
        if not isinstance(summary, Summary):
            raise InvalidInput(
                f"summaries['{name}'] must be a Summary. Got {type(summary).__name__}.",
                field=f"summaries['{name}']",
            )
