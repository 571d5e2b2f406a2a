"""Serving SLOs: hand-worked windows, numpy's quantiles, error budgets against a plain loop, and
no NaN where a window had no requests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from steward.domain.monitoring import AlertRule, default_rules
from steward.errors import InvalidInput
from steward.stats.slo import (
    QUANTILE_METHODS,
    error_budget,
    request_slo,
    rolling_error_budget,
)


# -- one window -------------------------------------------------------------------------------
def test_hand_worked_window() -> None:
    slo = request_slo([10, 20, 30, 40, 50], [True, True, False, True, True])
    assert (slo.requests, slo.errors) == (5, 1)
    assert slo.error_rate == pytest.approx(0.2)
    assert slo.availability == pytest.approx(0.8)
    # linear: position (n - 1) q between the sorted values
    assert (slo.p50_ms, slo.p95_ms, slo.p99_ms) == pytest.approx((30.0, 48.0, 49.6))
    assert slo.to_metrics() == {
        "slo.requests": 5.0,
        "slo.errors": 1.0,
        "slo.error_rate": pytest.approx(0.2),
        "slo.availability": pytest.approx(0.8),
        "slo.p50_ms": 30.0,
        "slo.p95_ms": pytest.approx(48.0),
        "slo.p99_ms": pytest.approx(49.6),
    }


@pytest.mark.parametrize("method", sorted(QUANTILE_METHODS))
def test_percentiles_are_numpys(method: str) -> None:
    rng = np.random.default_rng(0)
    latency = rng.lognormal(3.0, 0.8, 1001)
    slo = request_slo(latency, rng.random(1001) < 0.99, method=method)
    expected = np.quantile(latency, [0.5, 0.95, 0.99], method=method)  # type: ignore[call-overload]
    assert (slo.p50_ms, slo.p95_ms, slo.p99_ms) == tuple(expected.tolist())
    assert slo.quantile_method == method


def test_higher_reports_an_observed_latency() -> None:
    latency = np.array([5.0, 7.0, 100.0, 9.0])
    slo = request_slo(latency, np.ones(4, dtype=bool), method="higher")
    assert {slo.p50_ms, slo.p95_ms, slo.p99_ms} <= set(latency.tolist())


def test_errors_and_fallbacks_count_in_latency_and_as_not_ok() -> None:
    # two answered by the model, one fallback after a 1000 ms timeout, one failure
    slo = request_slo([12.0, 15.0, 1003.0, 2.0], [1, 1, 0, 0])
    assert slo.errors == 2
    assert slo.availability == 0.5
    assert slo.p99_ms == pytest.approx(np.quantile([12.0, 15.0, 1003.0, 2.0], 0.99))


def test_a_window_without_requests_reports_counts_only() -> None:
    slo = request_slo([], [])
    assert slo.error_rate is None
    assert slo.availability is None
    assert slo.p95_ms is None
    assert slo.to_metrics() == {"slo.requests": 0.0, "slo.errors": 0.0}


def test_a_million_requests() -> None:
    rng = np.random.default_rng(1)
    latency = rng.gamma(2.0, 10.0, 1_000_000)
    ok = rng.random(1_000_000) >= 0.003
    slo = request_slo(latency, ok)
    assert slo.errors == int((~ok).sum())
    assert slo.p99_ms == float(np.quantile(latency, 0.99))
    assert all(math.isfinite(v) for v in slo.to_metrics().values())


@pytest.mark.parametrize(
    ("latency", "ok", "field", "message"),
    [
        ([1.0, float("nan")], [1, 1], "latency_ms", "row 1 is nan"),
        ([1.0, float("inf")], [1, 1], "latency_ms", "finite, non-negative"),
        ([-1.0, 2.0], [1, 1], "latency_ms", "row 0 is -1.0"),
        (["fast", "slow"], [1, 1], "latency_ms", "must be numbers"),
        ([[1.0, 2.0], [3.0, 4.0]], [1, 1], "latency_ms", "1-D"),
        ([1.0, 2.0], [1], "ok", "'ok' has 1 rows"),
        ([1.0, 2.0], [1, 2], "ok", "booleans"),
        ([1.0, 2.0], ["yes", "no"], "ok", "booleans"),
        ([1.0, 2.0], [0.5, 1.0], "ok", "booleans"),
    ],
)
def test_bad_records_are_refused_naming_the_field(
    latency: Any, ok: Any, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        request_slo(latency, ok)
    assert info.value.field == field


def test_an_unknown_quantile_method_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"numpy\.quantile's methods") as info:
        request_slo([1.0], [True], method="type7")
    assert info.value.field == "method"


# -- error budgets ------------------------------------------------------------------------------
def test_hand_worked_error_budget() -> None:
    budget = error_budget([1000, 2000, 1000], [1, 2, 3], target=0.999)
    assert (budget.requests, budget.bad) == (4000, 6)
    assert budget.budget == pytest.approx(4.0)
    assert budget.remaining == pytest.approx(-0.5)  # overspent by half
    assert budget.burn_rate == pytest.approx(1.5)
    assert budget.to_metrics() == {
        "slo.error_budget_remaining": pytest.approx(-0.5),
        "slo.burn_rate": pytest.approx(1.5),
    }


@pytest.mark.parametrize(("target", "requests"), [(0.999, 1000), (0.99, 100), (0.9995, 2000)])
def test_a_budget_spent_exactly_leaves_exactly_zero(target: float, requests: int) -> None:
    bad = round((1 - target) * requests)
    budget = error_budget(requests, bad, target=target)
    assert budget.remaining == 0.0
    assert budget.burn_rate == 1.0
    rule = next(r for r in default_rules(1) if r.metric == "slo.error_budget_remaining")
    assert rule.breached(budget.to_metrics()["slo.error_budget_remaining"])


def test_an_untouched_budget_is_whole() -> None:
    budget = error_budget(5000, 0, target=0.999)
    assert (budget.remaining, budget.burn_rate) == (1.0, 0.0)


def test_no_requests_no_budget_figures() -> None:
    budget = error_budget([0, 0], [0, 0], target=0.999)
    assert budget.remaining is None
    assert budget.burn_rate is None
    assert budget.to_metrics() == {}


@pytest.mark.parametrize("span", [1, 3, 24, 1000])
def test_rolling_budget_is_a_trailing_sum(span: int) -> None:
    rng = np.random.default_rng(span)
    requests = rng.integers(0, 500, 100)
    requests[10:15] = 0
    errors = rng.binomial(requests, 0.002)
    rolled = rolling_error_budget(requests, errors, target=0.999, span=span)
    assert len(rolled) == 100
    for i, got in enumerate(rolled):
        window = slice(max(0, i - span + 1), i + 1)
        assert got == error_budget(requests[window], errors[window], target=0.999)


def test_rolling_budget_over_windows_without_requests() -> None:
    rolled = rolling_error_budget([0, 10, 0], [0, 1, 0], target=0.9, span=1)
    assert [b.remaining for b in rolled] == [None, 0.0, None]


@pytest.mark.parametrize(
    ("requests", "errors", "field", "message"),
    [
        ([10, 10], [1, 11], "errors", "Window 1 has more errors \\(11\\) than requests \\(10\\)"),
        ([10, -1], [1, 0], "requests", "non-negative whole counts"),
        ([10.5], [1], "requests", "non-negative whole counts"),
        ([10], [float("nan")], "errors", "non-negative whole counts"),
        (["10"], [1], "requests", "non-negative whole counts"),
        ([10, 10], [1], "errors", "'errors' has 1 windows but 'requests' has 2"),
        ([[10]], [[1]], "requests", "one count per window"),
    ],
)
def test_bad_counts_are_refused(requests: Any, errors: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        error_budget(requests, errors, target=0.999)
    assert info.value.field == field


@pytest.mark.parametrize("target", [0, 1, 1.5, -0.1, float("nan"), True, "0.999", None])
def test_bad_targets_are_refused(target: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        error_budget(10, 0, target=target)
    assert info.value.field == "target"


@pytest.mark.parametrize("span", [0, -3, 1.5, True])
def test_bad_spans_are_refused(span: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        rolling_error_budget([10], [0], target=0.99, span=span)
    assert info.value.field == "span"


def test_float_counts_that_are_whole_are_accepted() -> None:
    assert error_budget(np.array([10.0]), np.array([1.0]), target=0.9).bad == 1


def test_metric_names_fit_the_default_rules() -> None:
    metrics = request_slo([1.0, 2.0], [True, False]).to_metrics()
    metrics |= error_budget(2, 1, target=0.999).to_metrics()
    for name in metrics:
        AlertRule(name="r", metric=name, op=">", threshold=0)
    watched = {r.metric for r in default_rules(2) if r.metric.startswith("slo.")}
    assert watched <= set(metrics)
