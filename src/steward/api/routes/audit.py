"""The ledger: list events, verify the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from steward.api.deps import ServicesDep, Viewer
from steward.api.render import json_response
from steward.api.routing import JsonRoute
from steward.domain.entities import Event, Page, VerifyReport
from steward.schemas.audit import EventQuery

router = APIRouter(tags=["audit"], route_class=JsonRoute)


@router.get("/events", response_model=Page[Event])
def list_events(
    services: ServicesDep, _: Viewer, query: Annotated[EventQuery, Query()]
) -> Response:
    return json_response(services.audit.list_events(**query.model_dump()))


@router.get("/audit/verify", response_model=VerifyReport)
def verify(services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.audit.verify())
