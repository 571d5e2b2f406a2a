"""Inline model calls (steward.serving.execution) and the one-pass predict they rely on."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from steward.domain.enums import Flavor
from steward.flavors import LoadedModel, load_model, package_model
from steward.serving.execution import (
    CallCost,
    InlineExecution,
    inline_execution,
    measure_cost,
)


def _burn(seconds: float) -> None:
    """Use ``seconds`` of CPU (not sleep: demotion counts CPU time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _inline(budget_s: float = 0.002, timeout_s: float = 1.0) -> InlineExecution:
    return InlineExecution("m v1", fixed_s=0.0001, per_row_s=0.00001, budget_s=budget_s,
                           timeout_s=timeout_s)  # fmt: skip


def test_rows_decide_whether_a_call_runs_inline() -> None:
    inline = _inline()
    assert inline.allows(1)
    assert inline.allows(190)  # 0.1 ms + 190 x 0.01 ms = 2.0 ms
    assert not inline.allows(191)


def test_an_inline_call_returns_its_answer_and_raises_its_error() -> None:
    inline = _inline()
    assert inline.run(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        inline.run(lambda: 1 / 0)
    assert not inline.demoted


def test_a_call_past_the_timeout_is_a_timeout_whatever_it_did_and_demotes() -> None:
    inline = _inline(timeout_s=0.01)
    with pytest.raises(TimeoutError):
        inline.run(lambda: time.sleep(0.02))
    assert inline.demoted
    assert not inline.allows(1)

    def late_error() -> None:
        time.sleep(0.02)
        raise ValueError("late")

    with pytest.raises(TimeoutError):
        _inline(timeout_s=0.01).run(late_error)


def test_demotion_needs_consecutive_cpu_heavy_calls() -> None:
    inline = _inline(budget_s=0.0002)  # demotion past 1 ms of CPU, three times in a row
    inline.run(lambda: _burn(0.003))  # over in wall time: the next calls read the CPU clock
    assert inline.suspect
    inline.run(lambda: _burn(0.003))
    inline.run(lambda: None)  # a cheap call in between: a pause, not a slow model
    assert not inline.suspect
    assert inline.over_budget == 0
    for _ in range(3):  # suspicion, then two CPU-heavy calls: not yet three
        inline.run(lambda: _burn(0.003))
    assert not inline.demoted
    inline.run(lambda: _burn(0.003))
    assert inline.demoted


def test_waiting_is_not_cpu_and_does_not_demote_below_the_timeout() -> None:
    inline = _inline(budget_s=0.0002, timeout_s=1.0)
    for _ in range(4):
        inline.run(lambda: time.sleep(0.003))  # preempted or waiting: wall time, no CPU
    assert not inline.demoted


def test_policy_from_the_measured_cost() -> None:
    cost = CallCost(fixed_s=0.0002, per_row_s=0.00001)
    policy = inline_execution("m v1", cost, budget_ms=2.0, timeout_s=1.0)
    assert policy is not None
    assert policy.budget_s == pytest.approx(0.002)
    capped = inline_execution("m v1", cost, budget_ms=2.0, timeout_s=0.005)
    assert capped is not None
    assert capped.budget_s == pytest.approx(0.0005)  # a tenth of the timeout
    assert inline_execution("m v1", cost, budget_ms=0, timeout_s=1.0) is None
    assert inline_execution("m v1", cost, budget_ms=0.1, timeout_s=1.0) is None  # too slow
    assert inline_execution("m v1", None, budget_ms=2.0, timeout_s=1.0) is None


def test_cost_is_measured_for_sklearn_and_onnx_only() -> None:
    row = np.zeros((1, 3))
    calls: list[int] = []

    def call(data: Any) -> None:
        calls.append(len(data))

    cost = measure_cost(Flavor.SKLEARN, call, row)
    assert cost is not None
    assert cost.fixed_s >= 0
    assert cost.per_row_s >= 0
    assert set(calls) == {1, 64}
    assert measure_cost(Flavor.PYTHON, call, row) is None

    def refuses(data: Any) -> None:
        raise ValueError("unknown category")

    assert measure_cost(Flavor.ONNX, refuses, row) is None
    columns = {"a": np.zeros(1), "b": np.zeros(1)}
    seen: list[dict[str, Any]] = []
    assert measure_cost(Flavor.SKLEARN, seen.append, columns) is not None
    assert {len(c["a"]) for c in seen} == {1, 64}


def test_a_busy_machine_during_the_probe_does_not_send_a_fast_model_to_the_pool() -> None:
    """Most probe calls stretched by another process holding the core (here: slept through):
    the cost is the fastest call, so the model still runs inline."""
    row = np.zeros((1, 3))
    calls = 0

    def preempted_mostly(data: Any) -> None:
        nonlocal calls
        calls += 1
        if calls % 7 != 0:  # six of every seven calls lose the core for 10 ms
            time.sleep(0.010)

    cost = measure_cost(Flavor.SKLEARN, preempted_mostly, row)
    assert cost is not None
    assert cost.fixed_s < 0.002
    assert inline_execution("m v1", cost, budget_ms=2.0, timeout_s=1.0) is not None


def _loaded(fitted: Any, flavor: Flavor = Flavor.SKLEARN) -> LoadedModel:
    files = package_model(fitted, export_onnx=flavor is Flavor.ONNX).files
    return load_model(Flavor.SKLEARN, files, signature=None, registered_trusted=False,
                      allow_trusted=False, prefer=flavor)  # fmt: skip


# -- predict_with_proba: labels from the probabilities where the estimator decides that way --

_X, _Y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3,
                             random_state=0)  # fmt: skip
_X2, _Y2 = make_classification(n_samples=400, n_features=6, random_state=1)


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=500),
        RandomForestClassifier(n_estimators=10, random_state=0),
        GradientBoostingClassifier(n_estimators=10, random_state=0),
        HistGradientBoostingClassifier(max_iter=10),
        GaussianNB(),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        CalibratedClassifierCV(LogisticRegression(max_iter=500), cv=3),
        KNeighborsClassifier(),  # not in the argmax-consistent set: two calls
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "multiclass"])
def test_labels_and_probabilities_match_predict_and_predict_proba(
    estimator: Any, binary: bool
) -> None:
    x, y = (_X2, _Y2) if binary else (_X, _Y)
    fitted = estimator.fit(x, y)
    model = _loaded(fitted)
    probe = np.random.default_rng(5).normal(size=(300, 6))
    labels, proba = model.predict_with_proba(probe)
    assert proba is not None
    np.testing.assert_array_equal(labels, fitted.predict(probe))
    np.testing.assert_allclose(proba, fitted.predict_proba(probe))


def test_a_regressor_has_no_probabilities() -> None:
    from sklearn.linear_model import LinearRegression

    fitted = LinearRegression().fit(_X, _Y.astype(float))
    model = _loaded(fitted)
    labels, proba = model.predict_with_proba(_X[:5])
    assert proba is None
    np.testing.assert_allclose(labels, fitted.predict(_X[:5]))


def test_onnx_labels_and_probabilities_come_from_one_run() -> None:
    fitted = LogisticRegression(max_iter=500).fit(_X, _Y)
    model = _loaded(fitted, Flavor.ONNX)
    assert model.flavor is Flavor.ONNX
    probe = _X[:50].astype(np.float32)
    labels, proba = model.predict_with_proba(probe)
    np.testing.assert_array_equal(labels, model.predict(probe))
    assert proba is not None
    np.testing.assert_allclose(proba, model.predict_proba(probe))
    np.testing.assert_array_equal(labels, fitted.predict(probe))
