"""Binary classifiers: every figure against scikit-learn, and the groups against fairlearn."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from steward.domain.evaluation import CLASSIFICATION_METRICS, FAIRNESS_METRICS, Task
from steward.stats.evaluation import evaluate_classifier

# Reported after the standard metrics for binary classifiers: what the disparities are made of.
FAIRNESS_RATES = ("selection_rate", "true_positive_rate", "false_positive_rate")


def reference_ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE written out bin by bin with masks: right-closed bins, the first one holding 0."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b in range(bins):
        inside = (p > edges[b]) & (p <= edges[b + 1])
        if b == 0:
            inside |= p == 0.0
        if inside.any():
            total += inside.sum() / p.size * abs(p[inside].mean() - y[inside].mean())
    return total


def nan_fields(node, path=""):
    """Every float in a dumped summary that is NaN or infinite."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from nan_fields(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from nan_fields(value, f"{path}[{i}]")
    elif isinstance(node, float) and not np.isfinite(node):
        yield path


def sklearn_figures(y, y_pred, p, pos=1) -> dict[str, float]:
    yb = (np.asarray(y) == pos).astype(int)
    return {
        "accuracy": skm.accuracy_score(y, y_pred),
        "precision": skm.precision_score(y, y_pred, pos_label=pos),
        "recall": skm.recall_score(y, y_pred, pos_label=pos),
        "f1": skm.f1_score(y, y_pred, pos_label=pos),
        "roc_auc": skm.roc_auc_score(yb, p),
        "pr_auc": skm.average_precision_score(yb, p),
        "log_loss": skm.log_loss(yb, y_proba=p, labels=[0, 1]),
        "brier": skm.brier_score_loss(yb, p),
        "ece": reference_ece(yb, p),
    }


@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, True), (2, True)])
def test_binary_metrics_match_scikit_learn(binary, seed, ties) -> None:
    y, y_pred, p = binary(seed, 3000, ties=ties)
    summary = evaluate_classifier(y, y_pred, p, resamples=0)
    assert summary.task is Task.BINARY
    assert summary.n_rows == 3000
    assert summary.classes == ["0", "1"]
    assert summary.positive_class == "1"
    assert list(summary.metrics) == [*CLASSIFICATION_METRICS, *FAIRNESS_RATES]
    tn, fp, fn, tp = skm.confusion_matrix(y, y_pred).ravel()
    rates = {
        "selection_rate": (tp + fp) / len(y),
        "true_positive_rate": tp / (tp + fn),
        "false_positive_rate": fp / (fp + tn),
    }
    for name, expected in {**sklearn_figures(y, y_pred, p), **rates}.items():
        assert summary.metrics[name].value == pytest.approx(expected, rel=1e-9, abs=1e-12), name
        assert summary.metrics[name].lower is None


def test_text_labels_with_the_first_class_positive(binary) -> None:
    y, y_pred, p = binary(3, 2000, ties=True)
    names = np.array(["fraud", "legit"])
    # p is the probability of label 1 = "legit"; the positive class is "fraud".
    summary = evaluate_classifier(
        names[y], names[y_pred], np.column_stack([1 - p, p]), positive_class="fraud", resamples=0
    )
    assert summary.positive_class == "fraud"
    expected = sklearn_figures(names[y], names[y_pred], 1 - p, pos="fraud")
    for name, value in expected.items():
        assert summary.metrics[name].value == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_one_column_and_two_column_scores_agree(binary) -> None:
    y, y_pred, p = binary(4, 1500)
    one = evaluate_classifier(y, y_pred, p, resamples=200, seed=3)
    two = evaluate_classifier(y, y_pred, np.column_stack([1 - p, p]), resamples=200, seed=3)
    assert one == two


def test_bool_labels_and_extreme_probabilities_clip_like_scikit_learn() -> None:
    y = np.array([True, False, True, False, True, True])
    p = np.array([0.0, 1.0, 1.0, 0.0, 1e-20, 0.7])
    summary = evaluate_classifier(y, p >= 0.5, p, resamples=0)
    assert summary.metrics["log_loss"].value == pytest.approx(skm.log_loss(y, y_proba=p))
    assert summary.metrics["brier"].value == pytest.approx(skm.brier_score_loss(y, p))
    assert summary.classes == ["False", "True"]


def test_reliability_diagram_matches_calibration_curve(binary) -> None:
    y, y_pred, p = binary(5, 4000)
    summary = evaluate_classifier(y, y_pred, p, resamples=0, reliability_bins=8)
    bins = summary.reliability
    assert [b.lower for b in bins] == pytest.approx(np.linspace(0, 1, 9)[:-1])
    assert sum(b.count for b in bins) == 4000
    filled = [b for b in bins if b.count]
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy="uniform")
    assert [b.fraction_positive for b in filled] == pytest.approx(prob_true)
    assert [b.mean_predicted for b in filled] == pytest.approx(prob_pred)
    assert summary.metrics["ece"].value == pytest.approx(reference_ece(y, p, 8))


