"""The embedded backend: services called in-process, acting as the local admin."""

from __future__ import annotations

from typing import IO

from steward.domain.entities import (
    Alias,
    ArtifactRef,
    Event,
    MetricPoint,
    Model,
    ModelVersion,
    Page,
    Run,
    Token,
    VerifyReport,
)
from steward.schemas.audit import EventQuery
from steward.schemas.auth import TokenCreate, TokenCreated
from steward.schemas.registry import ModelCreate, ModelUpdate, VersionCreate, VersionUpdate
from steward.schemas.tracking import LogBatch, RunCreate, RunEnd
from steward.wiring import Services


class LocalBackend:
    def __init__(self, services: Services, actor: str) -> None:
        self.services = services
        self.actor = actor

    def whoami(self) -> tuple[str, str]:
        return self.actor, "admin"

    def create_model(self, body: ModelCreate) -> Model:
        return self.services.registry.create_model(self.actor, body)

    def get_model(self, name: str) -> Model:
        return self.services.registry.get_model(name)

    def update_model(self, name: str, body: ModelUpdate) -> Model:
        return self.services.registry.update_model(self.actor, name, body)

    def list_models(self, filter: str | None, limit: int, page_token: str | None) -> Page[Model]:
        return self.services.registry.list_models(filter, limit=limit, page_token=page_token)

    def create_version(self, name: str, body: VersionCreate) -> ModelVersion:
        return self.services.registry.create_version(self.actor, name, body)

    def get_version(self, uri: str) -> ModelVersion:
        return self.services.registry.get_version(uri)

    def update_version(self, name: str, version: int, body: VersionUpdate) -> ModelVersion:
        return self.services.registry.update_version(self.actor, name, version, body)

    def list_versions(
        self, filter: str | None, model: str | None, limit: int, page_token: str | None
    ) -> Page[ModelVersion]:
        return self.services.registry.list_versions(
            filter, model=model, limit=limit, page_token=page_token
        )

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        return self.services.registry.set_alias(self.actor, name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.services.registry.delete_alias(self.actor, name, alias)

    def model_card(self, uri: str) -> str:
        return self.services.registry.model_card(uri)

    def upload_artifact(self, data: bytes | IO[bytes]) -> ArtifactRef:
        return self.services.registry.upload_artifact(data)

    def download_artifact(self, digest: str) -> bytes:
        return self.services.registry.read_artifact(digest)

    def create_run(self, body: RunCreate) -> Run:
        return self.services.tracking.create_run(self.actor, body)

    def get_run(self, run_id: str) -> Run:
        return self.services.tracking.get_run(run_id)

    def end_run(self, run_id: str, body: RunEnd) -> Run:
        return self.services.tracking.end_run(self.actor, run_id, body)

    def log_batch(self, run_id: str, body: LogBatch) -> int:
        return self.services.tracking.log_batch(self.actor, run_id, body)

    def list_runs(
        self, filter: str | None, project: str | None, limit: int, page_token: str | None
    ) -> Page[Run]:
        return self.services.tracking.list_runs(
            filter, project=project, limit=limit, page_token=page_token
        )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self.services.tracking.metric_history(run_id, key)

    def log_artifact(self, run_id: str, path: str, data: bytes) -> Run:
        return self.services.tracking.log_artifact(self.actor, run_id, path, data)

    def list_events(self, query: EventQuery) -> Page[Event]:
        return self.services.audit.list_events(**query.model_dump())

    def verify_ledger(self) -> VerifyReport:
        return self.services.audit.verify()

    def create_token(self, body: TokenCreate) -> TokenCreated:
        return self.services.tokens.create_token(self.actor, body)

    def list_tokens(self) -> list[Token]:
        return self.services.tokens.list_tokens()

    def revoke_token(self, token_id: str) -> Token:
        return self.services.tokens.revoke_token(self.actor, token_id)

    def close(self) -> None:
        self.services.close()
