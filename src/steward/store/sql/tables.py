"""Table definitions. Every schema change also gets an Alembic migration (a test diffs them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, PostgreSQL's would differ."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    owner: Mapped[str] = mapped_column(String(256))
    team: Mapped[str | None] = mapped_column(String(256), index=True)
    risk_tier: Mapped[int] = mapped_column(Integer)
    use_case: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    # the release policy assigned to this model; None = the default policy of its risk tier
    policy: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime]


class ModelTagRow(Base):
    __tablename__ = "model_tags"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(32))
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    primary_file: Mapped[str] = mapped_column(String(256))
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Copies of version_metrics / version_tags (which serve the filters), kept in the same
    # transaction, so reading a page of versions needs no per-version lookups.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    reference_sample: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reference_profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_changed_at: Mapped[datetime | None]  # lifecycle review: "in staging for N days"
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))


class VersionMetricRow(Base):
    """One row per (version, metric) so `metrics.auc > 0.8` is an indexed range scan.

    The version's place in a listing (its model's name and its number) is copied beside the
    value, so a search on one metric finds its page in the index alone: with 2,000 of 10,000
    versions matching, reading each match's version row to sort them was nearly all the query.
    """

    __tablename__ = "version_metrics"
    __table_args__ = (
        Index("ix_version_metrics_search", "key", "value", "model_name", "version", "version_id"),
    )

    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str] = mapped_column(String(128))  # models are never renamed
    version: Mapped[int] = mapped_column(Integer)


# The same entries in listing order: a filter that many versions pass finds its first page by
# walking this index and stopping, instead of sorting every match (2,000 of 10,000 matching:
# 4.6 → 0.3 ms on PostgreSQL). The planner picks one of the two per filter.
Index(
    "ix_version_metrics_listing",
    VersionMetricRow.key,
    VersionMetricRow.model_name,
    VersionMetricRow.version.desc(),
    VersionMetricRow.value,
    VersionMetricRow.version_id,
)


class VersionTagRow(Base):
    __tablename__ = "version_tags"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(256))


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256))
    project: Mapped[str] = mapped_column(String(256), index=True)
    status: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(256))


class RunMetricSegmentRow(Base):
    """The points of one key from one logged batch, packed as little-endian arrays.

    One row per (batch, key) instead of one per point: a batch of 1,000 points is one insert,
    which is what lets logging keep up with a training loop (a row per point cost 8-14 ms per
    1,000 on PostgreSQL, measured). History reads unpack and merge the segments.
    """

    __tablename__ = "run_metric_segments"
    __table_args__ = (Index("ix_run_metric_segments_run_key", "run_id", "key"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(256))
    count: Mapped[int] = mapped_column(Integer)
    steps: Mapped[bytes] = mapped_column(LargeBinary)  # int64
    values: Mapped[bytes] = mapped_column(LargeBinary)  # float64
    timestamps: Mapped[bytes] = mapped_column(LargeBinary)  # int64 microseconds since epoch


class RunLatestMetricRow(Base):
    """The last point per (run, key), kept in step with run_metrics for cheap search."""

    __tablename__ = "run_latest_metrics"
    __table_args__ = (Index("ix_run_latest_metrics_key_value", "key", "value"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[datetime]


class RunArtifactRow(Base):
    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)


class EventRow(Base):
    """The ledger. ``seq`` is assigned under the ledger lock, so the chain has no gaps."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_subject", "subject_type", "subject_id"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    id: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(256), index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


# -- release gates ------------------------------------------------------------------------------
class PolicyRow(Base):
    """Every revision of every release policy, as the YAML text the user wrote."""

    __tablename__ = "policies"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(80))  # "sha256:<hex>"
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_version_created", "version_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(256))
    data_fingerprint: Mapped[str] = mapped_column(String(80), index=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))


class GateReportRow(Base):
    __tablename__ = "gate_reports"
    __table_args__ = (Index("ix_gate_reports_version_created", "version_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    policy_name: Mapped[str] = mapped_column(String(128))
    policy_revision: Mapped[int] = mapped_column(Integer)
    policy_digest: Mapped[str] = mapped_column(String(80))
    verdict: Mapped[str] = mapped_column(String(32))
    results: Mapped[list[Any]] = mapped_column(JSON)
    evaluation_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))