def test_empty_reliability_bins_are_listed_without_means() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.05, 0.95, 0.1, 0.9])
    bins = evaluate_classifier(y, p > 0.5, p, resamples=0).reliability
    assert len(bins) == 10
    assert bins[4].count == 0
    assert bins[4].mean_predicted is None
    assert bins[4].fraction_positive is None
    assert bins[0].count == 2  # 0.1 sits on an edge and goes left, as in calibration_curve


def test_without_scores_only_label_metrics(binary) -> None:
    y, y_pred, _ = binary(6, 500)
    summary = evaluate_classifier(y, y_pred, resamples=100)
    assert summary.metrics["accuracy"].value == pytest.approx(skm.accuracy_score(y, y_pred))
    assert summary.metrics["accuracy"].lower is not None
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        assert summary.metrics[name].value is None
        assert "no scores" in summary.metrics[name].note
    assert summary.reliability == []


def test_one_class_in_y_true_gives_none_with_notes() -> None:
    y = np.zeros(50, dtype=int)
    p = np.linspace(0.01, 0.99, 50)
    summary = evaluate_classifier(y, (p > 0.5).astype(int), p, classes=[0, 1], resamples=100)
    metrics = summary.metrics
    assert metrics["roc_auc"].value is None
    assert "only one class" in metrics["roc_auc"].note
    assert metrics["pr_auc"].value is None
    assert metrics["recall"].value is None
    assert "no row of y_true" in metrics["recall"].note
    assert metrics["precision"].value == 0.0
    assert metrics["log_loss"].value == pytest.approx(skm.log_loss(y, y_proba=p, labels=[0, 1]))
    assert not list(nan_fields(summary.model_dump()))


def test_precision_without_predicted_positives_is_none() -> None:
    y = np.array([0, 1, 0, 1, 1])
    summary = evaluate_classifier(y, np.zeros(5, dtype=int), classes=[0, 1], resamples=0)
    assert summary.metrics["precision"].value is None
    assert "no row is predicted" in summary.metrics["precision"].note
    assert summary.metrics["recall"].value == 0.0
    assert summary.metrics["f1"].value == 0.0


def _groups(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "sex": rng.choice(np.array(["F", "M"]), n, p=[0.4, 0.6]),
        "region": rng.choice(np.array(["north", "south", "east", "west", "centre"]), n),
        "age_band": rng.integers(0, 6, n),
    }


def test_group_metrics_match_fairlearn_metric_frame(binary) -> None:
    y, y_pred, p = binary(7, 3000)
    groups = _groups(3000, 7)
    summary = evaluate_classifier(y, y_pred, p, groups=groups, resamples=0)
    label_metrics = {
        "accuracy": skm.accuracy_score,
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
    }
    score_metrics = {
        "roc_auc": skm.roc_auc_score,
        "pr_auc": skm.average_precision_score,
        "log_loss": lambda t, s: skm.log_loss(t, y_proba=s, labels=[0, 1]),
        "brier": skm.brier_score_loss,
    }
    assert [r.column for r in summary.groups] == list(groups)
    for report in summary.groups:
        features = groups[report.column]
        by_label = MetricFrame(
            metrics=label_metrics, y_true=y, y_pred=y_pred, sensitive_features=features
        ).by_group
        by_score = MetricFrame(
            metrics=score_metrics, y_true=y, y_pred=p, sensitive_features=features
        ).by_group
        assert [g.group for g in report.groups] == [str(v) for v in by_label.index]
        for group, (key, row) in zip(report.groups, by_label.iterrows(), strict=True):
            assert group.n == int((features == key).sum())
            for name in label_metrics:
                assert group.metrics[name].value == pytest.approx(row[name], rel=1e-9), name
            for name in score_metrics:
                expected = by_score.loc[key, name]
                assert group.metrics[name].value == pytest.approx(expected, rel=1e-9), name
            mask = features == key
            assert group.metrics["ece"].value == pytest.approx(reference_ece(y[mask], p[mask]))


def test_disparities_match_fairlearn(binary) -> None:
    y, y_pred, p = binary(8, 4000)
    groups = _groups(4000, 8)
    summary = evaluate_classifier(y, y_pred, p, groups=groups, resamples=300)
    for report in summary.groups:
        features = groups[report.column]
        dp = demographic_parity_difference(y, y_pred, sensitive_features=features)
        eo = equalized_odds_difference(y, y_pred, sensitive_features=features)
        assert report.demographic_parity_difference.value == pytest.approx(dp, rel=1e-9)
        assert report.equalized_odds_difference.value == pytest.approx(eo, rel=1e-9)
        for estimate in (report.demographic_parity_difference, report.equalized_odds_difference):
            assert 0.0 <= estimate.lower <= estimate.value <= estimate.upper <= 1.0


