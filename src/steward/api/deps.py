"""Shared route dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from steward.api.auth import Principal, requires
from steward.domain.enums import Role
from steward.wiring import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
Viewer = Annotated[Principal, Depends(requires(Role.VIEWER, "Reading"))]
Developer = Annotated[Principal, Depends(requires(Role.DEVELOPER, "Writing to the registry"))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN, "Managing tokens"))]
