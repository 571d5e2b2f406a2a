"""Request bodies of run tracking."""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError, field_validator, with_config
from pydantic_core import InitErrorDetails
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from steward.domain.enums import RunStatus
from steward.schemas import NUL_MESSAGE, RequestBody
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


@with_config(ConfigDict(extra="forbid"))
class MetricIn(TypedDict):
    """One point of a batch (``step`` defaults to 0, ``timestamp`` to the time of logging).

    A TypedDict, not a model: every check still runs in pydantic-core, and a batch of 1,000
    points validates in half the time when no model instance is built per point (measured).
    """

    key: Annotated[str, Field(min_length=1, max_length=256)]  # NUL: LogBatch checks each key once
    value: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    step: NotRequired[Annotated[int, Field(ge=0, le=MAX_STEP)]]
    timestamp: NotRequired[AwareDatetime | None]


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

    @field_validator("metrics")
    @classmethod
    def _keys_without_nul(cls, metrics: list[MetricIn]) -> list[MetricIn]:
        """NUL looked for once per distinct key (a batch repeats a few keys), not per point:
        a pattern on every point's key took half the validation of 1,000 points (measured:
        1.40 against 0.73 ms). The error still names the first point holding one."""
        if not any("\x00" in key for key in {point["key"] for point in metrics}):
            return metrics
        index = next(i for i, point in enumerate(metrics) if "\x00" in point["key"])
        problem = InitErrorDetails(
            type="value_error", loc=(index, "key"), input=metrics[index]["key"],
            ctx={"error": ValueError(NUL_MESSAGE)},
        )  # fmt: skip
        # pydantic-core puts the field's own location ("metrics") in front of this one
        raise ValidationError.from_exception_data(cls.__name__, [problem])


__all__ = ["LogBatch", "MetricIn", "RunCreate", "RunEnd"]