def test_equalized_odds_leaves_out_a_group_without_positives() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0, 1])
    y_pred = np.array([1, 0, 0, 1, 0, 1, 1, 1, 1, 0])
    group = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 4)  # b has no positive
    report = evaluate_classifier(y, y_pred, groups={"g": group}, resamples=0).groups[0]
    # TPR: a 1/2, c 2/3; FPR: a 1/2, b 1/2, c 1/1
    assert report.equalized_odds_difference.value == pytest.approx(0.5)
    assert "without the groups with no positive in y_true: b" in (
        report.equalized_odds_difference.note
    )
    b = report.groups[1]
    assert b.metrics["recall"].value is None


def test_worst_group_is_lowest_score_and_highest_loss(binary) -> None:
    y, y_pred, p = binary(9, 3000)
    groups = _groups(3000, 9)
    summary = evaluate_classifier(y, y_pred, p, groups=groups, resamples=0)
    for report in summary.groups:
        values = {
            name: {g.group: g.metrics[name].value for g in report.groups}
            for name in CLASSIFICATION_METRICS
        }
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
            worst = min(values[name], key=values[name].get)
            assert report.worst_group[name].group == worst
            assert report.worst_group[name].value == values[name][worst]
        for name in ("log_loss", "brier", "ece"):
            worst = max(values[name], key=values[name].get)
            assert report.worst_group[name].group == worst


def test_group_columns_of_every_type() -> None:
    n = 12
    y = np.array([0, 1] * 6)
    y_pred = np.array([0, 1, 1, 1, 0, 0] * 2)
    groups = {
        "text": np.array(["b", None, "a", "b", "a", None] * 2, dtype=object),
        "ints": np.array([3, 1, 2] * 4),
        "bools": np.array([True, False] * 6),
        "floats": np.array([0.5, np.nan, 1.5] * 4),
        "category": pd.Categorical(["x", "y", None] * 4, categories=["y", "x", "unused"]),
        "series": pd.Series(["u", pd.NA, "v"] * 4, dtype="string"),
    }
    summary = evaluate_classifier(y, y_pred, groups=groups, resamples=0)
    labels = {r.column: [g.group for g in r.groups] for r in summary.groups}
    assert labels == {
        "text": ["a", "b", "<missing>"],
        "ints": ["1", "2", "3"],
        "bools": ["False", "True"],
        "floats": ["0.5", "1.5", "<missing>"],
        "category": ["x", "y", "<missing>"],
        "series": ["u", "v", "<missing>"],
    }
    for report in summary.groups:
        assert sum(g.n for g in report.groups) == n
        assert all(g.n > 0 for g in report.groups)  # an unused category is no group


def test_fairness_fields_and_metrics_per_group(binary) -> None:
    y, y_pred, p = binary(10, 800)
    summary = evaluate_classifier(y, y_pred, p, groups={"sex": _groups(800, 1)["sex"]})
    report = summary.groups[0]
    assert set(report.worst_group) == set(CLASSIFICATION_METRICS)
    for name in FAIRNESS_METRICS:
        assert getattr(report, name).value is not None
    for group in report.groups:
        assert list(group.metrics) == [*CLASSIFICATION_METRICS, *FAIRNESS_RATES]
        for estimate in group.metrics.values():
            assert estimate.lower <= estimate.value <= estimate.upper
    # demographic parity is the spread of the groups' selection rates (fairlearn's definition)
    selection = [g.metrics["selection_rate"].value for g in report.groups]
    assert report.demographic_parity_difference.value == pytest.approx(
        max(selection) - min(selection), abs=1e-12
    )


def test_tiny_groups_never_produce_nan(multiclass) -> None:
    rng = np.random.default_rng(11)
    group = np.array(["a"] * 37 + ["b", "c", "c"])
    y = rng.integers(0, 2, 40)
    p = rng.random(40)
    binary_summary = evaluate_classifier(y, p > 0.5, p, groups={"g": group}, resamples=50)
    y3, proba = multiclass(11, 40, k=3)
    multi_summary = evaluate_classifier(y3, proba.argmax(1), proba, groups={"g": group},
                                        resamples=50)  # fmt: skip
    for summary in (binary_summary, multi_summary):
        assert not list(nan_fields(summary.model_dump()))
        single = summary.groups[0].groups[1]
        assert single.n == 1
        assert single.metrics["roc_auc"].value is None
        assert single.metrics["roc_auc"].note.startswith("undefined")
        assert single.metrics["accuracy"].value in (0.0, 1.0)
