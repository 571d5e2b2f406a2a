"""Request bodies of the registry: models, versions, aliases, cards."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field, StrictFloat, field_validator

from steward.domain.entities import CARD_SECTIONS, ArtifactRef, Lineage
from steward.domain.enums import Flavor
from steward.domain.signature import Signature
from steward.domain.uri import MAX_VERSION, check_model_name
from steward.errors import InvalidInput
from steward.schemas import RequestBody

Tags = dict[
    Annotated[str, Field(min_length=1, max_length=256)], Annotated[str, Field(max_length=5000)]
]
MetricValue = StrictFloat  # strict: ints pass, strings and booleans do not


def check_version_number(version: int, field: str = "version") -> int:
    """Refuse version numbers no store can hold (a 500 from the driver otherwise)."""
    if not 1 <= version <= MAX_VERSION:
        raise InvalidInput(
            f"The version must be a whole number between 1 and {MAX_VERSION}. Got {version}.",
            field=field,
        )
    return version


def check_metrics(value: dict[str, float]) -> dict[str, float]:
    for key, number in value.items():
        if not key or len(key) > 256:
            raise ValueError(f"metric names must be 1-256 characters, got {key!r}")
        if isinstance(number, bool) or not math.isfinite(number):
            raise ValueError(f"metric {key!r} must be a finite number, got {number!r}")
    return {k: float(v) for k, v in value.items()}


class Request(RequestBody):
    pass


class ModelCreate(Request):
    name: str
    owner: str | None = Field(default=None, max_length=256)
    team: str | None = Field(default=None, max_length=256)
    risk_tier: int = Field(default=3, ge=1, le=3)
    use_case: str | None = None
    description: str | None = None
    tags: Tags = Field(default_factory=dict)
    card: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_model_name(value)

    @field_validator("card")
    @classmethod
    def _card(cls, value: dict[str, str]) -> dict[str, str]:
        return check_card(value)


class ModelUpdate(Request):
    owner: str | None = Field(default=None, min_length=1, max_length=256)
    team: str | None = Field(default=None, max_length=256)
    risk_tier: int | None = Field(default=None, ge=1, le=3)
    use_case: str | None = None
    description: str | None = None
    tags: Tags | None = None
    card: dict[str, str] | None = None

    @field_validator("owner", "risk_tier", "tags", "card", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only on fields the caller sent: leaving one out keeps it, but these cannot be
        # cleared (a model always has an owner and a tier; send {} to clear tags).
        if value is None:
            raise ValueError("this field cannot be null; leave it out to keep its value")
        return value

    @field_validator("card")
    @classmethod
    def _card(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_card(value)


def check_card(value: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(value) - set(CARD_SECTIONS))
    if unknown:
        raise ValueError(
            f"unknown model card section(s) {', '.join(unknown)}; "
            f"sections are {', '.join(CARD_SECTIONS)}"
        )
    return value


class VersionCreate(Request):
    flavor: Flavor
    files: dict[Annotated[str, Field(min_length=1, max_length=256)], ArtifactRef] = Field(
        min_length=1
    )
    primary_file: str | None = None
    signature: Signature | None = None
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    reference_sample: ArtifactRef | None = None
    description: str | None = None
    trusted: bool = False

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: dict[str, float]) -> dict[str, float]:
        return check_metrics(value)

    @field_validator("params", mode="before")
    @classmethod
    def _params_as_text(cls, value: object) -> object:
        # Params are recorded as text, as MLflow does; numbers and booleans are stringified.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


class VersionUpdate(Request):
    description: str | None = None
    tags: Tags | None = None
    metrics: dict[str, MetricValue] | None = None

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else check_metrics(value)


class AliasSet(Request):
    version: int = Field(ge=1, le=MAX_VERSION)


__all__ = [
    "MAX_VERSION",
    "AliasSet",
    "ModelCreate",
    "ModelUpdate",
    "VersionCreate",
    "VersionUpdate",
]
