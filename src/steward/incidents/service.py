"""IncidentService: alerts open or join incidents; people note, mitigate and resolve them, and
write the postmortem.

An incident belongs to a model: a fired alert joins the model's active (open or mitigated)
incident, raising its severity when it is worse, or opens one owned by the model's owner. The
store numbers incidents and refuses a second active one per model, so two replicas escalating
at once end with one incident: the loser of the race joins the winner's. Opening and
escalating are announced once each, on the log (WARNING) and the webhook; a notification never
blocks or fails the caller.

Every change is a ledger event, written with the change: ``incident.opened`` and
``alert.joined`` (recorded by the store), ``incident.escalated``, ``incident.noted``,
``incident.mitigated``, ``incident.resolved``, ``incident.postmortem_updated``. The scorecard's
drift detection coverage and drift-to-mitigation time are read from them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from steward.alerts.webhook import WebhookAlerts
from steward.domain.clock import utcnow
from steward.domain.deployments import Deployment
from steward.domain.incidents import (
    POSTMORTEM_SECTIONS,
    Incident,
    IncidentState,
    MitigationAction,
    check_move,
)
from steward.domain.monitoring import Alert, AlertState, Severity
from steward.errors import Conflict, InvalidInput, StewardError
from steward.incidents import _mitigations, postmortem, timeline
from steward.schemas.incidents import (
    MAX_NOTE_CHARS,
    MAX_REASON_CHARS,
    MAX_SECTION_CHARS,
    MitigationResult,
    TimelineEntry,
)
from steward.serving.deployments import DeploymentService
from steward.store.base import MetadataStore, WriteSession

logger = logging.getLogger(__name__)

# Tries to open-or-join one alert: a lost race to open is followed by a join, so a third try
# only happens when the winner's incident was resolved in between.
_ATTEMPTS = 3


class _Raced(Exception):
    """Another writer opened the model's incident between our read and our write."""


@dataclass(frozen=True)
class _Change:
    incident: Incident
    opened: bool = False
    raised_from: Severity | None = None  # the severity before an escalation


