"""What the capabilities may rely on: protocols of the metadata and artifact stores.

Services import this module only; concrete backends (``store.sql``, ``store.artifacts``) are
chosen from settings in ``steward.wiring`` and passed in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from steward.domain.deployments import Deployment
from steward.domain.entities import (
    Alias,
    ArtifactRef,
    Event,
    MetricPoint,
    Model,
    ModelVersion,
    Run,
    Token,
    VerifyReport,
)
from steward.domain.enums import Role, VersionStatus
from steward.domain.evaluation import Evaluation
from steward.domain.experiments import Experiment, ExperimentState, MetricDefinition
from steward.domain.gates import Approval, GateContext, GateReport, Reproduction, StoredPolicy
from steward.domain.incidents import Incident, IncidentState
from steward.domain.monitoring import Alert, AlertState, MonitorWindow, StoredMonitor
from steward.domain.search import Condition
from steward.domain.uri import ModelRef
from steward.errors import InvalidInput
from steward.schemas.registry import check_version_number

MAX_PAGE_SIZE = 10_000
_MAX_OFFSET = 2**62  # offset + page size + 1 must still fit a signed 64-bit LIMIT/OFFSET

# One metric point as the write path carries it: (key, value, step, timestamp).
PointRow = tuple[str, float, int, datetime]


class WouldWait(Exception):
    """A call asked not to wait (it runs on a server's event loop) would have: nothing was
    done. Run the same call again where waiting is fine (a worker thread)."""


class WriteWouldWait(WouldWait):
    """A write asked not to wait (``store.without_waiting()``) found the database's write lock
    taken, or would have sent a statement before its end. Nothing was written."""


class ReadWouldWait(WouldWait):
    """A read asked to run on the event loop (``list_versions_json_on_loop``) cannot: the
    store has no connections of that loop's (SQLite, a loop that did not open them), none came
    free in time, or the one lent failed. Nothing was read."""


class StalePrediction(Exception):
    """A write built on what this process expected of the database (a model's last version
    number) found another writer had changed it. Nothing was written: run the same call again,
    which reads it instead."""


@dataclass(frozen=True)
class EventFilter:
    kind: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None


@dataclass(frozen=True)
class FeedItem:
    """One followed event of the ledger, without its payload: what a follower reacts to."""

    seq: int
    kind: str
    subject_id: str


@dataclass(frozen=True)
class FeedPage:
    """Followed events after a cursor, and the cursor to read from next time."""

    cursor: int  # the ledger's newest seq, or the last item's when the page was full
    items: list[FeedItem]


class FeedListener(Protocol):
    """Pushes from the database when a followed event commits (PostgreSQL LISTEN/NOTIFY).

    A hint, not the feed: the follower still reads the ledger after its cursor, so a lost
    notification only delays a change until the next poll.
    """

    async def connect(self) -> None:
        """Open the connection and start listening; Unavailable when the database is not."""

    async def wait(self) -> int:
        """Wait for the next notification; its event's seq. Unavailable when the connection
        is lost."""

    async def close(self) -> None: ...


class ReadSession(Protocol):
    def get_model(self, name: str) -> Model: ...
    def list_models(
        self, conditions: list[Condition], *, limit: int, offset: int
    ) -> list[Model]: ...
    def get_version(self, name: str, version: int) -> ModelVersion: ...
    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion: ...
    def get_latest_version(self, name: str) -> ModelVersion: ...
    def list_versions(
        self, conditions: list[Condition], *, model: str | None, limit: int, offset: int
    ) -> list[ModelVersion]: ...
    def list_versions_json(
        self, conditions: list[Condition], *, model: str | None, limit: int, offset: int
    ) -> list[bytes]: ...
    def get_alias(self, name: str, alias: str) -> Alias | None: ...
    def get_run(self, run_id: str) -> Run: ...
    def list_runs(
        self, conditions: list[Condition], *, project: str | None, limit: int, offset: int
    ) -> list[Run]: ...
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]: ...
    def list_events(
        self, flt: EventFilter, *, limit: int, offset: int, newest_first: bool = False
    ) -> list[Event]: ...
    def verify_ledger(self) -> VerifyReport: ...
    def ledger_tip(self) -> int: ...
    def read_feed(
        self, after_seq: int, kinds: Collection[str], *, limit: int = 1000
    ) -> FeedPage: ...
    def find_token_by_hash(self, secret_hash: str) -> Token | None: ...
    def list_tokens(self) -> list[Token]: ...
    # release gates
    def get_policy(self, name: str, revision: int | None = None) -> StoredPolicy | None: ...
    def list_policies(self) -> list[StoredPolicy]: ...
    def effective_policy(self, model_name: str) -> tuple[str, StoredPolicy | None]: ...
    def versions_with_status(self, statuses: Sequence[VersionStatus]) -> list[ModelVersion]: ...
    def list_evaluations(self, name: str, version: int) -> list[Evaluation]: ...
    def latest_gate_report(self, name: str, version: int) -> GateReport | None: ...
    def approvals(self, name: str, version: int) -> list[Approval]: ...
    def gate_context(self, name: str, version: int, now: datetime) -> GateContext: ...
    # deployments
    def get_deployment(self, name: str) -> Deployment: ...
    def list_deployments(self, model_name: str | None = None) -> list[Deployment]: ...
    def previous_production_version(self, model_name: str, champion: int) -> int | None: ...
    # monitoring: specs, windows (newest first), alerts
    def get_monitor(self, deployment: str) -> StoredMonitor | None: ...
    def list_monitors(self) -> list[StoredMonitor]: ...
    def list_windows(
        self,
        deployment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[MonitorWindow]: ...
    def get_window(self, window_id: str) -> MonitorWindow: ...
    def list_alerts(
        self,
        *,
        deployment: str | None = None,
        model_name: str | None = None,
        state: AlertState | None = None,
        incident_id: int | None = None,
        limit: int = 100,
    ) -> list[Alert]: ...
    # incidents
    def get_incident(self, incident_id: int) -> Incident: ...
    def list_incidents(
        self,
        *,
        model_name: str | None = None,
        state: IncidentState | None = None,
        limit: int = 100,
    ) -> list[Incident]: ...
    # experiments
    def get_metric(self, name: str) -> MetricDefinition: ...
    def list_metrics(self) -> list[MetricDefinition]: ...
    def get_experiment(self, name: str) -> Experiment: ...
    def list_experiments(
        self, *, deployment: str | None = None, state: ExperimentState | None = None
    ) -> list[Experiment]: ...
    def active_incident(self, model_name: str) -> Incident | None:
        """The model's open or mitigated incident, if it has one (at most one at a time)."""


class WriteSession(ReadSession, Protocol):
    """Changes made through a write session commit with their ledger events, or not at all."""

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None: ...
    def create_model(self, values: dict[str, Any], tags: dict[str, str]) -> Model: ...
    def update_model(
        self, name: str, values: dict[str, Any], tags: dict[str, str] | None
    ) -> Model: ...
    def create_version(
        self, name: str, values: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
    ) -> ModelVersion: ...
    def update_version(
        self,
        name: str,
        version: int,
        values: dict[str, Any],
        *,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion: ...
    def set_alias(
        self, name: str, alias: str, version: int, at: datetime
    ) -> tuple[Alias, int | None]: ...
    def delete_alias(self, name: str, alias: str) -> int | None: ...
    def create_run(self, values: dict[str, Any]) -> Run: ...
    def update_run(self, run_id: str, values: dict[str, Any]) -> Run: ...
    def log_points(self, run_id: str, points: Sequence[PointRow]) -> None: ...
    def add_run_artifact(self, run_id: str, path: str, digest: str, size: int) -> None: ...
    def create_token(self, values: dict[str, Any]) -> Token: ...
    def revoke_token(self, token_id: str) -> Token: ...
    # release gates: the store enforces the lifecycle and separation of duties itself
    def save_policy(self, name: str, text: str, digest: str, at: datetime) -> StoredPolicy: ...
    def assign_policy(self, model_name: str, policy_name: str | None) -> None: ...
    def add_evaluation(self, name: str, version: int, values: dict[str, Any]) -> Evaluation: ...
    def add_gate_report(self, name: str, version: int, values: dict[str, Any]) -> GateReport: ...
    def add_approval(
        self, name: str, version: int, role: Role, comment: str | None, at: datetime
    ) -> Approval: ...
    def add_reproduction(self, name: str, version: int, values: dict[str, Any]) -> Reproduction: ...
    def put_deployment(
        self,
        name: str,
        model_name: str,
        spec: dict[str, Any],
        at: datetime,
        *,
        kind: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> Deployment: ...
    def transition(
        self, name: str, version: int, target: VersionStatus, reason: str | None, at: datetime
    ) -> list[tuple[int, VersionStatus, VersionStatus]]: ...
    # monitoring: each write records its ledger event (monitor.configured, monitor.window,
    # alert.fired, alert.resolved, alert.updated is not an event: it changes no state a
    # person acts on)
    def put_monitor(self, deployment: str, spec: dict[str, Any], at: datetime) -> StoredMonitor:
        """Create or replace a deployment's monitor spec; NotFound for an unknown deployment."""

    def delete_monitor(self, deployment: str) -> None: ...
    def add_window(self, window: MonitorWindow) -> MonitorWindow: ...
    def add_alert(self, alert: Alert) -> Alert: ...
    def update_alert(self, alert_id: str, values: dict[str, Any]) -> Alert:
        """Change ``state``, ``resolved_at``, ``last_value`` or ``incident_id``; records
        alert.resolved when the state becomes resolved and alert.joined when an incident is
        set."""

    # experiments: each write records its event (metric.defined, experiment.created, and the
    # kind passed to update_experiment: experiment.decided, experiment.ended ...)
    def put_metric(self, metric: MetricDefinition) -> MetricDefinition:
        """Define a metric, or redefine one no running experiment uses (Conflict otherwise:
        changing a metric under a running experiment would change its results)."""

    def create_experiment(self, experiment: Experiment) -> Experiment:
        """AlreadyExists for a taken name; NotFound for an unknown deployment or metric;
        Conflict when the deployment already runs an experiment."""

    def update_experiment(
        self, name: str, values: dict[str, Any], *, kind: str, payload: dict[str, Any]
    ) -> Experiment: ...
    # incidents: ids are small integers (INC-7), numbered by the store
    def create_incident(self, values: dict[str, Any]) -> Incident:
        """Records incident.opened. Conflict when the model already has an active one."""

    def update_incident(
        self, incident_id: int, values: dict[str, Any], *, kind: str, payload: dict[str, Any]
    ) -> Incident:
        """Apply ``values`` and record event ``kind`` with ``payload`` (the service checks the
        state machine before calling)."""


class MetadataStore(Protocol):
    def read(self) -> AbstractContextManager[ReadSession]: ...
    def write(self, actor: str) -> AbstractContextManager[WriteSession]: ...
    def without_waiting(self) -> AbstractContextManager[bool]:
        """A block whose writes raise `WriteWouldWait` rather than wait for a lock; it gives
        True when the store can write that way, else False (and writes wait as usual)."""

    def reads_on_loop(self) -> bool:
        """Whether the running event loop can await reads itself (`list_versions_json_on_loop`):
        PostgreSQL, on a loop that opened its connections."""

    async def list_versions_json_on_loop(
        self, conditions: list[Condition], *, model: str | None, limit: int, offset: int
    ) -> list[bytes]:
        """`ReadSession.list_versions_json`, awaited on the running event loop rather than
        blocking it; `ReadWouldWait` when it cannot be (see `reads_on_loop`)."""

    async def find_token_by_hash_on_loop(self, secret_hash: str) -> Token | None:
        """`ReadSession.find_token_by_hash`, awaited on the running event loop; `ReadWouldWait`
        when it cannot be (see `reads_on_loop`)."""

    def dispose(self) -> None: ...
    def feed_listener(self) -> FeedListener | None:
        """A listener for pushed feed changes, or None when the backend cannot push (SQLite):
        then the feed is polled."""


class ArtifactStore(Protocol):
    max_bytes: int

    def put_bytes(self, data: bytes) -> ArtifactRef: ...
    def put_stream(self, stream: IO[bytes]) -> ArtifactRef: ...
    def put_chunks(self, chunks: Iterable[bytes]) -> ArtifactRef: ...
    def exists(self, digest: str) -> bool: ...
    def get_bytes(self, digest: str) -> bytes: ...
    def open(self, digest: str) -> IO[bytes]: ...


# Page tokens: an offset, base64-encoded so callers pass them back rather than build them.
def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        offset = -1
    if not 0 <= offset <= _MAX_OFFSET:  # a huge offset would overflow the driver's integers
        raise InvalidInput(
            "The page_token is not one this server issued; pass next_page_token back unchanged.",
            field="page_token",
        )
    return offset


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def check_page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"The page size must be between 1 and {MAX_PAGE_SIZE}. Got {limit}.", field="limit"
        )
    return limit


def resolve_version(rx: ReadSession, ref: ModelRef) -> ModelVersion:
    """The version a reference points at: by alias, by number, or the latest."""
    if ref.alias is not None:
        return rx.get_version_by_alias(ref.name, ref.alias)
    if ref.version is None:
        return rx.get_latest_version(ref.name)
    return rx.get_version(ref.name, check_version_number(ref.version))
