"""``steward experiment analyze``: read the experiment the deployment ran, and say what to do.

1. The exposed units and their variants, by the gateway's hash (``_exposures``).
2. The sample-ratio check against the design's weights, before any result.
3. Each metric per unit (``_unit_values``), summed per variant (``stats.ab.summaries_by_group``),
   and analysed with the experiment's method: fixed-horizon (Welch / z, CUPED when the metric
   has a covariate), sequential (an asymptotic confidence sequence, safe to read daily) or
   Bayesian (exact Beta chance to beat control for proportions).
4. p-values of the primary and secondary metrics adjusted across metrics and arms; guardrails
   judged against their tolerance; a recommendation with its reasons.

Every analysis is an ``experiment.analyzed`` event. docs/experiments.md gives the conventions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from steward.domain.clock import utcnow
from steward.domain.experiments import (
    ArmResult,
    Correction,
    Direction,
    Experiment,
    ExperimentAnalysis,
    GuardrailStatus,
    Method,
    MetricDefinition,
    MetricResult,
    MetricRole,
    MetricSource,
    Recommendation,
    SrmCheck,
)
from steward.errors import InvalidInput
from steward.experiments._exposures import Design, Exposures, read_exposures
from steward.experiments._unit_values import (
    UnitBuffers,
    covariate_values,
    unit_summaries,
    unit_values,
)
from steward.stats import ab
from steward.stats.corrections import Method as CorrectionMethod
from steward.stats.corrections import adjust_p_values
from steward.stats.srm import sample_ratio_mismatch
from steward.store.base import MetadataStore
from steward.store.outcome_events import Events, keyed_events

# CUPED's pre-period: the covariate is the unit's value in the 14 days before the start (as
# GrowthBook's default lookback)
PRE_PERIOD = timedelta(days=14)
# a larger share of the checked units served against the design's hash: the split did not run
# as designed
MAX_MISMATCHED_SHARE = 0.01


def analyze_experiment(
    store: MetadataStore,
    prediction_root: str,
    outcome_root: str,
    name: str,
    *,
    actor: str,
    now: Callable[[], datetime] = utcnow,
) -> ExperimentAnalysis:
    with store.read() as rx:
        experiment = rx.get_experiment(name)
        definitions = {m.metric: rx.get_metric(m.metric) for m in experiment.metrics}
    computed_at = now()
    end = experiment.end or computed_at
    if end <= experiment.start:
        raise InvalidInput(
            f"Experiment {name!r} starts at {experiment.start.isoformat()}: nothing to analyse "
            "before then.",
            field="start",
        )
    exposures = read_exposures(prediction_root, experiment, experiment.start, end)
    if len(exposures.units) == 0:
        raise InvalidInput(
            f"Experiment {name!r} has no exposed unit yet: deployment "
            f"{experiment.deployment!r} answered no request since "
            f"{experiment.start.isoformat()}. Analyse it once traffic has arrived.",
            field="name",
        )
    outcomes = _outcomes(outcome_root, definitions, exposures, experiment.start, end)
    found = _analysis(experiment, definitions, exposures, outcomes, outcome_root, computed_at,
                      end)  # fmt: skip
    with store.write(actor) as tx:
        tx.record("experiment.analyzed", "experiment", name, _event(found))
    return found


def _analysis(
    experiment: Experiment,
    definitions: Mapping[str, MetricDefinition],
    exposures: Exposures,
    outcomes: Mapping[str, Events],
    outcome_root: str,
    computed_at: datetime,
    end: datetime,
) -> ExperimentAnalysis:
    design = Design.of(experiment)
    variants = list(experiment.variants)
    codes = np.searchsorted(np.asarray(variants), exposures.variant)
    per_variant = np.bincount(codes, minlength=len(variants))
    units = {v: int(n) for v, n in zip(variants, per_variant, strict=True)}
    srm = _srm(units, design)
    assigned = _Assigned(codes, per_variant, UnitBuffers(len(exposures.units)))
    results = [
        _metric(
            experiment, m.metric, definitions[m.metric], exposures, assigned, outcomes, outcome_root
        )
        for m in experiment.metrics
    ]
    results = _adjusted(results, experiment)
    results = [_judged(r, experiment) for r in results]
    recommendation, ship, reasons = _recommend(
        experiment, srm, results, sum(units.values()), exposures.mismatched, exposures.checked
    )
    return ExperimentAnalysis(
        experiment=experiment.name, deployment=experiment.deployment, computed_at=computed_at,
        start=experiment.start, end=end, method=experiment.method, alpha=experiment.alpha,
        correction=experiment.correction, units=units, planned_units=experiment.planned_units,
        srm=srm, metrics=results, recommendation=recommendation, ship_variant=ship,
        reasons=reasons, assignment_mismatches=exposures.mismatched,
        assignment_checked=exposures.checked,
    )  # fmt: skip


def _outcomes(
    root: str,
    definitions: Mapping[str, MetricDefinition],
    exposures: Exposures,
    start: datetime,
    end: datetime,
) -> dict[str, Events]:
    """The events of every outcome the metrics read, of exposed units only, by outcome."""
    names = sorted(
        {
            d.event
            for d in definitions.values()
            if d.source is MetricSource.OUTCOME and d.event is not None
        }
    )
    return _events_of(root, names, exposures, start, end)


def _events_of(
    root: str, names: Sequence[str], exposures: Exposures, since: datetime, until: datetime
) -> dict[str, Events]:
    keys = exposures.unit_keys()
    return keyed_events(root, names, keys, _request_keys(exposures), since, until)


def _request_keys(exposures: Exposures) -> pa.Table | None:
    """The exposed requests (with their id and unit), for outcomes logged against a request."""
    requests = exposures.requests
    return requests if "request_id" in requests.column_names else None


def _srm(units: dict[int, int], design: Design) -> SrmCheck:
    names = {v: str(v) for v in units}
    found = sample_ratio_mismatch(
        {names[v]: n for v, n in units.items()}, {names[v]: design.weight(v) for v in units}
    )
    return SrmCheck(
        counts=units,
        expected={v: float(found.expected[names[v]]) for v in units},
        statistic=found.statistic, p_value=found.p_value, mismatch=found.mismatch,
    )  # fmt: skip


# -- one metric ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Assigned:
    """Each exposed unit's variant index (``codes``), the units of each variant, and the
    per-unit arrays every metric is made in, one metric at a time."""

    codes: np.ndarray
    units: np.ndarray
    buffers: UnitBuffers


def _metric(
    experiment: Experiment,
    name: str,
    definition: MetricDefinition,
    exposures: Exposures,
    assigned: _Assigned,
    outcomes: Mapping[str, Events],
    outcome_root: str,
) -> MetricResult:
    role = next(m for m in experiment.metrics if m.metric == name)
    found = unit_values(
        definition, exposures, outcomes.get(definition.event or ""), assigned.buffers
    )
    covariate = None
    notes: list[str] = []
    if definition.covariate and experiment.method is Method.FIXED:
        since = experiment.start - PRE_PERIOD
        pre = _events_of(outcome_root, [definition.covariate], exposures, since, experiment.start)
        covariate = covariate_values(definition, exposures, pre[definition.covariate])
    elif definition.covariate:
        notes.append("CUPED applies to fixed-horizon analyses; this one is not adjusted.")
    summaries = unit_summaries(found, assigned.codes, assigned.units, covariate, assigned.buffers)
    by_name = {str(v): s for v, s in zip(experiment.variants, summaries, strict=True)}
    kind: ab.Kind = "proportion" if definition.aggregation.is_proportion else "mean"
    control = str(experiment.control)
    if experiment.method is Method.SEQUENTIAL:
        arms, test = _sequential(by_name, control, kind, experiment.alpha), "confidence-sequence"
        reduction = None
    elif experiment.method is Method.BAYESIAN:
        arms, test = _bayesian(by_name, control, kind, experiment)
        reduction = None
    else:
        analysis = ab.analyze(by_name, control, kind=kind, alpha=experiment.alpha,
                              cuped=covariate is not None, correction="none",
                              weights=_weights(experiment))  # fmt: skip
        arms = [_fixed_arm(int(arm), c) for arm, c in analysis.comparisons.items()]
        test = next(iter(analysis.comparisons.values())).test if analysis.comparisons else "-"
        reduction = analysis.cuped.variance_reduction if analysis.cuped else None
        # the experiment's own sample-ratio check is reported once, above every metric
        notes += [n for n in analysis.notes if "sample-ratio" not in n.lower()
                  and "sample ratio" not in n.lower()]  # fmt: skip
    return MetricResult(
        metric=name, role=role.role, direction=role.direction, kind=kind,
        method=experiment.method, test=test, control=experiment.control,
        control_n=by_name[control].n, control_mean=_mean(by_name[control]),
        cuped_variance_reduction=reduction, arms=arms, notes=notes,
    )  # fmt: skip


def _mean(summary: ab.Summary) -> float:
    return summary.sum / summary.n if summary.n else 0.0


def _interval(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value.lower), float(value.upper))


def _fixed_arm(variant: int, c: ab.Comparison) -> ArmResult:
    return ArmResult(
        variant=variant, n=c.treatment.n, mean=c.treatment.mean, raw_mean=c.treatment.raw_mean,
        difference=c.difference, difference_ci=_interval(c.difference_ci), relative=c.relative,
        relative_ci=_interval(c.relative_ci), p_value=c.p_value, notes=list(c.notes),
    )  # fmt: skip


def _sequential(
    by_name: Mapping[str, ab.Summary], control: str, kind: ab.Kind, alpha: float
) -> list[ArmResult]:
    from steward.stats.sequential import confidence_sequence

    arms = []
    for name, summary in by_name.items():
        if name == control:
            continue
        found = confidence_sequence(by_name[control], summary, alpha=alpha, kind=kind)
        arms.append(ArmResult(
            variant=int(name), n=summary.n, mean=_mean(summary), raw_mean=_mean(summary),
            difference=found.estimate, difference_ci=_interval(found.interval),
            relative=found.relative, relative_ci=_interval(found.relative_interval),
            p_value=found.p_value, notes=list(found.notes),
        ))  # fmt: skip
    return arms


def _weights(experiment: Experiment) -> dict[str, float]:
    """The design's shares by arm name, for the engine's own sample-ratio check."""
    design = Design.of(experiment)
    return {str(v): design.weight(v) for v in experiment.variants}


def _bayesian(
    by_name: Mapping[str, ab.Summary], control: str, kind: ab.Kind, experiment: Experiment
) -> tuple[list[ArmResult], str]:
    """Proportions: the exact Beta posterior chance to beat control and expected loss. Means
    have no conjugate exact answer here: they get the fixed-horizon test, said in a note."""
    if kind != "proportion":
        analysis = ab.analyze(by_name, control, kind=kind, alpha=experiment.alpha,
                              correction="none", weights=_weights(experiment))  # fmt: skip
        note = (
            "Bayesian chance to beat applies to proportions; a Welch t-test is reported for "
            "this mean metric."
        )
        arms = [
            _fixed_arm(int(a), c).model_copy(update={"notes": [*c.notes, note]})
            for a, c in analysis.comparisons.items()
        ]
        return arms, "welch_t"
    from steward.stats.bayesian import beta_chance_to_beat

    arms = []
    for name, summary in by_name.items():
        if name == control:
            continue
        found = beta_chance_to_beat(by_name[control], summary, credible_level=1 - experiment.alpha)
        arms.append(ArmResult(
            variant=int(name), n=summary.n, mean=_mean(summary), raw_mean=_mean(summary),
            difference=found.difference, difference_ci=_interval(found.difference_interval),
            relative=found.lift_median, relative_ci=_interval(found.lift_interval),
            chance_to_beat=found.chance_to_beat_control,
            expected_loss=found.expected_loss_treatment, notes=list(found.notes),
        ))  # fmt: skip
    return arms, "beta-exact"


# -- across metrics --------------------------------------------------------------------------
def _adjusted(results: list[MetricResult], experiment: Experiment) -> list[MetricResult]:
    """Adjust the primary and secondary metrics' p-values across metrics and arms together;
    guardrails keep their own (a guardrail is a safety check, not a discovery)."""
    tested = [
        (i, j)
        for i, r in enumerate(results)
        if r.role is not MetricRole.GUARDRAIL
        for j, _ in enumerate(r.arms)
    ]
    adjusted = adjust_p_values(
        [results[i].arms[j].p_value for i, j in tested], _CORRECTIONS[experiment.correction]
    )
    found = dict(zip(tested, adjusted, strict=True))
    return [
        r.model_copy(update={"arms": [
            a.model_copy(update={"p_value_adjusted": found.get((i, j))})
            for j, a in enumerate(r.arms)
        ]})
        for i, r in enumerate(results)
    ]  # fmt: skip


_CORRECTIONS: dict[Correction, CorrectionMethod] = {
    Correction.HOLM: "holm",
    Correction.BENJAMINI_HOCHBERG: "benjamini_hochberg",
    Correction.BONFERRONI: "bonferroni",
    Correction.NONE: "none",
}


def _judged(result: MetricResult, experiment: Experiment) -> MetricResult:
    role = next(m for m in experiment.metrics if m.metric == result.metric)
    arms = []
    for arm in result.arms:
        significant = _significant(arm, result, experiment.alpha)
        better = None
        if significant and arm.difference is not None:
            better = (arm.difference > 0) == (result.direction is Direction.INCREASE)
        guardrail = None
        if result.role is MetricRole.GUARDRAIL:
            guardrail = _guardrail(arm, result.direction, role.tolerance or 0.0)
        update = {"significant": significant, "better": better, "guardrail": guardrail}
        arms.append(arm.model_copy(update=update))
    return result.model_copy(update={"arms": arms})


def _significant(arm: ArmResult, result: MetricResult, alpha: float) -> bool:
    if arm.chance_to_beat is not None:
        return arm.chance_to_beat >= 1 - alpha or arm.chance_to_beat <= alpha
    p = arm.p_value if result.role is MetricRole.GUARDRAIL else arm.p_value_adjusted
    if p is None:
        p = arm.p_value
    return p is not None and p < alpha


def _guardrail(arm: ArmResult, direction: Direction, tolerance: float) -> GuardrailStatus:
    """Failing when the interval lies wholly beyond the tolerated degradation; a warning when
    only the estimate does. Relative when the control's mean allows it, else absolute."""
    value, interval = arm.relative, arm.relative_ci
    if value is None:
        value, interval, tolerance = arm.difference, arm.difference_ci, 0.0
    if value is None:
        return GuardrailStatus.OK
    sign = 1.0 if direction is Direction.INCREASE else -1.0
    worse = sign * value < -tolerance
    if interval is not None and sign * (interval[1] if sign > 0 else interval[0]) < -tolerance:
        return GuardrailStatus.FAILING
    return GuardrailStatus.WARNING if worse else GuardrailStatus.OK


