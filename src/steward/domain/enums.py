"""Closed vocabularies shared by every layer."""

from __future__ import annotations

from enum import StrEnum


class Flavor(StrEnum):
    """How a version's artifact is stored and loaded."""

    SKLEARN = "sklearn"  # skops file: loads without unpickling arbitrary code
    ONNX = "onnx"
    PYTHON = "python"  # a pickled Python object: loads only when trusted on both sides


class Role(StrEnum):
    """Roles in increasing order of power; each includes the rights of those before it."""

    VIEWER = "viewer"
    DEVELOPER = "developer"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_ROLE_ORDER = [Role.VIEWER, Role.DEVELOPER, Role.APPROVER, Role.ADMIN]


class VersionStatus(StrEnum):
    """Lifecycle states of a model version (transitions are owned by the gates capability)."""

    REGISTERED = "registered"
    VALIDATED = "validated"
    APPROVED = "approved"
    STAGING = "staging"
    PRODUCTION = "production"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"
