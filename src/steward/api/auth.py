"""Who is calling: a bearer token checked against the store, cached briefly per process.

The cache keeps the check off the database on the hot path; a revoked token stops working
within ``_TTL_SECONDS`` on every replica.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from steward.auth.service import TokenService, require_role
from steward.domain.enums import Role
from steward.errors import Unauthenticated

_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


class TokenCache:
    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens
        self._seen: dict[str, tuple[float, Principal]] = {}

    def cached(self, secret: str | None) -> Principal | None:
        """The principal for ``secret`` if it was checked less than the TTL ago."""
        hit = None if secret is None else self._seen.get(secret)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def principal(self, secret: str | None) -> Principal:
        hit = self.cached(secret)
        if hit is not None:
            return hit
        now = time.monotonic()
        token = self.tokens.authenticate(secret)
        principal = Principal(name=f"token:{token.name}", role=token.role)
        if secret is not None and (token.expires_at is None):
            self._seen[secret] = (now + _TTL_SECONDS, principal)
        return principal


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return value.strip()


def requires(role: Role, action: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks ``role``.

    Async so a cache hit costs no thread-pool hop; a miss reads the store in the pool, off the
    event loop.
    """

    async def dependency(request: Request) -> Principal:
        cache: TokenCache = request.app.state.token_cache
        secret = _bearer(request)
        principal = cache.cached(secret)
        if principal is None:
            principal = await run_in_threadpool(cache.principal, secret)
        require_role(principal.role, role, action)
        return principal

    return dependency