class IncidentService:
    def __init__(
        self,
        store: MetadataStore,
        deployments: DeploymentService,
        notifier: WebhookAlerts | None = None,
        *,
        lookback: timedelta = timeline.DEFAULT_LOOKBACK,
    ) -> None:
        self.store = store
        self.deployments = deployments
        self.notifier = notifier
        self.lookback = lookback  # how far before an incident its timeline starts

    # -- alerts become incidents -----------------------------------------------------------

    def escalate(self, actor: str, alerts: Sequence[Alert]) -> list[Incident]:
        """Attach each newly fired alert (firing, no incident yet) to its model's incident,
        opening one when the model has none; the incidents touched, each once.

        An alert that cannot be attached (its model deleted, the store down) does not keep
        the others from theirs: it is logged, and the first such error is raised at the end.
        """
        touched: dict[int, Incident] = {}
        failures: list[StewardError] = []
        for alert in alerts:
            if alert.incident_id is not None or alert.state is not AlertState.FIRING:
                continue
            try:
                change = self._attach(actor, alert)
            except StewardError as error:
                logger.error("alert %s joined no incident: %s", alert.id, error.message)
                failures.append(error)
                continue
            touched[change.incident.id] = change.incident
            self._announce(change, alert)
        if failures:
            raise failures[0]
        return list(touched.values())

    def _attach(self, actor: str, alert: Alert) -> _Change:
        for _ in range(_ATTEMPTS):
            try:
                return self._open_or_join(actor, alert)
            except _Raced:
                continue  # the other writer's incident is there now: join it
        raise Conflict(
            f"Could not attach alert {alert.id} to an incident of model {alert.model_name!r}: "
            f"its incident kept changing ({_ATTEMPTS} tries). Run the monitor again.",
            details={"field": "alert", "alert": alert.id},
        )

    def _open_or_join(self, actor: str, alert: Alert) -> _Change:
        now = utcnow()
        with self.store.write(actor) as tx:
            active = tx.active_incident(alert.model_name)
            if active is None:
                opened = _open(tx, actor, alert, now)
                tx.update_alert(alert.id, {"incident_id": opened.id})
                return _Change(opened, opened=True)
            tx.update_alert(alert.id, {"incident_id": active.id})
            if alert.severity.rank >= active.severity.rank:
                return _Change(active)
            raised = tx.update_incident(
                active.id, {"severity": alert.severity, "updated_at": now},
                kind="incident.escalated",
                payload={"from": active.severity.value, "to": alert.severity.value,
                         "alert": alert.id, "rule": alert.rule.name,
                         "deployment": alert.deployment},
            )  # fmt: skip
            return _Change(raised, raised_from=active.severity)

    def _announce(self, change: _Change, alert: Alert) -> None:
        incident = change.incident
        head = f"[{incident.severity.value}] INC-{incident.id}"
        whose = f"model {incident.model_name} (owner {incident.owner})"
        if change.opened:
            text = f"{head} opened for {whose}: {incident.title}"
        elif change.raised_from is not None:
            text = (
                f"{head} escalated from {change.raised_from.value} for {whose}: "
                f"{alert.rule.name} on {alert.deployment} ({alert.rule.describe()}, "
                f"value {alert.value:g})"
            )
        else:
            return
        logger.warning("%s", text)
        self._send(text)

    def _send(self, text: str) -> None:
        if self.notifier is None:
            return
        try:  # the sender queues and never raises; this guards a replaced or broken one
            self.notifier.send(text)
        except Exception:
            logger.exception("the incident notification could not be queued: %s", text)

    # -- what people do --------------------------------------------------------------------

    def note(self, actor: str, incident_id: int, text: str) -> Incident:
        """Add a note to the incident's timeline (any state: notes follow a resolution too)."""
        body = _text(text, "text", MAX_NOTE_CHARS, required=True)
        with self.store.write(actor) as tx:
            tx.get_incident(incident_id)  # NotFound before anything is written
            return tx.update_incident(
                incident_id, {"updated_at": utcnow()}, kind="incident.noted",
                payload={"text": body},
            )  # fmt: skip

    def mitigate(
        self,
        actor: str,
        incident_id: int,
        action: MitigationAction | str,
        reason: str | None = None,
        *,
        deployment: str | None = None,
    ) -> MitigationResult:
        """Stop the harm on ``deployment`` (default: where the first alert fired):

        - ``rollback``: a canary or split goes (all traffic to the champion); without one, the
          champion goes back to the model's previous production version;
        - ``disable-canary``: the canary goes; Conflict when there is none;
        - ``fallback``: the deployment answers from its rule / default fallback, no model.

        An open incident becomes mitigated; a mitigated one stays so and the ledger records
        the further action. Conflict for a resolved incident, before anything changes.
        """
        chosen = _action(action)
        why = _text(reason, "reason", MAX_REASON_CHARS)
        incident = self.show(incident_id)
        if incident.state is not IncidentState.MITIGATED:
            check_move(incident.id, incident.state, IncidentState.MITIGATED)
        before = self._deployment_of(incident, deployment)
        after = _mitigations.apply(
            chosen, self.store, self.deployments, actor, before,
            f"INC-{incident.id} {chosen.value}" + (f": {why}" if why else ""),
            {"incident": incident.id, "title": incident.title},
        )  # fmt: skip
        payload = {
            "action": chosen.value, "deployment": after.name, "reason": why,
            "revision_before": before.revision, "revision_after": after.revision,
            "change": _mitigations.describe(chosen, before, after),
        }  # fmt: skip
        updated = self._mark_mitigated(actor, incident.id, payload)
        return MitigationResult(
            incident=updated, deployment=after, action=chosen, revision_before=before.revision
        )

    def _mark_mitigated(
        self, actor: str, incident_id: int, payload: Mapping[str, object]
    ) -> Incident:
        """An open incident becomes mitigated; either way the mitigation is recorded (it did
        change the deployment, even if the incident was resolved meanwhile)."""
        with self.store.write(actor) as tx:
            current = tx.get_incident(incident_id)  # again: it may have moved meanwhile
            now = utcnow()
            values: dict[str, object] = {"updated_at": now}
            state = current.state
            if state is IncidentState.OPEN:
                # time to mitigate runs to the first mitigation: later ones keep its time
                state = IncidentState.MITIGATED
                values |= {"state": state, "mitigated_at": current.mitigated_at or now}
            return tx.update_incident(
                incident_id, values, kind="incident.mitigated",
                payload={**payload, "state": state.value},
            )  # fmt: skip

    def _deployment_of(self, incident: Incident, name: str | None) -> Deployment:
        chosen = name or incident.deployment
        if chosen is None:
            raise InvalidInput(
                f"INC-{incident.id} names no deployment; say which deployment of model "
                f"{incident.model_name!r} to act on.",
                field="deployment",
            )
        found = self.deployments.get(chosen)
        if found.model_name != incident.model_name:
            raise InvalidInput(
                f"Deployment {chosen!r} serves model {found.model_name!r}, not "
                f"{incident.model_name!r} (INC-{incident.id}'s).",
                field="deployment",
            )
        return found

    def resolve(self, actor: str, incident_id: int, reason: str | None = None) -> Incident:
        """Close the incident for good: a later alert opens a new one."""
        why = _text(reason, "reason", MAX_REASON_CHARS)
        with self.store.write(actor) as tx:
            incident = tx.get_incident(incident_id)
            check_move(incident.id, incident.state, IncidentState.RESOLVED)
            now = utcnow()
            return tx.update_incident(
                incident.id,
                {"state": IncidentState.RESOLVED, "resolved_at": now, "updated_at": now},
                kind="incident.resolved",
                payload={"reason": why, "from": incident.state.value},
            )

    def set_postmortem(self, actor: str, incident_id: int, sections: Mapping[str, str]) -> Incident:
        """Write postmortem sections by name (others are kept); an empty text clears one."""
        checked = _sections(sections)
        with self.store.write(actor) as tx:
            incident = tx.get_incident(incident_id)
            merged = {**incident.postmortem, **checked}
            kept = {name: merged[name] for name in POSTMORTEM_SECTIONS if merged.get(name)}
            return tx.update_incident(
                incident.id, {"postmortem": kept, "updated_at": utcnow()},
                kind="incident.postmortem_updated", payload={"sections": checked},
            )  # fmt: skip

    # -- reading ---------------------------------------------------------------------------

    def show(self, incident_id: int) -> Incident:
        with self.store.read() as rx:
            return rx.get_incident(incident_id)

    def alerts(
        self,
        *,
        deployment: str | None = None,
        model: str | None = None,
        state: AlertState | None = None,
        incident: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        with self.store.read() as rx:
            return rx.list_alerts(
                deployment=deployment, model_name=model, state=state, incident_id=incident,
                limit=limit,
            )  # fmt: skip

    def timeline(self, incident_id: int, *, now: datetime | None = None) -> list[TimelineEntry]:
        """The incident's story from the ledger, oldest first (see `timeline.assemble`)."""
        with self.store.read() as rx:
            incident = rx.get_incident(incident_id)
            attached = rx.list_alerts(incident_id=incident.id, limit=timeline.MAX_ALERTS)
            return timeline.assemble(
                rx, incident, attached, now=now or utcnow(), lookback=self.lookback
            )

    def postmortem(self, incident_id: int) -> str:
        """The postmortem in Markdown: facts from the ledger, the owner's sections."""
        with self.store.read() as rx:
            incident = rx.get_incident(incident_id)
            attached = rx.list_alerts(incident_id=incident.id, limit=timeline.MAX_ALERTS)
            story = timeline.assemble(rx, incident, attached, now=utcnow(), lookback=self.lookback)
        return postmortem.render(incident, attached, story)

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for notifications in flight."""
        if self.notifier is not None:
            self.notifier.close(timeout_s)

    # Last: inside the class body, ``list`` names this method from here on.
    def list(
        self,
        *,
        model: str | None = None,
        state: IncidentState | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents, newest first."""
        with self.store.read() as rx:
            return rx.list_incidents(model_name=model, state=state, limit=limit)


def _open(tx: WriteSession, actor: str, alert: Alert, now: datetime) -> Incident:
    owner = tx.get_model(alert.model_name).owner
    values = {
        "model_name": alert.model_name, "deployment": alert.deployment,
        "title": f"{alert.rule.name} on {alert.deployment}: {alert.rule.describe()}",
        "state": IncidentState.OPEN, "severity": alert.severity, "owner": owner,
        "opened_at": now, "opened_by": actor, "updated_at": now,
    }  # fmt: skip
    try:
        return tx.create_incident(values)
    except Conflict as error:  # the store allows one active incident per model
        raise _Raced() from error


def _action(action: MitigationAction | str) -> MitigationAction:
    try:
        return MitigationAction(action)
    except ValueError:
        known = ", ".join(a.value for a in MitigationAction)
        raise InvalidInput(
            f"Unknown mitigation {action!r}; the actions are: {known}.", field="action"
        ) from None


def _text(value: str | None, field: str, limit: int, *, required: bool = False) -> str | None:
    """``value`` stripped; InvalidInput naming ``field`` when empty (if required), too long,
    or holding NUL (PostgreSQL text cannot)."""
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidInput(f"The {field} is empty; write something.", field=field)
        return None
    if len(text) > limit:
        raise InvalidInput(
            f"The {field} is {len(text)} characters long; the most is {limit}.", field=field
        )
    if "\x00" in text:
        raise InvalidInput(f"The {field} must not contain NUL (\\x00) characters.", field=field)
    return text


def _sections(sections: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(sections) - set(POSTMORTEM_SECTIONS))
    if unknown:
        raise InvalidInput(
            f"Unknown postmortem section(s): {', '.join(map(repr, unknown))}. The sections "
            f"are: {', '.join(POSTMORTEM_SECTIONS)}.",
            field=f"sections.{unknown[0]}",
            details={"unknown": unknown, "sections": list(POSTMORTEM_SECTIONS)},
        )
    if not sections:
        raise InvalidInput("Name at least one postmortem section to write.", field="sections")
    checked: dict[str, str] = {}
    for name, text in sections.items():
        checked[name] = _text(text, f"sections.{name}", MAX_SECTION_CHARS) or ""
    return checked
