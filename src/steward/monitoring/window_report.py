"""One monitor window as a standalone web page: its header, each section's metrics with a small
trend line over the recent windows, the per-feature histograms (reference vs current) of the
drift report, and the other sections' details. Inline CSS and SVG only: no script, no external
file, every stored string escaped.

    html = render_window_html(windows[0], windows)   # the latest, with the trend of all
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from pydantic import ValidationError

from steward.domain.drift import DriftReport
from steward.domain.durations import format_duration
from steward.domain.monitoring import MonitorWindow, WindowStatus
from steward.errors import NotFound
from steward.monitoring.report import CSS, drift_details

# The sections a window's metrics fall in, in the order a person reads them; a metric's section
# is the first part of its dotted name ("window" and anything unknown go last).
SECTIONS = ("drift", "quality", "freshness", "performance", "estimated", "slo", "window")
OTHER = "other"
# Per-column metrics are shown as their section's table (the drift report, the quality
# columns), not one row each: a table of 50 features would otherwise hold 150 rows.
PER_COLUMN = ("drift.column.", "drift.output.", "quality.column.")
# The report's sections shown under each metric section ("drift" as the drift table).
_REPORT_KEYS = {
    "drift": ("drift", "prediction_drift"),
    "quality": ("quality",),
    "freshness": ("freshness",),
    "performance": ("performance",),
    "estimated": ("estimated",),
    "slo": ("slo",),
    "window": ("versions",),
}
_TITLES = {"drift": "Drift", "quality": "Data quality", "freshness": "Freshness",
           "performance": "Live performance", "estimated": "Estimated performance (CBPE)",
           "slo": "Serving SLOs", "window": "Traffic", OTHER: "Other"}  # fmt: skip
_STATUS_COLORS = {
    WindowStatus.OK: "#1a7f37",
    WindowStatus.NO_DATA: "#656d76",
    WindowStatus.NO_REFERENCE: "#9a6700",
    WindowStatus.FAILED: "#cf222e",
}
_TREND_W, _TREND_H, _TREND_PAD = 140, 28, 3
_TREND_COLOR = "#0969da"
_MAX_DEPTH, _MAX_ITEMS, _MAX_COLUMNS = 4, 50, 16
_EXTRA_CSS = """
table.metrics{width:auto}table.metrics td{vertical-align:middle}
.details{width:auto;margin:.25rem 0}.details th{font-weight:500;background:none;color:#656d76}
.details td,.details th{border:0;padding:.1rem .6rem .1rem 0}
h3{font-size:1rem;margin:1rem 0 .25rem}
"""


def group_metrics(metrics: Mapping[str, float]) -> dict[str, list[str]]:
    """Metric names by section (in ``SECTIONS`` order, then ``other``), sorted within each;
    per-column drift metrics are left out."""
    groups: dict[str, list[str]] = {}
    for name in sorted(metrics):
        if name.startswith(PER_COLUMN):
            continue
        head = name.split(".", 1)[0]
        groups.setdefault(head if head in SECTIONS else OTHER, []).append(name)
    return {section: groups[section] for section in (*SECTIONS, OTHER) if section in groups}


def oldest_first(history: Sequence[MonitorWindow]) -> list[MonitorWindow]:
    return sorted(history, key=lambda window: (window.end, window.computed_at))


def trend(history: Sequence[MonitorWindow], metric: str) -> list[float | None]:
    """The metric in each window, oldest first (None where a window did not measure it)."""
    return [window.metrics.get(metric) for window in oldest_first(history)]


def render_latest_html(deployment: str, windows: Sequence[MonitorWindow]) -> str:
    """The page of the newest of ``windows`` (newest first, as the service lists them);
    NotFound when the monitor has not run yet."""
    if not windows:
        raise NotFound(
            f"The monitor of {deployment!r} has no window yet: run `steward monitor run "
            f"{deployment}` (or wait for the server's scheduler).",
            details={"deployment": deployment},
        )
    return render_window_html(windows[0], windows)


def render_window_html(window: MonitorWindow, history: Sequence[MonitorWindow]) -> str:
    """The page for ``window``; ``history`` (any order, with or without ``window``) draws the
    trends."""
    past = oldest_first([w for w in history if w.id != window.id] + [window])
    groups = group_metrics(window.metrics)
    body = "\n".join(
        _section(name, groups.get(name, []), window, past) for name in (*SECTIONS, OTHER)
    )
    title = f"Monitor: {window.deployment}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — {escape(_instant(window.end))}</title>
<style>{CSS}{_EXTRA_CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
{_header(window, len(past))}
{body}
</body>
</html>
"""


# -- the header ------------------------------------------------------------------------------
def _header(window: MonitorWindow, n_history: int) -> str:
    color = _STATUS_COLORS.get(window.status, "#656d76")
    span = (window.end - window.start).total_seconds()
    items = {
        "Model": window.model_name,
        "Window": f"{_instant(window.start)} → {_instant(window.end)} ({format_duration(span)})",
        "Rows": f"{window.rows:,}",
        "Versions": ", ".join(f"v{v}" for v in window.versions) or "—",
        "Computed": _instant(window.computed_at),
        "Trends": f"over the last {n_history} window(s), oldest to newest",
    }
    if window.error:
        items["Error"] = window.error
    details = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items.items())
    status = window.status.value.replace("_", " ")
    return (
        f'<span class="verdict" style="background:{color}">{escape(status)}</span>'
        f"<dl>{details}</dl>"
    )


