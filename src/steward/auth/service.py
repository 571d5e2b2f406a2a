"""TokenService: tokens are random secrets shown once; the store keeps only their sha256.

SHA-256 rather than a slow password hash: the secret is 256 bits of randomness, so it cannot be
guessed from its hash, and the check runs on every request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from steward.domain.clock import utcnow
from steward.domain.entities import Token
from steward.domain.enums import Role
from steward.errors import PermissionDenied, Unauthenticated
from steward.schemas.auth import TokenCreate, TokenCreated
from steward.store.base import MetadataStore

TOKEN_PREFIX = "stw_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenService:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

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
        return token

    def list_tokens(self) -> list[Token]:
        with self.store.read() as rx:
            return rx.list_tokens()

    def authenticate(self, secret: str | None) -> Token:
        if not secret:
            raise Unauthenticated(
                "This server needs an API token: send 'Authorization: Bearer <token>' "
                "(set STEWARD_TOKEN for the SDK and CLI)."
            )
        with self.store.read() as rx:
            token = rx.find_token_by_hash(hash_secret(secret))
        if token is None or token.revoked:
            raise Unauthenticated(
                "The API token is unknown or revoked; create one with `steward tokens create`."
            )
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthenticated(
                f"The API token {token.name!r} expired at {token.expires_at:%Y-%m-%d %H:%M} UTC; "
                "create a new one with `steward tokens create`."
            )
        return token


def require_role(token_role: Role, needed: Role, action: str) -> None:
    if not token_role.allows(needed):
        raise PermissionDenied(
            f"{action} needs the {needed.value} role; this token has {token_role.value}.",
            details={"needed": needed.value, "role": token_role.value},
        )
