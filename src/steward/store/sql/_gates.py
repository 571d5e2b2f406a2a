"""Release-gate records (policies, evaluations, gate reports, approvals, reproductions) and the
lifecycle rules the store enforces itself, inside the caller's transaction.

The rules live here, below every adapter and service, so a caller that goes straight to the
store (or the API) is refused the same way as `steward promote`: a version reaches production
only on a passed gate report that is still current, and an author never approves their own work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from steward.domain.enums import Role
from steward.domain.enums import VersionStatus as S
from steward.domain.evaluation import Evaluation
from steward.domain.gates import (
    Approval,
    GateReport,
    Reproduction,
    StoredPolicy,
    Verdict,
)
from steward.domain.lifecycle import check_requested_move, status_after_gate
from steward.errors import GateFailed, NotFound, PermissionDenied
from steward.store.sql.tables import (
    AliasRow,
    ApprovalRow,
    EvaluationRow,
    EventRow,
    GateReportRow,
    ModelRow,
    ModelVersionRow,
    PolicyRow,
    ReproductionRow,
)

TRANSITION_EVENT = "version.transitioned"


# -- policies -----------------------------------------------------------------------------------
def policy_entity(row: PolicyRow) -> StoredPolicy:
    return StoredPolicy(
        name=row.name,
        revision=row.revision,
        text=row.text,
        digest=row.digest,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def get_policy(session: Session, name: str, revision: int | None = None) -> StoredPolicy | None:
    query = select(PolicyRow).where(PolicyRow.name == name)
    if revision is not None:
        query = query.where(PolicyRow.revision == revision)
    row = session.scalars(query.order_by(PolicyRow.revision.desc()).limit(1)).first()
    return None if row is None else policy_entity(row)


def list_policies(session: Session) -> list[StoredPolicy]:
    latest = (
        select(PolicyRow.name, func.max(PolicyRow.revision).label("revision"))
        .group_by(PolicyRow.name)
        .subquery()
    )
    rows = session.scalars(
        select(PolicyRow)
        .join(
            latest,
            (PolicyRow.name == latest.c.name) & (PolicyRow.revision == latest.c.revision),
        )
        .order_by(PolicyRow.name)
    )
    return [policy_entity(r) for r in rows]


def save_policy(
    session: Session, name: str, text: str, digest: str, at: datetime, actor: str
) -> StoredPolicy:
    """Store ``text`` as the next revision of ``name`` (the same text again is not a revision)."""
    current = get_policy(session, name)
    if current is not None and current.digest == digest:
        return current
    row = PolicyRow(
        name=name,
        revision=(current.revision if current else 0) + 1,
        text=text,
        digest=digest,
        created_at=at,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    return policy_entity(row)


def policy_name_for(model: ModelRow) -> str:
    """The policy a model is gated by: its own assignment, else its risk tier's default."""
    return model.policy or f"tier-{model.risk_tier}"


def effective_policy(session: Session, model: ModelRow) -> StoredPolicy | None:
    return get_policy(session, policy_name_for(model))


# -- evaluations, reports, approvals, reproductions -----------------------------------------------
def evaluation_entity(row: EvaluationRow, model_name: str, version: int) -> Evaluation:
    return Evaluation.model_validate(
        {
            "id": row.id,
            "model_name": model_name,
            "version": version,
            "label": row.label,
            "data_fingerprint": row.data_fingerprint,
            "summary": row.summary,
            "latency": row.latency,
            "created_at": row.created_at,
            "created_by": row.created_by,
        }
    )


def latest_evaluation(
    session: Session, version: ModelVersionRow, model_name: str, fingerprint: str | None = None
) -> Evaluation | None:
    query = select(EvaluationRow).where(EvaluationRow.version_id == version.id)
    if fingerprint is not None:
        query = query.where(EvaluationRow.data_fingerprint == fingerprint)
    row = session.scalars(
        query.order_by(EvaluationRow.created_at.desc(), EvaluationRow.id).limit(1)
    ).first()
    return None if row is None else evaluation_entity(row, model_name, version.version)


