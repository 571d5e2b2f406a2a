"""Request bodies of run tracking."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field, StrictFloat, field_validator

from steward.domain.enums import RunStatus
from steward.schemas import RequestBody
from steward.schemas.registry import Tags, check_metrics

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


class MetricIn(Request):
    key: str = Field(min_length=1, max_length=256)
    value: StrictFloat
    step: int = Field(default=0, ge=0, le=MAX_STEP)
    timestamp: AwareDatetime | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        check_metrics({"value": value})
        return float(value)


class LogBatch(Request):
    metrics: list[MetricIn] = Field(default_factory=list, max_length=MAX_BATCH_POINTS)
    params: dict[str, str] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _params_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


__all__ = ["LogBatch", "MetricIn", "RunCreate", "RunEnd", "datetime"]
