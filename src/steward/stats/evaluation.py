"""Evaluate a model from its labels, predictions and probabilities: metrics with bootstrap
confidence intervals, overall and per group, and the disparities release gates check.

    summary = evaluate_classifier(y_true, y_pred, scores, groups={"sex": sex}, resamples=1000)
    summary.metrics["roc_auc"]  # Estimate(value=0.912, lower=0.905, upper=0.919)

Point estimates are exact and follow scikit-learn's definitions (fairlearn's for the
disparities). Intervals are percentile intervals of ``resamples`` bootstrap replicates drawn
with ``numpy.random.Generator`` seeded from ``seed``, fully vectorised: resampled counts over
compact cells (confusion-matrix cells; class x score bin) or resampled row chunks, never a Python
loop per resample. Groups are resampled each on its own (stratified). docs/evaluation.md gives
every definition, the bootstrap and its approximations.

A metric that is undefined on the data (ROC AUC with one class, MAPE with a zero target, ...) is
``Estimate(value=None, note=...)``, never NaN; invalid input raises
:class:`~steward.errors.InvalidInput` naming the argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from steward.domain.evaluation import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Estimate,
    EvaluationSummary,
    GroupMetrics,
    GroupReport,
    ReliabilityBin,
    Task,
)
from steward.stats import _binary, _multiclass
from steward.stats._bootstrap import (
    FloatArray,
    IntArray,
    Replicated,
    estimate,
    finite_or_none,
    resample_cells,
    rng_for,
)
from steward.stats._calibration import reliability
from steward.stats._classification import (
    LABEL_METRICS,
    binary_label_metrics,
    binary_label_notes,
    macro_label_metrics,
    macro_label_notes,
)
from steward.stats._fairness import RATES, GroupRates, disparities, worst_groups
from steward.stats._groups import GroupColumn, encode_groups
from steward.stats._inputs import (
    ClassifierInput,
    RegressorInput,
    check_options,
    classifier_input,
    regressor_input,
)
from steward.stats._regression import regression_metrics

__all__ = ["evaluate_classifier", "evaluate_regressor"]

NO_SCORES_NOTE = "not computed: no scores given (the model gives no probabilities)"


def evaluate_classifier(
    y_true: Any,
    y_pred: Any,
    scores: Any = None,
    *,
    classes: Sequence[Any] | None = None,
    positive_class: Any = None,
    groups: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    reliability_bins: int = 10,
) -> EvaluationSummary:
    """Accuracy, precision, recall, F1, ROC AUC, PR AUC, log loss, Brier, ECE with intervals.

    ``scores``: binary, the positive class's probability ``(n,)`` or both columns ``(n, 2)``;
    multiclass, ``(n, k)`` probabilities in the order of ``classes`` (default: the sorted labels
    seen). ``positive_class`` defaults to the last class. Without scores the five score metrics
    are None with a note. ``groups`` maps a column name to one group value per row; each group
    gets the same metrics, the worst group per metric, and for binary classifiers the
    demographic parity and equalized odds differences. ``resamples=0`` skips the intervals.
    """
    check_options(confidence, resamples, seed, reliability_bins)
    data = classifier_input(y_true, y_pred, scores, classes, positive_class)
    columns = encode_groups(groups, data.y.size)
    evaluator: _Evaluator = (
        _BinaryEvaluator(data, seed, resamples, reliability_bins)
        if data.task is Task.BINARY
        else _MulticlassEvaluator(data, seed, resamples, reliability_bins)
    )
    overall = evaluator.population(None, ("overall",))
    fairness = data.task is Task.BINARY
    return EvaluationSummary(
        task=data.task,
        n_rows=int(data.y.size),
        classes=evaluator.classes,
        positive_class=None if data.positive is None else evaluator.classes[data.positive],
        metrics=_estimates(overall.metrics, confidence),
        reliability=_reliability(overall.reliability),
        groups=[_group_report(c, evaluator, confidence, fairness) for c in columns],
        confidence_level=confidence,
        resamples=resamples,
        seed=seed,
    )


def evaluate_regressor(
    y_true: Any,
    y_pred: Any,
    *,
    groups: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> EvaluationSummary:
    """RMSE, MAE, MAPE and R^2 with intervals, overall and per group (with the worst group)."""
    check_options(confidence, resamples, seed)
    data = regressor_input(y_true, y_pred)
    columns = encode_groups(groups, data.y.size)
    evaluator = _RegressionEvaluator(data, seed, resamples)
    overall = evaluator.population(None, ("overall",))
    return EvaluationSummary(
        task=Task.REGRESSION,
        n_rows=int(data.y.size),
        metrics=_estimates(overall.metrics, confidence),
        groups=[_group_report(c, evaluator, confidence, False) for c in columns],
        confidence_level=confidence,
        resamples=resamples,
        seed=seed,
    )


@dataclass(frozen=True)
class _Population:
    """What one population of rows (everything, or one group) yields."""

    metrics: dict[str, Replicated]
    rates: GroupRates | None = None  # binary: what the disparities compare
    reliability: _binary.ReliabilitySums | None = None


class _Evaluator(Protocol):
    metric_names: tuple[str, ...]
    classes: list[str]

    def population(self, rows: IntArray | None, key: tuple[str, ...]) -> _Population: ...

    def rows_of(self, column: GroupColumn) -> list[IntArray]: ...


def _reliability(sums: _binary.ReliabilitySums | None) -> list[ReliabilityBin]:
    if sums is None:
        return []
    return reliability(sums.count, sums.sum_predicted, sums.sum_outcome)


def _estimates(metrics: dict[str, Replicated], confidence: float) -> dict[str, Estimate]:
    return {name: estimate(metric, confidence) for name, metric in metrics.items()}


def _group_report(
    column: GroupColumn, evaluator: _Evaluator, confidence: float, fairness: bool
) -> GroupReport:
    populations = [
        evaluator.population(rows, ("groups", column.name, label))
        for label, rows in zip(column.labels, evaluator.rows_of(column), strict=True)
    ]
    sizes = np.bincount(column.codes, minlength=len(column.labels))
    named = [(label, p.metrics) for label, p in zip(column.labels, populations, strict=True)]
    report = GroupReport(
        column=column.name,
        groups=[
            GroupMetrics(group=label, n=int(size), metrics=_estimates(metrics, confidence))
            for (label, metrics), size in zip(named, sizes, strict=True)
        ],
        worst_group=worst_groups(named, evaluator.metric_names),
    )
    if not fairness:
        return report
    rates = [p.rates for p in populations if p.rates is not None]
    gaps = _estimates(disparities(column.labels, rates), confidence)
    return report.model_copy(update=gaps)


class _RowOrder:
    """Rows in the evaluator's own order (``order``: original index of each; None = as given)."""

    order: IntArray | None = None

    def rows_of(self, column: GroupColumn) -> list[IntArray]:
        codes = column.codes if self.order is None else column.codes[self.order]
        return GroupColumn(column.name, column.labels, codes).rows_by_group()


