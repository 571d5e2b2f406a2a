"""Request bodies of run tracking."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from steward.domain.enums import RunStatus
from steward.schemas import NoNulText, RequestBody
from steward.schemas.registry import Tags

MAX_BATCH_POINTS = 100_000
MAX_STEP = 2**63 - 1  # steps are 64-bit integer columns


class Request(RequestBody):
    pass


class RunCreate(Request):
    name: str | None = Field(default=None, max_length=256)
    project: str = Field(default="default", min_length=1, max_length=256)
    params: dict[str, str] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _params_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


class RunEnd(Request):
    status: RunStatus = RunStatus.FINISHED


class MetricIn(BaseModel):
    """One point of a batch; every check runs in pydantic-core (no Python per point)."""

    model_config = ConfigDict(extra="forbid")

    key: NoNulText = Field(min_length=1, max_length=256)
    value: float = Field(strict=True, allow_inf_nan=False)
    step: int = Field(default=0, ge=0, le=MAX_STEP)
    timestamp: AwareDatetime | None = None


class LogBatch(Request):
    bulk_fields = frozenset({"metrics"})

    metrics: list[MetricIn] = Field(default_factory=list, max_length=MAX_BATCH_POINTS)
    params: dict[str, str] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _params_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


__all__ = ["LogBatch", "MetricIn", "RunCreate", "RunEnd"]
