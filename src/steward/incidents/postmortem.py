"""An incident's postmortem as Markdown: what ``steward incident postmortem ID`` exports.

The facts come from the store and the ledger (metadata, durations, alerts, timeline); the
analysis comes from the owner, section by section (``POSTMORTEM_SECTIONS``). A section not yet
written shows a placeholder saying what belongs there, so the export is a template to fill in
as much as a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from steward.domain.incidents import POSTMORTEM_SECTIONS, Incident
from steward.domain.monitoring import Alert
from steward.schemas.incidents import TimelineEntry

# Heading and hint of each section, in POSTMORTEM_SECTIONS order.
SECTION_GUIDE: dict[str, tuple[str, str]] = {
    "summary": ("Summary", "what happened, in two or three sentences a newcomer understands"),
    "impact": (
        "Impact",
        "who or what was affected, for how long, and how much: requests served badly, "
        "decisions taken on wrong scores, money or users",
    ),
    "root_cause_data": (
        "Root cause: data",
        "what changed in the inputs or labels (a new source, a schema change, drift, a "
        "broken feature pipeline), or why data was not the cause",
    ),
    "root_cause_model": (
        "Root cause: model",
        "what in the model or its release let this through (training data, evaluation gaps, "
        "a gate that should have failed), or why the model was not the cause",
    ),
    "root_cause_infrastructure": (
        "Root cause: infrastructure",
        "what in serving, storage or the pipeline failed or made it worse (latency, timeouts, "
        "a stale reference), or why infrastructure was not the cause",
    ),
    "actions": (
        "Actions",
        "follow-ups with an owner and a date each: fixes, new monitors or gate checks, runbook "
        "changes",
    ),
}


def render(incident: Incident, alerts: Sequence[Alert], timeline: Sequence[TimelineEntry]) -> str:
    parts = [
        f"# Postmortem: INC-{incident.id} — {_inline(incident.title)}",
        _metadata(incident, alerts),
        *(_section(incident, name) for name in POSTMORTEM_SECTIONS),
        _alerts(alerts),
        _timeline(timeline),
    ]
    return "\n\n".join(parts) + "\n"


def _metadata(incident: Incident, alerts: Sequence[Alert]) -> str:
    first_alert = min((a.fired_at for a in alerts), default=None)
    rows = [
        ("Model", f"`{incident.model_name}`"),
        ("Deployment", f"`{incident.deployment}`" if incident.deployment else "—"),
        ("Owner", incident.owner),
        ("Severity", incident.severity.value),
        ("State", incident.state.value),
        ("Opened", f"{_when(incident.opened_at)} by {incident.opened_by}"),
        ("First alert", _when(first_alert)),
        ("Mitigated", _when(incident.mitigated_at)),
        ("Resolved", _when(incident.resolved_at)),
        ("Time to mitigate", _duration(incident.opened_at, incident.mitigated_at)),
        ("Time to resolve", _duration(incident.opened_at, incident.resolved_at)),
    ]
    lines = ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows)]
    return "\n".join(lines)


def _section(incident: Incident, name: str) -> str:
    heading, hint = SECTION_GUIDE[name]
    text = incident.postmortem.get(name, "").strip()
    return f"## {heading}\n\n{text or f'_To be written: {hint}._'}"


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return "## Alerts\n\nNo alert is attached to this incident."
    lines = [
        "## Alerts",
        "",
        "| Fired (UTC) | Rule | Deployment | Severity | Condition | Value | Resolved (UTC) |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in sorted(alerts, key=lambda a: a.fired_at):
        cells = [
            _when(a.fired_at), a.rule.name, a.deployment, a.severity.value,
            a.rule.describe(), f"{a.value:g} (last {a.last_value:g})", _when(a.resolved_at),
        ]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _timeline(timeline: Sequence[TimelineEntry]) -> str:
    if not timeline:
        return "## Timeline\n\nThe ledger holds no event for this incident."
    lines = ["## Timeline", "", "| When (UTC) | Event | By | What |", "|---|---|---|---|"]
    for item in timeline:
        cells = [_when(item.at), f"`{item.kind}`", item.actor, item.summary]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _when(at: datetime | None) -> str:
    return "—" if at is None else f"{at:%Y-%m-%d %H:%M:%S}"


def _duration(start: datetime, end: datetime | None) -> str:
    return "— (not yet)" if end is None else format_duration(end - start)


def format_duration(delta: timedelta) -> str:
    """``45s``, ``12m 05s``, ``3h 04m``, ``2d 5h``: two units, enough to compare incidents."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _inline(text: str) -> str:
    return " ".join(text.split())
