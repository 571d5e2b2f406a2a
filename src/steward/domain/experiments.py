"""Experiments: metrics defined once, experiments run on a deployment's split, decisions.

Pure data. An experiment names a deployment whose A/B split (or canary) assigns units to
variants (versions); its metrics are definitions stored by name; the analysis
(``steward.experiments``) reads the prediction log and the outcome log, recomputes each unit's
variant with the hash the gateway used (``steward.domain.assignment``) and runs the engine in
``steward.stats``. docs/experiments.md gives every convention.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from steward.domain.entities import Entity

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"a {what} name is 1 to 128 letters, digits, '_', '.' or '-', starting with a letter "
            f"or digit; got {value!r}"
        )
    return value


class MetricSource(StrEnum):
    """Where a metric's values come from."""

    OUTCOME = "outcome"  # the outcome log: steward.log_outcome(unit or request, name, value)
    PREDICTION = "prediction"  # a column of the prediction log (prediction, score)
    LATENCY = "latency"  # the prediction log's latency_ms
    ERROR = "error"  # 1 when the routed model failed the request (a fallback or no answer)


class Aggregation(StrEnum):
    """How a unit's values become the unit's one number (every metric is per unit)."""

    SUM = "sum"
    MEAN = "mean"
    COUNT = "count"  # how many values the unit has
    ANY = "any"  # 1 when the unit has any value > 0 (a conversion): a proportion metric

    @property
    def is_proportion(self) -> bool:
        return self is Aggregation.ANY


class MetricDefinition(Entity):
    """A metric, defined once and used by any experiment.

    ``event`` names the outcome (OUTCOME) or the prediction-log column (PREDICTION: prediction
    or score); LATENCY and ERROR need none. ``covariate`` names an outcome whose pre-period
    value per unit (before the experiment's start) is CUPED's covariate.
    """

    name: str
    description: str | None = None
    source: MetricSource
    event: str | None = None
    aggregation: Aggregation = Aggregation.SUM
    covariate: str | None = None
    created_at: datetime
    created_by: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "metric")

    @model_validator(mode="after")
    def _event_matches_source(self) -> MetricDefinition:
        if self.source in (MetricSource.OUTCOME, MetricSource.PREDICTION) and not self.event:
            raise ValueError(f"a metric from the {self.source.value} log names its event")
        if self.source is MetricSource.PREDICTION and self.event not in ("prediction", "score"):
            raise ValueError("a prediction metric reads 'prediction' or 'score'")
        return self


class MetricRole(StrEnum):
    PRIMARY = "primary"  # the decision rests on it; exactly one per experiment
    SECONDARY = "secondary"  # reported, corrected for multiplicity, not decisive
    GUARDRAIL = "guardrail"  # must not degrade beyond its tolerance


class Direction(StrEnum):
    INCREASE = "increase"  # higher is better
    DECREASE = "decrease"  # lower is better (latency, errors, churn)


class ExperimentMetric(Entity):
    metric: str
    role: MetricRole
    direction: Direction = Direction.INCREASE
    # guardrails: the relative degradation tolerated (0.02: may be up to 2% worse) before the
    # guardrail fails
    tolerance: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _guardrails_have_tolerance(self) -> ExperimentMetric:
        if self.role is MetricRole.GUARDRAIL and self.tolerance is None:
            object.__setattr__(self, "tolerance", 0.0)
        return self


class Method(StrEnum):
    FIXED = "fixed"  # fixed-horizon frequentist: read once, at the planned sample size
    SEQUENTIAL = "sequential"  # always-valid: may be read daily (asymptotic confidence sequence)
    BAYESIAN = "bayesian"  # chance to beat control and expected loss


class Correction(StrEnum):
    HOLM = "holm"
    BENJAMINI_HOCHBERG = "bh"
    BONFERRONI = "bonferroni"
    NONE = "none"


class ExperimentState(StrEnum):
    RUNNING = "running"
    DECIDED = "decided"


class DecisionAction(StrEnum):
    SHIP = "ship"  # the winning variant becomes the deployment's champion
    ROLLBACK = "rollback"  # traffic back to the control
    ITERATE = "iterate"  # keep the deployment as it is; the experiment ends


