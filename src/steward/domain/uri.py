"""Model URIs as MLflow users know them: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from steward.errors import InvalidInput

MAX_VERSION = 2**31 - 1  # version numbers are 32-bit integer columns
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
_URI_RE = re.compile(
    rf"^models:/(?P<name>{NAME_PATTERN})(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$"
)


@dataclass(frozen=True)
class ModelRef:
    """A pointer at one version: by number, by alias, or ``latest``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version if self.version is not None else 'latest'}"


def version_uri(name: str, version: int) -> str:
    """``models:/NAME/VERSION``: how the ledger names a version (its events' subject id)."""
    return f"models:/{name}/{version}"


def check_model_name(name: str, field: str = "name") -> str:
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"The model name {name!r} is not valid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit.",
            field=field,
        )
    return name


def check_alias(alias: str, field: str = "alias") -> str:
    if not _ALIAS_RE.match(alias) or alias == "latest" or alias.isdigit():
        raise InvalidInput(
            f"The alias {alias!r} is not valid: use 1-64 lowercase letters, digits, '_' or '-', "
            "starting with a letter; 'latest' is reserved.",
            field=field,
        )
    return alias


def parse_model_uri(uri: str) -> ModelRef:
    match = _URI_RE.match(uri.strip())
    if match is None:
        raise InvalidInput(
            f"The model URI {uri!r} is not valid: use models:/NAME/VERSION, "
            "models:/NAME/latest or models:/NAME@ALIAS.",
            field="uri",
        )
    name, version, alias = match["name"], match["version"], match["alias"]
    if alias is not None:
        return ModelRef(name=name, alias=check_alias(alias))
    if version == "latest":
        return ModelRef(name=name)
    if version is None or not version.isdigit() or int(version) < 1:
        raise InvalidInput(
            f"The version in {uri!r} must be a positive integer or 'latest'. Got {version!r}.",
            field="uri",
        )
    return ModelRef(name=name, version=int(version))
