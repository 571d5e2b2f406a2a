"""Experiments: metrics defined once (``PUT /metrics/{name}``), experiments created on a
deployment's split or canary, outcome events logged as JSON rows or a Parquet upload, and an
experiment's analysis (JSON or a standalone web page) and decision. Viewers read; developers
write, analyse and decide; applying a ship decision (a promotion to production) needs the
approver role, as ``steward promote`` does."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from steward.api.auth import Principal, requires
from steward.api.deps import ServicesDep, Viewer
from steward.api.render import json_list_response, json_response
from steward.api.routing import JsonRoute
from steward.api.uploads import media_type, parse_json, read_body
from steward.auth.service import require_role
from steward.domain.enums import Role
from steward.domain.experiments import (
    DecisionAction,
    Experiment,
    ExperimentAnalysis,
    MetricDefinition,
)
from steward.experiments.report import render_analysis_html
from steward.schemas.experiments import (
    MAX_OUTCOMES_BODY_BYTES,
    PARQUET_MEDIA_TYPE,
    AnalysisFormat,
    DecisionCreate,
    ExperimentCreate,
    ExperimentQuery,
    MetricBody,
    OutcomeReceipt,
    OutcomesCreate,
    OutcomeSource,
    table_from_parquet,
)

router = APIRouter(tags=["experiments"], route_class=JsonRoute)
Writer = Annotated[
    Principal,
    Depends(requires(Role.DEVELOPER, "Defining metrics, creating experiments or logging outcomes")),
]
Analysing = Annotated[Principal, Depends(requires(Role.DEVELOPER, "Analysing an experiment"))]
Deciding = Annotated[Principal, Depends(requires(Role.DEVELOPER, "Deciding an experiment"))]
_METRICS = TypeAdapter(list[MetricDefinition])
_EXPERIMENTS = TypeAdapter(list[Experiment])


# metrics --------------------------------------------------------------------------------------
@router.put("/metrics/{name}", response_model=MetricDefinition)
def put_metric(name: str, body: MetricBody, services: ServicesDep, who: Writer) -> Response:
    """Define the metric, or redefine it (409 while a running experiment uses it)."""
    return json_response(services.experiments.define_metric(who.name, name, body))


@router.get("/metrics", response_model=list[MetricDefinition])
def list_metrics(services: ServicesDep, _: Viewer) -> Response:
    return json_list_response(_METRICS, services.experiments.metrics())


# experiments ----------------------------------------------------------------------------------
@router.post("/experiments", response_model=Experiment, status_code=status.HTTP_201_CREATED)
def create_experiment(body: ExperimentCreate, services: ServicesDep, who: Writer) -> Response:
    """Start an experiment on the deployment's split (or canary): its variants, weights and
    control are read from the deployment."""
    return json_response(services.experiments.create(who.name, body), status_code=201)


@router.get("/experiments", response_model=list[Experiment])
def list_experiments(
    services: ServicesDep, _: Viewer, query: Annotated[ExperimentQuery, Query()]
) -> Response:
    """Experiments, latest started first."""
    found = services.experiments.list(deployment=query.deployment, state=query.state)
    return json_list_response(_EXPERIMENTS, found)


@router.get("/experiments/{name}", response_model=Experiment)
def get_experiment(name: str, services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.experiments.get(name))


@router.post(
    "/experiments/{name}/analysis",
    response_model=ExperimentAnalysis,
    responses={200: {"content": {"text/html": {}}}},
)
def analyze_experiment(
    name: str, services: ServicesDep, who: Analysing, format: AnalysisFormat = "json"
) -> Response:
    """Analyse the experiment now: the sample-ratio check, every metric with the experiment's
    method, the corrections, the guardrails and a recommendation with its reasons; an
    ``experiment.analyzed`` event. ``?format=html`` gives it as a standalone web page."""
    analysis = services.analyze_experiment(who.name, name)
    if format == "html":
        return HTMLResponse(render_analysis_html(analysis, services.experiments.get(name)))
    return json_response(analysis)


@router.post("/experiments/{name}/decision", response_model=Experiment)
def decide_experiment(
    name: str, body: DecisionCreate, services: ServicesDep, who: Deciding
) -> Response:
    """Record the decision (ship, rollback or iterate) and its reason, which ends the
    experiment: an ``experiment.decided`` event. With ``apply``, act on the deployment first:
    ship promotes the variant to production if needed (approver role) and makes it the
    champion; rollback sends all traffic back to the champion."""
    if body.apply and body.action is DecisionAction.SHIP:
        require_role(who.role, Role.APPROVER, "Applying a ship decision (promoting to production)")
    decided = services.decide_experiment(
        who.name, name, body.action, body.reason, variant=body.variant, apply=body.apply
    )
    return json_response(decided)


# outcomes -------------------------------------------------------------------------------------
def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined: the body is read by hand (it may be
    Parquet), so FastAPI does not add OutcomesCreate to the OpenAPI components itself."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(OutcomesCreate.model_json_schema())},
            PARQUET_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "example": "a Parquet file with columns name, value, unit_id or request_id, "
                "and optionally timestamp",
            },
        },
    }
}


_SHAPE = '{"outcomes": [{"name": ..., "value": ..., "unit_id": ...}]}'


@router.post(
    "/outcomes",
    response_model=OutcomeReceipt,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_BODY,
)
async def log_outcomes(
    request: Request,
    services: ServicesDep,
    who: Writer,
    source: Annotated[
        OutcomeSource | None,
        Query(description="sdk, api (default) or file; a JSON body may say it as 'source'."),
    ] = None,
) -> Response:
    """Log outcome events: all or nothing, one file per outcome and day, one
    ``outcomes.logged`` event.

    JSON ``{"outcomes": [{"name", "value", "unit_id" | "request_id", "timestamp"?}],
    "source"?}``, or a Parquet body (``Content-Type: application/vnd.apache.parquet``) with
    those columns.
    """
    media = media_type(request, PARQUET_MEDIA_TYPE, "outcomes")
    body = await read_body(request, MAX_OUTCOMES_BODY_BYTES, "outcomes")
    outcomes: Any
    if media == PARQUET_MEDIA_TYPE:
        outcomes = await run_in_threadpool(table_from_parquet, body)
        origin: OutcomeSource = source or "api"
    else:
        parsed = await run_in_threadpool(
            parse_json,
            OutcomesCreate,
            body,
            _SHAPE,
        )
        outcomes, origin = parsed.outcomes, source or parsed.source
    receipt = await run_in_threadpool(
        services.experiments.log_outcomes, who.name, outcomes, source=origin
    )
    return json_response(receipt, status_code=201)