def list_evaluations(
    session: Session, version: ModelVersionRow, model_name: str
) -> list[Evaluation]:
    rows = session.scalars(
        select(EvaluationRow)
        .where(EvaluationRow.version_id == version.id)
        .order_by(EvaluationRow.created_at.desc())
    )
    return [evaluation_entity(r, model_name, version.version) for r in rows]


def report_entity(row: GateReportRow, model_name: str, version: int) -> GateReport:
    return GateReport.model_validate(
        {
            "id": row.id,
            "model_name": model_name,
            "version": version,
            "policy": {
                "name": row.policy_name,
                "revision": row.policy_revision,
                "digest": row.policy_digest,
            },
            "verdict": row.verdict,
            "results": row.results,
            "evaluation_id": row.evaluation_id,
            "created_at": row.created_at,
            "created_by": row.created_by,
        }
    )


def latest_report(session: Session, version: ModelVersionRow, model_name: str) -> GateReport | None:
    row = session.scalars(
        select(GateReportRow)
        .where(GateReportRow.version_id == version.id)
        .order_by(GateReportRow.created_at.desc(), GateReportRow.id)
        .limit(1)
    ).first()
    return None if row is None else report_entity(row, model_name, version.version)


def approvals(session: Session, version: ModelVersionRow, model_name: str) -> list[Approval]:
    rows = session.scalars(
        select(ApprovalRow)
        .where(ApprovalRow.version_id == version.id)
        .order_by(ApprovalRow.approved_at)
    )
    return [
        Approval(
            model_name=model_name,
            version=version.version,
            approver=r.approver,
            role=Role(r.role),
            comment=r.comment,
            approved_at=r.approved_at,
        )
        for r in rows
    ]


