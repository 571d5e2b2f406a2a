"""Monitoring: what a deployment's monitor watches, what one window of it found, the rules
that turn a finding into an alert.

Pure data. A monitor run (``steward.monitoring``) reads one window of the prediction log,
computes drift, data quality, freshness, live and estimated performance and serving SLOs, and
stores a :class:`MonitorWindow`. Its ``metrics`` are a flat mapping of dotted names to numbers
(``drift.share_drifted``, ``slo.p95_ms``, ``performance.roc_auc`` ...): alert rules compare
those numbers with thresholds, so a rule can watch anything a window measures. The names are
listed in docs/monitoring.md.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from steward.domain.entities import Entity

# Bounds of a monitor's schedule: a window shorter than a minute has too few requests to test,
# one longer than 31 days is a different job (a report, not a monitor).
MIN_INTERVAL_S = 60
MAX_WINDOW_S = 31 * 24 * 3600


class Severity(StrEnum):
    """How loud an alert is; an incident takes its worst alert's severity."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


def worst(severities: list[Severity]) -> Severity:
    return min(severities, key=lambda s: s.rank)


class Comparison(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
}

# metric names: dotted words, e.g. drift.share_drifted, drift.column.age.score, slo.p95_ms
_METRIC_NAME = re.compile(r"^[A-Za-z_][\w\-]*(\.[\w\-]+)*$")


class AlertRule(Entity):
    """Fires when ``metric op threshold`` holds for ``for_windows`` consecutive windows.

    A window that did not measure the metric (no labels yet, no traffic) breaks the streak
    without firing: a rule on ``performance.roc_auc`` stays quiet until labels arrive.
    """

    name: str = Field(min_length=1, max_length=128)
    metric: str = Field(min_length=1, max_length=256)
    op: Comparison
    threshold: float
    severity: Severity = Severity.MEDIUM
    for_windows: int = Field(default=1, ge=1, le=1000)

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        if not _METRIC_NAME.match(value):
            raise ValueError(
                "a metric is a dotted name such as 'drift.share_drifted' or 'slo.p95_ms'"
            )
        return value

    def breached(self, value: float | None) -> bool:
        return value is not None and COMPARE[self.op](value, self.threshold)

    def describe(self) -> str:
        return f"{self.metric} {self.op.value} {self.threshold:g}"


class FreshnessSla(Entity):
    """How old the newest prediction, label and reference may be, in seconds (None: no SLA)."""

    max_prediction_age_s: float | None = Field(default=None, gt=0)
    max_label_age_s: float | None = Field(default=None, gt=0)
    max_reference_age_s: float | None = Field(default=None, gt=0)


class ServingSlo(Entity):
    """Serving objectives, measured per window and as an error budget over ``budget_window_s``."""

    availability: float = Field(default=0.999, gt=0, lt=1)  # share of requests answered well
    max_p95_ms: float | None = Field(default=None, gt=0)
    budget_window_s: int = Field(default=30 * 24 * 3600, ge=3600, le=90 * 24 * 3600)


class MonitorSpec(Entity):
    """How a deployment is monitored. Stored per deployment; a deployment without one is
    monitored with :func:`default_spec` for its model's risk tier."""

    interval_s: int = Field(default=3600, ge=MIN_INTERVAL_S, le=MAX_WINDOW_S)
    window_s: int = Field(default=3600, ge=MIN_INTERVAL_S, le=MAX_WINDOW_S)
    # per-column drift thresholds (the score compared, as in DriftReport), and the share of
    # drifted features that makes the dataset drift
    thresholds: dict[str, float] = Field(default_factory=dict)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    min_rows: int = Field(default=30, ge=1)  # fewer rows than this: drift is not tested
    # how long labels take to arrive: live performance (and the estimate's error) is measured
    # on the traffic of [start - label_delay_s, end - label_delay_s), whose labels are in
    label_delay_s: int = Field(default=0, ge=0, le=MAX_WINDOW_S)
    freshness: FreshnessSla = Field(default_factory=FreshnessSla)
    slo: ServingSlo = Field(default_factory=ServingSlo)
    rules: list[AlertRule] = Field(default_factory=list)
    enabled: bool = True

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, rules: list[AlertRule]) -> list[AlertRule]:
        names = [rule.name for rule in rules]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(duplicated)}")
        return rules


def default_rules(tier: int) -> list[AlertRule]:
    """The rules a deployment gets when its monitor names none: stricter for riskier tiers
    (1 = highest risk) — louder severities, and they fire on the first window rather than
    after a streak."""
    streak = {1: 1, 2: 2}.get(tier, 3)
    loud = {1: Severity.HIGH, 2: Severity.MEDIUM}.get(tier, Severity.LOW)
    page = {1: Severity.CRITICAL, 2: Severity.HIGH}.get(tier, Severity.MEDIUM)
    return [
        AlertRule(
            name="feature-drift",
            metric="drift.dataset_drift",
            op=Comparison.GE,
            threshold=1,
            severity=loud,
            for_windows=streak,
        ),
        AlertRule(
            name="prediction-drift",
            metric="drift.prediction.drifted",
            op=Comparison.GE,
            threshold=1,
            severity=loud,
            for_windows=streak,
        ),
        AlertRule(
            name="schema-violations",
            metric="quality.schema_violations",
            op=Comparison.GT,
            threshold=0,
            severity=loud,
        ),
        AlertRule(
            name="error-rate",
            metric="slo.error_rate",
            op=Comparison.GT,
            threshold={1: 0.01, 2: 0.02}.get(tier, 0.05),
            severity=page,
        ),
        AlertRule(
            name="error-budget-exhausted",
            metric="slo.error_budget_remaining",
            op=Comparison.LE,
            threshold=0,
            severity=page,
        ),
        AlertRule(
            name="stale-predictions",
            metric="freshness.prediction_late",
            op=Comparison.GE,
            threshold=1,
            severity=loud,
            for_windows=streak,
        ),
    ]


def default_spec(tier: int) -> MonitorSpec:
    return MonitorSpec(rules=default_rules(tier))


class StoredMonitor(Entity):
    """A deployment's monitor spec as stored; ``revision`` counts its changes."""

    deployment: str
    spec: MonitorSpec
    revision: int
    updated_at: datetime
    updated_by: str


class WindowStatus(StrEnum):
    OK = "ok"  # measured
    NO_DATA = "no_data"  # no prediction in the window: itself a freshness signal
    NO_REFERENCE = "no_reference"  # traffic, but no reference to compare it with: no drift
    FAILED = "failed"  # the run failed; ``error`` says why


class MonitorWindow(Entity):
    """What one run measured over ``[start, end)`` of one deployment's traffic.

    ``metrics`` holds the numbers alert rules watch; ``report`` holds the details a person
    reads (the drift report with histograms, quality per column, performance with counts).
    """

    id: str
    deployment: str
    model_name: str
    start: datetime
    end: datetime
    computed_at: datetime
    status: WindowStatus
    rows: int = 0
    versions: list[int] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    report: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class AlertState(StrEnum):
    FIRING = "firing"  # the rule still holds
    RESOLVED = "resolved"  # a later window no longer breached it


class Alert(Entity):
    """One episode of a rule firing: created when the rule first fires, resolved when a later
    window no longer breaches it. While firing, later breaches update ``last_value``."""

    id: str
    deployment: str
    model_name: str
    rule: AlertRule
    state: AlertState
    severity: Severity
    value: float
    last_value: float
    window_id: str  # the window that fired it
    fired_at: datetime
    resolved_at: datetime | None = None
    incident_id: int | None = None
