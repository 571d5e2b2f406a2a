"""API tokens (admin only) and whoami."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from steward.api.deps import Admin, ServicesDep, Viewer
from steward.api.render import json_response
from steward.api.routing import JsonRoute
from steward.domain.entities import Token
from steward.domain.enums import Role
from steward.schemas.auth import TokenCreate, TokenCreated

router = APIRouter(tags=["tokens"], route_class=JsonRoute)


class WhoAmI(BaseModel):
    name: str
    role: Role


@router.get("/whoami", response_model=WhoAmI)
def whoami(who: Viewer) -> Response:
    return json_response(WhoAmI(name=who.name, role=who.role))


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, services: ServicesDep, who: Admin) -> Response:
    return json_response(services.tokens.create_token(who.name, body), status_code=201)


@router.get("/tokens", response_model=list[Token])
def list_tokens(services: ServicesDep, _: Admin) -> list[Token]:
    return services.tokens.list_tokens()


@router.delete("/tokens/{token_id}", response_model=Token)
def revoke_token(token_id: str, services: ServicesDep, who: Admin) -> Response:
    return json_response(services.tokens.revoke_token(who.name, token_id))
