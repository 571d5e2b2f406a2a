"""Bulk uploads (labels, outcomes): a JSON or Parquet body, read up to a limit, parsed off the
event loop's hands by the caller.

One place for what both routes refuse: another media type (415), a body over the limit (413,
as soon as it passes it, whatever Content-Length claimed), and JSON that is not the expected
object (422 naming ``body``, or the field pydantic names).
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request, status
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from steward.errors import InvalidInput, PayloadTooLarge
from steward.schemas import invalid_input_from

JSON_MEDIA_TYPE = "application/json"
Body = TypeVar("Body", bound=BaseModel)


def media_type(request: Request, parquet: str, what: str) -> str:
    """``application/json`` (the default) or ``parquet``; 415 for anything else."""
    media = request.headers.get("content-type", JSON_MEDIA_TYPE).split(";")[0].strip().lower()
    if media not in (JSON_MEDIA_TYPE, parquet):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Send {what} as {JSON_MEDIA_TYPE} or {parquet}, not {media!r}.",
        )
    return media


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, what)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The {what} are over the request limit of {limit} bytes; split them into several calls.",
        field="body",
    )


def parse_json(model: type[Body], body: bytes, shape: str) -> Body:
    """Parsed and validated in one pass by pydantic-core (NaN and Infinity parse, then the
    field's own check names them); ``shape`` shows the expected object in the message."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise InvalidInput("The request body is not valid JSON.", field="body") from None
        if not first["loc"]:  # valid JSON, but not an object
            raise InvalidInput(f"The body must be an object: {shape}.", field="body") from None
        raise invalid_input_from(exc) from None
