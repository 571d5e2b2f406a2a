"""Multiclass classifiers: macro averages, one-vs-rest AUC, top-label calibration."""

import numpy as np
import pytest
from sklearn import metrics as skm

from steward.domain.evaluation import CLASSIFICATION_METRICS, Task
from steward.stats.evaluation import evaluate_classifier


def top_label_ece(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b in range(bins):
        inside = (confidence > edges[b]) & (confidence <= edges[b + 1])
        if inside.any():
            gap = abs(confidence[inside].mean() - correct[inside].mean())
            total += inside.sum() / y.size * gap
    return total


def test_multiclass_metrics_match_scikit_learn(multiclass) -> None:
    y, proba = multiclass(0, 3000, k=4)
    y_pred = proba.argmax(axis=1)
    summary = evaluate_classifier(y, y_pred, proba, resamples=0)
    assert summary.task is Task.MULTICLASS
    assert summary.classes == ["0", "1", "2", "3"]
    assert summary.positive_class is None
    expected = {
        "accuracy": skm.accuracy_score(y, y_pred),
        "precision": skm.precision_score(y, y_pred, average="macro"),
        "recall": skm.recall_score(y, y_pred, average="macro"),
        "f1": skm.f1_score(y, y_pred, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "pr_auc": skm.average_precision_score(y, proba, average="macro"),
        "log_loss": skm.log_loss(y, y_proba=proba),
        "brier": skm.brier_score_loss(y, proba),
        "ece": top_label_ece(y, proba),
    }
    for name, value in expected.items():
        assert summary.metrics[name].value == pytest.approx(value, rel=1e-9), name
    prob_true = [b.fraction_positive for b in summary.reliability if b.count]
    assert all(0.0 <= v <= 1.0 for v in prob_true)


def test_text_classes_follow_the_given_column_order(multiclass) -> None:
    y, proba = multiclass(1, 1500, k=3)
    names = np.array(["setosa", "versicolor", "virginica"])
    order = ["virginica", "setosa", "versicolor"]  # the model's column order
    columns = proba[:, [2, 0, 1]]
    summary = evaluate_classifier(names[y], names[proba.argmax(1)], columns, classes=order,
                                  resamples=0)  # fmt: skip
    assert summary.classes == order
    reference = evaluate_classifier(y, proba.argmax(1), proba, resamples=0)
    for name in CLASSIFICATION_METRICS:
        assert summary.metrics[name].value == pytest.approx(reference.metrics[name].value), name


def test_a_class_never_predicted_is_left_out_of_macro_precision(multiclass) -> None:
    y, proba = multiclass(2, 1000, k=3)
    y_pred = np.where(proba.argmax(1) == 2, 1, proba.argmax(1))  # class 2 never predicted
    summary = evaluate_classifier(y, y_pred, proba, resamples=200)
    precision = summary.metrics["precision"]
    expected = skm.precision_score(y, y_pred, average="macro", zero_division=np.nan)
    assert precision.value == pytest.approx(expected)
    assert "left out (never predicted): '2'" in precision.note
    assert precision.lower <= precision.value <= precision.upper
    recall = summary.metrics["recall"]
    assert recall.value == pytest.approx(skm.recall_score(y, y_pred, average="macro"))


def test_a_class_absent_from_y_true_is_left_out_of_auc(multiclass) -> None:
    y, proba = multiclass(3, 1200, k=3)
    keep = y != 1
    y, proba = y[keep], proba[keep]
    summary = evaluate_classifier(y, proba.argmax(1), proba, classes=[0, 1, 2], resamples=0)
    auc = summary.metrics["roc_auc"]
    expected = np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in (0, 2)])
    assert auc.value == pytest.approx(expected)
    assert "left out" in auc.note
    assert "'1'" in auc.note


def test_multiclass_groups_have_metrics_and_worst_group_but_no_disparities(multiclass) -> None:
    y, proba = multiclass(4, 2000, k=3)
    region = np.random.default_rng(40).choice(np.array(["east", "west", "north"]), 2000)
    summary = evaluate_classifier(y, proba.argmax(1), proba, groups={"region": region},
                                  resamples=200)  # fmt: skip
    report = summary.groups[0]
    assert report.demographic_parity_difference is None
    assert report.equalized_odds_difference is None
    for group in report.groups:
        mask = region == group.group
        expected = skm.roc_auc_score(y[mask], proba[mask], multi_class="ovr")
        assert group.metrics["roc_auc"].value == pytest.approx(expected)
        assert group.metrics["roc_auc"].lower < expected < group.metrics["roc_auc"].upper
    lowest = min(report.groups, key=lambda g: g.metrics["accuracy"].value)
    assert report.worst_group["accuracy"].group == lowest.group


def test_multiclass_intervals_above_the_chunk_size(multiclass) -> None:
    # 5,000 rows > 2,048 chunks: rows are resampled in chunks; intervals stay sensible.
    y, proba = multiclass(5, 5000, k=3)
    summary = evaluate_classifier(y, proba.argmax(1), proba, resamples=300)
    for name, estimate in summary.metrics.items():
        assert estimate.lower <= estimate.value <= estimate.upper, name
        assert estimate.upper - estimate.lower < 0.1, name
