"""Rows to domain entities."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from steward.domain.entities import (
    Alias,
    Event,
    Model,
    ModelVersion,
    Run,
    RunArtifact,
    Token,
)
from steward.domain.enums import Role, RunStatus
from steward.store.sql.tables import (
    EventRow,
    ModelRow,
    ModelVersionRow,
    RunArtifactRow,
    RunRow,
    TokenRow,
)

_VERSION = TypeAdapter(ModelVersion)


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
        policy=row.policy,
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
    # One validation of the whole tree in pydantic-core, not one per nested model: a page of
    # 100 versions is built in a fraction of the time (measured).
    return _VERSION.validate_python(
        {
            "id": row.id,
            "model_id": row.model_id,
            "model_name": model_name,
            "version": row.version,
            "flavor": row.flavor,
            "files": row.files,
            "primary_file": row.primary_file,
            "signature": row.signature or None,
            "metrics": metrics,
            "params": row.params,
            "tags": tags,
            "lineage": row.lineage,
            "reference_sample": row.reference_sample or None,
            "description": row.description,
            "status": row.status,
            "status_changed_at": getattr(row, "status_changed_at", None),
            "trusted": row.trusted,
            "aliases": sorted(aliases),
            "created_at": row.created_at,
            "created_by": row.created_by,
        }
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
