"""Regressors: RMSE, MAE, MAPE, R^2 against scikit-learn, degenerate targets, groups."""

import numpy as np
import pytest
from sklearn import metrics as skm

from steward.domain.evaluation import REGRESSION_METRICS, Task
from steward.stats.evaluation import evaluate_regressor


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = np.exp(1.0 + 0.5 * x)  # positive targets: MAPE is defined
    return y, y * np.exp(rng.normal(0, 0.2, n)) + rng.normal(0, 0.1, n)


@pytest.mark.parametrize("n", [50, 5000])
def test_regression_metrics_match_scikit_learn(n) -> None:
    y, y_pred = _data(n, n)
    summary = evaluate_regressor(y, y_pred, resamples=200)
    assert summary.task is Task.REGRESSION
    assert summary.classes == []
    assert summary.reliability == []
    assert list(summary.metrics) == list(REGRESSION_METRICS)
    expected = {
        "rmse": skm.root_mean_squared_error(y, y_pred),
        "mae": skm.mean_absolute_error(y, y_pred),
        "mape": skm.mean_absolute_percentage_error(y, y_pred),
        "r2": skm.r2_score(y, y_pred),
    }
    for name, value in expected.items():
        estimate = summary.metrics[name]
        assert estimate.value == pytest.approx(value, rel=1e-9), name
        assert estimate.lower < estimate.value < estimate.upper, name


def test_large_offset_targets_keep_r2_precise() -> None:
    rng = np.random.default_rng(1)
    y = 1e9 + rng.normal(0, 1, 4000)
    y_pred = y + rng.normal(0, 0.5, 4000)
    estimate = evaluate_regressor(y, y_pred, resamples=200).metrics["r2"]
    assert estimate.value == pytest.approx(skm.r2_score(y, y_pred), rel=1e-6)
    assert 0.7 < estimate.lower < estimate.value < estimate.upper < 0.85


def test_zero_target_makes_mape_undefined() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    summary = evaluate_regressor(y, y + 0.5, resamples=100)
    assert summary.metrics["mape"].value is None
    assert "contains 0" in summary.metrics["mape"].note
    assert summary.metrics["mae"].value == pytest.approx(0.5)


def test_constant_target_makes_r2_undefined() -> None:
    y = np.full(20, 1.1)
    summary = evaluate_regressor(y, y + np.linspace(-1, 1, 20), resamples=100)
    assert summary.metrics["r2"].value is None
    assert "constant" in summary.metrics["r2"].note
    assert summary.metrics["rmse"].value == pytest.approx(
        skm.root_mean_squared_error(y, y + np.linspace(-1, 1, 20))
    )


def test_integer_targets_and_column_vectors_are_accepted() -> None:
    y = np.array([[1], [2], [3], [4]])
    summary = evaluate_regressor(y, [1, 2, 3, 5], resamples=0)
    assert summary.metrics["mae"].value == pytest.approx(0.25)
    assert summary.resamples == 0
    assert summary.metrics["mae"].lower is None


def test_regression_groups_and_worst_group() -> None:
    y, y_pred = _data(3, 3000)
    segment = np.random.default_rng(3).choice(np.array(["new", "returning", None]), 3000)
    y_pred = np.where(segment == "new", y_pred + 0.5, y_pred)  # worse on new customers
    summary = evaluate_regressor(y, y_pred, groups={"segment": segment}, resamples=200)
    report = summary.groups[0]
    assert [g.group for g in report.groups] == ["new", "returning", "<missing>"]
    assert report.demographic_parity_difference is None
    for name in ("rmse", "mae", "mape"):
        assert report.worst_group[name].group == "new"
    assert report.worst_group["r2"].group == "new"
    for group in report.groups:
        mask = segment == (None if group.group == "<missing>" else group.group)
        expected = skm.root_mean_squared_error(y[mask], y_pred[mask])
        assert group.metrics["rmse"].value == pytest.approx(expected)
        assert group.n == mask.sum()
