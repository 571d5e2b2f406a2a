"""Monitors, monitor windows and alerts in the store.

A deployment has at most one monitor spec (revision counted); each monitor run adds a window;
a rule that fires adds an alert, one firing alert per (deployment, rule) at a time (a partial
unique index keeps it so when two runs race). Windows and alerts name their deployment and
model without a foreign key: they are the history incidents point at.

Numbers are refused when they are NaN or infinite: PostgreSQL's JSON cannot hold them, SQLite
turns a NaN in a REAL column into NULL, and the ledger would hash them differently from the
JSON it reads back. A window's report, read by people, keeps them as null instead.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.domain.clock import utcnow
from steward.domain.monitoring import (
    Alert,
    AlertState,
    MonitorSpec,
    MonitorWindow,
    StoredMonitor,
)
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.store.base import check_page_size
from steward.store.sql import _deployments, _incidents
from steward.store.sql._convert import (
    alert_entity,
    checked_input,
    monitor_entity,
    window_entity,
)
from steward.store.sql.tables import (
    AlertRow,
    DeploymentRow,
    ModelRow,
    MonitorRow,
    MonitorWindowRow,
)

_MONITORS: Any = MonitorRow.__table__
_DEPLOYMENT_MODEL = select(ModelRow.name).join(DeploymentRow, DeploymentRow.model_id == ModelRow.id)
# What update_alert may change: the rest is what fired, fixed when it fired.
ALERT_CHANGEABLE = frozenset({"state", "resolved_at", "last_value", "incident_id"})


# numbers --------------------------------------------------------------------------------------
def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinity in a JSON-like ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _refuse_non_finite(value: Any, field: str) -> None:
    found = _non_finite(value, field)
    if found is not None:
        raise InvalidInput(
            f"{found!r} must be a finite number; leave out a metric that was not measured.",
            field=found,
        )


def _nulled(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON's "no number")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(item) for item in value]
    return value


# deployments ----------------------------------------------------------------------------------
def deployment_model(session: Session, deployment: str) -> str:
    """The name of the model ``deployment`` serves; NotFound for an unknown deployment."""
    model = session.scalar(_DEPLOYMENT_MODEL.where(DeploymentRow.name == deployment))
    if model is None:
        _deployments.get(session, deployment)  # raises the NotFound naming the deployment
        raise AssertionError("unreachable")
    return str(model)


def _check_serves(session: Session, deployment: str, model_name: str) -> None:
    served = deployment_model(session, deployment)
    if served != model_name:
        raise InvalidInput(
            f"Deployment {deployment!r} serves model {served!r}, not {model_name!r}.",
            field="model_name",
        )


# monitors -------------------------------------------------------------------------------------
def get_monitor(session: Session, deployment: str) -> StoredMonitor | None:
    """The deployment's own spec, or None when it has none; NotFound for an unknown one."""
    row = session.get(MonitorRow, deployment)
    if row is None:
        deployment_model(session, deployment)
        return None
    return monitor_entity(row)


def list_monitors(session: Session) -> list[StoredMonitor]:
    rows = session.scalars(select(MonitorRow).order_by(MonitorRow.deployment))
    return [monitor_entity(row) for row in rows]


def _locked_monitor(session: Session, deployment: str) -> MonitorRow | None:
    query = select(MonitorRow).where(MonitorRow.deployment == deployment).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).first()


def put_monitor(
    session: Session, deployment: str, spec: dict[str, Any], at: datetime, actor: str
) -> StoredMonitor:
    """Create (revision 1) or replace (revision + 1) the spec of ``deployment`` (the caller
    has checked that it exists)."""
    checked = checked_input(MonitorSpec, spec, "spec")
    _refuse_non_finite(checked.model_dump(), "spec")
    stored = checked.model_dump(mode="json")
    while True:
        row = _locked_monitor(session, deployment)
        if row is not None:
            row.spec, row.revision = stored, row.revision + 1
            row.updated_at, row.updated_by = at, actor
            session.flush()
            return monitor_entity(row)
        values = {"deployment": deployment, "spec": stored, "revision": 1,
                  "updated_at": at, "updated_by": actor}  # fmt: skip
        new = _incidents.insert_or_nothing(session, _MONITORS).values(values)
        if session.connection().execute(new.returning(_MONITORS.c.revision)).first() is not None:
            return StoredMonitor(**{**values, "spec": checked})
        # A concurrent writer created it first: the next pass locks and replaces theirs.


