"""The monitor's window report: a standalone page with every section's metrics, the trend of
each, the drift report's per-feature histograms, and every stored string escaped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from steward.domain.drift import ColumnDrift, ColumnKind, DriftMethod, DriftReport, Histogram
from steward.domain.monitoring import MonitorWindow, WindowStatus
from steward.errors import NotFound
from steward.monitoring.window_report import (
    group_metrics,
    render_latest_html,
    render_window_html,
    trend,
    trend_svg,
)

HOSTILE = "<script>alert('x')</script>"
START = datetime(2025, 1, 1, tzinfo=UTC)


def drift_report() -> dict[str, Any]:
    columns = [
        ColumnDrift(
            column="age", kind=ColumnKind.NUMERICAL, method=DriftMethod.KS, statistic=0.4,
            p_value=0.001, score=0.001, threshold=0.05, drifted=True, n_reference=200,
            n_current=120, histogram=Histogram(labels=["20", "40", "60"], edges=[20, 40, 60, 80],
                                               reference=[0.2, 0.6, 0.2], current=[0.1, 0.3, 0.6]),
        ),
        ColumnDrift(
            column=HOSTILE, kind=ColumnKind.CATEGORICAL, method=DriftMethod.CHISQUARE,
            statistic=1.0, p_value=0.5, score=0.5, threshold=0.05, drifted=False,
            histogram=Histogram(labels=["<b>a</b>", "b"], reference=[0.5, 0.5],
                                current=[0.4, 0.6]),
        ),
    ]  # fmt: skip
    report = DriftReport(
        columns=columns, n_tested=2, n_drifted=1, share_drifted=0.5, dataset_drift=True,
        reference_rows=200, current_rows=120,
    )  # fmt: skip
    return report.model_dump(mode="json")


def window(hour: int, metrics: dict[str, float], **fields: Any) -> MonitorWindow:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "deployment": "churn-api", "model_name": "churn",
        "start": START + timedelta(hours=hour), "end": START + timedelta(hours=hour + 1),
        "computed_at": START + timedelta(hours=hour + 1, minutes=1), "status": WindowStatus.OK,
        "rows": 120, "versions": [1], "metrics": metrics,
    }  # fmt: skip
    return MonitorWindow.model_validate({**values, **fields})


def history() -> list[MonitorWindow]:
    """Three windows, newest first as the service lists them; the middle one saw no traffic."""
    latest = window(
        2,
        {"drift.share_drifted": 0.5, "drift.column.age.score": 0.001, "slo.p95_ms": 12.5,
         "quality.missing_share": 0.0, "quality.column.age.null_rate": 0.0,
         "performance.roc_auc": 0.81, "window.rows": 120.0},
        report={
            "drift": drift_report(),
            "prediction_drift": {"note": f"no prediction column {HOSTILE}"},
            "slo": {"requests": 60, "budget": {"remaining": 0.9, "note": HOSTILE}},
            "quality": {"columns": [{"name": "age", "null_rate": 0.0},
                                    {"name": HOSTILE, "null_rate": 0.25}]},
            "versions": {"1": 120},
        },
    )  # fmt: skip
    quiet = window(1, {"freshness.prediction_age_s": 3600.0}, status=WindowStatus.NO_DATA)
    first = window(0, {"drift.share_drifted": 0.0, "slo.p95_ms": 10.0})
    return [latest, quiet, first]


def test_the_page_holds_every_section_the_histograms_and_trends() -> None:
    windows = history()
    page = render_window_html(windows[0], windows)
    assert page.startswith("<!DOCTYPE html>")
    for heading in ("Drift", "Data quality", "Live performance", "Serving SLOs", "Traffic"):
        assert f"<h2>{heading}</h2>" in page
    assert "share_drifted" in page
    assert "p95_ms" in page
    assert "roc_auc" in page
    assert 'id="col-age"' in page  # the feature's histogram section
    assert page.count('aria-label="histogram"') == 2  # one per feature, reference vs current
    assert 'class="trend"' in page
    assert "<circle" in page
    assert "drift.column.age.score" not in page  # per-column scores are the drift table's
    assert "quality.column.age.null_rate" not in page  # ... and the quality columns table's
    assert "<th>null_rate</th>" in page
    assert "no prediction column" in page
    assert "over the last 3 window(s)" in page


def test_every_stored_string_is_escaped() -> None:
    windows = history()
    page = render_window_html(windows[0], windows)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>a</b>" not in page
    failed = window(3, {}, status=WindowStatus.FAILED, error=HOSTILE, deployment=HOSTILE)
    page = render_window_html(failed, [failed])
    assert "<script>" not in page
    assert "failed" in page


def test_no_script_and_no_external_asset() -> None:
    page = render_window_html(history()[0], history())
    assert "<script" not in page.lower()
    assert "src=" not in page
    assert "<link" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_grouping_and_trend() -> None:
    windows = history()
    groups = group_metrics(windows[0].metrics)
    assert list(groups) == ["drift", "quality", "performance", "slo", "window"]
    assert groups["drift"] == ["drift.share_drifted"]
    assert trend(windows, "slo.p95_ms") == [10.0, None, 12.5]  # oldest first
    assert trend_svg([None, None]) == ""
    assert "<circle" in trend_svg([3.0])  # a single value is a dot
    line = trend_svg([1.0, None, 2.0, 3.0])
    assert line.count("<polyline") == 1
    assert line.count("<circle") == 2  # 1.0 alone, and the latest


def test_latest_page_needs_a_window() -> None:
    with pytest.raises(NotFound, match="steward monitor run churn-api"):
        render_latest_html("churn-api", [])
    assert "churn-api" in render_latest_html("churn-api", history())
