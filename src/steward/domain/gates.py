"""Release gates: the evidence a gate reads, what each check found, and the report.

Pure data. Checks (``steward.gates.checks``) are functions of a :class:`GateContext`; the gates
capability gathers the context from the store, runs the policy's checks and stores the
:class:`GateReport`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from steward.domain.entities import Entity, Model, ModelVersion
from steward.domain.enums import Role
from steward.domain.evaluation import Evaluation


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    # the evidence is fine but a person still has to act (approvals not yet given)
    PENDING = "pending"


class Verdict(StrEnum):
    PASSED = "passed"  # every check passed or does not apply
    AWAITING_APPROVAL = "awaiting_approval"  # nothing failed; only approvals are pending
    FAILED = "failed"  # at least one check failed


class Approval(Entity):
    model_name: str
    version: int
    approver: str
    role: Role
    comment: str | None = None
    approved_at: datetime


class Reproduction(Entity):
    """A re-run of the recorded training and how its metrics compared with the recorded ones."""

    id: str
    model_name: str
    version: int
    matched: bool
    tolerance: float
    recorded: dict[str, float]
    reproduced: dict[str, float]
    data_fingerprints_matched: bool | None = None
    detail: str  # what was run and, when it did not match, why
    created_at: datetime
    created_by: str


class GateContext(Entity):
    """Everything a check may look at, gathered once before the checks run."""

    model: Model
    version: ModelVersion
    evaluation: Evaluation | None = None  # the latest evaluation of this version
    champion: ModelVersion | None = None  # the version holding the `champion` alias, if another
    champion_evaluation: Evaluation | None = None  # on the same data fingerprint, if any
    approvals: list[Approval] = Field(default_factory=list)
    reproduction: Reproduction | None = None  # the latest reproduction of this version
    # versions of the model that were in production before and can take traffic back
    rollback_targets: list[int] = Field(default_factory=list)
    # other versions of the model that were ever in production, whether or not they can still
    # take traffic: empty means this is the model's first release
    previously_in_production: list[int] = Field(default_factory=list)
    fallback_configured: bool = False
    drift_rules: list[str] = Field(default_factory=list)  # names of the model's drift rules
    now: datetime


class CheckResult(Entity):
    check: str  # the check's registered name, e.g. "metric_floor"
    title: str  # what was required, in words: "roc_auc >= 0.80 (lower bound)"
    outcome: Outcome
    detail: str  # what was found, in words: "roc_auc lower bound 0.83 on sha256:ab12..."
    evidence: dict[str, Any] = Field(default_factory=dict)  # the numbers behind the detail
    params: dict[str, Any] = Field(default_factory=dict)  # as written in the policy


class PolicyRef(Entity):
    name: str
    revision: int
    digest: str  # sha256 of the policy text the gate ran


class GateReport(Entity):
    id: str
    model_name: str
    version: int
    policy: PolicyRef
    verdict: Verdict
    results: list[CheckResult]
    evaluation_id: str | None = None  # the evaluation the metric checks read
    created_at: datetime
    created_by: str


class StoredPolicy(Entity):
    """One revision of a release policy as kept in the store."""

    name: str
    revision: int
    text: str
    digest: str
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(name=self.name, revision=self.revision, digest=self.digest)


class Finding(Entity):
    """One thing a lifecycle review asks a person to look at."""

    model: str
    version: int | None = None
    reason: str
    since: datetime | None = None


class LifecycleReview(Entity):
    at: datetime
    staging_days: int
    archive_after_days: int
    no_owner: list[Finding] = Field(default_factory=list)
    unmonitored_production: list[Finding] = Field(default_factory=list)
    stale_staging: list[Finding] = Field(default_factory=list)
    to_archive: list[Finding] = Field(default_factory=list)
    kept_for_rollback: list[Finding] = Field(default_factory=list)
    archived: list[Finding] = Field(default_factory=list)  # filled when the policy is applied

    @property
    def clean(self) -> bool:
        return not (
            self.no_owner or self.unmonitored_production or self.stale_staging or self.to_archive
        )
