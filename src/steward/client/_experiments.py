"""The SDK's experiments operations: metrics, experiments, outcome events, and an
experiment's analysis and decision.

A part of :class:`steward.client.Client` (its base class), kept apart so each file has one
reason to change; the methods call the same backend as the rest of the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from steward.client._backend import Backend
from steward.client._gates import as_utc
from steward.domain.experiments import (
    Aggregation,
    DecisionAction,
    Experiment,
    ExperimentAnalysis,
    ExperimentMetric,
    ExperimentState,
    MetricDefinition,
    MetricRole,
    MetricSource,
)
from steward.errors import InvalidInput
from steward.schemas import parse
from steward.schemas.experiments import (
    DecisionCreate,
    ExperimentCreate,
    ExperimentQuery,
    MetricBody,
    OutcomeColumns,
    OutcomeReceipt,
    metric_shorthand,
    outcome_table,
)

# A metric of an experiment as the SDK takes it: "name", "name:decrease",
# "name:decrease:0.02" (a guardrail's tolerance), a mapping of ExperimentMetric's fields, or an
# ExperimentMetric.
MetricArg = str | Mapping[str, Any] | ExperimentMetric


class ExperimentMethods:
    _backend: Backend

    # metrics (docs/experiments.md) ------------------------------------------------------------
    def define_metric(
        self,
        name: str,
        *,
        source: MetricSource | str,
        event: str | None = None,
        aggregation: Aggregation | str = Aggregation.SUM,
        covariate: str | None = None,
        description: str | None = None,
    ) -> MetricDefinition:
        """Define metric ``name`` once, for any experiment: ``source`` ``outcome`` (``event``
        names the outcome), ``prediction`` (``event``: ``prediction`` or ``score``),
        ``latency`` or ``error``; each unit's values aggregated by ``sum``, ``mean``, ``count``
        or ``any`` (a conversion); ``covariate``: an outcome whose pre-period value per unit
        CUPED uses. Redefining is refused while a running experiment uses the metric."""
        body = parse(MetricBody, {
            "source": source, "event": event, "aggregation": aggregation,
            "covariate": covariate, "description": description,
        })  # fmt: skip
        return self._backend.define_metric(name, body)

    def metrics(self) -> list[MetricDefinition]:
        """Every metric defined, by name."""
        return self._backend.list_metrics()

    # experiments --------------------------------------------------------------------------
    def create_experiment(
        self,
        name: str,
        *,
        deployment: str,
        metric: MetricArg,
        secondary: Sequence[MetricArg] = (),
        guardrails: Sequence[MetricArg] = (),
        control: int | None = None,
        method: str = "fixed",
        correction: str = "holm",
        alpha: float = 0.05,
        mde: float | None = None,
        planned_units: int | None = None,
        hypothesis: str | None = None,
        start: datetime | None = None,
    ) -> Experiment:
        """Start experiment ``name`` on ``deployment``'s split (or canary), read on ``metric``
        (the primary), reporting ``secondary`` metrics and holding ``guardrails``
        (``"latency:decrease:0.05"``: lower is better, up to 5% worse tolerated). The variants,
        their weights and the control (default: the champion) come from the deployment;
        ``start`` defaults to now (a naive time is UTC)."""
        items = [_metric_item(metric, MetricRole.PRIMARY, "metric")]
        for role, given, field in ((MetricRole.SECONDARY, secondary, "secondary"),
                                   (MetricRole.GUARDRAIL, guardrails, "guardrails")):  # fmt: skip
            items += [_metric_item(m, role, f"{field}.{i}") for i, m in enumerate(_listed(given))]
        body = parse(ExperimentCreate, {
            "name": name, "deployment": deployment, "metrics": items, "control": control,
            "method": method, "correction": correction, "alpha": alpha, "mde": mde,
            "planned_units": planned_units, "hypothesis": hypothesis, "start": as_utc(start),
        })  # fmt: skip
        return self._backend.create_experiment(body)

    def get_experiment(self, name: str) -> Experiment:
        return self._backend.get_experiment(name)

    def list_experiments(
        self, *, deployment: str | None = None, state: ExperimentState | str | None = None
    ) -> list[Experiment]:
        """Experiments, latest started first; ``state``: running or decided."""
        query = parse(ExperimentQuery, {"deployment": deployment, "state": state})
        return self._backend.list_experiments(query)

    # analysis and decision (docs/experiments.md#analysing-and-deciding) ------------------------
    def analyze_experiment(self, name: str) -> ExperimentAnalysis:
        """Analyse experiment ``name`` now: the sample-ratio check first, each metric with the
        experiment's method, the correction across metrics, the guardrails, and a
        recommendation (ship, rollback, keep-running, inconclusive) with its reasons. Recorded
        as an ``experiment.analyzed`` event."""
        return self._backend.analyze_experiment(name)

    def experiment_report_html(self, name: str) -> str:
        """Analyse experiment ``name`` now (an ``experiment.analyzed`` event) and return the
        analysis as a standalone web page: the sample-ratio check, the units, an interval plot
        and the numbers per metric, the recommendation and its reasons."""
        return self._backend.experiment_report_html(name)

    def decide_experiment(
        self,
        name: str,
        action: DecisionAction | str,
        *,
        reason: str,
        variant: int | None = None,
        apply: bool = False,
    ) -> Experiment:
        """Record the decision on experiment ``name`` (``ship``, ``rollback`` or ``iterate``)
        and why; it ends the experiment. ``variant``: the version to ship (default: the one
        treatment of a two-arm experiment). ``apply``: act on the deployment too; ship promotes
        the variant to production if needed (its gate and approvals must allow it; over HTTP
        the token needs the approver role) and makes it the champion, rollback sends all
        traffic back to the champion."""
        body = parse(DecisionCreate, {"action": action, "reason": reason, "variant": variant,
                                      "apply": apply})  # fmt: skip
        return self._backend.decide_experiment(name, body)

    # outcomes -----------------------------------------------------------------------------
    def log_outcomes(
        self,
        outcomes: object,
        *,
        name_column: str = "name",
        value_column: str = "value",
        unit_column: str = "unit_id",
        request_column: str = "request_id",
        time_column: str = "timestamp",
    ) -> OutcomeReceipt:
        """Log outcome events, all or nothing, in one request: a list of ``{"name", "value",
        "unit_id" or "request_id", "timestamp"?}`` rows, a pandas DataFrame, a pyarrow Table or
        a .parquet/.csv path (the column options name its columns). A timestamp without a
        zone is UTC; none means now. The way to log many events: ``log_outcome`` logs one."""
        if isinstance(outcomes, list | tuple):
            return self._backend.log_outcomes(list(outcomes), "sdk")
        columns = OutcomeColumns(
            name=name_column, value=value_column, unit_id=unit_column,
            request_id=request_column, timestamp=time_column,
        )  # fmt: skip
        table = outcome_table(outcomes, columns)
        from_file = isinstance(outcomes, str | Path)
        return self._backend.log_outcomes(table, "file" if from_file else "sdk")

    def log_outcome(
        self,
        name: str,
        value: float | bool,
        *,
        unit_id: str | None = None,
        request_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> OutcomeReceipt:
        """Log one outcome event of ``unit_id`` or ``request_id`` (one request, one small
        file: for many events use ``log_outcomes``)."""
        row: dict[str, Any] = {"name": name, "value": value}
        for key, given in (("unit_id", unit_id), ("request_id", request_id),
                           ("timestamp", as_utc(timestamp))):  # fmt: skip
            if given is not None:
                row[key] = given
        return self._backend.log_outcomes([row], "sdk")


def _listed(given: Sequence[MetricArg] | MetricArg) -> list[MetricArg]:
    """One metric or several: a lone string is one metric, not its characters."""
    if isinstance(given, str | Mapping | ExperimentMetric):
        return [given]
    return list(given)


def _metric_item(given: MetricArg, role: MetricRole, field: str) -> dict[str, Any]:
    if isinstance(given, str):
        return metric_shorthand(given, role, field)
    if isinstance(given, ExperimentMetric):
        return {**given.model_dump(exclude={"role"}), "role": role}
    if isinstance(given, Mapping):
        return {**given, "role": role}
    raise InvalidInput(
        f"A metric is a name such as 'revenue' or 'latency:decrease:0.05', or a mapping with "
        f"'metric'; got a {type(given).__name__}.",
        field=field,
    )
