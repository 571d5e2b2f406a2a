"""What an evaluation of a model version found: the evidence release gates read.

Pure data. ``steward.stats.evaluation`` computes an :class:`EvaluationSummary` from arrays; the
gates capability adds the latency it measured through the loader and stores the whole as an
:class:`Evaluation`, tied to the fingerprint of the data it was computed on so a gate can tell
whether the evidence is still current.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from steward.domain.entities import Entity


class Task(StrEnum):
    BINARY = "binary"  # two classes; scores are the probability of the positive class
    MULTICLASS = "multiclass"  # k > 2 classes; averages are macro over classes
    REGRESSION = "regression"


CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
)
REGRESSION_METRICS = ("rmse", "mae", "mape", "r2")
FAIRNESS_METRICS = ("demographic_parity_difference", "equalized_odds_difference")


class Estimate(Entity):
    """A metric's point estimate and its bootstrap confidence interval.

    ``value`` is None only when the metric is undefined on this data (ROC AUC with one class
    present, MAPE with a zero target, ...); ``note`` then says why. A report never shows NaN.
    """

    value: float | None
    lower: float | None = None
    upper: float | None = None
    note: str | None = None


class ReliabilityBin(Entity):
    """One bin of the reliability diagram (equal-width bins over the predicted probability)."""

    lower: float
    upper: float
    count: int
    mean_predicted: float | None = None  # None for an empty bin
    fraction_positive: float | None = None


class GroupMetrics(Entity):
    group: str  # the group's value, as text
    n: int
    metrics: dict[str, Estimate]


class WorstGroup(Entity):
    group: str
    value: float


class GroupReport(Entity):
    """The metrics of every group of one column, and the disparities between them."""

    column: str
    groups: list[GroupMetrics]
    # binary classification only: difference between the largest and smallest group rate
    demographic_parity_difference: Estimate | None = None
    equalized_odds_difference: Estimate | None = None
    # metric name -> the group doing worst on it (lowest for scores, highest for losses)
    worst_group: dict[str, WorstGroup] = Field(default_factory=dict)


class EvaluationSummary(Entity):
    """Metrics computed from labels and predictions: no model, no store, no timing."""

    task: Task
    n_rows: int
    classes: list[str] = Field(default_factory=list)  # classifiers: label values, as text
    positive_class: str | None = None  # binary: the class whose probability the scores are
    metrics: dict[str, Estimate]
    reliability: list[ReliabilityBin] = Field(default_factory=list)
    groups: list[GroupReport] = Field(default_factory=list)
    confidence_level: float = 0.95
    resamples: int = 0  # bootstrap resamples behind the intervals; 0 = no intervals
    seed: int | None = None


class Percentiles(Entity):
    p50: float
    p95: float
    p99: float


class Latency(Entity):
    """Milliseconds per ``predict`` call through the version's real loader."""

    single_row_ms: Percentiles
    batch_ms: Percentiles
    batch_size: int
    calls: int  # timed calls per case, after warm-up


class Evaluation(Entity):
    """One stored evaluation of one version on one dataset."""

    id: str
    model_name: str
    version: int
    label: str
    data_fingerprint: str  # "sha256:<hex>" of the evaluation data, as lineage computes it
    summary: EvaluationSummary
    latency: Latency | None = None
    created_at: datetime
    created_by: str