class _BinaryEvaluator(_RowOrder):
    metric_names: tuple[str, ...] = CLASSIFICATION_METRICS

    def __init__(self, data: ClassifierInput, seed: int, resamples: int, bins: int) -> None:
        self.seed, self.resamples = seed, resamples
        self.classes = [str(c) for c in data.classes]
        self.positive = self.classes[1 if data.positive is None else data.positive]
        self.y, self.y_pred = data.y, data.y_pred
        self.scored: _binary.ScoredRows | None = None
        if data.proba is not None:
            # Sorted once by score: every group's rows, taken in ascending order, stay sorted,
            # so no population sorts again for its exact ROC AUC.
            self.order = np.argsort(data.proba, kind="stable")
            sorted_p = data.proba[self.order]
            self.grid = _binary.make_grid(sorted_p, bins)
            self.y, self.y_pred = data.y[self.order], data.y_pred[self.order]
            self.scored = _binary.scored_rows(self.y, sorted_p, self.grid)

    def population(self, rows: IntArray | None, key: tuple[str, ...]) -> _Population:
        y = self.y if rows is None else self.y[rows]
        y_pred = self.y_pred if rows is None else self.y_pred[rows]
        counts = np.bincount(y * 2 + y_pred, minlength=4).astype(np.float64)  # TN FP FN TP
        exact = binary_label_metrics(counts)
        reps = None
        if self.resamples:
            draws = _resample_labels(self.seed, key, counts, self.resamples)
            reps = binary_label_metrics(draws)
        notes = binary_label_notes(counts, self.positive)
        metrics = _replicated(LABEL_METRICS, exact, reps, notes)
        # The rates the disparities are made of are reported too (after the standard metrics),
        # so a report can show each group's selection rate, TPR and FPR beside their spread.
        rate_metrics = _replicated(RATES, exact, reps, notes)
        rates = GroupRates(
            {r: float(exact[r]) for r in RATES},
            None if reps is None else {r: reps[r] for r in RATES},
        )
        if self.scored is None:
            metrics.update(
                {m: Replicated(None, note=NO_SCORES_NOTE) for m in _binary.SCORE_METRICS}
            )
            return _Population({**metrics, **rate_metrics}, rates)
        scored = self.scored if rows is None else self.scored.take(rows)
        rng = rng_for(self.seed, *key, "scores")
        score_part, sums = _binary.score_metrics(scored, self.grid, rng, self.resamples)
        return _Population({**metrics, **score_part, **rate_metrics}, rates, sums)


