"""The one exception hierarchy: each class carries its wire code, HTTP status and CLI exit code.

The API's single error handler and the CLI's ``main()`` both read these attributes, and the
HTTP client maps ``code`` back to the class, so a caller catches the same type whether the
SDK runs in-process or against a server.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StewardError(Exception):
    """Base class; an instance of the base itself means an unexpected failure."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(StewardError, ValueError):
    """The caller sent something malformed; ``details["field"]`` names the culprit."""

    code = "invalid_input"
    http_status = 422
    exit_code = 2

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        merged = dict(details or {})
        if field is not None:
            merged["field"] = field
        super().__init__(message, details=merged)
        self.field = field


class GateFailed(StewardError):
    code = "gate_failed"
    http_status = 409
    exit_code = 3


class NotFound(StewardError, LookupError):
    code = "not_found"
    http_status = 404
    exit_code = 4


class AlreadyExists(StewardError):
    code = "already_exists"
    http_status = 409
    exit_code = 5


class Conflict(StewardError):
    code = "conflict"
    http_status = 409
    exit_code = 5


class Unauthenticated(StewardError):
    code = "unauthenticated"
    http_status = 401
    exit_code = 6


class PermissionDenied(StewardError, PermissionError):
    code = "permission_denied"
    http_status = 403
    exit_code = 6


class PayloadTooLarge(InvalidInput):
    """An artifact or request body is over the configured size limit."""

    code = "payload_too_large"
    http_status = 413


class Unavailable(StewardError):
    """The database or the artifact backend cannot be reached."""

    code = "unavailable"
    http_status = 503
    exit_code = 7


class LedgerCorrupted(StewardError):
    """``steward audit verify`` found an event whose hash does not match its content."""

    code = "ledger_corrupted"
    http_status = 409
    exit_code = 8


ERROR_CLASSES: tuple[type[StewardError], ...] = (
    StewardError,
    InvalidInput,
    GateFailed,
    NotFound,
    AlreadyExists,
    Conflict,
    Unauthenticated,
    PermissionDenied,
    PayloadTooLarge,
    Unavailable,
    LedgerCorrupted,
)


def error_class_for(code: str) -> type[StewardError]:
    """The class whose ``code`` is ``code``; the base class for codes this version does not know."""
    for cls in ERROR_CLASSES:
        if cls.code == code:
            return cls
    return StewardError
