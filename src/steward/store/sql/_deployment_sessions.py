"""The deployment part of the read and write sessions (mixed into SqlReadSession and
SqlWriteSession)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from steward.domain.deployments import Deployment
from steward.store.sql import _deployments, _registry


class DeploymentReads:
    session: Session

    def get_deployment(self, name: str) -> Deployment:
        return _deployments.get(self.session, name)

    def list_deployments(self, model_name: str | None = None) -> list[Deployment]:
        return _deployments.list_all(self.session, model_name)

    def previous_production_version(self, model_name: str, champion: int) -> int | None:
        model = _registry.get_model_row(self.session, model_name)
        return _deployments.previous_version(self.session, model, champion)


class DeploymentWrites(DeploymentReads):
    actor: str

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None: ...

    def put_deployment(
        self,
        name: str,
        model_name: str,
        spec: dict[str, Any],
        at: datetime,
        *,
        kind: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Create or replace a deployment, refused unless every version may take its role;
        recorded as ``kind`` (default deployment.created / deployment.updated). With
        ``expected_revision``, refused with Conflict unless the stored deployment is still at
        that revision (checked on the locked row: a compare-and-set)."""
        model = _registry.get_model_row(self.session, model_name)
        _deployments.check_deployable(self.session, model, spec)
        deployment, created = _deployments.write(
            self.session, model, name, spec, at, self.actor, expected_revision=expected_revision
        )
        self.record(
            kind or ("deployment.created" if created else "deployment.updated"),
            "deployment", name,
            {"model": model_name, "revision": deployment.revision, "reason": reason,
             **(details or {}), **deployment.model_dump(mode="json", include=set(spec))},
        )  # fmt: skip
        return deployment
