"""Rows to domain entities."""

from __future__ import annotations

from typing import Any

from steward.domain.entities import (
    Alias,
    ArtifactRef,
    Event,
    Lineage,
    Model,
    ModelVersion,
    Run,
    RunArtifact,
    Token,
)
from steward.domain.enums import Flavor, Role, RunStatus, VersionStatus
from steward.domain.signature import Signature
from steward.store.sql.tables import (
    EventRow,
    ModelRow,
    ModelVersionRow,
    RunArtifactRow,
    RunRow,
    TokenRow,
)


def model_entity(row: ModelRow, tags: dict[str, str], aliases: dict[str, int]) -> Model:
    return Model(
        id=row.id,
        name=row.name,
        owner=row.owner,
        team=row.team,
        risk_tier=row.risk_tier,
        use_case=row.use_case,
        description=row.description,
        tags=tags,
        card=dict(row.card or {}),
        aliases=aliases,
        latest_version=row.latest_version or None,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )


def version_entity(
    row: ModelVersionRow | Any,  # or any object with its attributes (a just-written row)
    *,
    model_name: str,
    metrics: dict[str, float],
    tags: dict[str, str],
    aliases: list[str],
) -> ModelVersion:
    sample: dict[str, Any] | None = row.reference_sample
    return ModelVersion(
        id=row.id,
        model_id=row.model_id,
        model_name=model_name,
        version=row.version,
        flavor=Flavor(row.flavor),
        files={name: ArtifactRef(**ref) for name, ref in row.files.items()},
        primary_file=row.primary_file,
        signature=Signature.model_validate(row.signature) if row.signature else None,
        metrics=metrics,
        params=dict(row.params),
        tags=tags,
        lineage=Lineage.model_validate(row.lineage),
        reference_sample=ArtifactRef(**sample) if sample else None,
        description=row.description,
        status=VersionStatus(row.status),
        trusted=row.trusted,
        aliases=sorted(aliases),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def alias_entity(model_name: str, alias: str, version: int, row: Any) -> Alias:
    return Alias(
        model_name=model_name,
        alias=alias,
        version=version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def run_entity(row: RunRow, metrics: dict[str, float], artifacts: list[RunArtifactRow]) -> Run:
    return Run(
        id=row.id,
        name=row.name,
        project=row.project,
        status=RunStatus(row.status),
        params=dict(row.params),
        tags=dict(row.tags),
        metrics=metrics,
        artifacts=[RunArtifact(path=a.path, digest=a.digest, size=a.size) for a in artifacts],
        started_at=row.started_at,
        ended_at=row.ended_at,
        created_by=row.created_by,
    )


def event_entity(row: EventRow) -> Event:
    return Event(
        seq=row.seq,
        id=row.id,
        occurred_at=row.occurred_at,
        actor=row.actor,
        kind=row.kind,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload=dict(row.payload),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def token_entity(row: TokenRow) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked=row.revoked,
    )
