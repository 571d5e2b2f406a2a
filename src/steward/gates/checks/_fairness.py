"""The fairness check: how far apart the groups of each named column are.

Two kinds of metric: the disparities the evaluation computes for binary classifiers
(``demographic_parity_difference``, ``equalized_odds_difference``), read as they are; or any
per-group metric (``recall``, ``mae``, ...), whose disparity is the largest group value minus
the smallest. The second is how a regression or multiclass model is checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from steward.domain.evaluation import FAIRNESS_METRICS, Estimate, Evaluation, GroupReport, Task
from steward.domain.gates import GateContext
from steward.gates.checks._base import BaseCheck, CheckParams, Finding, Unmet, num, passed_if
from steward.gates.checks._evidence import (
    evaluation_evidence,
    require_evaluation,
    require_task,
    short,
)


class FairnessParams(CheckParams):
    metric: str = Field(default="demographic_parity_difference", min_length=1)
    groups: list[str] = Field(default_factory=list)  # group columns; empty: every one evaluated
    max: float = Field(ge=0)
    tasks: list[Task] = Field(default_factory=list)


class Fairness(BaseCheck[FairnessParams]):
    name = "fairness"
    Params = FairnessParams

    def title(self, params: FairnessParams) -> str:
        scope = ", ".join(params.groups) if params.groups else "every evaluated group column"
        if params.metric in FAIRNESS_METRICS:
            return f"{params.metric} <= {num(params.max)} across {scope}"
        return f"{params.metric} gap between groups <= {num(params.max)} across {scope}"

    def evaluate(self, params: FairnessParams, ctx: GateContext) -> Finding:
        evaluation = require_evaluation(ctx)
        require_task(params.tasks, evaluation)
        disparities: dict[str, float] = {}
        group_values: dict[str, dict[str, float | None]] = {}
        for report in _reports(evaluation, params.groups):
            disparities[report.column], group_values[report.column] = _disparity(
                report, params.metric, evaluation
            )
        over = [column for column, gap in disparities.items() if gap > params.max]
        found = ", ".join(f"{column} {num(gap)}" for column, gap in disparities.items())
        verdict = (
            f"over {num(params.max)}: {', '.join(over)}" if over else f"all <= {num(params.max)}"
        )
        return passed_if(
            not over,
            f"{params.metric} {found}; {verdict} on {short(evaluation.data_fingerprint)}",
            {
                **evaluation_evidence(evaluation),
                "disparity": disparities,
                "group_values": group_values,
                "max": params.max,
            },
        )


def _reports(evaluation: Evaluation, columns: list[str]) -> list[GroupReport]:
    reports = evaluation.summary.groups
    if not reports:
        raise Unmet(
            f"evaluation {evaluation.id} has no group metrics; evaluate with the group columns",
            evidence=evaluation_evidence(evaluation),
        )
    if not columns:
        return reports
    by_column = {report.column: report for report in reports}
    missing = [column for column in columns if column not in by_column]
    if missing:
        raise Unmet(
            f"evaluation {evaluation.id} has no group metrics for {', '.join(missing)}; "
            f"it has: {', '.join(by_column)}",
            evidence=evaluation_evidence(evaluation),
        )
    return [by_column[column] for column in columns]


def _disparity(
    report: GroupReport, metric: str, evaluation: Evaluation
) -> tuple[float, dict[str, float | None]]:
    """The column's disparity, and the per-group values behind it (None where not per group)."""
    if metric in FAIRNESS_METRICS:
        return _computed_disparity(report, metric, evaluation), _rates_behind(report, metric)
    values: dict[str, float | None] = {}
    for group in report.groups:
        estimate = group.metrics.get(metric)
        values[group.group] = None if estimate is None else estimate.value
    defined = [value for value in values.values() if value is not None]
    if len(defined) < 2:
        named = {name for group in report.groups for name in group.metrics}
        has = f"; the groups have: {', '.join(sorted(named))}" if metric not in named else ""
        raise Unmet(
            f"fewer than two groups of {report.column} have a value of {metric}{has}",
            evidence={**evaluation_evidence(evaluation), "group_values": {report.column: values}},
        )
    return max(defined) - min(defined), values


# The per-group rates a computed disparity is the spread of (fairlearn's definitions).
_RATES_OF = {
    "demographic_parity_difference": ("selection_rate",),
    "equalized_odds_difference": ("true_positive_rate", "false_positive_rate"),
}


def _rates_behind(report: GroupReport, metric: str) -> dict[str, Any]:
    """Each group's rates behind ``metric``, for the report; empty if they were not computed."""
    values: dict[str, Any] = {}
    for group in report.groups:
        rates = {r: group.metrics[r].value for r in _RATES_OF[metric] if r in group.metrics}
        if rates:
            values[group.group] = rates if len(rates) > 1 else next(iter(rates.values()))
    return values


def _computed_disparity(report: GroupReport, metric: str, evaluation: Evaluation) -> float:
    estimate: Estimate | None = (
        report.demographic_parity_difference
        if metric == "demographic_parity_difference"
        else report.equalized_odds_difference
    )
    evidence: dict[str, Any] = evaluation_evidence(evaluation)
    task = evaluation.summary.task
    if estimate is None and task == Task.BINARY:
        raise Unmet(
            f"{metric} was not computed for {report.column} in evaluation {evaluation.id}",
            evidence=evidence,
        )
    if estimate is None:
        example = "mae" if task == Task.REGRESSION else "recall"
        raise Unmet(
            f"{metric} is defined for binary classifiers and this is a {task} model; name a "
            f"per-group metric such as {example} to check the gap between groups",
            evidence=evidence,
        )
    if estimate.value is None:
        raise Unmet(
            f"{metric} is undefined for {report.column}: {estimate.note or 'no reason recorded'}",
            evidence=evidence,
        )
    return estimate.value
