"""CBPE: exact formulas on hand-worked inputs, the estimate against the realized metric on
simulated calibrated data (tolerances from the sample size), scikit-learn and scipy as the
reference implementations, and a defined answer or InvalidInput for degenerate input."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy.optimize import isotonic_regression
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from steward.domain.monitoring import AlertRule
from steward.errors import InvalidInput
from steward.stats.cbpe import (
    BINARY_METRICS,
    CALIBRATION_FORMAT,
    ECE_TOLERANCE,
    Calibration,
    IsotonicMap,
    calibration_check,
    estimate_binary,
    estimate_multiclass,
    fit_calibration,
    fit_isotonic,
    is_calibrated,
    realized_binary,
)
from steward.stats.cbpe import _pava as pava

SEEDS = 200


def _calibrated(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores, and labels drawn as Bernoulli(score): calibrated by construction."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.8, 1.2, n)
    return scores, (rng.random(n) < scores).astype(int)


def _trapezoid_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """NannyML's description, literally: expected TPR/FPR at each distinct threshold."""
    thresholds = np.unique(scores)[::-1]
    tpr = [0.0] + [p[scores >= t].sum() / p.sum() for t in thresholds]
    fpr = [0.0] + [(1 - p)[scores >= t].sum() / (1 - p).sum() for t in thresholds]
    return float(np.trapezoid(tpr, fpr))


# -- exact formulas -------------------------------------------------------------------------
def test_hand_worked_binary_estimate() -> None:
    estimate = estimate_binary([0.9, 0.7, 0.4, 0.1])
    c = estimate.confusion
    assert (c.tp, c.fp, c.fn, c.tn) == pytest.approx((1.6, 0.4, 0.5, 1.5))
    assert estimate.accuracy == pytest.approx(3.1 / 4)
    assert estimate.precision == pytest.approx(1.6 / 2.0)
    assert estimate.recall == pytest.approx(1.6 / 2.1)
    assert estimate.specificity == pytest.approx(1.5 / 1.9)
    assert estimate.f1 == pytest.approx(3.2 / 4.1)
    # concordant weight 0.045 + 0.48 + 1.155 + 1.665 over 2.1 x 1.9 expected pairs
    assert estimate.roc_auc == pytest.approx(3.345 / 3.99)
    hand = np.array([0.9, 0.7, 0.4, 0.1])
    assert estimate.roc_auc == pytest.approx(_trapezoid_auc(hand, hand))
    assert estimate.notes == {}
    assert estimate.calibrated is None


def test_the_threshold_decides_the_predicted_class_inclusively() -> None:
    at = estimate_binary([0.5, 0.2], threshold=0.5)
    assert at.confusion.tp == pytest.approx(0.5)  # 0.5 >= 0.5 is predicted positive
    everything = estimate_binary([0.3, 0.2], threshold=0.0)
    assert everything.confusion.fn == 0.0
    assert everything.precision == pytest.approx(0.25)
    nothing = estimate_binary([0.3, 0.99], threshold=1.0)
    assert nothing.precision is None


