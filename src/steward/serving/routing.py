"""Traffic policies and assignment: which version answers a request, and who gets a copy.

A `TrafficPolicy` is a deployment's routing as data: a champion; optionally a canary with a
share of the traffic, or an A/B split across versions; optionally a shadow that gets a copy of
every request; and a request timeout. Its fields are named like the deployment's, so a stored
deployment validates into a policy with ``parse_traffic_policy(d.model_dump(include=...))``.

`assign()` is on the hot path and does no I/O: it hashes an id, compares with precomputed
boundaries and returns a precomputed `Assignment` (about 1-2 µs, measured in the tests).

The hash is public and stable so anyone can recompute an assignment offline (the experiments
engine does): it lives in ``steward.domain.assignment`` (``bucket``, ``variant_for``), and
docs/traffic.md spells out the recipe for analysts.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from steward.domain.assignment import (
    bucket,
    canary_salt,
    split_boundaries,
    variant_name,
)
from steward.domain.deployments import check_split
from steward.domain.uri import MAX_VERSION
from steward.errors import InvalidInput

# The stored deployment's fields that make up its traffic policy.
TRAFFIC_FIELDS = frozenset(
    {"champion", "canary", "canary_share", "shadow", "split", "experiment", "unit_key",
     "timeout_ms"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a request goes: the answering ``version``, its role or variant, and the shadow.

    ``variant`` is ``"champion"`` or ``"canary"``, or for a split the variant's name (``v3``).
    ``shadow`` is the version that also gets a copy of the request (its answer is logged, never
    returned), or None.
    """

    version: int
    variant: str
    shadow: int | None


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """A policy compiled for `assign`: arm ``i`` takes ``[bounds[i-1], bounds[i])`` of the
    bucket of ``salt``; a table with one arm sends everything to it without hashing."""

    arms: tuple[Assignment, ...]
    bounds: tuple[float, ...]
    salt: str


class TrafficPolicy(BaseModel):
    """A deployment's routing. Use `parse_traffic_policy` to validate untrusted input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    champion: int = Field(ge=1, le=MAX_VERSION)
    canary: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    canary_share: float | None = Field(default=None, validate_default=True)
    # A/B split: version -> weight (> 0, normalised); mutually exclusive with a canary.
    split: dict[int, float] | None = None
    experiment: str | None = Field(
        default=None, min_length=1, max_length=128, validate_default=True
    )
    # The request field naming the unit (user, session...) for sticky assignment.
    unit_key: str | None = Field(default=None, min_length=1, max_length=128)
    shadow: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    timeout_ms: int = Field(default=1000, ge=1, le=600_000)

    @field_validator("canary")
    @classmethod
    def _canary(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("champion"):
            raise ValueError(f"the canary must be another version than the champion v{value}")
        return value

    @field_validator("canary_share")
    @classmethod
    def _canary_share(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "canary" not in info.data:  # the canary itself was refused
            return value
        has_canary = info.data["canary"] is not None
        if value is None:
            if has_canary:
                raise ValueError("a canary needs a canary_share between 0 and 1, e.g. 0.1")
            return None
        if not has_canary:
            raise ValueError("a canary_share needs a canary version")
        if not (math.isfinite(value) and 0 < value < 1):
            raise ValueError(f"the canary_share must be between 0 and 1 (exclusive), got {value}")
        return value

    @field_validator("split")
    @classmethod
    def _split(
        cls, value: dict[int, float] | None, info: ValidationInfo
    ) -> dict[int, float] | None:
        if value is None:
            return None
        return check_split(value, canary=info.data.get("canary"))

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("split") is not None:
            raise ValueError("a split needs an experiment name: it salts the assignment hash")
        return value

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        taken = {
            info.data.get("champion"),
            info.data.get("canary"),
            *(info.data.get("split") or {}),
        }
        if value in taken:
            raise ValueError(f"the shadow v{value} already answers traffic; shadow another version")
        return value

    def model_post_init(self, context: Any, /) -> None:
        _ = self.table  # built once here, so the first request does not pay for it

    @cached_property
    def table(self) -> RoutingTable:
        """The arms and boundaries `assign` reads, computed once per policy."""
        shadow = self.shadow
        if self.split is not None:
            versions, bounds = split_boundaries(self.split)
            arms = tuple(Assignment(v, variant_name(v), shadow) for v in versions)
            return RoutingTable(arms, bounds, self.experiment or "")
        if self.canary is not None:
            arms = (
                Assignment(self.canary, "canary", shadow),
                Assignment(self.champion, "champion", shadow),
            )
            return RoutingTable(arms, (self.canary_share or 0.0, 1.0), canary_salt(self.canary))
        return RoutingTable((Assignment(self.champion, "champion", shadow),), (1.0,), "")

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version the policy sends requests to (answering first, then the shadow)."""
        answering = [self.champion, *([self.canary] if self.canary else []), *(self.split or {})]
        ordered = list(dict.fromkeys(answering))
        return (*ordered, self.shadow) if self.shadow is not None else tuple(ordered)


def parse_traffic_policy(data: Mapping[str, Any]) -> TrafficPolicy:
    """Validate ``data`` as a policy; a problem raises InvalidInput naming the field."""
    try:
        return TrafficPolicy.model_validate(data)
    except ValidationError as error:
        raise invalid_input(error, "traffic policy") from None


def assign(policy: TrafficPolicy, *, request_id: str, unit_id: str | None = None) -> Assignment:
    """The version that answers this request, and the shadow that gets a copy.

    - a split with a unit id: sticky, ``bucket(experiment, unit_id)``; without one, the request
      id takes its place, so that request's assignment is random but still reproducible;
    - a canary: ``bucket(canary_salt(canary), unit_id or request_id) < canary_share`` goes to
      the canary, so a unit stays put as the share grows;
    - otherwise the champion.
    """
    table = policy.table
    arms = table.arms
    if len(arms) == 1:
        return arms[0]
    point = bucket(table.salt, unit_id if unit_id is not None else request_id)
    return arms[bisect_right(table.bounds, point)]


def invalid_input(error: ValidationError, what: str) -> InvalidInput:
    """pydantic's errors as one InvalidInput naming the first field (``split.3``, ``rules.0``)."""
    problems = []
    for detail in error.errors(include_url=False):
        field = ".".join(str(part) for part in detail["loc"]) or None
        ctx = detail.get("ctx") or {}
        message = str(ctx["error"]) if detail["type"] == "value_error" else detail["msg"]
        problems.append({"field": field, "message": message})
    first = problems[0]
    message = f"Invalid {what}: '{first['field']}': {first['message']}."
    if first["field"] is None:
        message = f"Invalid {what}: {first['message']}."
    if len(problems) > 1:
        message += f" ({len(problems) - 1} more problem(s).)"
    return InvalidInput(message, field=first["field"], details={"problems": problems})
