"""Rules on artifact names: digests and the relative paths runs store files under."""

from __future__ import annotations

import posixpath
import re

from steward.errors import InvalidInput

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def check_digest(digest: str) -> str:
    if not _DIGEST_RE.fullmatch(digest):
        raise InvalidInput(
            f"The artifact digest {digest!r} is not valid: expected 'sha256:' and 64 hex digits.",
            field="digest",
        )
    return digest


def check_relative_path(path: str, field: str = "path") -> str:
    """Refuse names that would escape the artifact root: absolute paths, '..', backslashes."""
    normalized = posixpath.normpath(path) if path else ""
    if (
        not path
        or path.startswith(("/", "\\"))
        or "\\" in path
        or re.match(r"^[A-Za-z]:", path)
        or normalized.startswith("..")
        or "/../" in f"/{path}/"
        or "\x00" in path
    ):
        raise InvalidInput(
            f"The artifact path {path!r} is not allowed: use a relative path inside the run, "
            "without '..' or a leading '/'.",
            field=field,
        )
    return normalized
