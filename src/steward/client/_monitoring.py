"""The SDK's monitoring operations: monitors and their windows, alerts and incidents, labels.

A part of :class:`steward.client.Client` (its base class), kept apart so each file has one
reason to change; the methods call the same backend as the rest of the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from steward.client._backend import Backend
from steward.client._gates import as_utc
from steward.domain.incidents import Incident, MitigationAction
from steward.domain.monitoring import (
    Alert,
    AlertState,
    MonitorSpec,
    MonitorWindow,
    StoredMonitor,
)
from steward.schemas import parse
from steward.schemas.incidents import (
    AlertQuery,
    IncidentNote,
    IncidentQuery,
    MitigationCreate,
    MitigationResult,
    PostmortemUpdate,
    Resolution,
    TimelineEntry,
)
from steward.schemas.labels import LabelReceipt, label_table, rows_from
from steward.schemas.monitoring import (
    DEFAULT_WINDOWS,
    MonitorRead,
    MonitorRunRequest,
    MonitorRunResult,
    MonitorSpecBody,
    WindowQuery,
)


class MonitoringMethods:
    _backend: Backend

    # monitors (docs/monitoring.md) -----------------------------------------------------------
    def configure_monitor(
        self, deployment: str, spec: MonitorSpec | Mapping[str, Any]
    ) -> StoredMonitor:
        """Store ``deployment``'s monitor spec, replacing the previous one: a MonitorSpec or
        its fields (interval_s, window_s, thresholds, drift_share, min_rows, freshness, slo,
        rules, enabled; the others keep their defaults)."""
        data = spec.model_dump() if isinstance(spec, MonitorSpec) else dict(spec)
        return self._backend.configure_monitor(deployment, parse(MonitorSpecBody, data))

    def get_monitor(self, deployment: str) -> MonitorRead:
        """The deployment's monitor spec; ``configured`` is False while it runs on its risk
        tier's defaults."""
        return self._backend.get_monitor(deployment)

    def monitor_windows(
        self, deployment: str, *, limit: int = DEFAULT_WINDOWS
    ) -> list[MonitorWindow]:
        """The deployment's latest monitor windows, newest first."""
        return self._backend.monitor_windows(deployment, parse(WindowQuery, {"limit": limit}).limit)

    def run_monitors(
        self,
        deployments: str | Sequence[str] = (),
        *,
        window: str | None = None,
        end: datetime | None = None,
        engine: str = "local",
    ) -> MonitorRunResult:
        """Measure one window of each named deployment now (every deployment when none is
        named): ``window`` such as ``"1h"`` (default: each monitor's own), ending at ``end``
        (default now; a naive time is UTC). Fired alerts open or join incidents."""
        names = [deployments] if isinstance(deployments, str) else list(deployments)
        body = parse(MonitorRunRequest, {
            "deployments": names, "window": window, "end": as_utc(end), "engine": engine,
        })  # fmt: skip
        return self._backend.run_monitors(body)

    def monitor_report_html(self, deployment: str, *, windows: int = DEFAULT_WINDOWS) -> str:
        """The latest window as a standalone web page, with trends over ``windows`` windows;
        NotFound before the monitor's first run."""
        limit = parse(WindowQuery, {"limit": windows}).limit
        return self._backend.monitor_report_html(deployment, limit)

    # alerts and incidents (docs/incidents.md) ------------------------------------------------
    def list_alerts(
        self,
        *,
        deployment: str | None = None,
        model: str | None = None,
        state: AlertState | str | None = None,
        incident: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, latest fired first."""
        query = parse(AlertQuery, {
            "deployment": deployment, "model": model, "state": state, "incident": incident,
            "limit": limit,
        })  # fmt: skip
        return self._backend.list_alerts(query)

    def list_incidents(
        self, *, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Incident]:
        """Incidents, newest first; ``state``: open, mitigated or resolved."""
        query = parse(IncidentQuery, {"model": model, "state": state, "limit": limit})
        return self._backend.list_incidents(query)

    def get_incident(self, incident_id: int) -> Incident:
        return self._backend.get_incident(incident_id)

    def incident_timeline(self, incident_id: int) -> list[TimelineEntry]:
        """The incident's alerts, notes, mitigations and the model's deployment changes from
        a day before it opened, oldest first (read from the ledger)."""
        return self._backend.incident_timeline(incident_id)

    def note_incident(self, incident_id: int, text: str) -> Incident:
        return self._backend.note_incident(incident_id, parse(IncidentNote, {"text": text}))

    def mitigate_incident(
        self,
        incident_id: int,
        action: MitigationAction | str,
        *,
        reason: str | None = None,
        deployment: str | None = None,
    ) -> MitigationResult:
        """``rollback`` (canary/split off, or the champion back to the previous production
        version), ``disable-canary`` or ``fallback`` (answer from the rule/default fallback)
        on ``deployment`` (default: where the first alert fired); the incident is mitigated."""
        body = parse(MitigationCreate, {
            "action": action, "reason": reason, "deployment": deployment,
        })  # fmt: skip
        return self._backend.mitigate_incident(incident_id, body)

    def resolve_incident(self, incident_id: int, *, reason: str | None = None) -> Incident:
        return self._backend.resolve_incident(incident_id, parse(Resolution, {"reason": reason}))

    def set_postmortem(self, incident_id: int, **sections: str) -> Incident:
        """Write postmortem sections by name (``summary=...``, ``root_cause_data=...``)."""
        body = parse(PostmortemUpdate, {"sections": sections})
        return self._backend.set_postmortem(incident_id, body)

    def postmortem(self, incident_id: int) -> str:
        """The postmortem in Markdown."""
        return self._backend.postmortem(incident_id)

    # labels (docs/labels.md) -----------------------------------------------------------------
    def log_labels(
        self,
        deployment: str,
        labels: object,
        *,
        request_id_column: str = "request_id",
        label_column: str = "label",
        row_column: str | None = None,
    ) -> LabelReceipt:
        """Log ground truth for ``deployment``'s predictions, joined to them by request id.

        ``labels``: a mapping of request id to label, a list of ``{"request_id", "label",
        "row"?}``, a pandas DataFrame, a pyarrow Table or a .parquet/.csv path (the column
        options name its columns). A label is a number, a bool or text; a later call's label
        for the same ``(request_id, row)`` corrects an earlier one. All or nothing, in one
        request; the receipt counts request ids the prediction log does not know (yet).
        """
        rows = rows_from(labels)
        if rows is not None:
            return self._backend.log_labels(deployment, rows, "sdk")
        table = label_table(
            labels, request_id_column=request_id_column, label_column=label_column,
            row_column=row_column,
        )  # fmt: skip
        from_file = isinstance(labels, str | Path)
        return self._backend.log_labels(deployment, table, "file" if from_file else "sdk")
