"""Client: the SDK's registry, run and ledger operations, local or remote alike."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from steward.client._backend import Backend
from steward.client._experiments import ExperimentMethods
from steward.client._gates import as_utc, parquet_bytes, run_reproduction
from steward.client._monitoring import MonitoringMethods
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
from steward.domain.enums import Flavor, Role, RunStatus, VersionStatus
from steward.domain.evaluation import Evaluation
from steward.domain.gates import Approval, GateReport, LifecycleReview, Reproduction, StoredPolicy
from steward.domain.signature import Signature
from steward.domain.uri import parse_model_uri
from steward.schemas import parse
from steward.schemas.audit import EventQuery
from steward.schemas.auth import TokenCreate, TokenCreated
from steward.schemas.gates import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LATENCY_CALLS,
    DEFAULT_RESAMPLES,
    ApprovalResult,
    EvaluationCreate,
    History,
    Move,
    TransitionCreate,
)
from steward.schemas.registry import ModelCreate, ModelUpdate, VersionCreate, VersionUpdate
from steward.schemas.serving import DeploymentSpec, Rollback
from steward.schemas.tracking import RunCreate, RunEnd
from steward.settings import Settings, os_user


def backend_from_settings(settings: Settings) -> Backend:
    if settings.url:
        from steward.client._http import HttpBackend

        token = settings.token.get_secret_value() if settings.token else None
        return HttpBackend(settings.url, token)
    from steward.client._local import LocalBackend
    from steward.wiring import Services

    return LocalBackend(Services.from_settings(settings), settings.actor or os_user())


class Client(MonitoringMethods, ExperimentMethods):
    """Talks to ``STEWARD_URL`` when set, else to the embedded store in ``STEWARD_HOME``.

    Pass ``url=`` / ``token=`` / ``home=`` to override the environment, or a ready ``settings``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        home: str | Path | None = None,
        settings: Settings | None = None,
        backend: Backend | None = None,
    ) -> None:
        overrides: dict[str, Any] = {}
        if url is not None:
            overrides["url"] = url
        if token is not None:
            overrides["token"] = token
        if home is not None:
            overrides["home"] = Path(home)
            overrides.setdefault("url", None)
        self.settings = settings or Settings(**overrides)
        self._backend = backend or backend_from_settings(self.settings)

    @property
    def is_remote(self) -> bool:
        return self.settings.url is not None

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def whoami(self) -> tuple[str, str]:
        """The caller's name and role as the store sees them."""
        return self._backend.whoami()

    # models -------------------------------------------------------------------------------
    def create_model(
        self,
        name: str,
        *,
        owner: str | None = None,
        team: str | None = None,
        risk_tier: int = 3,
        use_case: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        card: Mapping[str, str] | None = None,
    ) -> Model:
        body = parse(ModelCreate, {
            "name": name, "owner": owner, "team": team, "risk_tier": risk_tier,
            "use_case": use_case, "description": description, "tags": dict(tags or {}),
            "card": dict(card or {}),
        })  # fmt: skip
        return self._backend.create_model(body)

    def get_model(self, name: str) -> Model:
        return self._backend.get_model(name)

    def update_model(self, name: str, **changes: Any) -> Model:
        """Change owner, team, risk_tier, use_case, description, tags or card sections."""
        return self._backend.update_model(name, parse(ModelUpdate, changes))

    def list_models(
        self, filter: str | None = None, *, limit: int = 100, page_token: str | None = None
    ) -> Page[Model]:
        return self._backend.list_models(filter, limit, page_token)

    def search_models(self, filter: str | None = None) -> list[Model]:
        """Every model matching ``filter`` (all pages)."""
        return list(
            _all_pages(lambda token: self.list_models(filter, limit=1000, page_token=token))
        )

    # versions -----------------------------------------------------------------------------
    def upload_artifact(self, data: bytes | str | Path | IO[bytes]) -> ArtifactRef:
        if isinstance(data, str | Path):
            with open(data, "rb") as stream:
                return self._backend.upload_artifact(stream)
        return self._backend.upload_artifact(data)

    def download_artifact(self, digest: str) -> bytes:
        return self._backend.download_artifact(digest)

    def create_version(
        self,
        name: str,
        *,
        flavor: Flavor | str,
        files: Mapping[str, ArtifactRef],
        primary_file: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Mapping[str, Any] | None = None,
        reference_sample: ArtifactRef | None = None,
        description: str | None = None,
        trusted: bool = False,
    ) -> ModelVersion:
        """Record a version whose files were uploaded with ``upload_artifact``."""
        body = parse(VersionCreate, {
            "flavor": flavor, "files": dict(files), "primary_file": primary_file,
            "signature": signature, "metrics": dict(metrics or {}), "params": dict(params or {}),
            "tags": dict(tags or {}), "lineage": dict(lineage or {}),
            "reference_sample": reference_sample, "description": description, "trusted": trusted,
        })  # fmt: skip
        return self._backend.create_version(name, body)

    def get_version(self, uri: str) -> ModelVersion:
        """``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@ALIAS``."""
        return self._backend.get_version(uri)

    def update_version(self, name: str, version: int, **changes: Any) -> ModelVersion:
        """Change the description, replace tags, or add metrics (e.g. from a later evaluation)."""
        return self._backend.update_version(name, version, parse(VersionUpdate, changes))

    def list_versions(
        self,
        filter: str | None = None,
        *,
        model: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        return self._backend.list_versions(filter, model, limit, page_token)

    def search_versions(
        self, filter: str | None = None, *, model: str | None = None
    ) -> list[ModelVersion]:
        """Every version matching ``filter`` (all pages), newest first within each model."""
        return list(
            _all_pages(
                lambda token: self.list_versions(filter, model=model, limit=1000, page_token=token)
            )
        )

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point ``alias`` at ``version``, atomically (any previous target is released)."""
        return self._backend.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._backend.delete_alias(name, alias)

    def model_card(self, uri: str) -> str:
        """The version's model card in Markdown."""
        return self._backend.model_card(uri)

    # release gates ---------------------------------------------------------------------------
    def evaluate(
        self,
        uri: str,
        data: object,
        label: str,
        groups: Sequence[str] = (),
        *,
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = 0,
        latency_calls: int = DEFAULT_LATENCY_CALLS,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Evaluation:
        """Evaluate a version on ``data`` (a DataFrame, or a .parquet or .csv file) through its
        real loader: metrics with bootstrap intervals, per-group metrics, latency.

        The table is uploaded as a Parquet artifact and evaluated by digest, locally or on the
        server alike; the evaluation is tied to the data's fingerprint. Latency is the
        percentiles of ``latency_calls`` timed predict calls on one row and on ``batch_size`` rows.
        """
        name, version = self._version_of(uri)
        digest = self.upload_artifact(parquet_bytes(data)).digest
        body = parse(EvaluationCreate, {
            "data_digest": digest, "label": label, "groups": list(groups),
            "resamples": resamples, "seed": seed, "latency_calls": latency_calls,
            "batch_size": batch_size,
        })  # fmt: skip
        return self._backend.evaluate(name, version, body)

    def evaluations(self, uri: str) -> list[Evaluation]:
        """The version's evaluations, oldest first."""
        return self._backend.list_evaluations(*self._version_of(uri))

    def gate(self, uri: str, policy: str | Path | None = None) -> GateReport:
        """Run the model's policy on the version's current evidence and store the report.

        ``policy`` (YAML text, or a file) runs an ad hoc policy instead: its report is kept and
        moves the version like any other, but cannot release it (only the policy in force can).
        """
        text = Path(policy).read_text(encoding="utf-8") if isinstance(policy, Path) else policy
        return self._backend.gate(*self._version_of(uri), text)

    def gate_report(self, uri: str) -> GateReport:
        """The version's latest gate report."""
        return self._backend.gate_report(*self._version_of(uri))

    def gate_report_html(self, uri: str) -> str:
        """The latest gate report as a standalone web page."""
        return self._backend.gate_report_html(*self._version_of(uri))

    def approve(self, uri: str, comment: str | None = None) -> ApprovalResult:
        """Approve the version as this client's user (refused for its author and for roles
        below approver); the gate then runs again and the version moves once enough approvals
        are in. Returns the approval and that report."""
        return self._backend.approve(*self._version_of(uri), comment)

    def approvals(self, uri: str) -> list[Approval]:
        return self._backend.approvals(*self._version_of(uri))

    # deployments -----------------------------------------------------------------------------
    def deploy(
        self,
        name: str,
        *,
        model: str,
        champion: int,
        canary: int | None = None,
        canary_share: float | None = None,
        shadow: int | None = None,
        split: Mapping[int, float] | None = None,
        experiment: str | None = None,
        unit_key: str | None = None,
        fallbacks: Sequence[Mapping[str, Any]] = (),
        timeout_ms: int = 1000,
        batching: Mapping[str, Any] | None = None,
        canary_slo: Mapping[str, Any] | None = None,
        runtime: str = "native",
    ) -> Deployment:
        """Create deployment ``name`` or replace its routing. The champion must be in
        production; a canary, shadow or split variant approved, staging or production (the
        store refuses others). ``fallbacks``: ``{"kind": "previous"}``, ``{"kind": "rule",
        "rules": [...]}``, ``{"kind": "default", "value": ...}``, tried in order.
        ``canary_slo``: ``{"max_error_rate": 0.05, "max_p95_ms": 50, "window_s": 60,
        "min_requests": 50}`` (a limit or both); the gateway rolls the canary back when it
        breaks it. ``runtime``: ``"native"`` (each version's own library) or ``"onnx"``
        (onnxruntime on each version's ONNX export, from ``log_model(..., export_onnx=True)``;
        refused when a version the deployment routes to has none)."""
        body = parse(DeploymentSpec, {
            "model": model, "champion": champion, "canary": canary,
            "canary_share": canary_share, "shadow": shadow,
            "split": dict(split) if split is not None else None, "experiment": experiment,
            "unit_key": unit_key, "fallbacks": [dict(f) for f in fallbacks],
            "timeout_ms": timeout_ms, "batching": dict(batching) if batching else None,
            "canary_slo": dict(canary_slo) if canary_slo is not None else None,
            "runtime": runtime,
        })  # fmt: skip
        return self._backend.deploy(name, body)

    def get_deployment(self, name: str) -> Deployment:
        return self._backend.get_deployment(name)

    def deployments(self, model: str | None = None) -> list[Deployment]:
        return self._backend.list_deployments(model)

    def rollback(
        self, name: str, *, reason: str | None = None, evidence: Mapping[str, Any] | None = None
    ) -> Deployment:
        """Send all of ``name``'s traffic back to its champion (the canary or split goes)."""
        body = parse(Rollback, {"reason": reason, "evidence": dict(evidence or {}) or None})
        return self._backend.rollback(name, body)

    def lifecycle_review(
        self, *, staging_days: int = 30, archive_after_days: int = 90, apply: bool = False
    ) -> LifecycleReview:
        """Models without an owner, production versions without a reference sample, versions
        in staging for more than ``staging_days``, deprecated versions past their archival
        date; with ``apply``, archive those (never a model's rollback target)."""
        return self._backend.lifecycle_review(staging_days, archive_after_days, apply)

    def promote(self, uri: str, to: VersionStatus | str, reason: str | None = None) -> list[Move]:
        """Move the version to staging, production, deprecated or archived; returns every move
        made (production also retires the previous champion to deprecated)."""
        body = parse(TransitionCreate, {"to": to, "reason": reason})
        return self._backend.transition(*self._version_of(uri), body.to, body.reason)

    def history(self, name: str, at: datetime | None = None) -> History:
        """Which version held each alias at ``at`` (default now; a naive time is UTC) and the
        lifecycle moves and alias changes up to then, oldest first."""
        return self._backend.history(name, as_utc(at))

    def set_policy(self, text: str | Path, model: str | None = None) -> StoredPolicy:
        """Store a policy (YAML text or a file) as the next revision of the policy it names;
        with ``model``, also gate that model by it."""
        content = Path(text).read_text(encoding="utf-8") if isinstance(text, Path) else text
        return self._backend.set_policy(content, model)

    def get_policy(
        self, name: str | None = None, *, model: str | None = None, revision: int | None = None
    ) -> StoredPolicy:
        """A stored policy by name, or the one in force for ``model``."""
        return self._backend.get_policy(name, model, revision)

    def list_policies(self) -> list[StoredPolicy]:
        return self._backend.list_policies()

    def assign_policy(self, model: str, policy: str | None) -> StoredPolicy:
        """Gate ``model`` by the stored policy ``policy`` (None: its risk tier's default)."""
        return self._backend.assign_policy(model, policy)

    def reproduce(
        self,
        uri: str,
        repo: str | Path | None = None,
        *,
        tolerance: float = 1e-6,
        timeout: float = 3600.0,
    ) -> Reproduction:
        """Re-run the version's recorded training **on this machine** and record the outcome.

        The code is checked out from ``repo`` (a local clone) at the recorded commit; see
        docs/reproduce.md. A server never runs a reproduction: over HTTP the outcome is posted
        back as a record, which needs the approver role.
        """
        version = self.get_version(uri)
        _, record = run_reproduction(
            version, repo_path=Path(repo) if repo is not None else None, tolerance=tolerance,
            timeout_s=timeout,
        )  # fmt: skip
        return self._backend.record_reproduction(version.model_name, version.version, record)

    def _version_of(self, uri: str) -> tuple[str, int]:
        ref = parse_model_uri(uri)
        if ref.version is not None:
            return ref.name, ref.version
        version = self.get_version(uri)  # an alias or latest
        return version.model_name, version.version

    # runs ----------------------------------------------------------------------------------
    def create_run(
        self,
        name: str | None = None,
        *,
        project: str = "default",
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        body = parse(RunCreate, {
            "name": name, "project": project, "params": dict(params or {}),
            "tags": dict(tags or {}),
        })  # fmt: skip
        return self._backend.create_run(body)

    def get_run(self, run_id: str) -> Run:
        return self._backend.get_run(run_id)

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> Run:
        return self._backend.end_run(run_id, parse(RunEnd, {"status": status}))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Mapping[str, Any]] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> int:
        """Log many points in one round trip: ``[{"key", "value", "step"?, "timestamp"?}, ...]``."""
        batch = {
            "metrics": metrics if isinstance(metrics, list) else list(metrics or []),
            "params": dict(params or {}), "tags": dict(tags or {}),
        }  # fmt: skip
        return self._backend.log_batch(run_id, batch)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> int:
        points = [{"key": k, "value": v, "step": step} for k, v in metrics.items()]
        return self.log_batch(run_id, points)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> int:
        return self.log_batch(run_id, params=params)

    def list_runs(
        self,
        filter: str | None = None,
        *,
        project: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[Run]:
        return self._backend.list_runs(filter, project, limit, page_token)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self._backend.metric_history(run_id, key)

    def log_artifact(self, run_id: str, path: str, data: bytes | str | Path) -> Run:
        """Store ``data`` (bytes, or a local file) under ``path`` in the run."""
        content = data if isinstance(data, bytes) else Path(data).read_bytes()
        return self._backend.log_artifact(run_id, path, content)

    # ledger and tokens ---------------------------------------------------------------------
    def list_events(
        self,
        *,
        kind: str | None = None,
        subject_type: str | None = None,
        subject_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[Event]:
        query = parse(EventQuery, {
            "kind": kind, "subject_type": subject_type, "subject_id": subject_id,
            "actor": actor, "since": since, "until": until, "after_seq": after_seq,
            "newest_first": newest_first, "limit": limit, "page_token": page_token,
        })  # fmt: skip
        return self._backend.list_events(query)

    def verify_ledger(self) -> VerifyReport:
        return self._backend.verify_ledger()

    def create_token(
        self, name: str, role: Role | str, *, expires_in_days: float | None = None
    ) -> TokenCreated:
        body = parse(TokenCreate, {"name": name, "role": role, "expires_in_days": expires_in_days})
        return self._backend.create_token(body)

    def list_tokens(self) -> list[Token]:
        return self._backend.list_tokens()

    def revoke_token(self, token_id: str) -> Token:
        return self._backend.revoke_token(token_id)


def _all_pages(fetch: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.items
        token = page.next_page_token
        if token is None:
            return
