"""Checks on the release process: a way back, and people who signed off."""

from __future__ import annotations

from pydantic import Field, field_validator

from steward.domain.enums import Role
from steward.domain.gates import Approval, GateContext, Outcome
from steward.gates.checks._base import BaseCheck, CheckParams, Finding, NoParams, Unmet


class RollbackReady(BaseCheck[NoParams]):
    name = "rollback_ready"
    Params = NoParams

    def title(self, params: NoParams) -> str:
        return "a previous production version or a fallback can take traffic back"

    def evaluate(self, params: NoParams, ctx: GateContext) -> Finding:
        evidence = {
            "rollback_targets": list(ctx.rollback_targets),
            "fallback_configured": ctx.fallback_configured,
            "previously_in_production": list(ctx.previously_in_production),
        }
        ways = [f"v{version}" for version in ctx.rollback_targets]
        if ctx.fallback_configured:
            ways.append("the fallback")
        if ways:
            return Finding(Outcome.PASSED, f"traffic can go back to {', '.join(ways)}", evidence)
        if _first_release(ctx):
            raise Unmet(
                "first release of this model: no version was in production before, and no "
                "fallback is configured",
                outcome=Outcome.NOT_APPLICABLE,
                evidence=evidence,
            )
        return Finding(
            Outcome.FAILED,
            "no previous production version can take traffic back and no fallback is "
            "configured; configure a fallback or keep the previous version deployable",
            evidence,
        )


def _first_release(ctx: GateContext) -> bool:
    # a champion other than this version is in production now, even if nothing recorded it
    other_champion = ctx.champion is not None and ctx.champion.version != ctx.version.version
    return not ctx.previously_in_production and not other_champion


class ApprovalsParams(CheckParams):
    count: int = Field(default=1, ge=1)
    role: Role = Role.APPROVER  # the least role whose approval counts

    @field_validator("role")
    @classmethod
    def _may_approve(cls, value: Role) -> Role:
        if not value.allows(Role.APPROVER):
            raise ValueError("approvals count only from the approver or admin role")
        return value


class Approvals(BaseCheck[ApprovalsParams]):
    name = "approvals"
    Params = ApprovalsParams

    def title(self, params: ApprovalsParams) -> str:
        plural = "" if params.count == 1 else "s"
        return f"{params.count} approval{plural} by {params.role} or above, not the author"

    def evaluate(self, params: ApprovalsParams, ctx: GateContext) -> Finding:
        author = ctx.version.created_by
        counted: dict[str, Role] = {}
        refused: dict[str, str] = {}
        for approval in _approvals_of_this_version(ctx):
            reason = _why_not_counted(approval, author, params.role)
            if reason is None:
                counted.setdefault(approval.approver, approval.role)
            else:
                refused[approval.approver] = reason
        # a person counted through one approval is not also listed as refused through another
        refused = {who: why for who, why in refused.items() if who not in counted}
        found = f"{len(counted)} of {params.count} approval(s)"
        if counted:
            found += ": " + ", ".join(f"{who} ({role})" for who, role in counted.items())
        else:
            found += "; nobody has approved yet" if not refused else ""
        if refused:
            found += "; not counted: " + "; ".join(refused.values())
        outcome = Outcome.PASSED if len(counted) >= params.count else Outcome.PENDING
        return Finding(
            outcome,
            found,
            {
                "required": params.count,
                "approved_by": list(counted),
                "not_counted": refused,
                "author": author,
            },
        )


def _approvals_of_this_version(ctx: GateContext) -> list[Approval]:
    version = ctx.version
    return [
        approval
        for approval in ctx.approvals
        if approval.model_name == version.model_name and approval.version == version.version
    ]


def _why_not_counted(approval: Approval, author: str, needed: Role) -> str | None:
    if approval.approver == author:
        # separation of duties: whatever their role, nobody signs off their own work
        return f"{approval.approver} is the version's author"
    if not approval.role.allows(needed):
        return f"{approval.approver} has role {approval.role}, below {needed}"
    return None
