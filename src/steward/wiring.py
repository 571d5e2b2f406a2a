"""Build the services from settings: the one place that picks concrete backends."""

from __future__ import annotations

from dataclasses import dataclass

from steward.audit.service import AuditService
from steward.auth.service import TokenService
from steward.gates.service import GatesService
from steward.registry.service import RegistryService
from steward.serving.deployments import DeploymentService
from steward.settings import Settings
from steward.store.artifacts.store import FsspecArtifactStore
from steward.store.sql.migrate import ensure_current
from steward.store.sql.store import SqlMetadataStore
from steward.tracking.service import TrackingService


@dataclass
class Services:
    settings: Settings
    store: SqlMetadataStore
    artifacts: FsspecArtifactStore
    registry: RegistryService
    tracking: TrackingService
    audit: AuditService
    tokens: TokenService
    gates: GatesService
    deployments: DeploymentService

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Services:
        store = SqlMetadataStore.from_settings(settings)
        if migrate:
            ensure_current(store.engine)
        artifacts = FsspecArtifactStore.from_settings(settings)
        return cls(
            settings=settings,
            store=store,
            artifacts=artifacts,
            registry=RegistryService(store, artifacts),
            tracking=TrackingService(store, artifacts),
            audit=AuditService(store),
            tokens=TokenService(store),
            deployments=DeploymentService(store),
            gates=GatesService(store, artifacts, allow_trusted=settings.allow_trusted_models),
        )

    def close(self) -> None:
        self.store.dispose()
