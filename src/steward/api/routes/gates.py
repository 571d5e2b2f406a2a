"""Release gates: evaluations, gate reports, approvals, promotion, history, policies.

Roles: reading needs viewer; evaluating, gating and the moves to staging, deprecated and
archived need developer; approving, promoting to production, writing policies and recording
a reproduction need approver. The store enforces the release rules itself (a passed, current
gate; no self-approval) whoever calls it. The server never runs a reproduction: that would
execute a recorded command in the server process. ``steward reproduce`` runs it on the
caller's machine and posts the outcome here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, TypeAdapter

from steward.api.auth import Principal, requires
from steward.api.deps import Developer, ServicesDep, Viewer
from steward.api.render import json_list_response, json_response
from steward.api.routing import JsonRoute
from steward.auth.service import require_role
from steward.domain.clock import utcnow
from steward.domain.enums import Role, VersionStatus
from steward.domain.evaluation import Evaluation
from steward.domain.gates import (
    Approval,
    GateReport,
    LifecycleReview,
    Reproduction,
    StoredPolicy,
)
from steward.domain.uri import check_model_name, version_uri
from steward.gates.report import render_html
from steward.schemas.gates import (
    ApprovalCreate,
    ApprovalResult,
    EvaluationCreate,
    GateRun,
    History,
    HistoryEntry,
    Move,
    PolicyAssign,
    PolicyCreate,
    PolicyUpload,
    ReproductionRecord,
    TransitionCreate,
)
from steward.schemas.registry import MAX_VERSION

router = APIRouter(tags=["gates"], route_class=JsonRoute)

Approving = Annotated[Principal, Depends(requires(Role.APPROVER, "Approving a version"))]
PolicyWriter = Annotated[Principal, Depends(requires(Role.APPROVER, "Changing release policies"))]
Recording = Annotated[Principal, Depends(requires(Role.APPROVER, "Recording a reproduction"))]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]
_VERSION = "/models/{name}/versions/{version}"

_EVALUATIONS = TypeAdapter(list[Evaluation])
_APPROVALS = TypeAdapter(list[Approval])
_MOVES = TypeAdapter(list[Move])
_POLICIES = TypeAdapter(list[StoredPolicy])


def _uri(name: str, version: int) -> str:
    return version_uri(check_model_name(name), version)


# evaluations --------------------------------------------------------------------------------
@router.post(
    f"{_VERSION}/evaluations", response_model=Evaluation, status_code=status.HTTP_201_CREATED
)
def evaluate(
    name: str, version: VersionNumber, body: EvaluationCreate, services: ServicesDep,
    who: Developer,
) -> Response:  # fmt: skip
    """Evaluate the version on a Parquet table uploaded with ``POST /artifacts``."""
    evaluation = services.gates.evaluate(
        who.name, _uri(name, version), data_digest=body.data_digest, label=body.label,
        groups=body.groups, resamples=body.resamples, seed=body.seed,
        latency_calls=body.latency_calls, batch_size=body.batch_size,
    )  # fmt: skip
    return json_response(evaluation, status_code=201)


@router.get(f"{_VERSION}/evaluations", response_model=list[Evaluation])
def list_evaluations(
    name: str, version: VersionNumber, services: ServicesDep, _: Viewer
) -> Response:
    """The version's evaluations, oldest first."""
    return json_list_response(_EVALUATIONS, services.gates.list_evaluations(_uri(name, version)))


# gate reports -------------------------------------------------------------------------------
@router.post(f"{_VERSION}/gate", response_model=GateReport, status_code=status.HTTP_201_CREATED)
def run_gate(
    name: str, version: VersionNumber, services: ServicesDep, who: Developer,
    body: GateRun | None = None,
) -> Response:  # fmt: skip
    """Run the model's policy (or the ``policy`` text sent) on the version's evidence."""
    policy = body.policy if body is not None else None
    report = services.gates.gate(who.name, _uri(name, version), policy_text=policy)
    return json_response(report, status_code=201)


@router.get(
    f"{_VERSION}/gate",
    response_model=GateReport,
    responses={200: {"content": {"text/html": {}}}},
)
def latest_report(
    name: str, version: VersionNumber, services: ServicesDep, _: Viewer,
    format: Literal["json", "html"] = "json",
) -> Response:  # fmt: skip
    """The version's latest gate report; ``?format=html`` gives it as a standalone web page."""
    report = services.gates.latest_report(_uri(name, version))
    if format == "html":
        return HTMLResponse(render_html(report))
    return json_response(report)


# approvals ----------------------------------------------------------------------------------
@router.post(
    f"{_VERSION}/approvals", response_model=ApprovalResult, status_code=status.HTTP_201_CREATED
)
def approve(
    name: str, version: VersionNumber, services: ServicesDep, who: Approving,
    body: ApprovalCreate | None = None,
) -> Response:  # fmt: skip
    """Approve the version (not its author), then re-run its gate."""
    comment = body.comment if body is not None else None
    approval, report = services.gates.approve(
        who.name, who.role, _uri(name, version), comment=comment
    )
    return json_response(ApprovalResult(approval=approval, report=report), status_code=201)


@router.get(f"{_VERSION}/approvals", response_model=list[Approval])
def list_approvals(name: str, version: VersionNumber, services: ServicesDep, _: Viewer) -> Response:
    return json_list_response(_APPROVALS, services.gates.approvals(_uri(name, version)))