class ApprovalRow(Base):
    __tablename__ = "approvals"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    approver: Mapped[str] = mapped_column(String(256), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime]


class ReproductionRow(Base):
    __tablename__ = "reproductions"
    __table_args__ = (Index("ix_reproductions_version_created", "version_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    matched: Mapped[bool] = mapped_column(Boolean)
    tolerance: Mapped[float] = mapped_column(Float)
    recorded: Mapped[dict[str, Any]] = mapped_column(JSON)
    reproduced: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_fingerprints_matched: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))


# -- serving -----------------------------------------------------------------------------------
class DeploymentRow(Base):
    """One deployment; ``spec`` holds its routing (champion, canary, split, fallbacks, ...)."""

    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(256))


# -- monitoring --------------------------------------------------------------------------------
# Only the "active" rows take part in these partial unique indexes: the database itself keeps
# one firing alert per (deployment, rule) and one active incident per model, so two replicas
# racing to fire or to open cannot both succeed.
ALERT_FIRING = text("state = 'firing'")
INCIDENT_ACTIVE = text("state <> 'resolved'")


class MonitorRow(Base):
    """A deployment's monitor spec; ``revision`` counts its changes."""

    __tablename__ = "monitors"

    deployment: Mapped[str] = mapped_column(
        ForeignKey("deployments.name", ondelete="CASCADE"), primary_key=True
    )
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(256))


class MonitorWindowRow(Base):
    """What one monitor run measured over [start, end) of a deployment's traffic.

    No foreign key to the deployment: windows are the history alerts and incidents point at.
    """

    __tablename__ = "monitor_windows"
    # listings are per deployment, newest (latest end) first, bounded by end
    __table_args__ = (Index("ix_monitor_windows_deployment_end", "deployment", "end"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(128))
    start: Mapped[datetime]
    end: Mapped[datetime]
    computed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(BigInteger)
    versions: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class AlertRow(Base):
    """One episode of a rule firing on a deployment; ``rule`` is the rule as it was then."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_deployment_state", "deployment", "state"),
        Index(
            "uq_alerts_firing_rule", "deployment", "rule_name", unique=True,
            sqlite_where=ALERT_FIRING, postgresql_where=ALERT_FIRING,
        ),
    )  # fmt: skip

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(128))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule_name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    last_value: Mapped[float] = mapped_column(Float)
    window_id: Mapped[str] = mapped_column(String(36))
    fired_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)


class IncidentRow(Base):
    """An incident of a model; ``id`` is a small number (INC-7) the store gives as max + 1."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_model_state", "model_name", "state"),
        Index(
            "uq_incidents_active_model", "model_name", unique=True,
            sqlite_where=INCIDENT_ACTIVE, postgresql_where=INCIDENT_ACTIVE,
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_name: Mapped[str] = mapped_column(String(128))
    deployment: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(256))
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(256))
    mitigated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    postmortem: Mapped[dict[str, Any]] = mapped_column(JSON)


# -- experiments -------------------------------------------------------------------------------
# One running experiment per deployment, kept by the database itself (as INCIDENT_ACTIVE does
# for incidents): two writers racing to start one on the same deployment cannot both succeed.
EXPERIMENT_RUNNING = text("state = 'running'")


class MetricDefinitionRow(Base):
    """A metric, defined once by name; ``definition`` holds the rest of MetricDefinition."""

    __tablename__ = "metric_definitions"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(256))


class ExperimentRow(Base):
    """An experiment on a deployment's split; ``spec`` holds its plan (control, variants,
    metrics, method, ...), ``decision`` the decision once taken. No foreign key to the
    deployment: an experiment is history, like a monitor window."""

    __tablename__ = "experiments"
    __table_args__ = (
        Index("ix_experiments_deployment_state", "deployment", "state"),
        Index(
            "uq_experiments_running_deployment", "deployment", unique=True,
            sqlite_where=EXPERIMENT_RUNNING, postgresql_where=EXPERIMENT_RUNNING,
        ),
    )  # fmt: skip

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    start: Mapped[datetime]
    end: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256))