@pytest.mark.parametrize("seed", range(5))
def test_expected_roc_auc_is_a_weighted_roc_auc(seed: int) -> None:
    """Each row as a positive of weight p and a negative of weight 1 - p at its score."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(300), 1)  # many ties
    p = np.clip(scores + rng.normal(0, 0.05, 300), 0, 1)  # a calibrated p, ranked by scores
    calibration = _FixedCalibration(p)
    got = estimate_binary(scores, calibration=calibration)  # type: ignore[arg-type]
    expected = roc_auc_score(
        np.r_[np.ones(300), np.zeros(300)], np.r_[scores, scores], sample_weight=np.r_[p, 1 - p]
    )
    assert got.roc_auc == pytest.approx(expected, abs=1e-12)
    assert got.roc_auc == pytest.approx(_trapezoid_auc(scores, p), abs=1e-12)
    assert got.calibrated is True


class _FixedCalibration:
    """Stands in for a Calibration: fixed probabilities for fixed scores."""

    calibrated = True

    def __init__(self, p: np.ndarray) -> None:
        self.p = p

    def probabilities(self, scores: Any) -> np.ndarray:
        return self.p


def test_realized_metrics_are_scikit_learns() -> None:
    scores, y = _calibrated(7, 3000)
    got = realized_binary(y, scores, threshold=0.4)
    pred = (scores >= 0.4).astype(int)
    assert got.accuracy == pytest.approx(accuracy_score(y, pred))
    assert got.precision == pytest.approx(precision_score(y, pred))
    assert got.recall == pytest.approx(recall_score(y, pred))
    assert got.specificity == pytest.approx(recall_score(1 - y, 1 - pred))
    assert got.f1 == pytest.approx(f1_score(y, pred))
    assert got.roc_auc == pytest.approx(roc_auc_score(y, scores))
    c = got.confusion
    assert c.tp + c.fp + c.tn + c.fn == 3000
    assert c.tp == float(((pred == 1) & (y == 1)).sum())


# -- the estimate against the realized metric ---------------------------------------------------
def test_estimates_match_realized_metrics_on_calibrated_data() -> None:
    n = 2000
    z_accuracy, z_precision = [], []
    gaps: dict[str, list[float]] = {m: [] for m in BINARY_METRICS}
    sizes: dict[str, list[float]] = {m: [] for m in BINARY_METRICS}
    for seed in range(SEEDS):
        scores, y = _calibrated(seed, n)
        estimate, realized = estimate_binary(scores), realized_binary(y, scores)
        # accuracy and precision are exact expectations; their variance given the scores is
        # sum p(1 - p) over the rows counted, divided by the squared denominator
        variance = scores * (1 - scores)
        positive = scores >= 0.5
        z_accuracy.append((realized.accuracy - estimate.accuracy) / (math.sqrt(variance.sum()) / n))
        z_precision.append(
            (realized.precision - estimate.precision)
            / (math.sqrt(variance[positive].sum()) / positive.sum())
        )
        expected_pos, expected_neg = scores.sum(), (1 - scores).sum()
        smallest = {
            "accuracy": n, "precision": positive.sum(), "recall": expected_pos,
            "specificity": expected_neg, "f1": min(expected_pos, positive.sum()),
            "roc_auc": min(expected_pos, expected_neg),
        }  # fmt: skip
        for metric in BINARY_METRICS:
            gap = getattr(realized, metric) - getattr(estimate, metric)
            # a proportion over m rows has sd <= 0.5 / sqrt(m): 5 of those, every seed
            assert abs(gap) <= 5 * 0.5 / math.sqrt(smallest[metric]), (metric, seed)
            gaps[metric].append(gap)
            sizes[metric].append(smallest[metric])
    for z in (np.array(z_accuracy), np.array(z_precision)):
        assert abs(z.mean()) < 4 / math.sqrt(SEEDS)  # unbiased
        assert 0.8 < z.std() < 1.2  # and the variance is the binomial one
    for metric, values in gaps.items():  # no bias above the noise of the mean over seeds
        assert abs(np.mean(values)) < 4 * 0.5 / math.sqrt(np.mean(sizes[metric]) * SEEDS), metric


def test_the_estimate_tracks_a_performance_drop_without_labels() -> None:
    """Covariate shift towards uncertain rows: CBPE sees accuracy fall before labels arrive."""
    rng = np.random.default_rng(3)
    confident = rng.choice([0.05, 0.95], 5000)
    uncertain = rng.uniform(0.35, 0.65, 5000)
    before, after = estimate_binary(confident), estimate_binary(uncertain)
    assert before.accuracy == pytest.approx(0.95)
    assert after.accuracy is not None
    assert after.accuracy < 0.7
    labels = (rng.random(5000) < uncertain).astype(int)
    realized = realized_binary(labels, uncertain)
    assert abs(realized.accuracy - after.accuracy) < 5 * 0.5 / math.sqrt(5000)  # type: ignore[operator]


# -- degenerate inputs --------------------------------------------------------------------------
def test_all_zero_scores_give_defined_answers_and_notes() -> None:
    estimate = estimate_binary(np.zeros(10))
    assert estimate.accuracy == 1.0
    assert estimate.specificity == 1.0
    for metric in ("precision", "recall", "f1", "roc_auc"):
        assert getattr(estimate, metric) is None
        assert estimate.notes[metric].startswith("undefined")
    assert estimate.to_metrics() == {"estimated.accuracy": 1.0, "estimated.specificity": 1.0}


def test_all_one_scores_give_defined_answers_and_notes() -> None:
    estimate = estimate_binary(np.ones(10))
    assert (estimate.accuracy, estimate.precision, estimate.recall, estimate.f1) == (1, 1, 1, 1)
    assert estimate.specificity is None
    assert estimate.roc_auc is None
    assert set(estimate.notes) == {"specificity", "roc_auc"}


def test_a_single_row() -> None:
    estimate = estimate_binary([0.7])
    assert estimate.accuracy == pytest.approx(0.7)
    assert estimate.precision == pytest.approx(0.7)
    assert estimate.recall == 1.0
    assert estimate.specificity == 0.0
    assert estimate.f1 == pytest.approx(1.4 / 1.7)
    assert estimate.roc_auc == 0.5  # one threshold: the expected curve is the diagonal
    realized = realized_binary([1], [0.7])
    assert realized.accuracy == 1.0
    assert realized.roc_auc is None
    assert realized.specificity is None
    assert realized.notes["roc_auc"] == "undefined: y_true holds only one class"


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([], "'scores' is empty"),
        ([0.2, float("nan"), 0.4], "NaN or infinite values \\(first at row 1\\)"),
        ([0.2, float("inf")], "NaN or infinite"),
        ([0.2, 1.5], "probabilities in \\[0, 1\\]"),
        ([-0.1, 0.5], "probabilities in \\[0, 1\\]"),
        (["a", "b"], "must be numeric"),
        (np.zeros((3, 2)), "must be 1-D"),
    ],
)
def test_bad_scores_are_refused_naming_the_field(scores: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        estimate_binary(scores)
    assert info.value.field == "scores"
    with pytest.raises(InvalidInput, match=message):
        realized_binary(np.zeros(len(scores), dtype=int), scores)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), True, "0.5", None])
def test_bad_thresholds_are_refused(threshold: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        estimate_binary([0.5], threshold=threshold)
    assert info.value.field == "threshold"


@pytest.mark.parametrize(
    "labels", [[0, 2], [0.0, float("nan")], ["yes", "no"], [0, 1, 1], [[0, 1], [1, 0]]]
)
def test_bad_labels_are_refused(labels: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        realized_binary(labels, [0.2, 0.8])
    assert info.value.field == "y_true"


def test_boolean_labels_are_accepted() -> None:
    assert realized_binary([True, False], [0.8, 0.2]).accuracy == 1.0


def test_metrics_are_finite_and_valid_metric_names() -> None:
    scores, y = _calibrated(0, 500)
    calibration = fit_calibration(scores, y)
    for result, prefix in (
        (estimate_binary(scores, calibration=calibration), "estimated"),
        (realized_binary(y, scores), "realized"),
        (estimate_binary(np.zeros(3)), "estimated.v2"),
    ):
        metrics = result.to_metrics(prefix)
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
        for name in metrics:
            assert name.startswith(prefix + ".")
            AlertRule(name="r", metric=name, op="<", threshold=0.5)
    flagged = estimate_binary(scores, calibration=calibration).to_metrics()
    assert flagged["estimated.calibrated"] == 1.0
    with pytest.raises(InvalidInput, match="dotted metric name") as info:
        estimate_binary(scores).to_metrics("bad prefix")
    assert info.value.field == "prefix"


# -- isotonic regression ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_isotonic_map_is_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    scores = np.round(rng.random(n), int(rng.integers(1, 4)))  # ties at several scales
    labels = (rng.random(n) < scores**2).astype(int)
    fitted = fit_isotonic(scores, labels)
    reference = IsotonicRegression(out_of_bounds="clip").fit(scores, labels)
    query = np.r_[rng.random(1000), scores, 0.0, 1.0]
    np.testing.assert_allclose(fitted.apply(query), reference.predict(query), atol=1e-12)
    assert np.all(np.diff(fitted.y) >= 0)
    assert fitted.x.size <= np.unique(scores).size


@pytest.mark.parametrize(
    "values",
    [
        np.arange(50, 0, -1.0),  # one falling run: a single parallel pass
        np.r_[1000.0, np.arange(1.0, 1000.0)],  # one violation per pass: the stack finishes
        np.tile([1.0, 0.0], 500),
        np.random.default_rng(0).normal(size=5000).cumsum() * -1,
        np.random.default_rng(1).integers(0, 2, 5000).astype(float),
    ],
)
def test_pool_adjacent_violators_is_scipys(values: np.ndarray) -> None:
    weights = np.random.default_rng(2).integers(1, 5, values.size).astype(float)
    got = pava(values, weights)
    expected = isotonic_regression(values, weights=weights).x
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_isotonic_map_round_trips_and_refuses_malformed_maps() -> None:
    scores, y = _calibrated(1, 400)
    fitted = fit_isotonic(scores, y)
    again = IsotonicMap.from_dict(fitted.to_dict())
    np.testing.assert_array_equal(again.apply(scores), fitted.apply(scores))
    assert again == fitted
    for bad in (
        {"x": [0.2, 0.1], "y": [0, 1]},
        {"x": [], "y": []},
        {"x": [0.1], "y": [0, 1]},
        {"x": [0.1, 0.2], "y": [0.9, 0.1]},
        {"x": [0.1, 0.2], "y": [0.5, 1.5]},
        {"x": [0.1, float("nan")], "y": [0, 1]},
        {"x": ["a"], "y": [0]},
        {"y": [0]},
    ):
        with pytest.raises(InvalidInput, match="malformed") as info:
            IsotonicMap.from_dict(bad)
        assert info.value.field == "calibration"


# -- calibration ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [50, 300, 3000, 30000])
def test_calibrated_scores_pass_the_check_at_any_sample_size(n: int) -> None:
    passed = [is_calibrated(*_calibrated(seed, n)) for seed in range(100)]
    assert sum(passed) >= 99


def test_the_noise_allowance_shrinks_with_the_sample() -> None:
    small = calibration_check(*_calibrated(0, 200))
    large = calibration_check(*_calibrated(0, 20000))
    assert large.noise < small.noise / 5
    assert small.tolerance == large.tolerance == ECE_TOLERANCE
    assert large.allowance == pytest.approx(large.noise + ECE_TOLERANCE)


@pytest.mark.parametrize("seed", range(10))
def test_miscalibrated_scores_fail_the_check(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.random(5000)
    overconfident = (rng.random(5000) < scores**2).astype(int)  # true probability is p^2
    check = calibration_check(scores, overconfident)
    assert not check.calibrated
    assert check.ece > 0.1
    shifted = (rng.random(5000) < np.clip(scores - 0.05, 0, 1)).astype(int)
    assert not is_calibrated(scores, shifted)
    assert is_calibrated(scores, shifted, tolerance=0.1)  # a looser tolerance accepts it


def test_calibration_check_validates_its_options() -> None:
    scores, y = _calibrated(0, 100)
    with pytest.raises(InvalidInput) as info:
        calibration_check(scores, y, bins=0)
    assert info.value.field == "bins"
    with pytest.raises(InvalidInput) as info:
        calibration_check(scores, y, tolerance=float("nan"))
    assert info.value.field == "tolerance"


def test_calibration_repairs_miscalibrated_scores() -> None:
    rng = np.random.default_rng(11)
    truth = rng.random(20000)
    scores = np.sqrt(truth)  # the model is overconfident: true probability is score^2
    labels = (rng.random(20000) < truth).astype(int)
    calibration = fit_calibration(scores, labels)
    assert calibration.needed
    assert not calibration.raw.calibrated
    assert calibration.held_out.calibrated
    assert calibration.calibrated
    # on new traffic from the same model, the calibrated estimate lands near the realized one
    window = np.sqrt(rng.random(5000))
    window_labels = (rng.random(5000) < window**2).astype(int)
    realized = realized_binary(window_labels, window)
    raw_guess = estimate_binary(window)
    fixed = estimate_binary(window, calibration=calibration)
    assert fixed.calibrated is True
    for metric in ("accuracy", "precision", "roc_auc"):
        fixed_gap = abs(getattr(fixed, metric) - getattr(realized, metric))
        raw_gap = abs(getattr(raw_guess, metric) - getattr(realized, metric))
        assert fixed_gap < 0.025, metric
        assert fixed_gap < raw_gap, metric
    # the predicted class still comes from the raw score and the threshold
    assert fixed.confusion.tp + fixed.confusion.fp == float((window >= 0.5).sum())


def test_calibration_is_seeded_and_refuses_too_few_rows() -> None:
    scores, y = _calibrated(5, 1000)
    assert fit_calibration(scores, y, seed=3) == fit_calibration(scores, y, seed=3)
    with pytest.raises(InvalidInput, match="at least 3 rows of each class") as info:
        fit_calibration([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1])
    assert info.value.field == "y_true"
    with pytest.raises(InvalidInput) as info:
        fit_calibration(scores, y, folds=1)
    assert info.value.field == "folds"


def test_calibration_round_trips_through_json() -> None:
    scores, y = _calibrated(9, 2000)
    calibration = fit_calibration(scores, y)
    text = json.dumps(calibration.to_dict(), allow_nan=False)
    again = Calibration.from_dict(json.loads(text))
    assert again == calibration
    assert estimate_binary(scores, calibration=again) == estimate_binary(
        scores, calibration=calibration
    )
    for bad in ({"format": "other"}, [], {"format": CALIBRATION_FORMAT, "needed": True}):
        with pytest.raises(InvalidInput) as info:
            Calibration.from_dict(bad)  # type: ignore[arg-type]
        assert info.value.field == "calibration"


def test_calibration_of_calibrated_scores_keeps_them_calibrated() -> None:
    scores, y = _calibrated(8, 5000)
    calibration = fit_calibration(scores, y)
    assert calibration.raw.calibrated
    assert calibration.calibrated
    used = calibration.probabilities(scores)
    assert used.min() >= 0.0
    assert used.max() <= 1.0


# -- multiclass ---------------------------------------------------------------------------------
def test_multiclass_accuracy_is_the_mean_top_probability() -> None:
    got = estimate_multiclass([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    assert got.accuracy == pytest.approx(0.55)
    assert got.to_metrics() == {"estimated.accuracy": pytest.approx(0.55)}


def test_multiclass_estimate_matches_realized_accuracy() -> None:
    gaps = []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        logits = rng.normal(0, 1.5, (3000, 4))
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = (rng.random((3000, 1)) > proba.cumsum(axis=1)).sum(axis=1)
        realized = float((proba.argmax(axis=1) == labels).mean())
        top = proba.max(axis=1)
        sd = math.sqrt(float((top * (1 - top)).sum())) / 3000
        gaps.append((realized - estimate_multiclass(proba).accuracy) / sd)
    assert max(abs(g) for g in gaps) < 5
    assert abs(np.mean(gaps)) < 4 / math.sqrt(50)


@pytest.mark.parametrize(
    ("proba", "message"),
    [
        ([0.2, 0.8], "shape \\(rows, classes\\)"),
        (np.zeros((0, 3)), "shape"),
        ([[1.0]], "shape"),
        ([[0.5, 0.6]], "sum to 1"),
        ([[0.5, float("nan")]], "NaN"),
        ([[1.5, -0.5]], "\\[0, 1\\]"),
        ([["a", "b"]], "must be numbers"),
    ],
)
def test_bad_multiclass_probabilities_are_refused(proba: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        estimate_multiclass(proba)
    assert info.value.field == "probabilities"
