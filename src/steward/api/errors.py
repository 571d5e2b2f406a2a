"""The one error handler: every failure leaves as {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from steward.errors import StewardError
from steward.schemas import readable

log = logging.getLogger("steward.api")

_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def envelope(status: int, code: str, message: str, details: dict[str, object]) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status)


def steward_error_response(exc: StewardError) -> JSONResponse:
    if exc.http_status >= 500:
        log.error("request failed: %s", exc.message, exc_info=exc)
    return envelope(exc.http_status, exc.code, exc.message, exc.details)


async def _steward_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StewardError)
    return steward_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = [{"field": _field(e), "message": readable(e)} for e in errors]
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    if errors and errors[0].get("type") == "json_invalid":
        message = "The request body is not valid JSON."
    else:
        message = f"The field '{first['field']}' is invalid: {first['message']}."
    if len(problems) > 1:
        message += f" ({len(problems) - 1} more problem(s) in the request.)"
    details: dict[str, object] = {"field": first["field"], "problems": problems}
    return envelope(422, "invalid_input", message, details)


def _field(error: Any) -> str:
    """The field as the caller names it: without FastAPI's "body"/"query"/"path" location.

    ``limit`` rather than ``query.limit``, so a parameter has the same name whether the API's
    validation or a service refused it; a body that is not JSON or not an object is ``body``.
    """
    loc = list(error["loc"])
    if loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    if error.get("type") == "json_invalid" or not loc:
        return "body"
    return ".".join(str(part) for part in loc)


_LOCATIONS = ("body", "query", "path", "header", "cookie")


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(
        exc.status_code, "internal" if exc.status_code >= 500 else "invalid_input"
    )
    return envelope(exc.status_code, code, str(exc.detail), {})


def unexpected_error_response(exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return envelope(500, "internal", "The server hit an unexpected error; it has been logged.", {})


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StewardError, _steward_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
