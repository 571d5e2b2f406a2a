"""Models, versions, aliases, cards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import PlainTextResponse

from steward.api.deps import Developer, ServicesDep, Viewer
from steward.api.render import json_response
from steward.api.routing import JsonRoute
from steward.domain.entities import Alias, Model, ModelVersion, Page
from steward.domain.uri import ModelRef, check_model_name
from steward.errors import InvalidInput
from steward.schemas.registry import (
    MAX_VERSION,
    AliasSet,
    ModelCreate,
    ModelUpdate,
    VersionCreate,
    VersionUpdate,
)

router = APIRouter(tags=["registry"], route_class=JsonRoute)

Filter = Annotated[str | None, Query(description="e.g. metrics.auc > 0.8 and tags.team = 'risk'")]
Limit = Annotated[int, Query(ge=1, le=10_000)]


@router.get("/models", response_model=Page[Model])
def list_models(
    services: ServicesDep, _: Viewer, filter: Filter = None, limit: Limit = 100,
    page_token: str | None = None,
) -> Response:  # fmt: skip
    return json_response(services.registry.list_models(filter, limit=limit, page_token=page_token))


@router.post("/models", response_model=Model, status_code=status.HTTP_201_CREATED)
def create_model(body: ModelCreate, services: ServicesDep, who: Developer) -> Response:
    return json_response(services.registry.create_model(who.name, body), status_code=201)


@router.get("/models/{name}", response_model=Model)
def get_model(name: str, services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.registry.get_model(name))


@router.patch("/models/{name}", response_model=Model)
def update_model(name: str, body: ModelUpdate, services: ServicesDep, who: Developer) -> Response:
    return json_response(services.registry.update_model(who.name, name, body))


@router.get("/versions", response_model=Page[ModelVersion])
def list_versions(
    services: ServicesDep, _: Viewer, filter: Filter = None, model: str | None = None,
    limit: Limit = 100, page_token: str | None = None,
) -> Response:  # fmt: skip
    page = services.registry.list_versions_json(
        filter, model=model, limit=limit, page_token=page_token
    )
    return Response(page, media_type="application/json")


@router.post(
    "/models/{name}/versions", response_model=ModelVersion, status_code=status.HTTP_201_CREATED
)
def create_version(
    name: str, body: VersionCreate, services: ServicesDep, who: Developer
) -> Response:
    return json_response(services.registry.create_version(who.name, name, body), status_code=201)


@router.get("/models/{name}/versions/{version}", response_model=ModelVersion)
def get_version(name: str, version: str, services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.registry.get_version(_ref(name, version)))


@router.patch("/models/{name}/versions/{version}", response_model=ModelVersion)
def update_version(
    name: str,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    body: VersionUpdate,
    services: ServicesDep,
    who: Developer,
) -> Response:
    return json_response(services.registry.update_version(who.name, name, version, body))


@router.get("/resolve", response_model=ModelVersion)
def resolve_uri(
    uri: Annotated[str, Query(description="models:/NAME/VERSION or models:/NAME@ALIAS")],
    services: ServicesDep,
    _: Viewer,
) -> Response:
    return json_response(services.registry.get_version(uri))


@router.put("/models/{name}/aliases/{alias}", response_model=Alias)
def set_alias(
    name: str, alias: str, body: AliasSet, services: ServicesDep, who: Developer
) -> Response:
    return json_response(services.registry.set_alias(who.name, name, alias, body.version))


@router.delete("/models/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(name: str, alias: str, services: ServicesDep, who: Developer) -> Response:
    services.registry.delete_alias(who.name, name, alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/card", response_class=PlainTextResponse)
def model_card(
    uri: Annotated[str, Query(description="models:/NAME/VERSION or models:/NAME@ALIAS")],
    services: ServicesDep,
    _: Viewer,
) -> PlainTextResponse:
    return PlainTextResponse(services.registry.model_card(uri), media_type="text/markdown")


def _ref(name: str, version: str) -> ModelRef:
    check_model_name(name)
    if version == "latest":
        return ModelRef(name=name)
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(
            f"The version must be a positive integer or 'latest'. Got {version!r}.", field="version"
        )
    return ModelRef(name=name, version=int(version))
