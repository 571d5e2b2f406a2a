"""Deployments: which versions of a model take traffic, how it is split, and the way back.

Pure data. The store keeps one row per deployment and refuses a deployment whose versions are
not in a state that may take traffic (`check_deployable`); the gateway reads it and routes.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from steward.domain.entities import Entity
from steward.domain.enums import VersionStatus
from steward.domain.uri import MAX_VERSION

# Which lifecycle states may hold each role. The champion and the "previous" fallback answer
# real traffic on their own; a canary, shadow or split variant is a candidate under watch.
CHAMPION_STATES = frozenset({VersionStatus.PRODUCTION})
CANDIDATE_STATES = frozenset(
    {VersionStatus.APPROVED, VersionStatus.STAGING, VersionStatus.PRODUCTION}
)


class ModelRuntime(StrEnum):
    """What runs a deployment's versions."""

    NATIVE = "native"  # the flavor's own library: scikit-learn for skops, onnxruntime for ONNX
    ONNX = "onnx"  # onnxruntime on the version's ONNX export (log_model(..., export_onnx=True))


# The file a scikit-learn version's ONNX export is stored under: what
# ``log_model(..., export_onnx=True)`` writes and what ``load_model(..., prefer=ONNX)`` reads
# (steward.flavors MODEL_FILES; a test keeps the two equal, the store may not import flavors).
ONNX_EXPORT_FILE = "model.onnx"

# The ledger events a serving replica follows (DESIGN.md "The ledger"): every change of a
# deployment, and a version's status change, which can move a "previous" fallback's target.
DEPLOYMENT_EVENTS = frozenset(
    {"deployment.created", "deployment.updated", "deployment.rolled_back"}
)
VERSION_STATUS_EVENT = "version.transitioned"
FOLLOWED_EVENTS = DEPLOYMENT_EVENTS | {VERSION_STATUS_EVENT}


class FallbackKind(StrEnum):
    PREVIOUS = "previous"  # the previous production version (the model's rollback target)
    RULE = "rule"  # a small declarative rule set
    DEFAULT = "default"  # a fixed, safe answer


class FallbackStep(Entity):
    kind: FallbackKind
    rules: list[dict[str, Any]] | None = None  # RULE: the rule set, as the rule parser reads it
    value: Any = None  # DEFAULT: the answer returned as is


# The steps that answer without calling a model: what a deployment whose ``serve_fallback`` is
# on answers every request from.
MODEL_FREE_FALLBACKS = frozenset({FallbackKind.RULE, FallbackKind.DEFAULT})


def can_serve_fallback(steps: list[FallbackStep]) -> bool:
    """Whether ``steps`` hold a rule set or a default answer to serve instead of the models."""
    return any(step.kind in MODEL_FREE_FALLBACKS for step in steps)


class Batching(Entity):
    """Micro-batching: concurrent single-row requests gathered into one model call."""

    max_batch: int = Field(ge=1, le=10_000)
    max_wait_ms: float = Field(gt=0, le=1_000)


# Bounds of a canary SLO's window: one-second buckets, so a second is the resolution; an hour
# bounds the memory a server keeps per watched deployment (window_s buckets).
MIN_SLO_WINDOW_S = 5
MAX_SLO_WINDOW_S = 3600


class CanarySlo(Entity):
    """What a canary must hold to keep its share of the traffic.

    Over the last ``window_s`` seconds, with at least ``min_requests`` canary requests in the
    window, the canary breaches when its error rate is above ``max_error_rate`` or its p95
    latency above ``max_p95_ms``; the serving gateway then rolls the deployment back to its
    champion. At least one of the two limits is required.
    """

    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_p95_ms: float | None = Field(default=None, gt=0, le=600_000)
    window_s: int = Field(default=60, ge=MIN_SLO_WINDOW_S, le=MAX_SLO_WINDOW_S)
    min_requests: int = Field(default=50, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _has_a_limit(self) -> CanarySlo:
        if self.max_error_rate is None and self.max_p95_ms is None:
            raise ValueError(
                "a canary SLO needs max_error_rate (in [0, 1]) or max_p95_ms (> 0), or both"
            )
        return self


class Deployment(Entity):
    name: str
    model_name: str
    champion: int
    canary: int | None = None
    canary_share: float | None = None  # of requests (or units), in (0, 1)
    shadow: int | None = None  # gets a copy of the traffic; its answers are logged, not returned
    # A/B: version -> weight; assignment is sticky by hash(experiment, unit id)
    split: dict[int, float] | None = None
    experiment: str | None = None
    unit_key: str | None = None  # the request field holding the unit id
    fallbacks: list[FallbackStep] = Field(default_factory=list)
    timeout_ms: int = 1000
    batching: Batching | None = None
    # The canary's SLO; a breach rolls the canary back. Absent from rows written before it.
    canary_slo: CanarySlo | None = None
    # What runs the versions; absent from rows written before it, which run natively.
    runtime: ModelRuntime = ModelRuntime.NATIVE
    # Answer every request from the rule / default fallbacks instead of the models: an
    # incident's mitigation (`steward incident mitigate --action fallback`); a deploy without
    # it turns it off. Absent from rows written before it.
    serve_fallback: bool = False
    revision: int = 1  # bumped by every change; servers swap when they see a new one
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    def versions(self) -> dict[int, str]:
        """Every version the deployment routes to, with its role."""
        roles: dict[int, str] = {self.champion: "champion"}
        if self.canary is not None:
            roles.setdefault(self.canary, "canary")
        if self.shadow is not None:
            roles.setdefault(self.shadow, "shadow")
        for version in self.split or {}:
            roles.setdefault(version, "variant")
        return roles


def check_split(split: dict[int, float], *, canary: int | None) -> dict[int, float]:
    """The split, sorted by version; ValueError saying what is wrong with it.

    One rule for the deployment request and the gateway's traffic policy alike.
    """
    if canary is not None:
        raise ValueError("use either a canary or a split, not both")
    if len(split) < 2:
        raise ValueError(
            f"a split needs at least two versions, e.g. {{3: 0.5, 4: 0.5}}; got {split}"
        )
    for version, weight in split.items():
        if not 1 <= version <= MAX_VERSION:
            raise ValueError(f"split version {version} is not a version number")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"the weight of version {version} must be a number > 0, got {weight}")
    return dict(sorted(split.items()))