# -- one section -----------------------------------------------------------------------------
def _section(
    name: str, metrics: list[str], window: MonitorWindow, past: list[MonitorWindow]
) -> str:
    keys = _REPORT_KEYS.get(name, ()) if name != OTHER else _unclaimed(window.report)
    details = "".join(_report_part(key, window.report[key]) for key in keys if key in window.report)
    if not metrics and not details:
        return ""
    table = _metrics_table(metrics, window, past) if metrics else ""
    return (
        f'<section id="{escape(name)}"><h2>{escape(_TITLES[name])}</h2>{table}{details}</section>'
    )


def _unclaimed(report: Mapping[str, Any]) -> tuple[str, ...]:
    claimed = {key for keys in _REPORT_KEYS.values() for key in keys}
    return tuple(key for key in report if key not in claimed)


def _metrics_table(metrics: list[str], window: MonitorWindow, past: list[MonitorWindow]) -> str:
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="num">{_number(window.metrics[name])}</td>'
        f"<td>{trend_svg(trend(past, name))}</td></tr>"
        for name in metrics
    )
    return (
        '<table class="metrics"><thead><tr><th>Metric</th><th>Value</th><th>Trend</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _report_part(key: str, value: Any) -> str:
    if key in ("drift", "prediction_drift"):
        heading = "Features" if key == "drift" else "Predictions"
        return f"<h3>{heading}</h3>{_drift_part(value)}"
    return f"<h3>Details: {escape(key)}</h3>{_details(value, 0)}"


def _drift_part(value: Any) -> str:
    """A stored DriftReport as its table and histograms; a note (not tested) as text."""
    if isinstance(value, Mapping) and "columns" in value:
        try:
            return drift_details(DriftReport.model_validate(value))
        except ValidationError:
            pass  # written by another version of Steward: shown as data below
    if isinstance(value, Mapping) and set(value) == {"note"}:
        return f'<p class="note">{escape(str(value["note"]))}</p>'
    return _details(value, 0)


def _details(value: Any, depth: int) -> str:
    """Any JSON value as nested tables and lists, escaped, bounded in depth and length."""
    if depth >= _MAX_DEPTH:
        return escape(json.dumps(value, default=str)[:500])
    if isinstance(value, Mapping):
        if not value:
            return "—"
        items = list(value.items())
        rows = "".join(
            f"<tr><th>{escape(str(k))}</th><td>{_details(v, depth + 1)}</td></tr>"
            for k, v in items[:_MAX_ITEMS]
        )
        return f'<table class="details">{rows}</table>{_more(len(items))}'
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            return _records(value, depth)
        if all(not isinstance(v, Mapping | list) for v in value):
            shown = ", ".join(_scalar(v) for v in value[:_MAX_ITEMS])
            return (shown or "—") + _more(len(value))
        listed = "".join(f"<li>{_details(v, depth + 1)}</li>" for v in value[:_MAX_ITEMS])
        return f"<ol>{listed}</ol>{_more(len(value))}"
    return _scalar(value)


def _records(records: list[Mapping[str, Any]], depth: int) -> str:
    """A list of objects (one per column, say) as one table, a row each."""
    keys = list(dict.fromkeys(key for record in records for key in record))[:_MAX_COLUMNS]
    head = "".join(f"<th>{escape(str(key))}</th>" for key in keys)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_details(r.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
        for r in records[:_MAX_ITEMS]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" + _more(
        len(records)
    )


def _more(count: int) -> str:
    return f' <span class="note">… {count - _MAX_ITEMS} more</span>' if count > _MAX_ITEMS else ""


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _number(value)
    return escape(str(value))


# -- trend lines -----------------------------------------------------------------------------
def trend_svg(values: Sequence[float | None]) -> str:
    """A small line of ``values`` (oldest first), broken where one is missing; the latest
    value is a dot. Empty when no value is known."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    step = (_TREND_W - 2 * _TREND_PAD) / max(len(values) - 1, 1)

    def y(value: float) -> float:
        if high == low:
            return _TREND_H / 2
        return _TREND_H - _TREND_PAD - (value - low) / (high - low) * (_TREND_H - 2 * _TREND_PAD)

    runs: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None or not math.isfinite(value):
            runs.append([])
        else:
            runs[-1].append((_TREND_PAD + i * step, y(value)))
    last_x, last_y = next(run[-1] for run in reversed(runs) if run)
    dot = f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5" fill="{_TREND_COLOR}"/>'
    lines = "".join(
        f'<polyline points="{_points(run)}" fill="none" stroke="{_TREND_COLOR}" '
        'stroke-width="1.5"/>'
        for run in runs
        if len(run) > 1
    )
    lone = "".join(  # a value between two gaps: a point, not a line
        f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="1.5" fill="{_TREND_COLOR}"/>'
        for run in runs[:-1]
        if len(run) == 1
    )
    label = f"from {low:.4g} to {high:.4g}"
    return (
        f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{_TREND_W}" '
        f'height="{_TREND_H}" role="img" aria-label="{escape(label)}"><title>{escape(label)}'
        f"</title>{lines}{lone}{dot}</svg>"
    )


def _points(run: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in run)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return escape(f"{value:.4g}")


def _instant(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"
