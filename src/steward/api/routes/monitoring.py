"""Monitors: a deployment's spec (PUT, GET), its stored windows, the latest window as a
standalone page (``report.html``), and a run on demand (``POST /monitors/run``), whose fired
alerts go to incidents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter

from steward.api.auth import Principal, requires
from steward.api.deps import ServicesDep, Viewer
from steward.api.render import json_list_response, json_response
from steward.api.routing import JsonRoute
from steward.domain.enums import Role
from steward.domain.monitoring import MonitorWindow, StoredMonitor
from steward.monitoring.window_report import render_latest_html
from steward.schemas.monitoring import (
    MonitorOutcomeRead,
    MonitorRead,
    MonitorRunRequest,
    MonitorRunResult,
    MonitorSpecBody,
    WindowQuery,
)

router = APIRouter(tags=["monitoring"], route_class=JsonRoute)
_WINDOWS = TypeAdapter(list[MonitorWindow])
MonitorWriter = Annotated[
    Principal, Depends(requires(Role.DEVELOPER, "Configuring or running a monitor"))
]


@router.put("/monitors/{deployment}", response_model=StoredMonitor)
def put_monitor(
    deployment: str, body: MonitorSpecBody, services: ServicesDep, who: MonitorWriter
) -> Response:
    return json_response(services.monitoring.configure(who.name, deployment, body.to_spec()))


@router.get("/monitors/{deployment}", response_model=MonitorRead)
def get_monitor(deployment: str, services: ServicesDep, _: Viewer) -> Response:
    spec, configured = services.monitoring.spec(deployment)
    return json_response(MonitorRead(deployment=deployment, spec=spec, configured=configured))


@router.get("/monitors/{deployment}/windows", response_model=list[MonitorWindow])
def list_windows(
    deployment: str, services: ServicesDep, _: Viewer, query: Annotated[WindowQuery, Query()]
) -> Response:
    return json_list_response(_WINDOWS, services.monitoring.windows(deployment, limit=query.limit))


@router.get(
    "/monitors/{deployment}/report.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}},
)
def window_report(
    deployment: str, services: ServicesDep, _: Viewer, query: Annotated[WindowQuery, Query()]
) -> HTMLResponse:
    """The latest window with the trend of the ``limit`` latest, as a standalone web page."""
    windows = services.monitoring.windows(deployment, limit=query.limit)
    return HTMLResponse(render_latest_html(deployment, windows))


@router.post("/monitors/run", response_model=MonitorRunResult)
def run_monitors(body: MonitorRunRequest, services: ServicesDep, who: MonitorWriter) -> Response:
    """Run the named deployments' monitors (every deployment's when none is named) now."""
    for name in body.deployments:  # all checked first: a typo runs nothing rather than half
        services.deployments.get(name)
    outcomes = services.run_monitors(
        who.name, body.deployments, window_s=body.window_s, end=body.end,
        engine_name=body.engine,
    )  # fmt: skip
    return json_response(
        MonitorRunResult(
            outcomes=[MonitorOutcomeRead.model_validate(o, from_attributes=True) for o in outcomes]
        )
    )
