"""TokenService: tokens are random secrets shown once; the store keeps only their sha256.

SHA-256 rather than a slow password hash: the secret is 256 bits of randomness, so it cannot be
guessed from its hash, and the check runs on every request.

A token read from the store is trusted for `CACHE_SECONDS` without reading it again, which
keeps a database read off nearly every request. Its expiry is still checked on every use, from
the cached record; a revocation through this service takes effect at once, one made through
another server process within `CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from steward.domain.clock import utcnow
from steward.domain.entities import Token
from steward.domain.enums import Role
from steward.errors import PermissionDenied, Unauthenticated
from steward.schemas.auth import TokenCreate, TokenCreated
from steward.store.base import MetadataStore

TOKEN_PREFIX = "stw_"
# How long a token read from the store is trusted without reading it again: the longest a
# token revoked on another server process keeps working here.
CACHE_SECONDS = 5.0
# Verified tokens kept at most; past it the cache starts over (a server sees a few tokens).
_CACHE_SIZE = 1024


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Verified:
    token: Token
    until: float  # on the service's monotonic clock: read the store again from then on


class TokenService:
    def __init__(
        self,
        store: MetadataStore,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._verified: dict[str, _Verified] = {}  # by the secret's hash, never the secret
        self._lock = threading.Lock()  # writers only: a lookup is one dict read
        self._revocations = 0  # revocations seen here, so a read that raced one is not cached

    def create_token(self, actor: str, body: TokenCreate) -> TokenCreated:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        expires = (
            None if body.expires_in_days is None else now + timedelta(days=body.expires_in_days)
        )
        values = {
            "id": str(uuid.uuid4()),
            "name": body.name,
            "role": body.role.value,
            "secret_hash": hash_secret(secret),
            "created_at": now,
            "created_by": actor,
            "expires_at": expires,
            "revoked": False,
        }
        with self.store.write(actor) as tx:
            token = tx.create_token(values)
            tx.record(
                "token.created", "token", token.id,
                {"name": token.name, "role": token.role.value,
                 "expires_at": expires.isoformat() if expires else None},
            )  # fmt: skip
        return TokenCreated(token=token, secret=secret)

    def revoke_token(self, actor: str, token_id: str) -> Token:
        with self.store.write(actor) as tx:
            token = tx.revoke_token(token_id)
            tx.record("token.revoked", "token", token_id, {"name": token.name})
        self._forget(token_id)
        return token

    def list_tokens(self) -> list[Token]:
        with self.store.read() as rx:
            return rx.list_tokens()

    def authenticate_cached(self, secret: str | None) -> Token | None:
        """The token for ``secret`` if it was read from the store less than ``cache_seconds``
        ago (raising if it has expired since); None when only `authenticate` can tell. No I/O,
        so the API calls it on its event loop."""
        if not secret:
            return None
        hit = self._verified.get(hash_secret(secret))
        if hit is None or hit.until <= self.clock():
            return None
        _check_not_expired(hit.token)
        return hit.token

    def authenticate(self, secret: str | None) -> Token:
        secret = _required(secret)
        cached = self.authenticate_cached(secret)
        if cached is not None:
            return cached
        secret_hash, read_at, revocations = self._before_reading(secret)
        with self.store.read() as rx:
            token = rx.find_token_by_hash(secret_hash)
        return self._verified_token(secret_hash, token, read_at, revocations)

    async def authenticate_on_loop(self, secret: str | None) -> Token:
        """`authenticate`, its store read awaited on the running event loop: `ReadWouldWait`
        where the store cannot read there (`MetadataStore.reads_on_loop`), with nothing read."""
        secret = _required(secret)
        cached = self.authenticate_cached(secret)
        if cached is not None:
            return cached
        secret_hash, read_at, revocations = self._before_reading(secret)
        token = await self.store.find_token_by_hash_on_loop(secret_hash)
        return self._verified_token(secret_hash, token, read_at, revocations)

    def _before_reading(self, secret: str) -> tuple[str, float, int]:
        """The secret's hash, the time (before the read: a revocation after it counts from
        there) and the count of revocations, taken before the store is read."""
        return hash_secret(secret), self.clock(), self._revocations

    def _verified_token(
        self, secret_hash: str, token: Token | None, read_at: float, revocations: int
    ) -> Token:
        """The token read for ``secret_hash``, checked and cached; refused when it is unknown,
        revoked or expired."""
        if token is None or token.revoked:
            raise Unauthenticated(
                "The API token is unknown or revoked; create one with `steward tokens create`."
            )
        _check_not_expired(token)
        self._remember(secret_hash, _Verified(token, read_at + self.cache_seconds), revocations)
        return token

    def _remember(self, secret_hash: str, verified: _Verified, revocations: int) -> None:
        with self._lock:
            if revocations != self._revocations:
                return  # a token was revoked here while this one was read: it may be that one
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()
            self._verified[secret_hash] = verified

    def _forget(self, token_id: str) -> None:
        with self._lock:
            self._revocations += 1
            self._verified = {k: v for k, v in self._verified.items() if v.token.id != token_id}


def _required(secret: str | None) -> str:
    if not secret:
        raise Unauthenticated(
            "This server needs an API token: send 'Authorization: Bearer <token>' "
            "(set STEWARD_TOKEN for the SDK and CLI)."
        )
    return secret


def _check_not_expired(token: Token) -> None:
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise Unauthenticated(
            f"The API token {token.name!r} expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; "
            "create a new one with `steward tokens create`."
        )


def require_role(token_role: Role, needed: Role, action: str) -> None:
    if not token_role.allows(needed):
        raise PermissionDenied(
            f"{action} needs the {needed.value} role; this token has {token_role.value}.",
            details={"needed": needed.value, "role": token_role.value},
        )
