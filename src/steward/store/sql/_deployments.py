"""Deployments in the store, and the rule that only deployable versions take traffic.

The rule is checked here, in the transaction that writes the deployment, so the API, the SDK
and anything else that writes through the store are refused alike: a champion must be in
production, a canary, shadow or split variant approved, staging or production, a
"previous" fallback needs a version that was in production before, and the ONNX runtime needs
an ONNX model (or a scikit-learn version's ONNX export) for every version the deployment routes
to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.domain.deployments import (
    CANDIDATE_STATES,
    CHAMPION_STATES,
    ONNX_EXPORT_FILE,
    Deployment,
    FallbackKind,
    ModelRuntime,
)
from steward.domain.enums import Flavor, VersionStatus
from steward.errors import Conflict, GateFailed, InvalidInput, NotFound
from steward.store.sql import _gates
from steward.store.sql.tables import DeploymentRow, ModelRow, ModelVersionRow


def deployment_entity(row: DeploymentRow, model_name: str) -> Deployment:
    return Deployment.model_validate(
        {
            **row.spec,
            "name": row.name,
            "model_name": model_name,
            "revision": row.revision,
            "created_at": row.created_at,
            "created_by": row.created_by,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
        }
    )


def get(session: Session, name: str) -> Deployment:
    found = session.execute(
        select(DeploymentRow, ModelRow.name)
        .join(ModelRow, ModelRow.id == DeploymentRow.model_id)
        .where(DeploymentRow.name == name)
    ).first()
    if found is None:
        raise NotFound(
            f"No deployment named {name!r}. List them with `steward deployments`.",
            details={"field": "name", "name": name},
        )
    return deployment_entity(found[0], found[1])


def find_row(session: Session, name: str, *, lock: bool = False) -> DeploymentRow | None:
    query = select(DeploymentRow).where(DeploymentRow.name == name)
    return session.scalars(query.with_for_update() if lock else query).first()


def list_all(session: Session, model_name: str | None = None) -> list[Deployment]:
    query = (
        select(DeploymentRow, ModelRow.name)
        .join(ModelRow, ModelRow.id == DeploymentRow.model_id)
        .order_by(DeploymentRow.name)
    )
    if model_name is not None:
        query = query.where(ModelRow.name == model_name)
    return [deployment_entity(row, model) for row, model in session.execute(query)]


def check_deployable(session: Session, model: ModelRow, spec: dict[str, Any]) -> None:
    """Refuse versions that may not take the traffic their role gives them."""
    roles = _roles(spec)
    statuses = dict(
        session.execute(
            select(ModelVersionRow.version, ModelVersionRow.status).where(
                ModelVersionRow.model_id == model.id,
                ModelVersionRow.version.in_(list(roles)),
            )
        ).all()
    )
    for version, (role, field) in roles.items():
        if version not in statuses:
            raise NotFound(
                f"Model {model.name!r} has no version {version} (the deployment's {role}).",
                details={"field": field, "version": version},
            )
        status = VersionStatus(statuses[version])
        allowed = CHAMPION_STATES if role == "champion" else CANDIDATE_STATES
        if status not in allowed:
            need = ", ".join(sorted(s.value for s in allowed))
            raise GateFailed(
                f"models:/{model.name}/{version} is {status.value}; a {role} must be {need}. "
                f"Gate, approve and promote it first.",
                details={"field": field, "version": version, "status": status.value},
            )
    if any(step.get("kind") == FallbackKind.PREVIOUS for step in spec.get("fallbacks") or []):
        champion = int(spec["champion"])
        if previous_version(session, model, champion) is None:
            raise GateFailed(
                f"Model {model.name!r} has no previous production version to fall back to "
                f"(other than v{champion}); use a rule or a default answer as the fallback.",
                details={"field": "fallbacks"},
            )
    if spec.get("runtime", ModelRuntime.NATIVE) == ModelRuntime.ONNX:
        _check_onnx_runnable(session, model, roles)


def _check_onnx_runnable(
    session: Session, model: ModelRow, roles: dict[int, tuple[str, str]]
) -> None:
    """Refuse the ONNX runtime unless every routed version is ONNX or has an ONNX export.

    Checked here rather than left to the gateway: without an export the gateway would load the
    version natively and serve it at a cost the deployment did not ask for. The "previous"
    fallback is left out: which version it names moves with promotions, so the gateway runs its
    export when it has one and the version natively otherwise.
    """
    found = session.execute(
        select(ModelVersionRow.version, ModelVersionRow.flavor, ModelVersionRow.files).where(
            ModelVersionRow.model_id == model.id, ModelVersionRow.version.in_(list(roles))
        )
    ).all()
    for version, flavor, files in sorted(found):
        if flavor == Flavor.ONNX or (flavor == Flavor.SKLEARN and ONNX_EXPORT_FILE in files):
            continue
        role = roles[version][0]
        raise InvalidInput(
            f"The runtime 'onnx' needs an ONNX export of every version the deployment routes "
            f"to, and models:/{model.name}/{version} (its {role}, flavor '{flavor}') has none. "
            "Register it again with log_model(..., export_onnx=True) and deploy the new "
            "version, or deploy with runtime 'native'.",
            field="runtime",
            details={"version": version, "role": role, "flavor": flavor},
        )


def previous_version(session: Session, model: ModelRow, champion: int) -> int | None:
    """The most recent version, other than the champion, that was in production and can still
    load (production or deprecated)."""
    released = _gates.released_versions(session, model.name) - {champion}
    loadable = _gates.versions_in(
        session, model, (VersionStatus.PRODUCTION, VersionStatus.DEPRECATED)
    )
    candidates = released & loadable
    return max(candidates) if candidates else None


def _roles(spec: dict[str, Any]) -> dict[int, tuple[str, str]]:
    """version -> (its most demanding role, the spec field that names it)."""
    roles: dict[int, tuple[str, str]] = {int(spec["champion"]): ("champion", "champion")}
    for field in ("canary", "shadow"):
        if spec.get(field) is not None:
            roles.setdefault(int(spec[field]), (field, field))
    for version in spec.get("split") or {}:
        roles.setdefault(int(version), ("split variant", "split"))
    return roles


def write(
    session: Session,
    model: ModelRow,
    name: str,
    spec: dict[str, Any],
    at: datetime,
    actor: str,
    *,
    expected_revision: int | None = None,
) -> tuple[Deployment, bool]:
    """Create or replace ``name``; return it and whether it was created. With
    ``expected_revision``, only if the row is still at that revision."""
    row = find_row(session, name, lock=True)
    # Compared on the locked row: on PostgreSQL a plain read earlier in the transaction may be
    # stale by now (READ COMMITTED), the row lock is what serializes two writers.
    if expected_revision is not None and (row is None or row.revision != expected_revision):
        found = None if row is None else row.revision
        raise Conflict(
            f"Deployment {name!r} changed meanwhile: it is at revision {found}, not "
            f"{expected_revision}. Read it again (`steward deployments`) and retry.",
            details={"field": "revision", "revision": found, "expected": expected_revision},
        )
    created = row is None
    if row is None:
        row = DeploymentRow(
            name=name, model_id=model.id, spec=spec, revision=1,
            created_at=at, created_by=actor, updated_at=at, updated_by=actor,
        )  # fmt: skip
        session.add(row)
    else:
        if row.model_id != model.id:
            raise Conflict(
                f"Deployment {name!r} serves another model; a deployment keeps its model. "
                "Pick another name.",
                details={"field": "model"},
            )
        row.spec, row.revision = spec, row.revision + 1
        row.updated_at, row.updated_by = at, actor
    session.flush()
    return deployment_entity(row, model.name), created
