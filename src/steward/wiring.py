"""Build the services from settings: the one place that picks concrete backends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from steward.alerts.webhook import WebhookAlerts
from steward.audit.service import AuditService
from steward.auth.service import TokenService
from steward.domain.clock import utcnow
from steward.domain.enums import VersionStatus
from steward.domain.experiments import Decision, DecisionAction, Experiment, ExperimentAnalysis
from steward.experiments.analysis import analyze_experiment
from steward.experiments.decisions import check_decision, record_decision
from steward.experiments.service import ExperimentService
from steward.gates.service import GatesService
from steward.incidents.service import IncidentService
from steward.monitoring.labels import LabelService
from steward.monitoring.reference import profile_sample
from steward.monitoring.service import MonitoringService, MonitorOutcome, deployments_named
from steward.registry.service import RegistryService
from steward.serving.deployments import DeploymentService, rollback_in, ship_in
from steward.settings import Settings
from steward.store.artifacts.store import FsspecArtifactStore
from steward.store.sql.migrate import ensure_current
from steward.store.sql.store import SqlMetadataStore
from steward.tracking.service import TrackingService


@dataclass
class Services:
    settings: Settings
    store: SqlMetadataStore
    artifacts: FsspecArtifactStore
    registry: RegistryService
    tracking: TrackingService
    audit: AuditService
    tokens: TokenService
    gates: GatesService
    deployments: DeploymentService
    monitoring: MonitoringService
    labels: LabelService
    incidents: IncidentService
    experiments: ExperimentService

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Services:
        store = SqlMetadataStore.from_settings(settings)
        if migrate:
            ensure_current(store.engine)
        artifacts = FsspecArtifactStore.from_settings(settings)
        return cls(
            settings=settings,
            store=store,
            artifacts=artifacts,
            registry=RegistryService(store, artifacts, profile_sample=profile_sample),
            tracking=TrackingService(store, artifacts),
            audit=AuditService(store),
            tokens=TokenService(store),
            deployments=DeploymentService(store),
            gates=GatesService(store, artifacts, allow_trusted=settings.allow_trusted_models),
            labels=LabelService(
                store, settings.label_log_root, predictions_root=settings.prediction_log_root
            ),
            monitoring=MonitoringService(
                store,
                artifacts,
                prediction_root=settings.prediction_log_root,
                label_root=settings.label_log_root,
                allow_trusted=settings.allow_trusted_models,
            ),
            incidents=IncidentService(
                store, DeploymentService(store), WebhookAlerts.from_url(settings.alert_webhook_url)
            ),
            experiments=ExperimentService(
                store, settings.outcome_log_root, settings.prediction_log_root
            ),
        )

    def run_monitors(
        self,
        actor: str,
        names: Sequence[str] = (),
        *,
        window_s: int | None = None,
        end: datetime | None = None,
        engine_name: str = "local",
    ) -> list[MonitorOutcome]:
        """Run the named deployments' monitors (every deployment's when none is named) and
        hand the alerts they fire to incidents, which open or join the model's incident."""
        from steward.monitoring.engines import engine_named

        engine = engine_named(engine_name)
        outcomes = [
            self.monitoring.run(actor, name, end=end, window_s=window_s, engine=engine)
            for name in deployments_named(self.monitoring, names)
        ]
        self._escalate(actor, outcomes)
        return outcomes

    def run_due_monitors(self, actor: str) -> list[MonitorOutcome]:
        """What the server's scheduler calls on each tick."""
        outcomes = self.monitoring.run_due(actor)
        self._escalate(actor, outcomes)
        return outcomes

    def _escalate(self, actor: str, outcomes: list[MonitorOutcome]) -> None:
        fired = [alert for outcome in outcomes for alert in outcome.fired]
        if fired:
            self.incidents.escalate(actor, fired)

    def analyze_experiment(self, actor: str, name: str) -> ExperimentAnalysis:
        return analyze_experiment(
            self.store, self.settings.prediction_log_root, self.settings.outcome_log_root, name,
            actor=actor,
        )  # fmt: skip

    def decide_experiment(
        self,
        actor: str,
        name: str,
        action: DecisionAction,
        reason: str,
        *,
        variant: int | None = None,
        apply: bool = False,
    ) -> Experiment:
        """Record the decision and, with ``apply``, act on the deployment, all in one
        transaction: ship makes the variant the champion (promoting it to production, which
        its gate and approvals must allow), rollback sends all traffic back to the champion;
        iterate changes nothing. A second decision is refused (Conflict) and changes nothing."""
        with self.store.write(actor) as tx:
            experiment = tx.get_experiment(name)
            shipped = check_decision(experiment, action, reason, variant)
            now = utcnow()
            applied = apply and action is not DecisionAction.ITERATE
            if applied and shipped is not None:
                version = tx.get_version(experiment.model_name, shipped)
                if version.status is not VersionStatus.PRODUCTION:  # its gate must allow it
                    tx.transition(experiment.model_name, shipped, VersionStatus.PRODUCTION,
                                  f"experiment {name}: {reason}", now)  # fmt: skip
                ship_in(tx, experiment.deployment, shipped,
                        reason=f"experiment {name} shipped v{shipped}: {reason}")  # fmt: skip
            elif applied:
                rollback_in(tx, experiment.deployment,
                            reason=f"experiment {name} rolled back: {reason}")  # fmt: skip
            decision = Decision(action=action, variant=shipped, reason=reason, applied=applied,
                                decided_at=now, decided_by=actor)  # fmt: skip
            return record_decision(tx, experiment, decision)

    def close(self) -> None:
        self.incidents.close()  # incident notifications in flight, briefly
        self.monitoring.close()
        self.store.dispose()
