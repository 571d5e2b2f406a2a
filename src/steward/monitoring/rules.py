"""Alert rules against a deployment's windows: which alerts fire, which stay, which resolve.

Pure: the monitor passes the newest windows and the alerts still firing, and writes what comes
back. A rule fires when its metric breached on each of its last ``for_windows`` windows; a
window that did not measure the metric breaks the streak. A firing alert resolves on the first
window that measured the metric without breaching it (a window with no traffic resolves
nothing: silence is not health), or when its rule is removed from the monitor.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from steward.domain.monitoring import Alert, AlertRule, AlertState, MonitorWindow


@dataclass
class RuleDecisions:
    fired: list[Alert] = field(default_factory=list)
    still_firing: list[tuple[Alert, float]] = field(default_factory=list)  # with the new value
    resolved: list[Alert] = field(default_factory=list)


def evaluate(
    rules: Sequence[AlertRule],
    windows: Sequence[MonitorWindow],
    firing: Sequence[Alert],
    now: datetime,
) -> RuleDecisions:
    """``windows`` newest first, the newest being the one just measured."""
    decisions = RuleDecisions()
    if not windows:
        return decisions
    current = windows[0]
    by_rule = {alert.rule.name: alert for alert in firing}
    for rule in rules:
        alert = by_rule.pop(rule.name, None)
        value = current.metrics.get(rule.metric)
        if alert is None:
            if _streak(rule, windows):
                assert value is not None
                decisions.fired.append(_new_alert(rule, current, value, now))
        elif rule.breached(value):
            assert value is not None
            decisions.still_firing.append((alert, value))
        elif value is not None:
            decisions.resolved.append(alert)
    decisions.resolved.extend(by_rule.values())  # their rules were removed
    return decisions


def _streak(rule: AlertRule, windows: Sequence[MonitorWindow]) -> bool:
    recent = windows[: rule.for_windows]
    return len(recent) == rule.for_windows and all(
        rule.breached(w.metrics.get(rule.metric)) for w in recent
    )


def _new_alert(rule: AlertRule, window: MonitorWindow, value: float, now: datetime) -> Alert:
    return Alert(
        id=str(uuid.uuid4()),
        deployment=window.deployment,
        model_name=window.model_name,
        rule=rule,
        state=AlertState.FIRING,
        severity=rule.severity,
        value=value,
        last_value=value,
        window_id=window.id,
        fired_at=now,
    )
