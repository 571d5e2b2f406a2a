"""What each mitigation does to a deployment, through the deployment service and the store.

Every change is a compare-and-set on the revision the incident's owner looked at: when the
deployment changed meanwhile (someone deployed, the gateway rolled a canary back) the change is
refused with Conflict rather than made on top of a routing nobody reviewed. Each deployment
change records its own ``deployment.*`` event; the incident's ``incident.mitigated`` event is
the service's.
"""

from __future__ import annotations

from typing import Any

from steward.domain.clock import utcnow
from steward.domain.deployments import Deployment, FallbackKind, can_serve_fallback
from steward.domain.enums import VersionStatus
from steward.domain.incidents import MitigationAction
from steward.errors import Conflict
from steward.schemas import parse
from steward.schemas.serving import DeploymentSpec
from steward.serving.deployments import DeploymentService
from steward.store.base import MetadataStore

# The stored deployment's fields that a spec carries (all but the model, kept by name).
_SPEC_FIELDS = frozenset(DeploymentSpec.model_fields) - {"model"}


def apply(
    action: MitigationAction,
    store: MetadataStore,
    deployments: DeploymentService,
    actor: str,
    current: Deployment,
    reason: str,
    evidence: dict[str, Any],
) -> Deployment:
    """Carry out ``action`` on ``current``; the deployment afterwards."""
    if action is MitigationAction.DISABLE_CANARY:
        return _disable_canary(deployments, actor, current, reason, evidence)
    if action is MitigationAction.FALLBACK:
        return _serve_fallback(deployments, actor, current, reason)
    if current.canary is not None or current.split is not None:
        # the candidate is the likeliest cause: all traffic back to the champion
        return _to_champion(deployments, actor, current, reason, evidence)
    return _to_previous_champion(store, actor, current, reason, evidence)


def _disable_canary(
    deployments: DeploymentService,
    actor: str,
    current: Deployment,
    reason: str,
    evidence: dict[str, Any],
) -> Deployment:
    if current.canary is None:
        has = "an A/B split (use --action rollback)" if current.split else "no canary"
        raise Conflict(
            f"Deployment {current.name!r} has no canary to disable: it has {has}; its champion "
            f"v{current.champion} answers all its traffic already.",
            details={"field": "action", "deployment": current.name},
        )
    return _to_champion(deployments, actor, current, reason, evidence)


def _to_champion(
    deployments: DeploymentService,
    actor: str,
    current: Deployment,
    reason: str,
    evidence: dict[str, Any],
) -> Deployment:
    return deployments.rollback(
        actor, current.name, reason=reason, evidence=evidence, if_revision=current.revision
    )


def _to_previous_champion(
    store: MetadataStore, actor: str, current: Deployment, reason: str, evidence: dict[str, Any]
) -> Deployment:
    """The champion back to the model's previous production version.

    That version was released through its gate and approvals; it goes back to production on
    the report it was released on (the lifecycle's deprecated -> production move), which also
    moves the ``champion`` alias and retires the current champion to deprecated. The move and
    the deployment change commit together, or neither does.
    """
    model = current.model_name
    with store.write(actor) as tx:
        previous = tx.previous_production_version(model, current.champion)
        if previous is None:
            raise Conflict(
                f"Model {model!r} has no previous production version to roll deployment "
                f"{current.name!r} back to (its champion is v{current.champion}). Mitigate "
                "with --action fallback, or deploy a fixed version.",
                details={"field": "action", "deployment": current.name},
            )
        now = utcnow()
        if tx.get_version(model, previous).status is not VersionStatus.PRODUCTION:
            tx.transition(model, previous, VersionStatus.PRODUCTION, reason, now)
        shadow = None if current.shadow == previous else current.shadow  # it now answers
        spec = spec_of(current, champion=previous, shadow=shadow)
        return tx.put_deployment(
            current.name, model, spec.routing(), now, kind="deployment.rolled_back",
            reason=reason, details={"from_versions": [current.champion], "evidence": evidence},
            expected_revision=current.revision,
        )  # fmt: skip


def _serve_fallback(
    deployments: DeploymentService, actor: str, current: Deployment, reason: str
) -> Deployment:
    if current.serve_fallback:
        raise Conflict(
            f"Deployment {current.name!r} already answers from its fallback.",
            details={"field": "action", "deployment": current.name},
        )
    if not can_serve_fallback(current.fallbacks):
        kinds = ", ".join(step.kind.value for step in current.fallbacks) or "none"
        raise Conflict(
            f"Deployment {current.name!r} has no rule or default fallback to answer from "
            f"(its fallbacks: {kinds}). Deploy it with one (e.g. `steward deploy "
            f"{current.name} --model {current.model_name} --champion {current.champion} "
            f"--fallback default:0`) and mitigate again, or use --action rollback.",
            details={"field": "action", "deployment": current.name, "fallbacks": kinds},
        )
    spec = spec_of(current, serve_fallback=True)
    return deployments.deploy(
        actor, current.name, spec, reason=reason, if_revision=current.revision
    )


def spec_of(current: Deployment, **changes: Any) -> DeploymentSpec:
    """``current``'s routing as a spec, with ``changes``; InvalidInput naming the field when
    the result is not a valid deployment."""
    data = {**current.model_dump(include=set(_SPEC_FIELDS)), "model": current.model_name}
    return parse(DeploymentSpec, {**data, **changes})


def describe(action: MitigationAction, before: Deployment, after: Deployment) -> str:
    """One line saying what the mitigation changed."""
    if action is MitigationAction.FALLBACK:
        steps = [s.kind.value for s in after.fallbacks if s.kind is not FallbackKind.PREVIOUS]
        return f"{after.name} answers from its fallback ({', '.join(steps)})"
    if before.champion != after.champion:
        return f"{after.name}: champion v{before.champion} -> v{after.champion}"
    moved = [v for v in (before.canary, *(before.split or {})) if v is not None]
    gone = ", ".join(f"v{v}" for v in moved if v != after.champion) or "the candidate"
    return f"{after.name}: {gone} off, all traffic to champion v{after.champion}"
