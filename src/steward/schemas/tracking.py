"""Request bodies of run tracking."""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
    with_config,
)
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


MetricKey = Annotated[str, Field(min_length=1, max_length=256)]  # NUL: checked once per key
FiniteValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Step = Annotated[int, Field(ge=0, le=MAX_STEP)]


@with_config(ConfigDict(extra="forbid"))
class MetricIn(TypedDict):
    """One point of a batch (``step`` defaults to 0, ``timestamp`` to the time of logging).

    A TypedDict, not a model: every check still runs in pydantic-core, and a batch of 1,000
    points validates in half the time when no model instance is built per point (measured).
    """

    key: MetricKey
    value: FiniteValue
    step: NotRequired[Step]
    timestamp: NotRequired[AwareDatetime | None]


class MetricColumns(Request):
    """A batch's points as columns, entry ``i`` of each being point ``i``: the compact form
    the SDK sends (``step`` 0 and ``timestamp`` the time of logging where left out).

    A thousand points validate in a third of the time of the same points as objects (0.22
    against 0.73 ms, measured), and the body is 40% smaller.
    """

    bulk_fields = frozenset({"key", "value", "step", "timestamp"})

    key: list[MetricKey] = Field(max_length=MAX_BATCH_POINTS)
    value: list[FiniteValue] = Field(max_length=MAX_BATCH_POINTS)
    step: list[Step] | None = Field(default=None, max_length=MAX_BATCH_POINTS)
    timestamp: list[AwareDatetime | None] | None = Field(default=None, max_length=MAX_BATCH_POINTS)

    @field_validator("key")
    @classmethod
    def _keys_without_nul(cls, keys: list[str]) -> list[str]:
        _refuse_nul(keys)
        return keys

    @model_validator(mode="after")
    def _one_entry_per_point(self) -> MetricColumns:
        for name in ("value", "step", "timestamp"):
            column = getattr(self, name)
            if column is not None and len(column) != len(self.key):
                raise _invalid(
                    (name,), len(column),
                    f"it has {len(column)} entries and 'key' {len(self.key)}: every column "
                    "needs one entry per point",
                )  # fmt: skip
        return self


class LogBatch(Request):
    bulk_fields = frozenset({"metrics", "metric_columns"})

    metrics: list[MetricIn] = Field(default_factory=list, max_length=MAX_BATCH_POINTS)
    metric_columns: MetricColumns | None = None  # more points, as columns (after ``metrics``)
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
        _refuse_nul([point["key"] for point in metrics], "key")
        return metrics

    @model_validator(mode="after")
    def _at_most_max_points(self) -> LogBatch:
        if self.points > MAX_BATCH_POINTS:
            raise ValueError(
                f"the batch holds {self.points:,} points; at most {MAX_BATCH_POINTS:,} go in "
                "one batch: split it"
            )
        return self

    @property
    def points(self) -> int:
        columns = self.metric_columns
        return len(self.metrics) + (0 if columns is None else len(columns.key))


def _refuse_nul(keys: list[str], *under: str) -> None:
    """NUL looked for once per distinct key (a batch repeats a few keys), not per point: a
    pattern on every point's key took half the validation of 1,000 points (measured: 1.40
    against 0.73 ms). The error still names the first point holding one (its index, then
    ``under``)."""
    if not any("\x00" in key for key in set(keys)):
        return
    index = next(i for i, key in enumerate(keys) if "\x00" in key)
    raise _invalid((index, *under), keys[index], NUL_MESSAGE)


def _invalid(loc: tuple[str | int, ...], value: object, message: str) -> ValidationError:
    """A validation error at ``loc`` under the field being validated (pydantic-core puts the
    field's own location in front), raised from a validator to name an item of a list."""
    problem = InitErrorDetails(
        type="value_error", loc=loc, input=value, ctx={"error": ValueError(message)}
    )
    return ValidationError.from_exception_data("LogBatch", [problem])


__all__ = ["LogBatch", "MetricColumns", "MetricIn", "RunCreate", "RunEnd"]
