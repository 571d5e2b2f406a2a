"""Who is calling: a bearer token checked by the token service (which caches it briefly)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from steward.auth.service import TokenService, require_role
from steward.domain.entities import Token
from steward.domain.enums import Role
from steward.errors import Unauthenticated
from steward.wiring import Services


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @classmethod
    def of(cls, token: Token) -> Principal:
        return cls(name=f"token:{token.name}", role=token.role)


def bearer_secret(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without the header."""
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return value.strip()


def requires(role: Role, action: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks ``role``.

    Async so a token verified moments ago costs no thread-pool hop; otherwise the store is read
    in the pool, off the event loop.
    """

    async def dependency(request: Request) -> Principal:
        services: Services = request.app.state.services
        tokens: TokenService = services.tokens
        secret = bearer_secret(request.headers.get("authorization"))
        token = tokens.authenticate_cached(secret)
        if token is None:
            token = await run_in_threadpool(tokens.authenticate, secret)
        require_role(token.role, role, action)
        return Principal.of(token)

    return dependency