def latest_reproduction(
    session: Session, version: ModelVersionRow, model_name: str
) -> Reproduction | None:
    row = session.scalars(
        select(ReproductionRow)
        .where(ReproductionRow.version_id == version.id)
        .order_by(ReproductionRow.created_at.desc(), ReproductionRow.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return Reproduction(
        id=row.id,
        model_name=model_name,
        version=version.version,
        matched=row.matched,
        tolerance=row.tolerance,
        recorded=row.recorded,
        reproduced=row.reproduced,
        data_fingerprints_matched=row.data_fingerprints_matched,
        detail=row.detail,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def add_approval(
    session: Session,
    version: ModelVersionRow,
    uri: str,
    *,
    approver: str,
    role: Role,
    comment: str | None,
    at: datetime,
) -> None:
    """Separation of duties, enforced where the approval is written."""
    if not role.allows(Role.APPROVER):
        raise PermissionDenied(
            f"Approving {uri} needs the approver role; {approver} has {role.value}.",
            details={"field": "role", "role": role.value},
        )
    if approver == version.created_by:
        raise PermissionDenied(
            f"{approver} registered {uri} and cannot approve it: an approval must come from "
            "someone other than the version's author.",
            details={"field": "approver", "approver": approver},
        )
    if S(version.status) not in (S.VALIDATED, S.APPROVED, S.STAGING):
        raise GateFailed(
            f"{uri} is {version.status}; only a version whose gate passed can be approved. "
            "Run `steward gate` first.",
            details={"field": "status", "status": version.status},
        )
    existing = session.get(ApprovalRow, (version.id, approver))
    if existing is not None:
        existing.role, existing.comment, existing.approved_at = role.value, comment, at
    else:
        session.add(
            ApprovalRow(
                version_id=version.id,
                approver=approver,
                role=role.value,
                comment=comment,
                approved_at=at,
            )
        )
    session.flush()


# -- the lifecycle ---------------------------------------------------------------------------------
def set_status(session: Session, version: ModelVersionRow, status: S, at: datetime) -> None:
    session.execute(
        update(ModelVersionRow)
        .where(ModelVersionRow.id == version.id)
        .values(status=status.value, status_changed_at=at)
    )
    version.status = status.value


def status_after_report(version: ModelVersionRow, verdict: Verdict) -> S:
    return status_after_gate(
        S(version.status),
        passed=verdict is not Verdict.FAILED,
        approvals_pending=verdict is Verdict.AWAITING_APPROVAL,
    )


def check_can_release(
    session: Session, model: ModelRow, version: ModelVersionRow, uri: str, target: S
) -> GateReport:
    """The passed, current gate report that lets ``version`` move to staging or production."""
    check_requested_move(S(version.status), target, uri=uri)
    report = latest_report(session, version, model.name)
    if report is None or report.verdict is not Verdict.PASSED:
        found = "no gate report" if report is None else f"its latest gate report {report.verdict}"
        raise GateFailed(
            f"{uri} cannot move to {target.value}: {found}. Run `steward gate {uri}` and collect "
            "the approvals it asks for.",
            details={"field": "gate", "target": target.value},
        )
    if S(version.status) is S.DEPRECATED:
        return report  # a rollback goes back on the report it was released on
    policy = effective_policy(session, model)
    if policy is None or policy.digest != report.policy.digest:
        raise GateFailed(
            f"{uri} was gated by policy {report.policy.name} r{report.policy.revision}, but the "
            f"policy now in force is {policy_name_for(model)}"
            + (f" r{policy.revision}" if policy else " (not stored yet)")
            + f". Run `steward gate {uri}` again.",
            details={"field": "gate", "reason": "policy_changed"},
        )
    newest = latest_evaluation(session, version, model.name)
    if newest is not None and newest.id != report.evaluation_id:
        raise GateFailed(
            f"{uri} has an evaluation ({newest.id}, {newest.created_at:%Y-%m-%d %H:%M}) newer "
            f"than its gate report: the evidence changed. Run `steward gate {uri}` again.",
            details={"field": "gate", "reason": "stale_evidence"},
        )
    return report


def champion_row(session: Session, model: ModelRow) -> ModelVersionRow | None:
    return session.scalars(
        select(ModelVersionRow)
        .join(AliasRow, AliasRow.version_id == ModelVersionRow.id)
        .where(AliasRow.model_id == model.id, AliasRow.alias == "champion")
    ).first()


def version_row(session: Session, model: ModelRow, number: int) -> ModelVersionRow:
    row = session.scalars(
        select(ModelVersionRow).where(
            ModelVersionRow.model_id == model.id, ModelVersionRow.version == number
        )
    ).first()
    if row is None:
        raise NotFound(
            f"Model {model.name!r} has no version {number}.",
            details={"field": "version", "name": model.name, "version": number},
        )
    return row


def versions_in(session: Session, model: ModelRow, statuses: tuple[S, ...]) -> set[int]:
    rows = session.scalars(
        select(ModelVersionRow.version).where(
            ModelVersionRow.model_id == model.id,
            ModelVersionRow.status.in_([s.value for s in statuses]),
        )
    )
    return set(rows)


def released_versions(session: Session, model_name: str) -> set[int]:
    """Version numbers of ``model_name`` that the ledger shows in production at some time."""
    prefix = f"models:/{model_name}/"
    rows = session.execute(
        select(EventRow.subject_id, EventRow.payload).where(
            EventRow.kind == TRANSITION_EVENT,
            EventRow.subject_type == "model_version",
            func.substr(EventRow.subject_id, 1, len(prefix)) == prefix,
        )
    )
    released: set[int] = set()
    for subject_id, payload in rows:
        if dict(payload).get("to") == S.PRODUCTION.value:
            tail = subject_id[len(prefix) :]
            if tail.isdigit():
                released.add(int(tail))
    return released
