"""Checks on what the evaluation measured: floors, ceilings, regression, calibration, latency."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from steward.domain.evaluation import Evaluation, Task
from steward.domain.gates import GateContext, Outcome
from steward.gates.checks._base import BaseCheck, CheckParams, Finding, Unmet, num, passed_if
from steward.gates.checks._evidence import (
    LOWER_IS_BETTER,
    evaluation_evidence,
    kind_label,
    metric_evidence,
    pick,
    require_evaluation,
    require_metric,
    require_task,
    short,
)

# empty: the check applies to every task; otherwise NOT_APPLICABLE to the others
Tasks = list[Task]


class FloorParams(CheckParams):
    metric: str = Field(min_length=1)
    min: float
    estimate: Literal["value", "lower_bound"] = "value"
    tasks: Tasks = Field(default_factory=list)


class MetricFloor(BaseCheck[FloorParams]):
    name = "metric_floor"
    Params = FloorParams

    def title(self, params: FloorParams) -> str:
        return f"{kind_label(params.metric, params.estimate)} >= {num(params.min)}"

    def evaluate(self, params: FloorParams, ctx: GateContext) -> Finding:
        evaluation = require_evaluation(ctx)
        require_task(params.tasks, evaluation)
        estimate = require_metric(evaluation, params.metric)
        compared = pick(estimate, params.estimate, params.metric, evaluation)
        ok = compared >= params.min
        return passed_if(
            ok,
            f"{kind_label(params.metric, params.estimate)} {num(compared)} "
            f"{'>=' if ok else '<'} {num(params.min)} on {short(evaluation.data_fingerprint)}",
            {**metric_evidence(estimate, evaluation), "compared": compared, "min": params.min},
        )


class CeilingParams(CheckParams):
    metric: str = Field(min_length=1)
    max: float
    estimate: Literal["value", "upper_bound"] = "value"
    tasks: Tasks = Field(default_factory=list)


class MetricCeiling(BaseCheck[CeilingParams]):
    name = "metric_ceiling"
    Params = CeilingParams

    def title(self, params: CeilingParams) -> str:
        return f"{kind_label(params.metric, params.estimate)} <= {num(params.max)}"

    def evaluate(self, params: CeilingParams, ctx: GateContext) -> Finding:
        evaluation = require_evaluation(ctx)
        require_task(params.tasks, evaluation)
        estimate = require_metric(evaluation, params.metric)
        compared = pick(estimate, params.estimate, params.metric, evaluation)
        ok = compared <= params.max
        return passed_if(
            ok,
            f"{kind_label(params.metric, params.estimate)} {num(compared)} "
            f"{'<=' if ok else '>'} {num(params.max)} on {short(evaluation.data_fingerprint)}",
            {**metric_evidence(estimate, evaluation), "compared": compared, "max": params.max},
        )


class RegressionParams(CheckParams):
    metric: str = Field(min_length=1)
    tolerance: float = Field(default=0.0, ge=0)
    # None: lower is better for losses and errors (log_loss, rmse, ...), higher for the rest
    direction: Literal["higher", "lower"] | None = None
    tasks: Tasks = Field(default_factory=list)

    def higher_is_better(self) -> bool:
        if self.direction is not None:
            return self.direction == "higher"
        return self.metric not in LOWER_IS_BETTER


class NoRegression(BaseCheck[RegressionParams]):
    name = "no_regression"
    Params = RegressionParams

    def title(self, params: RegressionParams) -> str:
        if params.higher_is_better():
            return f"{params.metric} >= champion - {num(params.tolerance)}"
        return f"{params.metric} <= champion + {num(params.tolerance)}"

    def evaluate(self, params: RegressionParams, ctx: GateContext) -> Finding:
        champion = ctx.champion
        if champion is None:
            raise Unmet("no champion to compare with", outcome=Outcome.NOT_APPLICABLE)
        if champion.version == ctx.version.version:
            raise Unmet("this version is the champion", outcome=Outcome.NOT_APPLICABLE)
        evaluation = require_evaluation(ctx)
        require_task(params.tasks, evaluation)
        metric = params.metric
        candidate = pick(require_metric(evaluation, metric), "value", metric, evaluation)
        baseline_evaluation = _champion_evaluation(ctx, evaluation, champion.version)
        baseline = pick(
            require_metric(baseline_evaluation, metric), "value", metric, baseline_evaluation
        )
        if params.higher_is_better():
            ok = candidate >= baseline - params.tolerance
        else:
            ok = candidate <= baseline + params.tolerance
        change = candidate - baseline
        return passed_if(
            ok,
            f"{params.metric} {num(candidate)} vs champion v{champion.version} {num(baseline)} "
            f"(change {change:+.4g}, tolerance {num(params.tolerance)}) "
            f"on {short(evaluation.data_fingerprint)}",
            {
                **evaluation_evidence(evaluation),
                "candidate": candidate,
                "champion": baseline,
                "champion_version": champion.version,
                "champion_evaluation_id": baseline_evaluation.id,
                "change": change,
                "tolerance": params.tolerance,
                "higher_is_better": params.higher_is_better(),
            },
        )


def _champion_evaluation(ctx: GateContext, evaluation: Evaluation, version: int) -> Evaluation:
    """The champion's evaluation on the candidate's data: other data would not be comparable."""
    baseline = ctx.champion_evaluation
    if baseline is None or baseline.data_fingerprint != evaluation.data_fingerprint:
        evidence = evaluation_evidence(evaluation)
        evidence["champion_version"] = version
        if baseline is not None:
            evidence["champion_evaluation_id"] = baseline.id
            evidence["champion_data_fingerprint"] = baseline.data_fingerprint
        raise Unmet(
            f"champion v{version} has no evaluation on {short(evaluation.data_fingerprint)}; "
            "evaluate the champion on the same data",
            evidence=evidence,
        )
    return baseline


class CalibrationParams(CheckParams):
    max_ece: float = Field(ge=0)
    estimate: Literal["value", "upper_bound"] = "value"
    tasks: Tasks = Field(default_factory=list)


class Calibration(BaseCheck[CalibrationParams]):
    name = "calibration"
    Params = CalibrationParams

    def title(self, params: CalibrationParams) -> str:
        return f"{kind_label('ece', params.estimate)} <= {num(params.max_ece)}"

    def evaluate(self, params: CalibrationParams, ctx: GateContext) -> Finding:
        evaluation = require_evaluation(ctx)
        if evaluation.summary.task == Task.REGRESSION:
            raise Unmet(
                "calibration applies to classifiers; this is a regression model",
                outcome=Outcome.NOT_APPLICABLE,
                evidence=evaluation_evidence(evaluation),
            )
        require_task(params.tasks, evaluation)
        estimate = require_metric(evaluation, "ece")
        compared = pick(estimate, params.estimate, "ece", evaluation)
        ok = compared <= params.max_ece
        return passed_if(
            ok,
            f"{kind_label('ece', params.estimate)} {num(compared)} {'<=' if ok else '>'} "
            f"{num(params.max_ece)} on {short(evaluation.data_fingerprint)}",
            {**metric_evidence(estimate, evaluation), "compared": compared, "max": params.max_ece},
        )


class LatencyParams(CheckParams):
    p95_ms: float = Field(gt=0)
    case: Literal["single_row", "batch"] = "single_row"


class Latency(BaseCheck[LatencyParams]):
    name = "latency"
    Params = LatencyParams

    def title(self, params: LatencyParams) -> str:
        return f"p95 {_case_label(params.case)} latency <= {num(params.p95_ms)} ms"

    def evaluate(self, params: LatencyParams, ctx: GateContext) -> Finding:
        evaluation = require_evaluation(ctx)
        latency = evaluation.latency
        if latency is None:
            raise Unmet(
                f"evaluation {evaluation.id} has no latency measurements; run steward evaluate "
                "with timing on",
                evidence=evaluation_evidence(evaluation),
            )
        timing = latency.single_row_ms if params.case == "single_row" else latency.batch_ms
        ok = timing.p95 <= params.p95_ms
        batch = f" (batches of {latency.batch_size})" if params.case == "batch" else ""
        return passed_if(
            ok,
            f"p95 {_case_label(params.case)} latency {num(timing.p95)} ms{batch} "
            f"{'<=' if ok else '>'} {num(params.p95_ms)} ms over {latency.calls} calls",
            {
                **evaluation_evidence(evaluation),
                "p50_ms": timing.p50,
                "p95_ms": timing.p95,
                "p99_ms": timing.p99,
                "budget_ms": params.p95_ms,
                "calls": latency.calls,
                "batch_size": latency.batch_size,
            },
        )


def _case_label(case: str) -> str:
    return "single-row" if case == "single_row" else "batch"
