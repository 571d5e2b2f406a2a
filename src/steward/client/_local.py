"""The embedded backend: services called in-process, acting as the local admin."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from steward.domain.clock import utcnow
from steward.domain.deployments import Deployment
from steward.domain.entities import (
    Alias,
    ArtifactRef,
    Event,
    MetricPoint,
    Model,
    ModelVersion,
    Page,
    Run,
    Token,
    VerifyReport,
)
from steward.domain.enums import Role, VersionStatus
from steward.domain.evaluation import Evaluation
from steward.domain.experiments import Experiment, ExperimentAnalysis, MetricDefinition
from steward.domain.gates import Approval, GateReport, LifecycleReview, Reproduction, StoredPolicy
from steward.domain.incidents import Incident
from steward.domain.monitoring import Alert, MonitorWindow, StoredMonitor
from steward.domain.uri import version_uri
from steward.experiments.report import render_analysis_html
from steward.gates.report import render_html
from steward.monitoring.window_report import render_latest_html
from steward.schemas import parse
from steward.schemas.audit import EventQuery
from steward.schemas.auth import TokenCreate, TokenCreated
from steward.schemas.experiments import (
    DecisionCreate,
    ExperimentCreate,
    ExperimentQuery,
    MetricBody,
    OutcomePayload,
    OutcomeReceipt,
    OutcomeSource,
)
from steward.schemas.gates import (
    ApprovalResult,
    EvaluationCreate,
    History,
    HistoryEntry,
    Move,
    ReproductionRecord,
)
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
from steward.schemas.labels import LabelPayload, LabelReceipt, LabelSource
from steward.schemas.monitoring import (
    MonitorOutcomeRead,
    MonitorRead,
    MonitorRunRequest,
    MonitorRunResult,
    MonitorSpecBody,
)
from steward.schemas.registry import ModelCreate, ModelUpdate, VersionCreate, VersionUpdate
from steward.schemas.serving import DeploymentSpec, Rollback
from steward.schemas.tracking import LogBatch, RunCreate, RunEnd
from steward.wiring import Services


class LocalBackend:
    def __init__(self, services: Services, actor: str) -> None:
        self.services = services
        self.actor = actor

    def whoami(self) -> tuple[str, str]:
        return self.actor, "admin"

    def create_model(self, body: ModelCreate) -> Model:
        return self.services.registry.create_model(self.actor, body)

    def get_model(self, name: str) -> Model:
        return self.services.registry.get_model(name)

    def update_model(self, name: str, body: ModelUpdate) -> Model:
        return self.services.registry.update_model(self.actor, name, body)

    def list_models(self, filter: str | None, limit: int, page_token: str | None) -> Page[Model]:
        return self.services.registry.list_models(filter, limit=limit, page_token=page_token)

    def create_version(self, name: str, body: VersionCreate) -> ModelVersion:
        return self.services.registry.create_version(self.actor, name, body)

    def get_version(self, uri: str) -> ModelVersion:
        return self.services.registry.get_version(uri)

    def update_version(self, name: str, version: int, body: VersionUpdate) -> ModelVersion:
        return self.services.registry.update_version(self.actor, name, version, body)

    def list_versions(
        self, filter: str | None, model: str | None, limit: int, page_token: str | None
    ) -> Page[ModelVersion]:
        return self.services.registry.list_versions(
            filter, model=model, limit=limit, page_token=page_token
        )

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        return self.services.registry.set_alias(self.actor, name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.services.registry.delete_alias(self.actor, name, alias)

    def model_card(self, uri: str) -> str:
        return self.services.registry.model_card(uri)

    def upload_artifact(self, data: bytes | IO[bytes]) -> ArtifactRef:
        return self.services.registry.upload_artifact(data)

    def download_artifact(self, digest: str) -> bytes:
        return self.services.registry.read_artifact(digest)

    def create_run(self, body: RunCreate) -> Run:
        return self.services.tracking.create_run(self.actor, body)

    def get_run(self, run_id: str) -> Run:
        return self.services.tracking.get_run(run_id)

    def end_run(self, run_id: str, body: RunEnd) -> Run:
        return self.services.tracking.end_run(self.actor, run_id, body)

    def log_batch(self, run_id: str, batch: dict[str, Any]) -> int:
        return self.services.tracking.log_batch(self.actor, run_id, parse(LogBatch, batch))

    def list_runs(
        self, filter: str | None, project: str | None, limit: int, page_token: str | None
    ) -> Page[Run]:
        return self.services.tracking.list_runs(
            filter, project=project, limit=limit, page_token=page_token
        )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self.services.tracking.metric_history(run_id, key)

    def log_artifact(self, run_id: str, path: str, data: bytes) -> Run:
        return self.services.tracking.log_artifact(self.actor, run_id, path, data)

    def list_events(self, query: EventQuery) -> Page[Event]:
        return self.services.audit.list_events(**query.model_dump())

    def verify_ledger(self) -> VerifyReport:
        return self.services.audit.verify()

    def create_token(self, body: TokenCreate) -> TokenCreated:
        return self.services.tokens.create_token(self.actor, body)

    def list_tokens(self) -> list[Token]:
        return self.services.tokens.list_tokens()

    def revoke_token(self, token_id: str) -> Token:
        return self.services.tokens.revoke_token(self.actor, token_id)

    # gates: the embedded user acts with the admin role, as whoami says ------------------------
    def evaluate(self, name: str, version: int, body: EvaluationCreate) -> Evaluation:
        return self.services.gates.evaluate(
            self.actor, version_uri(name, version), data_digest=body.data_digest,
            label=body.label, groups=body.groups, resamples=body.resamples, seed=body.seed,
            latency_calls=body.latency_calls, batch_size=body.batch_size,
        )  # fmt: skip

    def list_evaluations(self, name: str, version: int) -> list[Evaluation]:
        return self.services.gates.list_evaluations(version_uri(name, version))

    def gate(self, name: str, version: int, policy: str | None) -> GateReport:
        return self.services.gates.gate(self.actor, version_uri(name, version), policy_text=policy)

    def gate_report(self, name: str, version: int) -> GateReport:
        return self.services.gates.latest_report(version_uri(name, version))

    def gate_report_html(self, name: str, version: int) -> str:
        return render_html(self.gate_report(name, version))

    def approve(self, name: str, version: int, comment: str | None) -> ApprovalResult:
        approval, report = self.services.gates.approve(
            self.actor, Role.ADMIN, version_uri(name, version), comment=comment
        )
        return ApprovalResult(approval=approval, report=report)

    def approvals(self, name: str, version: int) -> list[Approval]:
        return self.services.gates.approvals(version_uri(name, version))

    def deploy(self, name: str, body: DeploymentSpec) -> Deployment:
        return self.services.deployments.deploy(self.actor, name, body)

    def get_deployment(self, name: str) -> Deployment:
        return self.services.deployments.get(name)

    def list_deployments(self, model: str | None) -> list[Deployment]:
        return self.services.deployments.list(model)

    def rollback(self, name: str, body: Rollback) -> Deployment:
        return self.services.deployments.rollback(
            self.actor, name, reason=body.reason, evidence=body.evidence
        )

    def lifecycle_review(
        self, staging_days: int, archive_after_days: int, apply: bool
    ) -> LifecycleReview:
        return self.services.gates.lifecycle_review(
            self.actor, staging_days=staging_days, archive_after_days=archive_after_days,
            apply=apply,
        )  # fmt: skip

    def transition(
        self, name: str, version: int, to: VersionStatus, reason: str | None
    ) -> list[Move]:
        moves = self.services.gates.promote(
            self.actor, version_uri(name, version), to, reason=reason
        )
        return [Move(version=m.version, from_status=m.from_status, to_status=m.to_status)
                for m in moves]  # fmt: skip

    def history(self, name: str, at: datetime | None) -> History:
        entries = self.services.gates.history(name, at=at)
        return History(
            model=name, at=at, aliases=self.services.gates.state_at(name, at or utcnow()),
            entries=[HistoryEntry.model_validate(e, from_attributes=True) for e in entries],
        )  # fmt: skip

    def set_policy(self, text: str, model: str | None) -> StoredPolicy:
        return self.services.gates.set_policy(self.actor, text, model=model)

    def get_policy(self, name: str | None, model: str | None, revision: int | None) -> StoredPolicy:
        return self.services.gates.get_policy(name, model=model, revision=revision)

    def list_policies(self) -> list[StoredPolicy]:
        return self.services.gates.list_policies()

    def assign_policy(self, model: str, policy: str | None) -> StoredPolicy:
        self.services.gates.assign_policy(self.actor, model, policy)
        return self.services.gates.get_policy(model=model)

    def record_reproduction(
        self, name: str, version: int, body: ReproductionRecord
    ) -> Reproduction:
        return self.services.gates.record_reproduction(self.actor, version_uri(name, version), body)

    # monitors -------------------------------------------------------------------------------
    def configure_monitor(self, deployment: str, body: MonitorSpecBody) -> StoredMonitor:
        return self.services.monitoring.configure(self.actor, deployment, body.to_spec())

    def get_monitor(self, deployment: str) -> MonitorRead:
        spec, configured = self.services.monitoring.spec(deployment)
        return MonitorRead(deployment=deployment, spec=spec, configured=configured)

    def monitor_windows(self, deployment: str, limit: int) -> list[MonitorWindow]:
        return self.services.monitoring.windows(deployment, limit=limit)

    def run_monitors(self, body: MonitorRunRequest) -> MonitorRunResult:
        for name in body.deployments:  # all checked first: a typo runs nothing rather than half
            self.services.deployments.get(name)
        outcomes = self.services.run_monitors(
            self.actor, body.deployments, window_s=body.window_s, end=body.end,
            engine_name=body.engine,
        )  # fmt: skip
        return MonitorRunResult(
            outcomes=[MonitorOutcomeRead.model_validate(o, from_attributes=True) for o in outcomes]
        )

    def monitor_report_html(self, deployment: str, limit: int) -> str:
        return render_latest_html(deployment, self.monitor_windows(deployment, limit))

    # alerts and incidents ---------------------------------------------------------------------
    def list_alerts(self, query: AlertQuery) -> list[Alert]:
        return self.services.incidents.alerts(
            deployment=query.deployment, model=query.model, state=query.state,
            incident=query.incident, limit=query.limit,
        )  # fmt: skip

    def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        return self.services.incidents.list(model=query.model, state=query.state, limit=query.limit)

    def get_incident(self, incident_id: int) -> Incident:
        return self.services.incidents.show(incident_id)

    def incident_timeline(self, incident_id: int) -> list[TimelineEntry]:
        return self.services.incidents.timeline(incident_id)

    def note_incident(self, incident_id: int, body: IncidentNote) -> Incident:
        return self.services.incidents.note(self.actor, incident_id, body.text)

    def mitigate_incident(self, incident_id: int, body: MitigationCreate) -> MitigationResult:
        return self.services.incidents.mitigate(
            self.actor, incident_id, body.action, body.reason, deployment=body.deployment
        )

    def resolve_incident(self, incident_id: int, body: Resolution) -> Incident:
        return self.services.incidents.resolve(self.actor, incident_id, body.reason)

    def set_postmortem(self, incident_id: int, body: PostmortemUpdate) -> Incident:
        return self.services.incidents.set_postmortem(self.actor, incident_id, body.sections)

    def postmortem(self, incident_id: int) -> str:
        return self.services.incidents.postmortem(incident_id)

    def log_labels(
        self, deployment: str, labels: LabelPayload, source: LabelSource
    ) -> LabelReceipt:
        return self.services.labels.log(self.actor, deployment, labels, source=source)

    # experiments ------------------------------------------------------------------------------
    def define_metric(self, name: str, body: MetricBody) -> MetricDefinition:
        return self.services.experiments.define_metric(self.actor, name, body)

    def list_metrics(self) -> list[MetricDefinition]:
        return self.services.experiments.metrics()

    def create_experiment(self, body: ExperimentCreate) -> Experiment:
        return self.services.experiments.create(self.actor, body)

    def get_experiment(self, name: str) -> Experiment:
        return self.services.experiments.get(name)

    def list_experiments(self, query: ExperimentQuery) -> list[Experiment]:
        return self.services.experiments.list(deployment=query.deployment, state=query.state)

    def log_outcomes(self, outcomes: OutcomePayload, source: OutcomeSource) -> OutcomeReceipt:
        return self.services.experiments.log_outcomes(self.actor, outcomes, source=source)

    def analyze_experiment(self, name: str) -> ExperimentAnalysis:
        return self.services.analyze_experiment(self.actor, name)

    def experiment_report_html(self, name: str) -> str:
        analysis = self.analyze_experiment(name)
        return render_analysis_html(analysis, self.services.experiments.get(name))

    def decide_experiment(self, name: str, body: DecisionCreate) -> Experiment:
        return self.services.decide_experiment(
            self.actor, name, body.action, body.reason, variant=body.variant, apply=body.apply
        )

    def close(self) -> None:
        self.services.close()
