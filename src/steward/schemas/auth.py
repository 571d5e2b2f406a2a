"""Request and response bodies of API tokens."""

from __future__ import annotations

from pydantic import BaseModel, Field

from steward.domain.entities import Token
from steward.domain.enums import Role
from steward.schemas import RequestBody


class TokenCreate(RequestBody):
    name: str = Field(min_length=1, max_length=256)
    role: Role
    expires_in_days: float | None = Field(default=None, gt=0, le=36_500)  # 100 years


class TokenCreated(BaseModel):
    """The only time the secret is shown; the store keeps its hash."""

    token: Token
    secret: str
