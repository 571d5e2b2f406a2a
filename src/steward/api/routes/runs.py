"""Training runs: create, batch-log, end, read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from steward.api.deps import Developer, ServicesDep, Viewer
from steward.api.render import json_response
from steward.api.routing import JsonRoute
from steward.domain.entities import MetricPoint, Page, Run
from steward.schemas.tracking import LogBatch, RunCreate, RunEnd

router = APIRouter(tags=["runs"], route_class=JsonRoute)


class BatchLogged(BaseModel):
    points: int


@router.post("/runs", response_model=Run, status_code=status.HTTP_201_CREATED)
def create_run(body: RunCreate, services: ServicesDep, who: Developer) -> Response:
    return json_response(services.tracking.create_run(who.name, body), status_code=201)


@router.get("/runs", response_model=Page[Run])
def list_runs(
    services: ServicesDep,
    _: Viewer,
    filter: Annotated[str | None, Query(description="e.g. metrics.loss < 0.1")] = None,
    project: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    page_token: str | None = None,
) -> Response:
    return json_response(
        services.tracking.list_runs(filter, project=project, limit=limit, page_token=page_token)
    )


@router.get("/runs/{run_id}", response_model=Run)
def get_run(run_id: str, services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.tracking.get_run(run_id))


@router.post("/runs/{run_id}/end", response_model=Run)
def end_run(run_id: str, body: RunEnd, services: ServicesDep, who: Developer) -> Response:
    return json_response(services.tracking.end_run(who.name, run_id, body))


@router.post("/runs/{run_id}/batch", response_model=BatchLogged)
def log_batch(run_id: str, body: LogBatch, services: ServicesDep, who: Developer) -> Response:
    return json_response(BatchLogged(points=services.tracking.log_batch(who.name, run_id, body)))


@router.get("/runs/{run_id}/metrics/{key}", response_model=list[MetricPoint])
def metric_history(run_id: str, key: str, services: ServicesDep, _: Viewer) -> list[MetricPoint]:
    return services.tracking.metric_history(run_id, key)


@router.put("/runs/{run_id}/artifacts/{path:path}", response_model=Run)
async def log_artifact(
    run_id: str, path: str, request: Request, services: ServicesDep, who: Developer
) -> Response:
    content = await request.body()
    return json_response(
        await run_in_threadpool(services.tracking.log_artifact, who.name, run_id, path, content)
    )