def delete_monitor(session: Session, deployment: str) -> int:
    """Delete the spec of ``deployment`` (the caller has checked that it exists); its last
    revision. NotFound when it has none."""
    row = _locked_monitor(session, deployment)
    if row is None:
        raise NotFound(
            f"Deployment {deployment!r} has no monitor spec of its own to delete (it is "
            "monitored with its model's risk-tier defaults).",
            details={"field": "deployment", "deployment": deployment},
        )
    revision = row.revision
    session.delete(row)
    session.flush()
    return revision


# windows --------------------------------------------------------------------------------------
def add_window(session: Session, window: MonitorWindow) -> MonitorWindow:
    """Store ``window`` (NaN and infinities of its report as null); AlreadyExists for a taken
    id."""
    _check_serves(session, window.deployment, window.model_name)
    _refuse_non_finite(window.metrics, "metrics")
    window = window.model_copy(update={"report": _nulled(window.report)})
    session.add(MonitorWindowRow(**{**window.model_dump(), "status": window.status.value}))
    try:
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(
            f"A monitor window with id {window.id!r} is already stored.",
            details={"field": "id", "id": window.id},
        ) from exc
    return window


def get_window(session: Session, window_id: str) -> MonitorWindow:
    row = session.get(MonitorWindowRow, window_id)
    if row is None:
        raise _missing_window(window_id)
    return window_entity(row)


def _missing_window(window_id: str) -> NotFound:
    return NotFound(
        f"No monitor window with id {window_id!r}. List a deployment's windows with "
        "`steward monitor windows DEPLOYMENT`.",
        details={"field": "window_id", "window_id": window_id},
    )


def list_windows(
    session: Session,
    deployment: str,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[MonitorWindow]:
    """Newest (latest end) first, with ``since <= end < until``."""
    window = MonitorWindowRow
    query = (
        select(window)
        .where(window.deployment == deployment)
        .order_by(window.end.desc(), window.computed_at.desc(), window.id.desc())
        .limit(check_page_size(limit))
    )
    if since is not None:
        query = query.where(window.end >= since)
    if until is not None:
        query = query.where(window.end < until)
    rows = list(session.scalars(query))
    if not rows:  # only an empty answer pays for telling "none yet" from "no such deployment"
        deployment_model(session, deployment)
    return [window_entity(row) for row in rows]


# alerts ---------------------------------------------------------------------------------------
def add_alert(session: Session, alert: Alert) -> Alert:
    """Store a new alert; Conflict while its rule has another firing alert on the deployment."""
    _check_serves(session, alert.deployment, alert.model_name)
    fired_by = session.get(MonitorWindowRow, alert.window_id)
    if fired_by is None:
        raise _missing_window(alert.window_id)
    if fired_by.deployment != alert.deployment:
        raise InvalidInput(
            f"Window {alert.window_id!r} is of deployment {fired_by.deployment!r}, not "
            f"{alert.deployment!r}.",
            field="window_id",
        )
    _refuse_non_finite(alert.model_dump(include={"value", "last_value", "rule"}), "")
    if alert.incident_id is not None:
        _incidents.get_row(session, alert.incident_id)
    if alert.state is AlertState.FIRING:
        _refuse_second_firing(session, alert)
    session.add(AlertRow(**_alert_values(alert)))
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent run fired the same rule first
        raise _already_firing(alert, None) from exc
    return alert


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        **alert.model_dump(exclude={"rule"}),
        "rule": alert.rule.model_dump(mode="json"),
        "rule_name": alert.rule.name,
        "state": alert.state.value,
        "severity": alert.severity.value,
    }


