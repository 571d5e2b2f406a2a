"""Alert rules against windows: streaks, unmeasured windows, resolution, removed rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from steward.domain.monitoring import (
    Alert,
    AlertRule,
    AlertState,
    Comparison,
    MonitorSpec,
    MonitorWindow,
    Severity,
    WindowStatus,
    default_rules,
)
from steward.monitoring.rules import evaluate

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _window(age: int, **metrics: float) -> MonitorWindow:
    end = NOW - timedelta(hours=age)
    return MonitorWindow(
        id=str(uuid.uuid4()), deployment="churn", model_name="churn-model",
        start=end - timedelta(hours=1), end=end, computed_at=end,
        status=WindowStatus.OK, metrics={k.replace("__", "."): v for k, v in metrics.items()},
    )  # fmt: skip


def _rule(for_windows: int = 1) -> AlertRule:
    return AlertRule(name="drift", metric="drift.share_drifted", op=Comparison.GE,
                     threshold=0.5, severity=Severity.HIGH, for_windows=for_windows)  # fmt: skip


def _firing(rule: AlertRule) -> Alert:
    return Alert(
        id="a1", deployment="churn", model_name="churn-model", rule=rule,
        state=AlertState.FIRING, severity=rule.severity, value=0.6, last_value=0.6,
        window_id="w0", fired_at=NOW - timedelta(hours=3),
    )  # fmt: skip


def test_a_breach_fires_one_alert_carrying_the_value_and_window() -> None:
    newest = _window(0, drift__share_drifted=0.7)
    decisions = evaluate([_rule()], [newest], [], NOW)
    assert [a.value for a in decisions.fired] == [0.7]
    alert = decisions.fired[0]
    assert alert.window_id == newest.id
    assert alert.severity is Severity.HIGH
    assert alert.state is AlertState.FIRING
    assert alert.fired_at == NOW


def test_no_breach_fires_nothing() -> None:
    assert not evaluate([_rule()], [_window(0, drift__share_drifted=0.2)], [], NOW).fired


def test_a_rule_needs_its_whole_streak() -> None:
    rule = _rule(for_windows=3)
    two = [_window(0, drift__share_drifted=0.9), _window(1, drift__share_drifted=0.8)]
    assert not evaluate([rule], two, [], NOW).fired  # only two windows exist
    broken = [*two, _window(2, drift__share_drifted=0.1)]
    assert not evaluate([rule], broken, [], NOW).fired
    full = [*two, _window(2, drift__share_drifted=0.6)]
    assert len(evaluate([rule], full, [], NOW).fired) == 1


def test_an_unmeasured_window_breaks_a_streak_without_firing() -> None:
    rule = _rule(for_windows=2)
    windows = [_window(0, drift__share_drifted=0.9), _window(1)]
    assert not evaluate([rule], windows, [], NOW).fired


def test_a_firing_alert_keeps_firing_and_takes_the_new_value() -> None:
    rule = _rule()
    decisions = evaluate([rule], [_window(0, drift__share_drifted=0.8)], [_firing(rule)], NOW)
    assert not decisions.fired
    assert not decisions.resolved
    assert [(a.id, v) for a, v in decisions.still_firing] == [("a1", 0.8)]


def test_a_measured_healthy_window_resolves_but_silence_does_not() -> None:
    rule = _rule()
    healthy = evaluate([rule], [_window(0, drift__share_drifted=0.1)], [_firing(rule)], NOW)
    assert [a.id for a in healthy.resolved] == ["a1"]
    silent = evaluate([rule], [_window(0)], [_firing(rule)], NOW)
    assert not silent.resolved
    assert not silent.still_firing


def test_an_alert_whose_rule_was_removed_resolves() -> None:
    decisions = evaluate([], [_window(0, drift__share_drifted=0.9)], [_firing(_rule())], NOW)
    assert [a.id for a in decisions.resolved] == ["a1"]


@pytest.mark.parametrize(
    ("op", "value", "breached"),
    [(">", 0.5, False), (">=", 0.5, True), ("<", 0.4, True), ("<=", 0.6, False)],
)
def test_comparisons(op: str, value: float, breached: bool) -> None:
    rule = AlertRule(name="r", metric="m", op=Comparison(op), threshold=0.5)
    assert rule.breached(value) is breached
    assert rule.breached(None) is False


def test_bad_rules_are_refused_naming_the_problem() -> None:
    with pytest.raises(ValidationError, match="dotted name"):
        AlertRule(name="r", metric="drift share", op=Comparison.GT, threshold=1)
    with pytest.raises(ValidationError, match="unique"):
        MonitorSpec(rules=[_rule(), _rule()])
    with pytest.raises(ValidationError, match="for_windows"):
        _rule(for_windows=0)


def test_riskier_tiers_get_louder_quicker_defaults() -> None:
    tier1 = {r.name: r for r in default_rules(1)}
    tier3 = {r.name: r for r in default_rules(3)}
    assert tier1["feature-drift"].for_windows < tier3["feature-drift"].for_windows
    assert tier1["error-rate"].severity.rank < tier3["error-rate"].severity.rank
    assert tier1["error-rate"].threshold < tier3["error-rate"].threshold
