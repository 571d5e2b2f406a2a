"""Rows to domain entities (and values to entities, checked, before they are written)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

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
from steward.domain.incidents import Incident
from steward.domain.monitoring import Alert, MonitorWindow, StoredMonitor
from steward.errors import InvalidInput
from steward.store.sql.tables import (
    AlertRow,
    EventRow,
    IncidentRow,
    ModelRow,
    ModelVersionRow,
    MonitorRow,
    MonitorWindowRow,
    RunArtifactRow,
    RunRow,
    TokenRow,
)

_VERSION = TypeAdapter(ModelVersion)
E = TypeVar("E", bound=BaseModel)


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
            "reference_profile": getattr(row, "reference_profile", None) or None,
            "description": row.description,
            "status": row.status,
            "status_changed_at": getattr(row, "status_changed_at", None),
            "trusted": row.trusted,
            "aliases": sorted(aliases),
            "created_at": row.created_at,
            "created_by": row.created_by,
        }
    )


# The columns `version_json` reads, in this order: `list_versions_json` selects them so, the
# JSON columns as the text they were stored as, the timestamps as their JSON text, and the
# aliases as one comma-separated string.
VERSION_JSON_COLUMNS = (
    "id", "model_id", "model_name", "version", "flavor", "primary_file", "description",
    "status", "status_changed_at", "trusted", "created_at", "created_by", "aliases",
    "files", "signature", "metrics", "params", "tags", "lineage", "reference_sample",
    "reference_profile",
)  # fmt: skip
_STORED_JSON = (
    '%s,"aliases":%s,"files":%s,"signature":%s,"metrics":%s,"params":%s,"tags":%s,'
    '"lineage":%s,"reference_sample":%s,"reference_profile":%s}'
)


def version_json(row: Sequence[Any]) -> bytes:
    """``version_entity(...).model_dump_json()`` of a row of `VERSION_JSON_COLUMNS`, without
    building the entity.

    Building a page of 100 entities (seven JSON columns parsed, the tree validated) and
    serializing them again took more than the page's query (measured: ~2 ms of ~6 ms on
    SQLite). The stored JSON is the dump of the same nested models, written by the registry
    service, so it is passed through; the timestamps come as their JSON text, written by the
    database; the other scalars are serialized by pydantic-core as the entity would serialize
    them. The keys come in another order; tests check every item
    against the entity on both backends.
    """
    (id_, model_id, model_name, version, flavor, primary_file, description, status,
     status_changed_at, trusted, created_at, created_by, aliases, files, signature, metrics,
     params, tags, lineage, reference_sample, reference_profile) = row  # fmt: skip
    head = pydantic_core.to_json(
        {
            "id": id_,
            "model_id": model_id,
            "model_name": model_name,
            "version": version,
            "flavor": flavor,
            "primary_file": primary_file,
            "description": description,
            "status": status,
            "status_changed_at": status_changed_at,
            "trusted": bool(trusted),
            "created_at": created_at,
            "created_by": created_by,
        }
    )
    alias_list = pydantic_core.to_json(sorted(aliases.split(","))).decode() if aliases else "[]"
    body = _STORED_JSON % (
        head[:-1].decode(), alias_list, files,
        _none_if_empty(signature), metrics, params, tags, lineage,
        _none_if_empty(reference_sample), _none_if_empty(reference_profile),
    )  # fmt: skip
    return body.encode()


def _none_if_empty(stored: str | None) -> str:
    """As in `version_entity`: nothing, or an empty object, stored for an optional part."""
    return "null" if stored is None or stored in ("{}", "null") else stored


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


# A token's columns as `token_of_driver_row` takes them, in this order.
TOKEN_COLUMNS = (
    TokenRow.id, TokenRow.name, TokenRow.role, TokenRow.created_at, TokenRow.created_by,
    TokenRow.expires_at, TokenRow.revoked,
)  # fmt: skip


def token_of_driver_row(values: Sequence[Any]) -> Token:
    """`token_entity` of a row the driver returned itself (`TOKEN_COLUMNS`), with no column
    type's conversion: its times come naive, in UTC, as the store writes them."""
    id_, name, role, created_at, created_by, expires_at, revoked = values
    return Token(
        id=id_,
        name=name,
        role=Role(role),
        created_at=created_at.replace(tzinfo=UTC),
        created_by=created_by,
        expires_at=None if expires_at is None else expires_at.replace(tzinfo=UTC),
        revoked=revoked,
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


# monitoring and incidents -------------------------------------------------------------------
def monitor_entity(row: MonitorRow) -> StoredMonitor:
    return StoredMonitor.model_validate(
        {
            "deployment": row.deployment,
            "spec": row.spec,
            "revision": row.revision,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
        }
    )


def window_entity(row: MonitorWindowRow) -> MonitorWindow:
    return MonitorWindow.model_validate(
        {
            "id": row.id,
            "deployment": row.deployment,
            "model_name": row.model_name,
            "start": row.start,
            "end": row.end,
            "computed_at": row.computed_at,
            "status": row.status,
            "rows": row.rows,
            "versions": row.versions,
            "metrics": row.metrics,
            "report": row.report,
            "error": row.error,
        }
    )


def alert_entity(row: AlertRow) -> Alert:
    return Alert.model_validate(
        {
            "id": row.id,
            "deployment": row.deployment,
            "model_name": row.model_name,
            "rule": row.rule,
            "state": row.state,
            "severity": row.severity,
            "value": row.value,
            "last_value": row.last_value,
            "window_id": row.window_id,
            "fired_at": row.fired_at,
            "resolved_at": row.resolved_at,
            "incident_id": row.incident_id,
        }
    )


def incident_entity(row: IncidentRow) -> Incident:
    return Incident.model_validate(
        {
            "id": row.id,
            "model_name": row.model_name,
            "deployment": row.deployment,
            "title": row.title,
            "state": row.state,
            "severity": row.severity,
            "owner": row.owner,
            "opened_at": row.opened_at,
            "opened_by": row.opened_by,
            "mitigated_at": row.mitigated_at,
            "resolved_at": row.resolved_at,
            "updated_at": row.updated_at,
            "postmortem": row.postmortem,
        }
    )


def checked_input(entity: type[E], values: dict[str, Any], field: str | None = None) -> E:
    """``values`` as ``entity``, or InvalidInput naming the first field that is wrong.

    For values written through the store: what is stored must read back, so a value the entity
    refuses is refused before it is written rather than on every later read.
    """
    try:
        return entity.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in (field, *error["loc"]) if part is not None)
        raise InvalidInput(
            f"The {entity.__name__} field {where!r} is invalid: {error['msg']}.", field=where
        ) from exc