def _refuse_second_firing(session: Session, alert: Alert) -> None:
    firing = session.scalar(
        select(AlertRow.id).where(
            AlertRow.deployment == alert.deployment,
            AlertRow.rule_name == alert.rule.name,
            AlertRow.state == AlertState.FIRING.value,
        )
    )
    if firing is not None:
        raise _already_firing(alert, firing)


def _already_firing(alert: Alert, firing: str | None) -> Conflict:
    which = f" ({firing})" if firing else ""
    return Conflict(
        f"Rule {alert.rule.name!r} already has a firing alert{which} on deployment "
        f"{alert.deployment!r}: update that one until it resolves.",
        details={"field": "rule", "rule": alert.rule.name, "alert_id": firing},
    )


def update_alert(session: Session, alert_id: str, values: dict[str, Any]) -> tuple[Alert, Alert]:
    """Apply ``values`` (fields of ALERT_CHANGEABLE); the alert before and after.

    A resolved alert stays resolved (the next breach fires a new one); resolving without a
    ``resolved_at`` resolves it now.
    """
    fixed = sorted(set(values) - ALERT_CHANGEABLE)
    if fixed:
        raise InvalidInput(
            f"An alert's {', '.join(fixed)} cannot be changed; it may change "
            f"{', '.join(sorted(ALERT_CHANGEABLE))}.",
            field=fixed[0],
        )
    row = _locked_alert(session, alert_id)
    before = alert_entity(row)
    after = checked_input(Alert, {**before.model_dump(), **values})
    if before.state is AlertState.RESOLVED and after.state is AlertState.FIRING:
        raise Conflict(
            f"Alert {alert_id!r} is resolved; a new breach of its rule fires a new alert.",
            details={"field": "state", "state": before.state.value},
        )
    if after.state is AlertState.RESOLVED and after.resolved_at is None:
        after = after.model_copy(update={"resolved_at": utcnow()})
    _refuse_non_finite(after.last_value, "last_value")
    if after.incident_id is not None and after.incident_id != before.incident_id:
        _incidents.get_row(session, after.incident_id)
    stored = _alert_values(after)
    for key in ALERT_CHANGEABLE:
        setattr(row, key, stored[key])
    session.flush()
    return before, after


def _locked_alert(session: Session, alert_id: str) -> AlertRow:
    query = select(AlertRow).where(AlertRow.id == alert_id).with_for_update()
    row = session.scalars(query.execution_options(populate_existing=True)).first()
    if row is None:
        raise NotFound(
            f"No alert with id {alert_id!r}. List alerts with `steward alert list`.",
            details={"field": "alert_id", "alert_id": alert_id},
        )
    return row


