"""A store to run incidents on, and alerts fired into it the way the monitoring job stores them.

`build_template(home)` makes model ``churn`` (owner ana@example.com; v1 in production, v2
gated and approved: tests/serving/test_gateway.py's store) once; `copy_home` gives each test its
own copy, so tests may open, mitigate and resolve the model's one active incident freely.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta
from pathlib import Path

from tests.serving.test_gateway import Store

from steward.domain.clock import utcnow
from steward.domain.monitoring import (
    Alert,
    AlertRule,
    AlertState,
    Comparison,
    MonitorWindow,
    Severity,
    WindowStatus,
)
from steward.store.base import MetadataStore

OWNER = "ana@example.com"
MODEL = "churn"


def build_template(home: Path) -> Path:
    made = Store(home)
    made.client.close()
    return home


def copy_home(template: Path, home: Path) -> Path:
    shutil.copytree(template, home)
    return home


def fire(
    store: MetadataStore,
    deployment: str,
    *,
    rule: str = "feature-drift",
    severity: Severity = Severity.MEDIUM,
    value: float = 0.8,
) -> Alert:
    """Store a window of ``deployment`` and a firing alert of ``rule`` on it (no incident)."""
    now = utcnow()
    window = MonitorWindow(
        id=uuid.uuid4().hex, deployment=deployment, model_name=MODEL,
        start=now - timedelta(hours=1), end=now, computed_at=now, status=WindowStatus.OK,
        rows=500, metrics={"drift.share_drifted": value},
    )  # fmt: skip
    alert = Alert(
        id=uuid.uuid4().hex, deployment=deployment, model_name=MODEL,
        rule=AlertRule(name=rule, metric="drift.share_drifted", op=Comparison.GE,
                       threshold=0.5, severity=severity),
        state=AlertState.FIRING, severity=severity, value=value, last_value=value,
        window_id=window.id, fired_at=now,
    )  # fmt: skip
    with store.write("steward-monitor") as tx:
        tx.add_window(window)
        return tx.add_alert(alert)
