"""An incident's timeline, read from the ledger rather than stored, so it cannot disagree with
what happened.

It gathers the incident's own events, its alerts' events, and what changed the model's
deployments and champion from ``lookback`` before the incident opened until it was resolved
(or now): the deploy that probably caused it is often the entry just before the first alert.
Each event becomes a `TimelineEntry` with a one-line summary; events are ordered as the ledger
committed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from steward.domain.deployments import DEPLOYMENT_EVENTS
from steward.domain.entities import Event
from steward.domain.incidents import Incident
from steward.domain.monitoring import Alert
from steward.schemas.incidents import TimelineEntry
from steward.store.base import EventFilter, ReadSession

DEFAULT_LOOKBACK = timedelta(hours=24)
MAX_ALERTS = 1_000  # alerts of one incident that its timeline and postmortem show
_EVENTS_PER_SUBJECT = 1_000  # a subject with more events in the window is cut to its first
_MAX_LINE = 160
# The store records an alert's events on its deployment, the alert's id in the payload.
_ALERT_EVENTS = ("alert.fired", "alert.joined", "alert.resolved")


def assemble(
    rx: ReadSession,
    incident: Incident,
    alerts: Iterable[Alert],
    *,
    now: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> list[TimelineEntry]:
    """The incident's timeline, oldest first."""
    attached = list(alerts)
    since, until = incident.opened_at - lookback, incident.resolved_at or now
    deployments = {d.name for d in rx.list_deployments(incident.model_name)}
    deployments |= {a.deployment for a in attached}  # even one deleted since
    if incident.deployment is not None:
        deployments.add(incident.deployment)
    events: dict[int, Event] = {}

    def gather(flt: EventFilter, keep: Callable[[Event], bool] = lambda e: True) -> None:
        for event in rx.list_events(flt, limit=_EVENTS_PER_SUBJECT, offset=0):
            if keep(event):
                events[event.seq] = event

    gather(EventFilter(subject_type="incident", subject_id=str(incident.id)))
    # the champion's moves: a promotion, or a model rollback
    gather(
        EventFilter(kind="alias.set", subject_type="model", subject_id=incident.model_name,
                    since=since, until=until),
        lambda e: e.payload.get("alias") == "champion",
    )  # fmt: skip
    ours = {a.id for a in attached}
    # an alert's events come no earlier than it fired (the events are stamped after it)
    alerts_since = min([since, *(a.fired_at for a in attached)])
    for name in sorted(deployments):
        # One kind at a time: a deployment's subject also holds a monitor.window event per
        # window, far more than the changes a person reads here.
        for kind in sorted(DEPLOYMENT_EVENTS):
            gather(EventFilter(kind, "deployment", name, since=since, until=until))
        for kind in _ALERT_EVENTS:  # this incident's alerts only, whenever they changed
            gather(
                EventFilter(kind, "deployment", name, since=alerts_since),
                lambda e: e.payload.get("alert_id") in ours,
            )
    return [entry(e) for e in sorted(events.values(), key=lambda e: e.seq)]


def entry(event: Event) -> TimelineEntry:
    summarize = _SUMMARIES.get(event.kind, _generic)
    return TimelineEntry(
        seq=event.seq,
        at=event.occurred_at,
        kind=event.kind,
        actor=event.actor,
        subject=f"{event.subject_type}:{event.subject_id}",
        summary=_shorten(summarize(event.subject_id, event.payload)),
    )


# -- one line per kind --------------------------------------------------------------------------

Payload = dict[str, Any]


def _alert_fired(subject: str, p: Payload) -> str:
    condition = f"{p.get('metric')} {p.get('op')} {_number(p.get('threshold'))}"
    severity = f" ({p['severity']})" if p.get("severity") else ""
    return (
        f"Alert {p.get('rule')} fired on {subject}{severity}: {condition}, "
        f"value {_number(p.get('value'))}"
    )


def _alert_resolved(subject: str, p: Payload) -> str:
    return (
        f"Alert {p.get('rule')} on {subject} resolved (last value {_number(p.get('last_value'))})"
    )