def _recommend(
    experiment: Experiment,
    srm: SrmCheck,
    results: list[MetricResult],
    total: int,
    mismatched: int,
    checked: int,
) -> tuple[Recommendation, int | None, list[str]]:
    untrusted = []
    if srm.mismatch:
        untrusted.append(
            f"Sample ratio mismatch (p = {srm.p_value:.2g}): the variants' sizes "
            f"{srm.counts} do not match the design; no result can be trusted until the cause "
            "(assignment, logging, a crashing variant) is found."
        )
    if checked and mismatched / checked > MAX_MISMATCHED_SHARE:
        untrusted.append(
            f"{mismatched / checked:.1%} of the units checked ({mismatched:,} of {checked:,}) "
            "were served a version other than the design's hash gives them: the split changed "
            "during the experiment."
        )
    if untrusted:
        return Recommendation.INCONCLUSIVE, None, untrusted
    reasons: list[str] = []
    failing = [
        (r.metric, a.variant)
        for r in results
        for a in r.arms
        if a.guardrail is GuardrailStatus.FAILING
    ]
    for metric, variant in failing:
        reasons.append(f"Guardrail {metric} fails for v{variant}: worse beyond its tolerance.")
    primary = next(r for r in results if r.role is MetricRole.PRIMARY)
    winners = [a for a in primary.arms if a.better is True]
    losers = [a for a in primary.arms if a.better is False]
    if failing:
        return Recommendation.ROLLBACK, None, reasons
    if winners:
        best = max(winners, key=lambda a: _score(a, primary.direction))
        reasons.append(
            f"{primary.metric} improves for v{best.variant} ({_lift(best)}), significant at "
            f"alpha {experiment.alpha:g} after {experiment.correction.value} correction; no "
            "guardrail fails."
        )
        return Recommendation.SHIP, best.variant, reasons + _warnings(results)
    if losers and len(losers) == len(primary.arms):
        reasons.append(f"{primary.metric} is significantly worse for every variant.")
        return Recommendation.ROLLBACK, None, reasons
    planned = experiment.planned_units
    if planned is not None and total < planned:
        reasons.append(
            f"No significant difference on {primary.metric} yet; {total:,} of the planned "
            f"{planned:,} units ({total / planned:.0%})."
        )
        return Recommendation.KEEP_RUNNING, None, reasons + _warnings(results)
    if experiment.method is Method.SEQUENTIAL and planned is None:
        reasons.append(f"No significant difference on {primary.metric} yet; the sequential "
                       "analysis may be read again as data arrives.")  # fmt: skip
        return Recommendation.KEEP_RUNNING, None, reasons + _warnings(results)
    reasons.append(f"No significant difference on {primary.metric} at {total:,} units.")
    return Recommendation.INCONCLUSIVE, None, reasons + _warnings(results)


def _score(arm: ArmResult, direction: Direction) -> float:
    value = arm.relative if arm.relative is not None else (arm.difference or 0.0)
    return value if direction is Direction.INCREASE else -value


def _lift(arm: ArmResult) -> str:
    if arm.relative is not None:
        return f"{arm.relative:+.2%}"
    return f"{arm.difference:+.4g}" if arm.difference is not None else "n/a"


def _warnings(results: list[MetricResult]) -> list[str]:
    return [
        f"Guardrail {r.metric} warns for v{a.variant}: its estimate is worse beyond the "
        "tolerance, not significantly."
        for r in results
        for a in r.arms
        if a.guardrail is GuardrailStatus.WARNING
    ]


def _event(found: ExperimentAnalysis) -> dict[str, Any]:
    primary = next(r for r in found.metrics if r.role is MetricRole.PRIMARY)
    return {
        "recommendation": found.recommendation.value,
        "ship_variant": found.ship_variant,
        "units": {str(v): n for v, n in found.units.items()},
        "srm_p_value": _finite(found.srm.p_value),
        "primary": primary.metric,
        "primary_p_values": {str(a.variant): _finite(a.p_value_adjusted) for a in primary.arms},
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