def list_alerts(
    session: Session,
    *,
    deployment: str | None,
    model_name: str | None,
    state: AlertState | None,
    incident_id: int | None,
    limit: int,
) -> list[Alert]:
    """Newest (latest fired) first."""
    query = select(AlertRow).order_by(AlertRow.fired_at.desc(), AlertRow.id.desc())
    for column, value in (
        (AlertRow.deployment, deployment),
        (AlertRow.model_name, model_name),
        (AlertRow.state, None if state is None else state.value),
        (AlertRow.incident_id, incident_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return [alert_entity(row) for row in session.scalars(query.limit(check_page_size(limit)))]


# ledger payloads ------------------------------------------------------------------------------
def window_payload(window: MonitorWindow) -> dict[str, Any]:
    """What monitor.window records: the numbers, not the report (which can be large)."""
    body = window.model_dump(mode="json", include={"start", "end", "status", "rows", "metrics"})
    return {"window_id": window.id, "model": window.model_name, **body}


def fired_payload(alert: Alert) -> dict[str, Any]:
    rule = alert.rule
    return {
        "alert_id": alert.id, "model": alert.model_name, "rule": rule.name,
        "metric": rule.metric, "op": rule.op.value, "threshold": rule.threshold,
        "value": alert.value, "severity": alert.severity.value, "window_id": alert.window_id,
    }  # fmt: skip


def resolved_payload(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.id, "model": alert.model_name, "rule": alert.rule.name,
        "metric": alert.rule.metric, "last_value": alert.last_value,
        "resolved_at": alert.model_dump(mode="json", include={"resolved_at"})["resolved_at"],
    }  # fmt: skip


def joined_payload(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.id, "incident_id": alert.incident_id, "model": alert.model_name,
        "rule": alert.rule.name,
    }  # fmt: skip


# the session mixins ---------------------------------------------------------------------------
class MonitoringReads:
    session: Session

    def get_monitor(self, deployment: str) -> StoredMonitor | None:
        return get_monitor(self.session, deployment)

    def list_monitors(self) -> list[StoredMonitor]:
        return list_monitors(self.session)

    def list_windows(
        self,
        deployment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[MonitorWindow]:
        return list_windows(self.session, deployment, since=since, until=until, limit=limit)

    def get_window(self, window_id: str) -> MonitorWindow:
        return get_window(self.session, window_id)

    def list_alerts(
        self,
        *,
        deployment: str | None = None,
        model_name: str | None = None,
        state: AlertState | None = None,
        incident_id: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        return list_alerts(
            self.session, deployment=deployment, model_name=model_name, state=state,
            incident_id=incident_id, limit=limit,
        )  # fmt: skip


class MonitoringWrites(MonitoringReads):
    """Each write records its event with the change: monitor.configured, monitor.deleted,
    monitor.window, alert.fired, alert.resolved, alert.joined (subject: the deployment)."""

    actor: str

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None: ...

    def put_monitor(self, deployment: str, spec: dict[str, Any], at: datetime) -> StoredMonitor:
        """Create or replace a deployment's monitor spec; NotFound for an unknown deployment."""
        model = deployment_model(self.session, deployment)
        monitor = put_monitor(self.session, deployment, spec, at, self.actor)
        self.record(
            "monitor.configured", "deployment", deployment,
            {"model": model, "revision": monitor.revision,
             "spec": monitor.spec.model_dump(mode="json")},
        )  # fmt: skip
        return monitor

    def delete_monitor(self, deployment: str) -> None:
        model = deployment_model(self.session, deployment)
        revision = delete_monitor(self.session, deployment)
        self.record(
            "monitor.deleted", "deployment", deployment, {"model": model, "revision": revision}
        )

    def add_window(self, window: MonitorWindow) -> MonitorWindow:
        stored = add_window(self.session, window)
        self.record("monitor.window", "deployment", stored.deployment, window_payload(stored))
        return stored

    def add_alert(self, alert: Alert) -> Alert:
        """Records alert.fired, and alert.resolved / alert.joined when it is stored resolved
        or in an incident already."""
        stored = add_alert(self.session, alert)
        self.record("alert.fired", "deployment", stored.deployment, fired_payload(stored))
        self._record_changes(None, stored)
        return stored

    def update_alert(self, alert_id: str, values: dict[str, Any]) -> Alert:
        """Change ``state``, ``resolved_at``, ``last_value`` or ``incident_id``; records
        alert.joined when an incident is set and alert.resolved when the state becomes
        resolved."""
        before, after = update_alert(self.session, alert_id, values)
        self._record_changes(before, after)
        return after

    def _record_changes(self, before: Alert | None, after: Alert) -> None:
        joined = before.incident_id if before is not None else None
        if after.incident_id is not None and after.incident_id != joined:
            self.record("alert.joined", "deployment", after.deployment, joined_payload(after))
        was_resolved = before is not None and before.state is AlertState.RESOLVED
        if after.state is AlertState.RESOLVED and not was_resolved:
            self.record("alert.resolved", "deployment", after.deployment, resolved_payload(after))
