"""GatesService: evaluation, policies, gate runs, approvals, promotion, history and review.

The service gathers evidence and runs checks; the store enforces the rules that must hold
whoever calls it (a release needs a passed, current gate report; an author cannot approve).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from steward.domain.clock import utcnow
from steward.domain.entities import Event, Model, ModelVersion
from steward.domain.enums import Role, VersionStatus
from steward.domain.evaluation import Evaluation
from steward.domain.gates import (
    Approval,
    GateReport,
    LifecycleReview,
    Reproduction,
    StoredPolicy,
)
from steward.domain.uri import parse_model_uri
from steward.errors import InvalidInput, NotFound
from steward.gates.policy import default_policy_text, parse_policy, policy_digest
from steward.gates.report import build_report
from steward.gates.review import check_days, review
from steward.schemas.gates import DEFAULT_BATCH_SIZE, DEFAULT_LATENCY_CALLS, DEFAULT_RESAMPLES
from steward.store.base import ArtifactStore, EventFilter, MetadataStore, resolve_version

_TIERS = (1, 2, 3)
_SYSTEM_ACTOR = "steward"


class ReproductionResult(Protocol):
    """What a reproduction found, as the engine reports it or as a client posts it back."""

    @property
    def matched(self) -> bool: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def recorded(self) -> dict[str, float]: ...
    @property
    def reproduced(self) -> dict[str, float]: ...
    @property
    def data_fingerprints_matched(self) -> bool | None: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class Move:
    """One lifecycle move made by a promotion."""

    version: int
    from_status: VersionStatus
    to_status: VersionStatus


@dataclass(frozen=True)
class HistoryEntry:
    """Who moved what, when and why, from one ledger event."""

    at: datetime
    actor: str
    kind: str
    version: int | None
    alias: str | None
    from_status: str | None
    to_status: str | None
    reason: str | None
    seq: int


class GatesService:
    def __init__(
        self, store: MetadataStore, artifacts: ArtifactStore, *, allow_trusted: bool
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.allow_trusted = allow_trusted

    # policies -------------------------------------------------------------------------------
    def ensure_default_policies(self) -> None:
        """Store the shipped tier policies on first use, so every gate names a stored revision."""
        with self.store.read() as rx:
            missing = [t for t in _TIERS if rx.get_policy(f"tier-{t}") is None]
        if not missing:
            return
        with self.store.write(_SYSTEM_ACTOR) as tx:
            for tier in missing:
                if tx.get_policy(f"tier-{tier}") is None:
                    text = default_policy_text(tier)
                    tx.save_policy(f"tier-{tier}", text, policy_digest(text), utcnow())

    def set_policy(
        self, actor: str, text: str, *, model: str | None = None, name: str | None = None
    ) -> StoredPolicy:
        """Store a policy's text as its next revision (refused, with the line, if invalid);
        with ``model``, also make it the policy that model is gated by. With ``name`` (a
        ``PUT /policies/{name}``), the text must name that policy."""
        policy = parse_policy(text)
        if name is not None and policy.name != name:
            raise InvalidInput(
                f"The policy text is named {policy.name!r}, not {name!r}; change its 'name' "
                "or upload it under its own name.",
                field="name",
            )
        self.ensure_default_policies()
        with self.store.write(actor) as tx:
            saved = tx.save_policy(policy.name, text, policy.digest, utcnow())
            if model is not None:
                tx.assign_policy(model, policy.name)
        return saved

    def assign_policy(self, actor: str, model: str, policy_name: str | None) -> None:
        with self.store.write(actor) as tx:
            if policy_name is not None and tx.get_policy(policy_name) is None:
                raise NotFound(
                    f"No policy named {policy_name!r}; upload it with `steward policy set FILE`.",
                    details={"field": "policy"},
                )
            tx.assign_policy(model, policy_name)

    def get_policy(
        self, name: str | None = None, *, model: str | None = None, revision: int | None = None
    ) -> StoredPolicy:
        self.ensure_default_policies()
        with self.store.read() as rx:
            if name is None:
                if model is None:
                    raise InvalidInput("Name a policy or a model.", field="name")
                name, _ = rx.effective_policy(model)
            found = rx.get_policy(name, revision)
        if found is None:
            raise NotFound(
                f"No policy named {name!r}"
                + (f" at revision {revision}" if revision else "")
                + ". List them with `steward policy list`.",
                details={"field": "name", "name": name},
            )
        return found

    def list_policies(self) -> list[StoredPolicy]:
        self.ensure_default_policies()
        with self.store.read() as rx:
            return rx.list_policies()

    # evaluation -------------------------------------------------------------------------------
    def evaluate(
        self,
        actor: str,
        uri: str,
        *,
        data_digest: str,
        label: str,
        groups: Sequence[str] = (),
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = 0,
        latency_calls: int = DEFAULT_LATENCY_CALLS,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Evaluation:
        """Evaluate a version on an uploaded Parquet table through its real loader."""
        from steward.flavors import load_model
        from steward.gates.evaluation import check_columns, measure_latency, summarize
        from steward.lineage import fingerprint
        from steward.lineage._tables import read_parquet

        _check_counts(resamples=resamples, latency_calls=latency_calls, batch_size=batch_size)
        version = self._version(uri)
        frame = _read_table(read_parquet, self.artifacts.get_bytes(data_digest))
        features = check_columns(
            frame, label=label, groups=list(groups), signature=version.signature
        )
        model = load_model(
            version.flavor,
            lambda name: self.artifacts.get_bytes(version.files[name].digest),
            signature=version.signature,
            registered_trusted=version.trusted,
            allow_trusted=self.allow_trusted,
        )
        summary = summarize(
            model, frame, label=label, features=features, groups=list(groups),
            resamples=resamples, seed=seed,
        )  # fmt: skip
        latency = measure_latency(
            model, frame, features, calls=latency_calls, batch_size=batch_size
        )
        values: dict[str, Any] = {
            "label": label,
            "data_fingerprint": fingerprint(frame),
            "summary": summary.model_dump(mode="json"),
            "latency": latency.model_dump(mode="json"),
            "created_at": utcnow(),
            "created_by": actor,
        }
        with self.store.write(actor) as tx:
            return tx.add_evaluation(version.model_name, version.version, values)

    def list_evaluations(self, uri: str) -> list[Evaluation]:
        version = self._version(uri)
        with self.store.read() as rx:
            return rx.list_evaluations(version.model_name, version.version)

    # gates --------------------------------------------------------------------------------------
    def gate(self, actor: str, uri: str, *, policy_text: str | None = None) -> GateReport:
        """Run the model's policy (or ``policy_text``) on the version's current evidence.

        The report is stored and moves the version (validated, approved, or back to
        registered); a report from an ad hoc policy is kept but cannot release the version,
        since the store checks a release against the policy in force.
        """
        self.ensure_default_policies()
        version = self._version(uri)
        name, number = version.model_name, version.version
        with self.store.read() as rx:
            stored = None if policy_text is not None else rx.effective_policy(name)[1]
            context = rx.gate_context(name, number, utcnow())
        if policy_text is not None:
            policy, revision = parse_policy(policy_text, source="--policy"), 0
        elif stored is None:
            raise NotFound(f"No policy is stored for {name}.", details={"field": "policy"})
        else:
            policy, revision = parse_policy(stored.text, source=stored.name), stored.revision
        report = build_report(
            policy, context, report_id=str(uuid.uuid4()), revision=revision, created_by=actor
        )
        values = {
            "policy_name": report.policy.name,
            "policy_revision": report.policy.revision,
            "policy_digest": report.policy.digest,
            "verdict": report.verdict.value,
            "results": [r.model_dump(mode="json") for r in report.results],
            "evaluation_id": report.evaluation_id,
            "created_at": report.created_at,
            "created_by": actor,
        }
        with self.store.write(actor) as tx:
            return tx.add_gate_report(name, number, values)

    def latest_report(self, uri: str) -> GateReport:
        version = self._version(uri)
        with self.store.read() as rx:
            report = rx.latest_gate_report(version.model_name, version.version)
        if report is None:
            raise NotFound(
                f"{version.uri} has no gate report yet; run `steward gate {version.uri}`.",
                details={"field": "uri"},
            )
        return report

    def approve(
        self, actor: str, role: Role, uri: str, *, comment: str | None = None
    ) -> tuple[Approval, GateReport]:
        """Record an approval (the store refuses the author and non-approvers), then re-run
        the gate so the version moves to approved once enough approvals are in."""
        version = self._version(uri)
        with self.store.write(actor) as tx:
            approval = tx.add_approval(version.model_name, version.version, role, comment, utcnow())
        return approval, self.gate(actor, version.uri)

    def approvals(self, uri: str) -> list[Approval]:
        version = self._version(uri)
        with self.store.read() as rx:
            return rx.approvals(version.model_name, version.version)

    # lifecycle ----------------------------------------------------------------------------------
    def promote(
        self, actor: str, uri: str, to: VersionStatus | str, *, reason: str | None = None
    ) -> list[Move]:
        target = _status(to)
        version = self._version(uri)
        with self.store.write(actor) as tx:
            moves = tx.transition(version.model_name, version.version, target, reason, utcnow())
        return [Move(v, a, b) for v, a, b in moves]

    def history(self, name: str, *, at: datetime | None = None) -> list[HistoryEntry]:
        """Lifecycle moves and alias changes of ``name`` up to ``at``, oldest first."""
        with self.store.read() as rx:
            rx.get_model(name)  # NotFound for an unknown model
            events = _model_events(rx, name, until=at)
        return [entry for e in events if (entry := _history_entry(name, e)) is not None]

    def state_at(self, name: str, at: datetime) -> dict[str, int]:
        """Which version each alias (``champion`` = production) pointed at, at ``at``."""
        state: dict[str, int] = {}
        for entry in self.history(name, at=at):
            if entry.alias is None:
                continue
            if entry.kind == "alias.deleted":
                state.pop(entry.alias, None)
            elif entry.version is not None:
                state[entry.alias] = entry.version
        return state

    def lifecycle_review(
        self,
        actor: str,
        *,
        staging_days: int = 30,
        archive_after_days: int = 90,
        apply: bool = False,
    ) -> LifecycleReview:
        """What needs attention; with ``apply``, archive the deprecated versions past their
        archival date (never the rollback target), each move a ledger event."""
        check_days(staging_days=staging_days, archive_after_days=archive_after_days)
        watched = (VersionStatus.STAGING, VersionStatus.PRODUCTION, VersionStatus.DEPRECATED)
        with self.store.read() as rx:
            models = _all_models(rx)
            versions = rx.versions_with_status(watched)
        result = review(
            models, versions, at=utcnow(), staging_days=staging_days,
            archive_after_days=archive_after_days,
        )  # fmt: skip
        if not apply or not result.to_archive:
            return result
        reason = f"archival policy: deprecated for more than {archive_after_days} days"
        with self.store.write(actor) as tx:
            for finding in result.to_archive:
                assert finding.version is not None
                tx.transition(finding.model, finding.version, VersionStatus.ARCHIVED, reason,
                              utcnow())  # fmt: skip
        return result.model_copy(update={"archived": result.to_archive, "to_archive": []})

    # reproduction -------------------------------------------------------------------------------
    def reproduce(
        self,
        actor: str,
        uri: str,
        *,
        repo_path: Path | None = None,
        tolerance: float = 1e-6,
        timeout_s: float = 3600.0,
    ) -> Reproduction:
        """Re-run the recorded training here, in this process, and record the outcome.

        Only for in-process use (the embedded SDK and CLI): a server never calls this, since it
        would run a command someone recorded. Over HTTP the client runs the engine itself and
        posts the outcome to :meth:`record_reproduction`.
        """
        from steward.gates.reproduce import reproduce_training

        version = self._version(uri)
        outcome = reproduce_training(
            version, repo_path=repo_path, tolerance=tolerance, timeout_s=timeout_s
        )
        return self._record_reproduction(actor, version, outcome)

    def record_reproduction(
        self, actor: str, uri: str, outcome: ReproductionResult
    ) -> Reproduction:
        """Store the outcome of a reproduction run elsewhere (by ``actor``, on their machine)."""
        return self._record_reproduction(actor, self._version(uri), outcome)

    def _record_reproduction(
        self, actor: str, version: ModelVersion, outcome: ReproductionResult
    ) -> Reproduction:
        values = {
            "matched": outcome.matched,
            "tolerance": outcome.tolerance,
            "recorded": dict(outcome.recorded),
            "reproduced": dict(outcome.reproduced),
            "data_fingerprints_matched": outcome.data_fingerprints_matched,
            "detail": outcome.detail,
            "created_at": utcnow(),
            "created_by": actor,
        }
        with self.store.write(actor) as tx:
            return tx.add_reproduction(version.model_name, version.version, values)

    def _version(self, uri: str) -> ModelVersion:
        ref = parse_model_uri(uri)
        with self.store.read() as rx:
            return resolve_version(rx, ref)


def _all_models(rx: Any) -> list[Model]:
    models: list[Model] = []
    while True:
        page = rx.list_models([], limit=1000, offset=len(models))
        models += page
        if len(page) < 1000:
            return models


def _status(value: VersionStatus | str) -> VersionStatus:
    try:
        return VersionStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in VersionStatus)
        raise InvalidInput(f"Unknown status {value!r}; use one of: {known}.", field="to") from None


def _check_counts(**counts: int) -> None:
    for field, value in counts.items():
        if value < (0 if field == "resamples" else 1) or value > 100_000:
            raise InvalidInput(
                f"{field} must be between {0 if field == 'resamples' else 1} and 100000; "
                f"got {value}.",
                field=field,
            )


def _read_table(reader: Any, content: bytes) -> Any:
    try:
        return reader(content)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InvalidInput(
            f"The evaluation data is not a readable Parquet file: {exc}", field="data"
        ) from exc


def _model_events(rx: Any, name: str, *, until: datetime | None) -> list[Event]:
    """The model's alias events and its versions' lifecycle events, in ledger order."""
    events: list[Event] = []
    for subject_type, kinds in (
        ("model", ("alias.set", "alias.deleted")),
        ("model_version", ("version.transitioned", "version.registered", "version.approved")),
    ):
        for kind in kinds:
            flt = EventFilter(
                kind=kind,
                subject_type=subject_type,
                subject_id=name if subject_type == "model" else None,
                until=until + timedelta(microseconds=1) if until else None,
            )
            offset = 0
            while True:
                page = rx.list_events(flt, limit=1000, offset=offset)
                events += [
                    e for e in page
                    if subject_type == "model" or e.subject_id.startswith(f"models:/{name}/")
                ]  # fmt: skip
                if len(page) < 1000:
                    break
                offset += 1000
    return sorted(events, key=lambda e: e.seq)


def _history_entry(name: str, event: Event) -> HistoryEntry | None:
    payload = event.payload
    version: int | None
    if event.subject_type == "model":
        version = payload.get("version")
        alias = payload.get("alias")
        reason = payload.get("reason")
        from_status = to_status = None
    else:
        tail = event.subject_id.removeprefix(f"models:/{name}/")
        if not tail.isdigit():
            return None
        version, alias = int(tail), None
        from_status, to_status = payload.get("from"), payload.get("to")
        reason = payload.get("reason") or payload.get("comment")
        if event.kind == "version.registered":
            to_status = VersionStatus.REGISTERED.value
    return HistoryEntry(
        at=event.occurred_at, actor=event.actor, kind=event.kind, version=version, alias=alias,
        from_status=from_status, to_status=to_status, reason=reason, seq=event.seq,
    )  # fmt: skip
