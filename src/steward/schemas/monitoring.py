"""Wire models of the monitor: the spec as a request body, a run request, and what a run or a
spec read answers (the windows and alerts themselves are domain entities)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from steward.domain.durations import duration_problem, parse_duration
from steward.domain.monitoring import MAX_WINDOW_S, Alert, MonitorSpec, MonitorWindow
from steward.schemas import RequestBody

MAX_DEPLOYMENTS = 1_000  # deployments named in one run request
MAX_WINDOWS = 1_000  # windows listed in one answer
DEFAULT_WINDOWS = 24  # a day of hourly windows: the trend `steward monitor show` draws

Engine = Literal["local", "ray"]


class MonitorSpecBody(MonitorSpec, RequestBody):
    """A MonitorSpec as a request body: the same fields, and text with NUL refused (PostgreSQL
    cannot store it) like every other body."""

    def to_spec(self) -> MonitorSpec:
        return MonitorSpec.model_validate(self.model_dump())


class MonitorRunRequest(RequestBody):
    """What `steward monitor run` / ``POST /api/v1/monitors/run`` asks for.

    ``deployments``: none means every deployment. ``window``: a duration such as ``1h`` (default:
    each monitor's own window). ``end``: the window's end (default: now), timezone-aware.
    """

    deployments: list[str] = Field(default_factory=list, max_length=MAX_DEPLOYMENTS)
    window: str | None = None
    end: AwareDatetime | None = None
    engine: Engine = "local"

    @field_validator("deployments")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name.strip() or len(name) > 128:
                raise ValueError("each deployment name must have 1 to 128 characters")
        return list(dict.fromkeys(names))  # once each, in the order given

    @field_validator("window")
    @classmethod
    def _window(cls, text: str | None) -> str | None:
        problem = None if text is None else duration_problem(text, maximum=MAX_WINDOW_S)
        if problem is not None:
            raise PydanticCustomError("invalid_duration", problem)
        return text

    @property
    def window_s(self) -> int | None:
        return None if self.window is None else window_seconds(self.window)


def window_seconds(text: str) -> int:
    """A run's window as seconds: ``90s`` to ``31d``."""
    return parse_duration(text, field="window", minimum=1, maximum=MAX_WINDOW_S)


class WindowQuery(BaseModel):
    """``?limit=``: how many windows, newest first."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=DEFAULT_WINDOWS, ge=1, le=MAX_WINDOWS)


class MonitorRead(BaseModel):
    """A deployment's monitor spec; ``configured`` is False when it is its risk tier's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment: str
    spec: MonitorSpec
    configured: bool


class MonitorOutcomeRead(BaseModel):
    """One deployment's run: the window it stored and the alerts it fired or resolved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: MonitorWindow
    fired: list[Alert] = Field(default_factory=list)
    resolved: list[Alert] = Field(default_factory=list)


class MonitorRunResult(BaseModel):
    """Every deployment's run, in the order run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcomes: list[MonitorOutcomeRead] = Field(default_factory=list)

    @property
    def fired(self) -> list[Alert]:
        return [alert for outcome in self.outcomes for alert in outcome.fired]
