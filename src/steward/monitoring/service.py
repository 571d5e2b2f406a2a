"""The monitor: one window of a deployment's traffic measured, stored, and judged by its rules.

    outcome = monitoring.run("admin", "churn")           # the last window_s up to now
    outcome.window.metrics["drift.share_drifted"]         # what alert rules compare
    outcome.fired                                         # new alerts, for incidents to open

Every run stores a :class:`MonitorWindow` (``monitor.window`` in the ledger) whatever it found:
no traffic, no reference or a failure are recorded states, not crashes, and ``run_due`` goes on
to the next deployment when one fails. The numbers are named in docs/monitoring.md.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from steward.domain.clock import utcnow
from steward.domain.deployments import Deployment
from steward.domain.entities import ModelVersion
from steward.domain.monitoring import (
    Alert,
    AlertState,
    MonitorSpec,
    MonitorWindow,
    StoredMonitor,
    WindowStatus,
    default_spec,
)
from steward.errors import InvalidInput, NotFound, StewardError
from steward.monitoring import measures
from steward.monitoring.reference import Reference, ReferenceCache
from steward.monitoring.rules import RuleDecisions, evaluate
from steward.monitoring.window import Engine, Partial, local_engine, newest_prediction, read_window
from steward.store.base import ArtifactStore, MetadataStore

logger = logging.getLogger(__name__)


@dataclass
class MonitorOutcome:
    window: MonitorWindow
    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


class MonitoringService:
    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        *,
        prediction_root: str,
        label_root: str,
        allow_trusted: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.prediction_root = prediction_root
        self.label_root = label_root
        self.allow_trusted = allow_trusted
        self.clock = clock
        self.references = ReferenceCache(artifacts.get_bytes, self._predict)

    def close(self) -> None:
        """Drop the cached references: their sketches are native objects, best released before
        the interpreter shuts down."""
        self.references.clear()

    # -- configuration ---------------------------------------------------------------------
    def configure(self, actor: str, deployment: str, spec: MonitorSpec) -> StoredMonitor:
        with self.store.write(actor) as tx:
            return tx.put_monitor(deployment, spec.model_dump(mode="json"), self.clock())

    def spec(self, deployment: str) -> tuple[MonitorSpec, bool]:
        """The deployment's monitor spec, and whether it was configured (else its tier's
        defaults)."""
        with self.store.read() as rx:
            stored = rx.get_monitor(deployment)
            if stored is not None:
                return stored.spec, True
            found = rx.get_deployment(deployment)
            return default_spec(rx.get_model(found.model_name).risk_tier), False

    def windows(self, deployment: str, *, limit: int = 48) -> list[MonitorWindow]:
        with self.store.read() as rx:
            rx.get_deployment(deployment)  # NotFound names the deployment
            return rx.list_windows(deployment, limit=limit)

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        actor: str,
        deployment: str,
        *,
        end: datetime | None = None,
        window_s: int | None = None,
        engine: Engine = local_engine,
    ) -> MonitorOutcome:
        """Measure ``[end - window, end)`` (default: the spec's window up to now), store it,
        and apply the alert rules."""
        now = self.clock()
        end = end or now
        if end.tzinfo is None:
            raise InvalidInput("'end' must be timezone-aware (UTC).", field="end")
        with self.store.read() as rx:
            found = rx.get_deployment(deployment)
            model = rx.get_model(found.model_name)
            stored = rx.get_monitor(deployment)
        spec = stored.spec if stored is not None else default_spec(model.risk_tier)
        span = window_s if window_s is not None else spec.window_s
        if span < 1:
            raise InvalidInput(f"The window must be positive; got {span} s.", field="window")
        start = end - timedelta(seconds=span)
        try:
            window = self._measure(found, spec, start, end, now, engine)
        except StewardError as exc:
            window = self._failed(found, start, end, now, exc.message)
        except (OSError, ValueError, pa.ArrowException) as exc:
            logger.exception("monitor %s failed", deployment)
            window = self._failed(found, start, end, now, f"{type(exc).__name__}: {exc}")
        return self._record(actor, window, spec)

    def run_due(self, actor: str, *, engine: Engine = local_engine) -> list[MonitorOutcome]:
        """Run every enabled monitor whose interval has passed since its last window; one
        deployment's failure is recorded as its window and does not stop the others."""
        now = self.clock()
        outcomes = []
        for name in self._due(now):
            try:
                outcomes.append(self.run(actor, name, engine=engine))
            except StewardError as exc:  # e.g. the deployment was deleted meanwhile
                logger.warning("monitor %s skipped: %s", name, exc.message)
        return outcomes

    def _due(self, now: datetime) -> list[str]:
        with self.store.read() as rx:
            configured = {m.deployment: m.spec for m in rx.list_monitors()}
            due = []
            for dep in rx.list_deployments():
                spec = configured.get(dep.name)
                if spec is None:
                    spec = default_spec(rx.get_model(dep.model_name).risk_tier)
                if not spec.enabled:
                    continue
                last = rx.list_windows(dep.name, limit=1)
                if not last or last[0].end + timedelta(seconds=spec.interval_s) <= now:
                    due.append(dep.name)
        return due

    def _record(self, actor: str, window: MonitorWindow, spec: MonitorSpec) -> MonitorOutcome:
        longest = max((rule.for_windows for rule in spec.rules), default=1)
        with self.store.write(actor) as tx:
            tx.add_window(window)
            # the window just measured first, whatever the order of windows sharing its end
            earlier = tx.list_windows(window.deployment, limit=longest + 1)
            history = [window, *[w for w in earlier if w.id != window.id]][:longest]
            firing = tx.list_alerts(deployment=window.deployment, state=AlertState.FIRING)
            decisions = evaluate(spec.rules, history, firing, window.computed_at)
            self._apply(tx, decisions)
        for alert in decisions.fired:  # incidents announce them loudly; this is the trace
            logger.info(
                "alert %s on %s: %s = %g (%s)", alert.rule.name, alert.deployment,
                alert.rule.metric, alert.value, alert.severity.value,
            )  # fmt: skip
        return MonitorOutcome(window, decisions.fired, decisions.resolved)

    @staticmethod
    def _apply(tx: Any, decisions: RuleDecisions) -> None:
        for alert in decisions.fired:
            tx.add_alert(alert)
        for alert, value in decisions.still_firing:
            tx.update_alert(alert.id, {"last_value": value})
        for alert in decisions.resolved:
            tx.update_alert(alert.id, {"state": AlertState.RESOLVED, "resolved_at": utcnow()})

    # -- measuring one window --------------------------------------------------------------
    def _measure(
        self,
        dep: Deployment,
        spec: MonitorSpec,
        start: datetime,
        end: datetime,
        now: datetime,
        engine: Engine,
    ) -> MonitorWindow:
        data = read_window(self.prediction_root, dep.name, start, end, engine)
        base = self._window(dep, start, end, now)
        metrics: dict[str, float] = {}
        report: dict[str, Any] = {}
        version = self._reference_version(dep, data)
        reference = self.references.get(version) if version is not None else None
        freshness = measures.freshness(
            spec.freshness,
            now=now,
            newest_prediction=data.newest or newest_prediction(self.prediction_root, dep.name, end),
            newest_label=self._newest_label(dep.name),
            reference_built=reference.built_at if reference else None,
        )
        metrics.update(freshness.metrics)
        report["freshness"] = freshness.report
        if data.rows == 0:
            return base.model_copy(
                update={"status": WindowStatus.NO_DATA, "metrics": metrics, "report": report}
            )
        metrics.update({"window.rows": float(data.rows), "window.requests": float(data.ok.size)})
        report["versions"] = {str(v): n for v, n in data.versions.items()}
        labeled = data
        if spec.label_delay_s:  # labels lag: judge the traffic they have caught up with
            delay = timedelta(seconds=spec.label_delay_s)
            labeled = read_window(self.prediction_root, dep.name, start - delay, end - delay,
                                  engine)  # fmt: skip
        for part in self._parts(dep, spec, data, labeled, reference, version, end):
            metrics.update(part.metrics)
            report.update(part.report)
        status = WindowStatus.OK if reference is not None else WindowStatus.NO_REFERENCE
        return base.model_copy(
            update={
                "status": status,
                "rows": data.rows,
                "versions": list(data.versions),
                "metrics": metrics,
                "report": report,
            }
        )

    def _parts(
        self,
        dep: Deployment,
        spec: MonitorSpec,
        data: Partial,
        labeled: Partial,
        reference: Reference | None,
        version: ModelVersion | None,
        end: datetime,
    ) -> list[measures.Measured]:
        release = self._release(version)
        parts = [measures.slo(spec.slo, data, self._budget_counts(dep.name, spec, end))]
        if reference is not None:
            parts.append(measures.drift(spec, reference, data))
            parts.append(measures.quality(reference, data, version))
        else:
            parts.append(measures.no_reference(version))
        parts.append(measures.performance(self.label_root, dep.name, labeled, release))
        parts.append(measures.estimated(data, release))
        return parts

    def _reference_version(self, dep: Deployment, data: Partial) -> ModelVersion | None:
        """The version whose reference the window is judged against: the one that answered
        most of it, else the champion."""
        number = max(data.versions, key=lambda v: data.versions[v]) if data.versions else None
        with self.store.read() as rx:
            try:
                return rx.get_version(dep.model_name, number or dep.champion)
            except NotFound:
                return None

    def _release(self, version: ModelVersion | None) -> measures.Release:
        """The version's latest evaluation at release, to compare live metrics with."""
        if version is None:
            return measures.Release()
        with self.store.read() as rx:
            evaluations = rx.list_evaluations(version.model_name, version.version)
        if not evaluations:
            return measures.Release()
        latest = evaluations[0].summary  # newest first
        values = {k: e.value for k, e in latest.metrics.items() if e.value is not None}
        return measures.Release(latest.task, values)

    def _budget_counts(self, deployment: str, spec: MonitorSpec, end: datetime) -> tuple[int, int]:
        """Requests and failed requests of the stored windows inside the budget window."""
        since = end - timedelta(seconds=spec.slo.budget_window_s)
        with self.store.read() as rx:
            earlier = rx.list_windows(deployment, since=since, until=end, limit=10_000)
        requests = sum(int(w.metrics.get("slo.requests", 0)) for w in earlier)
        errors = sum(int(w.metrics.get("slo.errors", 0)) for w in earlier)
        return requests, errors

    def _newest_label(self, deployment: str) -> datetime | None:
        from steward.store.label_log import newest_label

        return newest_label(self.label_root, deployment)

    def _predict(
        self, version: ModelVersion, table: pa.Table
    ) -> tuple[np.ndarray, np.ndarray | None]:
        from steward.flavors import load_model

        model = load_model(
            version.flavor,
            lambda name: self.artifacts.get_bytes(version.files[name].digest),
            signature=version.signature,
            registered_trusted=version.trusted,
            allow_trusted=self.allow_trusted,
        )
        return model.predict_with_proba(table.to_pandas())

    def _window(
        self, dep: Deployment, start: datetime, end: datetime, now: datetime
    ) -> MonitorWindow:
        return MonitorWindow(
            id=str(uuid.uuid4()), deployment=dep.name, model_name=dep.model_name,
            start=start, end=end, computed_at=now, status=WindowStatus.OK,
        )  # fmt: skip

    def _failed(
        self, dep: Deployment, start: datetime, end: datetime, now: datetime, message: str
    ) -> MonitorWindow:
        return self._window(dep, start, end, now).model_copy(
            update={"status": WindowStatus.FAILED, "error": message}
        )


def deployments_named(service: MonitoringService, names: Sequence[str]) -> list[str]:
    """``names``, or every deployment when none is given; NotFound for an unknown name before
    anything runs, so a typo measures nothing."""
    with service.store.read() as rx:
        if not names:
            return [d.name for d in rx.list_deployments()]
        for name in names:
            rx.get_deployment(name)
    return list(names)
