"""Request bodies of deployments: what `steward deploy` sends."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from steward.domain.deployments import (
    Batching,
    CanarySlo,
    FallbackKind,
    FallbackStep,
    ModelRuntime,
    can_serve_fallback,
    check_split,
)
from steward.schemas import RequestBody
from steward.schemas.registry import MAX_VERSION

Version = int


class DeploymentSpec(RequestBody):
    """The whole routing of a deployment; a `steward deploy` replaces the previous one."""

    model: str = Field(min_length=1, max_length=128)
    champion: Version = Field(ge=1, le=MAX_VERSION)
    canary: Version | None = Field(default=None, ge=1, le=MAX_VERSION)
    canary_share: float | None = Field(default=None, gt=0, lt=1, validate_default=True)
    split: dict[Version, float] | None = None
    experiment: str | None = Field(default=None, min_length=1, max_length=128)
    unit_key: str | None = Field(default=None, min_length=1, max_length=128, validate_default=True)
    # after the fields it must differ from: validators see the fields declared before theirs
    shadow: Version | None = Field(default=None, ge=1, le=MAX_VERSION)
    fallbacks: list[FallbackStep] = Field(default_factory=list, max_length=8)
    timeout_ms: int = Field(default=1000, ge=1, le=600_000)
    batching: Batching | None = None
    # The canary's SLO: a breach rolls the canary back (after canary and split: see below).
    canary_slo: CanarySlo | None = None
    # What runs the versions: "onnx" needs each version the deployment routes to to have an
    # ONNX export (or be an ONNX model); the store checks that when it writes the deployment.
    runtime: ModelRuntime = ModelRuntime.NATIVE
    # Answer every request from the rule / default fallbacks, not the models: an incident's
    # mitigation; needs such a fallback (after ``fallbacks``, which its validator reads).
    serve_fallback: bool = False

    # Cross-field rules as field validators (fields validate in order, ``info.data`` holds the
    # earlier ones), so each refusal names the field to fix.
    @field_validator("canary")
    @classmethod
    def _not_the_champion(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("champion"):
            raise ValueError("the canary must be another version than the champion")
        return value

    @field_validator("shadow")
    @classmethod
    def _only_listens(cls, value: int | None, info: ValidationInfo) -> int | None:
        answering = {info.data.get("champion"), info.data.get("canary")}
        answering |= set(info.data.get("split") or {})
        if value is not None and value in answering:
            raise ValueError(f"v{value} already answers traffic; a shadow only gets a copy")
        return value

    @field_validator("canary_share")
    @classmethod
    def _share(cls, value: float | None, info: ValidationInfo) -> float | None:
        has_canary = info.data.get("canary") is not None
        if has_canary and value is None:
            raise ValueError("a canary needs a canary_share in (0, 1)")
        if value is not None and not has_canary:
            raise ValueError("a canary_share needs a canary")
        return value

    @field_validator("split")
    @classmethod
    def _split(
        cls, value: dict[int, float] | None, info: ValidationInfo
    ) -> dict[int, float] | None:
        if value is None:
            return None
        return check_split(value, canary=info.data.get("canary"))

    @field_validator("unit_key")
    @classmethod
    def _unit_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("split") is not None:
            raise ValueError("a split needs a unit_key: the request field that names the unit")
        return value

    @field_validator("fallbacks")
    @classmethod
    def _fallbacks(cls, steps: list[FallbackStep]) -> list[FallbackStep]:
        for i, step in enumerate(steps):
            if step.kind is FallbackKind.RULE and not step.rules:
                raise ValueError(f"fallback {i} is a rule set without rules")
            if step.kind is FallbackKind.DEFAULT and "value" not in step.model_fields_set:
                raise ValueError(f"fallback {i} is a default answer without a value")
        kinds = [step.kind for step in steps]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each kind of fallback may appear once")
        return steps

    @field_validator("canary_slo")
    @classmethod
    def _slo(cls, value: CanarySlo | None, info: ValidationInfo) -> CanarySlo | None:
        if value is None or "canary" not in info.data:  # no SLO, or the canary was refused
            return value
        if info.data.get("split") is not None:
            raise ValueError(
                "a canary SLO watches a canary, not a split: an A/B split is read as an "
                "experiment; deploy a canary (canary, canary_share) to roll back on an SLO"
            )
        if info.data["canary"] is None:
            raise ValueError("a canary SLO needs a canary: set canary and canary_share")
        return value

    @field_validator("serve_fallback")
    @classmethod
    def _fallback_to_serve(cls, value: bool, info: ValidationInfo) -> bool:
        steps = info.data.get("fallbacks")
        if value and steps is not None and not can_serve_fallback(steps):
            raise ValueError(
                "serve_fallback needs a 'rule' or 'default' fallback to answer from; add one "
                "to fallbacks"
            )
        return value

    def routing(self) -> dict[str, Any]:
        """The spec as stored (everything but the model, which the store keeps by id)."""
        spec = self.model_dump(mode="json", exclude={"model"})
        if self.split is not None:
            spec["split"] = {str(v): w for v, w in self.split.items()}
        return spec


class Rollback(RequestBody):
    reason: str | None = Field(default=None, max_length=5000)
    evidence: dict[str, Any] | None = None  # e.g. the SLO breach that triggered it
