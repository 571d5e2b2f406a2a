"""The release-gate part of the read and write sessions (mixed into SqlReadSession and
SqlWriteSession): evidence for a gate, and the writes whose rules the store enforces."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from steward.domain.deployments import FallbackKind
from steward.domain.entities import ModelVersion
from steward.domain.enums import Role
from steward.domain.enums import VersionStatus as S
from steward.domain.evaluation import Evaluation
from steward.domain.gates import (
    Approval,
    GateContext,
    GateReport,
    Reproduction,
    StoredPolicy,
    Verdict,
)
from steward.domain.lifecycle import check_requested_move
from steward.domain.uri import version_uri
from steward.store.sql import _deployments, _gates, _registry
from steward.store.sql.tables import (
    EvaluationRow,
    GateReportRow,
    ModelRow,
    ModelVersionRow,
    ReproductionRow,
)


class GateReads:
    session: Session

    def get_policy(self, name: str, revision: int | None = None) -> StoredPolicy | None:
        return _gates.get_policy(self.session, name, revision)

    def list_policies(self) -> list[StoredPolicy]:
        return _gates.list_policies(self.session)

    def effective_policy(self, model_name: str) -> tuple[str, StoredPolicy | None]:
        """The name of the policy ``model_name`` is gated by, and its stored text if any."""
        model = _registry.get_model_row(self.session, model_name)
        return _gates.policy_name_for(model), _gates.effective_policy(self.session, model)

    def versions_with_status(self, statuses: Sequence[S]) -> list[ModelVersion]:
        """Every version, of any model, in one of ``statuses`` (lifecycle review)."""
        return _registry.versions_where(
            self.session, ModelVersionRow.status.in_([s.value for s in statuses])
        )

    def list_evaluations(self, name: str, version: int) -> list[Evaluation]:
        model, row = self._rows(name, version)
        return _gates.list_evaluations(self.session, row, model.name)

    def latest_gate_report(self, name: str, version: int) -> GateReport | None:
        model, row = self._rows(name, version)
        return _gates.latest_report(self.session, row, model.name)

    def approvals(self, name: str, version: int) -> list[Approval]:
        model, row = self._rows(name, version)
        return _gates.approvals(self.session, row, model.name)

    def gate_context(self, name: str, version: int, now: datetime) -> GateContext:
        """What the store knows that a gate's checks read (drift rules are added by the
        capability that owns them)."""
        model_row, row = self._rows(name, version)
        evaluation = _gates.latest_evaluation(self.session, row, name)
        champion = _gates.champion_row(self.session, model_row)
        champion_evaluation = None
        if champion is not None and champion.id != row.id and evaluation is not None:
            champion_evaluation = _gates.latest_evaluation(
                self.session, champion, name, evaluation.data_fingerprint
            )
        released = _gates.released_versions(self.session, name) - {version}
        loadable = _gates.versions_in(self.session, model_row, (S.PRODUCTION, S.DEPRECATED))
        others = champion is not None and champion.id != row.id
        return GateContext(
            model=_registry.model_entities(self.session, [model_row])[0],
            version=_registry.version_entities(self.session, [row])[0],
            evaluation=evaluation,
            champion=_registry.version_entities(self.session, [champion])[0]
            if champion is not None and others
            else None,
            champion_evaluation=champion_evaluation,
            approvals=_gates.approvals(self.session, row, name),
            reproduction=_gates.latest_reproduction(self.session, row, name),
            rollback_targets=sorted(released & loadable),
            previously_in_production=sorted(released),
            fallback_configured=_answers_without_a_model(self.session, name),
            now=now,
        )

    def _rows(self, name: str, version: int) -> tuple[ModelRow, ModelVersionRow]:
        model = _registry.get_model_row(self.session, name)
        return model, _gates.version_row(self.session, model, version)


def _answers_without_a_model(session: Session, model: str) -> bool:
    """Whether a deployment of ``model`` has a rule or a default answer in its fallback chain:
    a way to keep answering that needs no version of the model at all."""
    kinds = {FallbackKind.RULE, FallbackKind.DEFAULT}
    return any(
        step.kind in kinds
        for deployment in _deployments.list_all(session, model)
        for step in deployment.fallbacks
    )


class GateWrites(GateReads):
    actor: str

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None: ...

    def save_policy(self, name: str, text: str, digest: str, at: datetime) -> StoredPolicy:
        before = _gates.get_policy(self.session, name)
        saved = _gates.save_policy(self.session, name, text, digest, at, self.actor)
        if before is None or before.revision != saved.revision:
            self.record(
                "policy.saved", "policy", name, {"revision": saved.revision, "digest": digest}
            )
        return saved

    def assign_policy(self, model_name: str, policy_name: str | None) -> None:
        model = _registry.get_model_row(self.session, model_name)
        model.policy = policy_name
        self.session.flush()
        self.record("model.policy_assigned", "model", model_name, {"policy": policy_name})

    def add_evaluation(self, name: str, version: int, values: dict[str, Any]) -> Evaluation:
        model, row = self._rows(name, version)
        stored = EvaluationRow(id=str(uuid.uuid4()), version_id=row.id, **values)
        self.session.add(stored)
        self.session.flush()
        evaluation = _gates.evaluation_entity(stored, model.name, version)
        self.record(
            "version.evaluated", "model_version", version_uri(name, version),
            {"evaluation_id": evaluation.id, "data_fingerprint": evaluation.data_fingerprint,
             "task": evaluation.summary.task.value, "n_rows": evaluation.summary.n_rows,
             "metrics": {k: e.value for k, e in evaluation.summary.metrics.items()}},
        )  # fmt: skip
        return evaluation

    def add_gate_report(self, name: str, version: int, values: dict[str, Any]) -> GateReport:
        """Store a gate report and move the version as its verdict says, in one transaction."""
        model, row = self._rows(name, version)
        stored = GateReportRow(id=str(uuid.uuid4()), version_id=row.id, **values)
        self.session.add(stored)
        self.session.flush()
        report = _gates.report_entity(stored, model.name, version)
        uri = version_uri(name, version)
        self.record(
            "gate.evaluated", "model_version", uri,
            {"report_id": report.id, "verdict": report.verdict.value,
             "policy": report.policy.model_dump(), "evaluation_id": report.evaluation_id,
             "failed": [r.check for r in report.results if r.outcome.value == "failed"]},
        )  # fmt: skip
        target = _gates.status_after_report(row, report.verdict)
        if target is not S(row.status):
            self._move(row, uri, target, values["created_at"], f"gate {report.verdict.value}")
        return report

    def add_approval(
        self, name: str, version: int, role: Role, comment: str | None, at: datetime
    ) -> Approval:
        _, row = self._rows(name, version)
        uri = version_uri(name, version)
        _gates.add_approval(
            self.session, row, uri, approver=self.actor, role=role, comment=comment, at=at
        )
        self.record("version.approved", "model_version", uri, {"role": role, "comment": comment})
        return next(
            a for a in _gates.approvals(self.session, row, name) if a.approver == self.actor
        )

    def add_reproduction(self, name: str, version: int, values: dict[str, Any]) -> Reproduction:
        model, row = self._rows(name, version)
        self.session.add(ReproductionRow(id=str(uuid.uuid4()), version_id=row.id, **values))
        self.session.flush()
        reproduction = _gates.latest_reproduction(self.session, row, model.name)
        assert reproduction is not None
        self.record(
            "version.reproduced", "model_version", version_uri(name, version),
            {"reproduction_id": reproduction.id, "matched": reproduction.matched,
             "tolerance": reproduction.tolerance},
        )  # fmt: skip
        return reproduction

    def transition(
        self, name: str, version: int, target: S, reason: str | None, at: datetime
    ) -> list[tuple[int, S, S]]:
        """Move a version as a person asked; return every (version, from, to) move made.

        Staging and production need a passed, current gate report; production also moves the
        `champion` alias here and retires the previous champion to deprecated, its rollback
        target.
        """
        model, row = self._rows(name, version)
        uri = version_uri(name, version)
        current = S(row.status)
        moves: list[tuple[int, S, S]] = []
        if target in (S.STAGING, S.PRODUCTION):
            report = _gates.check_can_release(self.session, model, row, uri, target)
            reason = reason or f"gate report {report.id} passed"
        else:
            check_requested_move(current, target, uri=uri)
        if target is S.PRODUCTION:
            previous = _gates.champion_row(self.session, model)
            if previous is not None and previous.id != row.id:
                before = S(previous.status)
                if before is S.PRODUCTION:
                    self._move(
                        previous, version_uri(name, previous.version), S.DEPRECATED, at,
                        f"replaced in production by v{version}",
                    )  # fmt: skip
                    moves.append((previous.version, before, S.DEPRECATED))
            old, move = _registry.upsert_alias(
                self.session, model.id, "champion", row.id,
                {"updated_at": at, "updated_by": self.actor},
            )  # fmt: skip
            if move is not None:  # now: this transaction reads the aliases again below
                statement, rows = move
                statement.execute_rows(self.session.connection(), rows)
            self.record(
                "alias.set", "model", name,
                {"alias": "champion", "version": version, "previous_version": old,
                 "reason": f"promoted to production: {reason}"},
            )  # fmt: skip
        self._move(row, uri, target, at, reason)
        moves.append((version, current, target))
        return moves

    def _move(
        self, row: ModelVersionRow, uri: str, target: S, at: datetime, reason: str | None
    ) -> None:
        before = row.status
        _gates.set_status(self.session, row, target, at)
        self.record(
            _gates.TRANSITION_EVENT, "model_version", uri,
            {"from": before, "to": target.value, "reason": reason},
        )  # fmt: skip


__all__ = ["GateReads", "GateWrites", "Verdict"]
