"""Request bodies of release gates, and the responses that are not domain entities.

Evaluations, gate reports, approvals, policies and reproductions go back as the domain entities
(``steward.domain.gates``, ``steward.domain.evaluation``); lifecycle moves and the history are
answers assembled by the gates service, given a wire shape here.
"""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from steward.domain.artifacts import check_digest
from steward.domain.enums import VersionStatus
from steward.domain.gates import Approval, GateReport
from steward.schemas import RequestBody
from steward.schemas.registry import check_metrics

# Evaluation defaults, shared by the API body, the SDK, the CLI and GatesService.evaluate.
DEFAULT_RESAMPLES = 1000
DEFAULT_LATENCY_CALLS = 200  # timed predict calls per latency case
DEFAULT_BATCH_SIZE = 256  # rows per batch call when timing
MAX_POLICY_CHARS = 1_000_000
MAX_TEXT = 5000
MAX_SEED = 2**32 - 1


class EvaluationCreate(RequestBody):
    """Evaluate a version on a Parquet table uploaded with ``POST /artifacts``."""

    data_digest: str = Field(description="sha256:<hex> of the uploaded Parquet table")
    label: str = Field(min_length=1, max_length=256, description="The column of true values")
    groups: list[str] = Field(
        default_factory=list, max_length=32, description="Columns to report per group"
    )
    resamples: int = Field(default=DEFAULT_RESAMPLES, ge=0, le=100_000)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    latency_calls: int = Field(
        default=DEFAULT_LATENCY_CALLS, ge=1, le=100_000,
        description="Timed predict calls per latency case",
    )  # fmt: skip
    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, ge=1, le=100_000, description="Rows per batch call"
    )

    @field_validator("data_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        check_digest(value)
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or len(name) > 256:
                raise ValueError(f"group column names must be 1-256 characters, got {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("a group column is named twice")
        return value


class GateRun(RequestBody):
    """Run the gate; ``policy`` is an ad hoc policy text instead of the one in force."""

    policy: str | None = Field(default=None, min_length=1, max_length=MAX_POLICY_CHARS)


class ApprovalCreate(RequestBody):
    comment: str | None = Field(default=None, max_length=MAX_TEXT)


class TransitionCreate(RequestBody):
    to: VersionStatus
    reason: str | None = Field(default=None, max_length=MAX_TEXT)


class PolicyCreate(RequestBody):
    """A policy's YAML text; with ``model``, also make it the policy that model is gated by."""

    text: str = Field(min_length=1, max_length=MAX_POLICY_CHARS)
    model: str | None = None


class PolicyUpload(RequestBody):
    text: str = Field(min_length=1, max_length=MAX_POLICY_CHARS)


class PolicyAssign(RequestBody):
    """The policy a model is gated by; null goes back to its tier's default."""

    policy: str | None = Field(min_length=1, max_length=256)


class ReproductionRecord(RequestBody):
    """The outcome of ``steward reproduce``, run on the caller's machine, to be recorded."""

    matched: bool
    tolerance: float = Field(ge=0)
    recorded: dict[str, float] = Field(default_factory=dict)
    reproduced: dict[str, float] = Field(default_factory=dict)
    data_fingerprints_matched: bool | None = None
    detail: str = Field(max_length=20_000)

    @field_validator("tolerance")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"the tolerance must be a finite number, got {value!r}")
        return value

    @field_validator("recorded", "reproduced")
    @classmethod
    def _metrics(cls, value: dict[str, float]) -> dict[str, float]:
        return check_metrics(value)


# responses ------------------------------------------------------------------------------------
class Move(BaseModel):
    """One lifecycle move made by a promotion."""

    version: int
    from_status: VersionStatus
    to_status: VersionStatus


class ApprovalResult(BaseModel):
    """An approval and the gate report re-run after it (the version moves once enough are in)."""

    approval: Approval
    report: GateReport


class HistoryEntry(BaseModel):
    """Who moved what, when and why: one lifecycle move or alias change, from the ledger."""

    at: datetime
    actor: str
    kind: str
    version: int | None = None
    alias: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    seq: int


class History(BaseModel):
    """A model's alias state at ``at`` (now, when not given) and the moves up to then."""

    model: str
    at: datetime | None = None
    aliases: dict[str, int]  # alias -> the version holding it at that time
    entries: list[HistoryEntry]
