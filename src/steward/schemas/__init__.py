"""Request bodies shared by the API and the client (responses are the domain entities)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from steward.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

NUL_MESSAGE = "text must not contain NUL (\\x00) characters"


class RequestBody(BaseModel):
    """Base of every request body: unknown fields are refused, and so is text with NUL.

    PostgreSQL text cannot hold a NUL character: without this check such a value passes
    validation and fails in the database, a 500 instead of a 422 naming the field.
    """

    model_config = ConfigDict(extra="forbid")
    # Fields whose items are checked otherwise (or may hold NUL): walking a batch of thousands
    # of points again in Python cost 6 ms per 1,000 (measured on log_batch).
    bulk_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name in cls.bulk_fields:
            return value
        if _has_nul(value):
            raise ValueError(NUL_MESSAGE)
        return value


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, BaseModel | dict | list | tuple) and not _may_hold_nul(value):
        return False
    return _walk_for_nul(value)


def _may_hold_nul(value: object) -> bool:
    """False when ``value`` surely holds no NUL: its JSON (pydantic-core's, which writes NUL as
    ``\\u0000``) lacks that escape. One call in C instead of a walk in Python, which cost ~25 µs of
    a registration's body on each side (the SDK and the server). A value it cannot write, or
    whose JSON has the escape (NUL, or a backslash before ``u0000``), is walked."""
    try:
        return b"\\u0000" in pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return True


def _walk_for_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, BaseModel):
        return _walk_for_nul(value.model_dump())
    if isinstance(value, dict):
        return any(_walk_for_nul(k) or _walk_for_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_walk_for_nul(v) for v in value)
    return False


def readable(error: Any) -> str:
    """pydantic's message, except where it would quote a regex at the user."""
    if error.get("type") == "string_pattern_mismatch" and "x00" in str(error.get("ctx", "")):
        return "text must not contain NUL (\\x00) characters"
    return str(error["msg"])


def parse(schema: type[M], data: Any) -> M:
    """Validate ``data`` as ``schema``; a failure becomes InvalidInput naming the first field."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise invalid_input_from(exc) from None


def invalid_input_from(exc: ValidationError) -> InvalidInput:
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = f"The field '{field}' is invalid: {readable(first)}." if field else readable(first)
    if len(errors) > 1:
        message += f" ({len(errors) - 1} more problem(s) in the request.)"
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": readable(e)} for e in errors
    ]
    return InvalidInput(message, field=field, details={"problems": problems})