class Decision(Entity):
    action: DecisionAction
    variant: int | None = None  # SHIP: the version shipped
    reason: str
    applied: bool = False  # the deployment was changed accordingly
    decided_at: datetime
    decided_by: str


class Experiment(Entity):
    """An experiment on ``deployment``'s split: variants are its versions, ``control`` one of
    them. ``planned_units`` and ``mde`` are the plan (``steward.stats`` power analysis)."""

    name: str
    deployment: str
    model_name: str
    control: int
    variants: list[int]  # every version of the split, control included, ascending
    # the design, as the deployment had it at creation: each variant's share of units, and
    # the salt its assignment hash used (the split's experiment name, or the canary's salt)
    weights: dict[int, float] | None = None
    salt: str | None = None
    metrics: list[ExperimentMetric]
    method: Method = Method.FIXED
    correction: Correction = Correction.HOLM
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    mde: float | None = Field(default=None, gt=0)  # relative minimum detectable effect
    planned_units: int | None = Field(default=None, ge=2)
    hypothesis: str | None = None
    start: datetime
    end: datetime | None = None
    state: ExperimentState = ExperimentState.RUNNING
    decision: Decision | None = None
    created_at: datetime
    created_by: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "experiment")

    @model_validator(mode="after")
    def _one_primary(self) -> Experiment:
        primaries = [m.metric for m in self.metrics if m.role is MetricRole.PRIMARY]
        if len(primaries) != 1:
            raise ValueError(f"an experiment has exactly one primary metric; got {len(primaries)}")
        if self.control not in self.variants or len(self.variants) < 2:
            raise ValueError("the control must be one of at least two variants")
        return self

    @property
    def primary(self) -> ExperimentMetric:
        return next(m for m in self.metrics if m.role is MetricRole.PRIMARY)


# -- what an analysis found ------------------------------------------------------------------
class Recommendation(StrEnum):
    SHIP = "ship"  # the primary metric won and no guardrail failed
    ROLLBACK = "rollback"  # the primary metric lost, or a guardrail failed
    KEEP_RUNNING = "keep-running"  # no verdict yet, and the plan has units to go
    INCONCLUSIVE = "inconclusive"  # no verdict at the planned size, or results untrustworthy


class GuardrailStatus(StrEnum):
    OK = "ok"  # not worse beyond the tolerance (or better)
    WARNING = "warning"  # the estimate is worse beyond the tolerance, not significantly
    FAILING = "failing"  # significantly worse beyond the tolerance


class ArmResult(Entity):
    """One variant against the control on one metric. Intervals are ``[lower, upper]``; None
    (with a note) where undefined, never NaN."""

    variant: int
    n: int
    mean: float
    raw_mean: float  # before CUPED
    difference: float | None = None
    difference_ci: tuple[float, float] | None = None
    relative: float | None = None
    relative_ci: tuple[float, float] | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    significant: bool = False
    better: bool | None = None  # in the metric's direction; None when not significant
    chance_to_beat: float | None = None  # Bayesian: P(variant beats control)
    expected_loss: float | None = None  # Bayesian: expected loss of choosing the variant
    guardrail: GuardrailStatus | None = None
    notes: list[str] = Field(default_factory=list)


class MetricResult(Entity):
    metric: str
    role: MetricRole
    direction: Direction
    kind: str  # "mean" or "proportion"
    method: Method
    test: str  # the test used: welch-t, z-unpooled, confidence-sequence, beta-exact ...
    control: int
    control_n: int
    control_mean: float
    cuped_variance_reduction: float | None = None
    arms: list[ArmResult]
    notes: list[str] = Field(default_factory=list)


class SrmCheck(Entity):
    """Sample-ratio mismatch, checked before anything else."""

    counts: dict[int, int]
    expected: dict[int, float]
    statistic: float
    p_value: float
    mismatch: bool


class ExperimentAnalysis(Entity):
    experiment: str
    deployment: str
    computed_at: datetime
    start: datetime
    end: datetime
    method: Method
    alpha: float
    correction: Correction
    units: dict[int, int]
    planned_units: int | None = None
    srm: SrmCheck
    metrics: list[MetricResult]
    recommendation: Recommendation
    ship_variant: int | None = None
    reasons: list[str]
    assignment_mismatches: int = 0  # of the units checked against the design's hash
    assignment_checked: int = 0  # every unit, or a seeded sample of 100,000 in large ones
