"""Deployments: create or change one, list them, roll one back to its champion."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import TypeAdapter

from steward.api.deps import Developer, ServicesDep, Viewer
from steward.api.render import json_list_response, json_response
from steward.api.routing import JsonRoute
from steward.domain.deployments import Deployment
from steward.domain.uri import check_model_name
from steward.schemas.serving import DeploymentSpec, Rollback

router = APIRouter(tags=["deployments"], route_class=JsonRoute)
_DEPLOYMENTS = TypeAdapter(list[Deployment])


@router.put("/deployments/{name}", response_model=Deployment)
def put_deployment(
    name: str, body: DeploymentSpec, services: ServicesDep, who: Developer
) -> Response:
    return json_response(services.deployments.deploy(who.name, name, body))


@router.get("/deployments", response_model=list[Deployment])
def list_deployments(services: ServicesDep, _: Viewer, model: str | None = None) -> Response:
    return json_list_response(_DEPLOYMENTS, services.deployments.list(model))


@router.get("/deployments/{name}", response_model=Deployment)
def get_deployment(name: str, services: ServicesDep, _: Viewer) -> Response:
    check_model_name(name, field="name")
    return json_response(services.deployments.get(name))


@router.post("/deployments/{name}/rollback", response_model=Deployment)
def rollback(name: str, body: Rollback, services: ServicesDep, who: Developer) -> Response:
    check_model_name(name, field="name")
    return json_response(
        services.deployments.rollback(who.name, name, reason=body.reason, evidence=body.evidence)
    )