# lifecycle ----------------------------------------------------------------------------------
@router.post(
    f"{_VERSION}/transitions", response_model=list[Move], status_code=status.HTTP_201_CREATED
)
def transition(
    name: str, version: VersionNumber, body: TransitionCreate, services: ServicesDep,
    who: Developer,
) -> Response:  # fmt: skip
    """Move the version (staging, production, deprecated, archived); production needs the
    approver role, and staging and production a passed, current gate report."""
    if body.to is VersionStatus.PRODUCTION:
        require_role(who.role, Role.APPROVER, "Promoting to production")
    moves = services.gates.promote(who.name, _uri(name, version), body.to, reason=body.reason)
    out = [Move(version=m.version, from_status=m.from_status, to_status=m.to_status) for m in moves]
    return Response(_MOVES.dump_json(out), status_code=201, media_type="application/json")


@router.get("/models/{name}/history", response_model=History)
def history(
    name: str, services: ServicesDep, _: Viewer,
    at: Annotated[AwareDatetime | None, Query(description="ISO-8601 with a time zone")] = None,
) -> Response:  # fmt: skip
    """Which version held each alias at ``at`` (default now), and the moves up to then."""
    check_model_name(name)
    entries = services.gates.history(name, at=at)
    aliases = services.gates.state_at(name, at or utcnow())
    return json_response(
        History(
            model=name, at=at, aliases=aliases,
            entries=[HistoryEntry.model_validate(e, from_attributes=True) for e in entries],
        )
    )  # fmt: skip


# reproductions ------------------------------------------------------------------------------
@router.post(
    f"{_VERSION}/reproductions", response_model=Reproduction, status_code=status.HTTP_201_CREATED
)
def record_reproduction(
    name: str, version: VersionNumber, body: ReproductionRecord, services: ServicesDep,
    who: Recording,
) -> Response:  # fmt: skip
    """Record the outcome of a reproduction the caller ran (``steward reproduce``); the server
    itself never runs one."""
    recorded = services.gates.record_reproduction(who.name, _uri(name, version), body)
    return json_response(recorded, status_code=201)


# policies -----------------------------------------------------------------------------------
@router.get("/policies", response_model=list[StoredPolicy])
def list_policies(services: ServicesDep, _: Viewer) -> Response:
    """The latest revision of every stored policy."""
    return json_list_response(_POLICIES, services.gates.list_policies())


@router.post("/policies", response_model=StoredPolicy, status_code=status.HTTP_201_CREATED)
def create_policy(body: PolicyCreate, services: ServicesDep, who: PolicyWriter) -> Response:
    """Store a policy's text as the next revision of the policy it names (and, with ``model``,
    make it that model's policy)."""
    saved = services.gates.set_policy(who.name, body.text, model=body.model)
    return json_response(saved, status_code=201)


@router.get("/policies/{name}", response_model=StoredPolicy)
def get_policy(
    name: str, services: ServicesDep, _: Viewer,
    revision: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> Response:  # fmt: skip
    """A policy's latest revision, or ``?revision=N``."""
    return json_response(services.gates.get_policy(name, revision=revision))


@router.put("/policies/{name}", response_model=StoredPolicy)
def put_policy(name: str, body: PolicyUpload, services: ServicesDep, who: PolicyWriter) -> Response:
    """Store the text (which must name this policy) as its next revision."""
    return json_response(services.gates.set_policy(who.name, body.text, name=name))


@router.get("/models/{name}/policy", response_model=StoredPolicy)
def model_policy(
    name: str, services: ServicesDep, _: Viewer,
    revision: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> Response:  # fmt: skip
    """The policy in force for the model (its own, or its risk tier's), or ``?revision=N``."""
    check_model_name(name)
    return json_response(services.gates.get_policy(model=name, revision=revision))


@router.put("/models/{name}/policy", response_model=StoredPolicy)
def assign_policy(
    name: str, body: PolicyAssign, services: ServicesDep, who: PolicyWriter
) -> Response:
    """Gate the model by the stored policy named ``policy`` (null: its tier's default)."""
    check_model_name(name)
    services.gates.assign_policy(who.name, name, body.policy)
    return json_response(services.gates.get_policy(model=name))


# lifecycle review ---------------------------------------------------------------------------
Days = Annotated[int, Query(ge=0, le=36_500)]


@router.get("/lifecycle/review", response_model=LifecycleReview)
def lifecycle_review(
    services: ServicesDep, who: Viewer, staging_days: Days = 30, archive_after_days: Days = 90
) -> Response:
    return json_response(services.gates.lifecycle_review(
        who.name, staging_days=staging_days, archive_after_days=archive_after_days,
    ))  # fmt: skip


@router.post("/lifecycle/archive", response_model=LifecycleReview)
def apply_archival_policy(
    services: ServicesDep,
    who: Annotated[Principal, Depends(requires(Role.APPROVER, "Applying the archival policy"))],
    staging_days: Days = 30,
    archive_after_days: Days = 90,
) -> Response:
    return json_response(services.gates.lifecycle_review(
        who.name, staging_days=staging_days, archive_after_days=archive_after_days, apply=True,
    ))  # fmt: skip