class _MulticlassEvaluator(_RowOrder):
    metric_names: tuple[str, ...] = CLASSIFICATION_METRICS

    def __init__(self, data: ClassifierInput, seed: int, resamples: int, bins: int) -> None:
        self.seed, self.resamples, self.bins = seed, resamples, bins
        self.classes = [str(c) for c in data.classes]
        self.data = data

    def population(self, rows: IntArray | None, key: tuple[str, ...]) -> _Population:
        data, k = self.data, len(self.classes)
        y = data.y if rows is None else data.y[rows]
        y_pred = data.y_pred if rows is None else data.y_pred[rows]
        confusion = np.bincount(y * k + y_pred, minlength=k * k).astype(np.float64)
        confusion = confusion.reshape(k, k)
        exact = macro_label_metrics(confusion)
        reps = None
        if self.resamples:
            reps = macro_label_metrics(_resample_labels(self.seed, key, confusion, self.resamples))
        notes = macro_label_notes(confusion, self.classes)
        metrics = _replicated(LABEL_METRICS, exact, reps, notes)
        if data.proba is None:
            metrics.update(
                {m: Replicated(None, note=NO_SCORES_NOTE) for m in _binary.SCORE_METRICS}
            )
            return _Population(metrics)
        proba = data.proba if rows is None else data.proba[rows]
        rng = rng_for(self.seed, *key, "scores")
        score_part, sums = _multiclass.score_metrics(
            y, proba, self.classes, rng, self.resamples, self.bins
        )
        return _Population({**metrics, **score_part}, None, sums)


class _RegressionEvaluator(_RowOrder):
    metric_names: tuple[str, ...] = REGRESSION_METRICS
    classes: list[str] = []

    def __init__(self, data: RegressorInput, seed: int, resamples: int) -> None:
        self.data, self.seed, self.resamples = data, seed, resamples

    def population(self, rows: IntArray | None, key: tuple[str, ...]) -> _Population:
        y = self.data.y if rows is None else self.data.y[rows]
        y_pred = self.data.y_pred if rows is None else self.data.y_pred[rows]
        rng = rng_for(self.seed, *key, "regression")
        return _Population(regression_metrics(y, y_pred, rng, self.resamples))


def _resample_labels(
    seed: int, key: tuple[str, ...], counts: FloatArray, resamples: int
) -> FloatArray:
    """Confusion-cell counts per resample: exact multinomial draws over the cells."""
    return resample_cells(rng_for(seed, *key, "labels"), counts, resamples)


def _replicated(
    names: tuple[str, ...],
    exact: Mapping[str, FloatArray],
    replicates: Mapping[str, FloatArray] | None,
    notes: Mapping[str, str],
) -> dict[str, Replicated]:
    return {
        name: Replicated(
            finite_or_none(float(exact[name])),
            None if replicates is None else replicates[name],
            notes.get(name),
        )
        for name in names
    }