def _alert_joined(subject: str, p: Payload) -> str:
    return f"Alert {p.get('rule')} on {subject} joined INC-{p.get('incident_id')}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _incident_opened(subject: str, p: Payload) -> str:
    owner = f", owner {p['owner']}" if p.get("owner") else ""
    severity = f" ({p['severity']})" if p.get("severity") else ""
    return f"INC-{subject} opened{severity}: {p.get('title', '')}{owner}".rstrip(": ")


def _incident_escalated(subject: str, p: Payload) -> str:
    because = f" by alert {p['rule']} on {p.get('deployment')}" if p.get("rule") else ""
    return f"Severity raised from {p.get('from')} to {p.get('to')}{because}"


def _incident_noted(subject: str, p: Payload) -> str:
    return f"Note: {p.get('text', '')}"


def _incident_mitigated(subject: str, p: Payload) -> str:
    change = p.get("change") or p.get("deployment")
    revisions = f"revision {p.get('revision_before')} -> {p.get('revision_after')}"
    reason = f": {p['reason']}" if p.get("reason") else ""
    return f"Mitigated by {p.get('action')} ({change}, {revisions}){reason}"


def _incident_resolved(subject: str, p: Payload) -> str:
    return "Resolved" + (f": {p['reason']}" if p.get("reason") else "")


def _postmortem_updated(subject: str, p: Payload) -> str:
    sections = p.get("sections") or {}
    return f"Postmortem updated: {', '.join(sorted(sections)) or 'no section'}"


def _deployment_put(verb: str) -> Callable[[str, Payload], str]:
    def summary(subject: str, p: Payload) -> str:
        reason = f" ({p['reason']})" if p.get("reason") else ""
        return f"Deployment {subject} {verb}: {_routing_text(p)}{reason}"

    return summary


def _deployment_rolled_back(subject: str, p: Payload) -> str:
    moved = ", ".join(f"v{v}" for v in p.get("from_versions") or []) or "the candidate"
    reason = f": {p['reason']}" if p.get("reason") else ""
    return f"Deployment {subject} rolled back from {moved} to champion v{p.get('champion')}{reason}"


def _routing_text(p: Payload) -> str:
    parts = [f"champion v{p.get('champion')}"]
    if p.get("canary") is not None:
        share = p.get("canary_share")
        shown = f" at {share:.0%}" if isinstance(share, int | float) else ""
        parts.append(f"canary v{p['canary']}{shown}")
    if p.get("split"):
        parts.append("split " + ", ".join(f"v{v}={w:g}" for v, w in dict(p["split"]).items()))
    if p.get("shadow") is not None:
        parts.append(f"shadow v{p['shadow']}")
    if p.get("serve_fallback"):
        parts.append("serving its fallback")
    return ", ".join(parts) + f" (revision {p.get('revision')})"


def _alias_set(subject: str, p: Payload) -> str:
    return f"Champion of {subject} -> v{p.get('version')}" + (
        f" ({p['reason']})" if p.get("reason") else ""
    )


def _generic(subject: str, p: Payload) -> str:
    reason = f": {p['reason']}" if p.get("reason") else ""
    return f"{subject}{reason}"


_SUMMARIES: dict[str, Callable[[str, Payload], str]] = {
    "alert.fired": _alert_fired,
    "alert.resolved": _alert_resolved,
    "alert.joined": _alert_joined,
    "incident.opened": _incident_opened,
    "incident.escalated": _incident_escalated,
    "incident.noted": _incident_noted,
    "incident.mitigated": _incident_mitigated,
    "incident.resolved": _incident_resolved,
    "incident.postmortem_updated": _postmortem_updated,
    "deployment.created": _deployment_put("created"),
    "deployment.updated": _deployment_put("changed"),
    "deployment.rolled_back": _deployment_rolled_back,
    "alias.set": _alias_set,
}


def _shorten(text: str) -> str:
    line = " ".join(text.split())  # one line, whatever the note's layout
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"
