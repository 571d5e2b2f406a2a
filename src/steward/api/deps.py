"""Shared route dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from steward.api.auth import Principal, requires
from steward.domain.enums import Role
from steward.errors import InvalidInput
from steward.wiring import Services

# The dependencies here are ``async def`` although they never wait: FastAPI runs a plain ``def``
# dependency in its thread pool, and each such hop cost ~0.3 ms per request on the benchmark
# machine, more than the work the dependency does.


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
Viewer = Annotated[Principal, Depends(requires(Role.VIEWER, "Reading"))]
Developer = Annotated[Principal, Depends(requires(Role.DEVELOPER, "Writing to the registry"))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN, "Managing tokens"))]


async def refuse_nul(request: Request) -> None:
    """Refuse NUL characters in path and query parameters, as the schemas do in bodies.

    PostgreSQL text cannot hold NUL, so a lookup by such a name would fail in the driver (a
    500) instead of answering "invalid input" or "not found".
    """
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in params:
        if "\x00" in value:
            raise InvalidInput(f"The {name!r} must not contain NUL (\\x00) characters.", field=name)
