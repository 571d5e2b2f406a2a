"""Request bodies shared by the API and the client (responses are the domain entities)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from steward.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


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
    message = f"The field '{field}' is invalid: {first['msg']}." if field else first["msg"]
    if len(errors) > 1:
        message += f" ({len(errors) - 1} more problem(s) in the request.)"
    problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors]
    return InvalidInput(message, field=field, details={"problems": problems})
