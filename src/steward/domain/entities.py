"""The registry's entities, as immutable pydantic models (pure data, no I/O).

They double as the API's response bodies: a wire schema that only repeated these fields would
be a second copy to keep in step, so ``schemas/`` holds the request bodies and pages only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from steward.domain.enums import Flavor, Role, RunStatus, VersionStatus
from steward.domain.signature import Signature

CARD_SECTIONS = (
    "intended_use",
    "limitations",
    "ethical_considerations",
    "training_data",
    "evaluation",
)


class Entity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Model(Entity):
    id: str
    name: str
    owner: str
    team: str | None = None
    risk_tier: int = 3
    use_case: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    card: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    latest_version: int | None = None
    policy: str | None = None  # the release policy assigned; None = its risk tier's default
    created_at: datetime
    created_by: str
    updated_at: datetime


class ArtifactRef(Entity):
    """A content-addressed blob: ``digest`` is ``sha256:<hex>`` of the bytes."""

    digest: str
    size: int


class GitInfo(Entity):
    commit: str | None = None
    dirty: bool | None = None
    branch: str | None = None
    remote: str | None = None


class Lineage(Entity):
    git: GitInfo = Field(default_factory=GitInfo)
    training_data: str | None = None  # fingerprint, "sha256:<hex>"
    evaluation_data: str | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    command: str | None = None
    run_id: str | None = None
    external: dict[str, str] = Field(default_factory=dict)  # ids in the system it came from


class ModelVersion(Entity):
    id: str
    model_id: str
    model_name: str
    version: int
    flavor: Flavor
    files: dict[str, ArtifactRef]
    primary_file: str
    signature: Signature | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    reference_sample: ArtifactRef | None = None
    # the sample's profile (steward.stats.profile, JSON), built at registration for monitoring
    reference_profile: ArtifactRef | None = None
    description: str | None = None
    status: VersionStatus = VersionStatus.REGISTERED
    status_changed_at: datetime | None = None  # when the version entered its current status
    trusted: bool = False
    aliases: list[str] = Field(default_factory=list)
    created_at: datetime
    created_by: str

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


class Alias(Entity):
    model_name: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str


class MetricPoint(Entity):
    key: str
    value: float
    step: int = 0
    timestamp: datetime


class RunArtifact(Entity):
    path: str
    digest: str
    size: int


class Run(Entity):
    id: str
    name: str | None = None
    project: str = "default"
    status: RunStatus = RunStatus.RUNNING
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)  # latest value per key
    artifacts: list[RunArtifact] = Field(default_factory=list)
    started_at: datetime
    ended_at: datetime | None = None
    created_by: str


class Event(Entity):
    """One ledger entry; ``hash`` chains to ``prev_hash`` so any edit is detectable."""

    seq: int
    id: str
    occurred_at: datetime
    actor: str
    kind: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str


class Token(Entity):
    """An API token's record; the secret itself is shown once at creation and never stored."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked: bool = False


class VerifyReport(Entity):
    ok: bool
    events_checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of results; pass ``next_page_token`` back to get the next one."""

    items: list[T]
    next_page_token: str | None = None
