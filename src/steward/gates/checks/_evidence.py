"""Reading an evaluation as evidence: the lookups every metric check shares.

Each helper raises :class:`Unmet` with a detail that says what to do, so a missing evaluation,
metric or interval is a failure the user can act on, never a silent pass.
"""

from __future__ import annotations

from typing import Any, Literal

from steward.domain.evaluation import Estimate, Evaluation, Task
from steward.domain.gates import GateContext, Outcome
from steward.gates.checks._base import Unmet

# metrics where a smaller value is better; every other metric is read as higher-is-better
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse", "mae", "mape"})

EstimateKind = Literal["value", "lower_bound", "upper_bound"]


def short(fingerprint: str) -> str:
    """``sha256:`` and the first 12 hex digits: enough to tell evaluations apart in a sentence."""
    return fingerprint[:19]


def evaluation_evidence(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "evaluation_id": evaluation.id,
        "data_fingerprint": evaluation.data_fingerprint,
        "task": evaluation.summary.task.value,
        "n_rows": evaluation.summary.n_rows,
    }


def require_evaluation(ctx: GateContext) -> Evaluation:
    if ctx.evaluation is None:
        raise Unmet("no evaluation of this version; run steward evaluate")
    return ctx.evaluation


def require_task(tasks: list[Task], evaluation: Evaluation) -> None:
    """Stops as NOT_APPLICABLE when the policy scoped the check to other tasks."""
    task = evaluation.summary.task
    if tasks and task not in tasks:
        raise Unmet(
            f"applies to {', '.join(tasks)} models; this is a {task} model",
            outcome=Outcome.NOT_APPLICABLE,
            evidence=evaluation_evidence(evaluation),
        )


def require_metric(evaluation: Evaluation, metric: str) -> Estimate:
    """The metric's estimate, with a defined value."""
    estimate = evaluation.summary.metrics.get(metric)
    evidence = evaluation_evidence(evaluation)
    if estimate is None:
        available = ", ".join(sorted(evaluation.summary.metrics)) or "none"
        raise Unmet(
            f"metric {metric!r} is not in evaluation {evaluation.id}; it has: {available}",
            evidence=evidence,
        )
    if estimate.value is None:
        raise Unmet(
            f"{metric} is undefined on the data of evaluation {evaluation.id}: "
            f"{estimate.note or 'no reason recorded'}",
            evidence=evidence,
        )
    return estimate


def pick(estimate: Estimate, kind: EstimateKind, metric: str, evaluation: Evaluation) -> float:
    """The number a threshold is compared with: the point value or one end of the interval."""
    number = {
        "value": estimate.value,
        "lower_bound": estimate.lower,
        "upper_bound": estimate.upper,
    }[kind]
    if number is None:
        # value None was caught by require_metric: only a missing interval gets here
        raise Unmet(
            f"evaluation {evaluation.id} has no confidence interval for {metric}; evaluate with "
            "bootstrap resamples, or compare the value instead of the bound",
            evidence=evaluation_evidence(evaluation),
        )
    return number


def metric_evidence(estimate: Estimate, evaluation: Evaluation) -> dict[str, Any]:
    return {
        **evaluation_evidence(evaluation),
        "value": estimate.value,
        "lower": estimate.lower,
        "upper": estimate.upper,
        "confidence_level": evaluation.summary.confidence_level,
    }


def kind_label(metric: str, kind: EstimateKind) -> str:
    return {
        "value": metric,
        "lower_bound": f"{metric} lower bound",
        "upper_bound": f"{metric} upper bound",
    }[kind]
