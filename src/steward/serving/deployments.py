"""DeploymentService: create, change, list and roll back deployments.

The store refuses versions that may not take traffic; this service shapes the request and
names what a rollback did. Every change is a ledger event, which is also how running gateways
learn of it.
"""

from __future__ import annotations

from typing import Any

from steward.domain.clock import utcnow
from steward.domain.deployments import Deployment
from steward.domain.uri import check_model_name
from steward.errors import Conflict
from steward.schemas.serving import DeploymentSpec
from steward.store.base import MetadataStore, WriteSession


class DeploymentService:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def deploy(
        self,
        actor: str,
        name: str,
        spec: DeploymentSpec,
        *,
        reason: str | None = None,
        if_revision: int | None = None,
    ) -> Deployment:
        """Create ``name`` or replace its routing with ``spec``; ``reason`` goes in the event.
        With ``if_revision``, only if the deployment is still at that revision (Conflict
        otherwise): a change made from what was read, such as an incident's mitigation, must
        not overwrite a change made meanwhile."""
        _check_name(name)
        if spec.split is not None and spec.experiment is None:
            # the experiment salts the assignment hash; the deployment's name is a stable one
            spec = spec.model_copy(update={"experiment": name})
        with self.store.write(actor) as tx:
            return tx.put_deployment(
                name, spec.model, spec.routing(), utcnow(), reason=reason,
                expected_revision=if_revision,
            )  # fmt: skip

    def get(self, name: str) -> Deployment:
        with self.store.read() as rx:
            return rx.get_deployment(name)

    def list(self, model: str | None = None) -> list[Deployment]:
        with self.store.read() as rx:
            return rx.list_deployments(model)

    def rollback(
        self,
        actor: str,
        name: str,
        *,
        reason: str | None = None,
        evidence: dict[str, Any] | None = None,
        if_revision: int | None = None,
    ) -> Deployment:
        """Send all traffic back to the champion: the canary (and its SLO) or the split is
        removed, the shadow and fallbacks stay. The event carries the reason and the evidence
        (an SLO breach).

        With ``if_revision``, only if the deployment is still at that revision: the gateway
        passes the revision whose canary breached, so a change made meanwhile, or another
        replica's rollback of the same breach, wins and this one raises Conflict. Either way
        the write is a compare-and-set on the revision read here, so a deployment changed
        between the read and the write is never overwritten with a stale spec."""
        with self.store.write(actor) as tx:
            return rollback_in(tx, name, reason=reason, evidence=evidence, if_revision=if_revision)


_ROUTING_FIELDS = {
    "champion", "canary", "canary_share", "shadow", "split", "experiment", "unit_key",
    "fallbacks", "timeout_ms", "batching", "canary_slo", "runtime", "serve_fallback",
}  # fmt: skip


def _check_name(name: str) -> None:
    check_model_name(name, field="name")  # deployments are named like models


def ship_in(tx: WriteSession, name: str, version: int, *, reason: str) -> Deployment:
    """In ``tx``: ``version`` becomes the champion with all the traffic; the canary (and its
    SLO) or the split goes, the shadow (unless it is that version) and fallbacks stay. A
    compare-and-set on the revision read, so a change made meanwhile is never overwritten."""
    current = tx.get_deployment(name)
    spec = DeploymentSpec.model_validate(
        {
            **current.model_dump(include=_ROUTING_FIELDS),
            "model": current.model_name,
            "champion": version,
            "canary": None,
            "canary_share": None,
            "canary_slo": None,
            "split": None,
            "experiment": None,
            "shadow": None if current.shadow == version else current.shadow,
        }
    )
    return tx.put_deployment(
        name, current.model_name, spec.routing(), utcnow(),
        kind="deployment.updated", reason=reason,
        details={"champion_from": current.champion, "champion_to": version},
        expected_revision=current.revision,
    )  # fmt: skip


def rollback_in(
    tx: WriteSession,
    name: str,
    *,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
    if_revision: int | None = None,
) -> Deployment:
    """In ``tx``: all traffic back to the champion (see ``DeploymentService.rollback``)."""
    current = tx.get_deployment(name)
    if if_revision is not None and current.revision != if_revision:
        raise Conflict(
            f"{name} is at revision {current.revision}, not {if_revision}: it changed "
            "since; nothing rolled back.",
            details={"field": "revision", "revision": current.revision},
        )
    if current.canary is None and current.split is None:
        raise Conflict(
            f"Nothing to roll back: {name} already sends all traffic to its champion "
            f"v{current.champion}.",
            details={"field": "name", "champion": current.champion},
        )
    spec = DeploymentSpec.model_validate(
        {
            **current.model_dump(include=_ROUTING_FIELDS),
            "model": current.model_name,
            "canary": None,
            "canary_share": None,
            "canary_slo": None,  # it watched the canary that goes
            "split": None,
            "experiment": None,
        }
    )
    moved_from = [current.canary] if current.canary is not None else list(current.split or {})
    return tx.put_deployment(
        name, current.model_name, spec.routing(), utcnow(),
        kind="deployment.rolled_back",
        reason=reason or f"traffic back to champion v{current.champion}",
        details={"from_versions": moved_from, "evidence": evidence},
        expected_revision=current.revision,
    )  # fmt: skip
