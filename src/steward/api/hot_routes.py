"""The API's four hottest calls, answered before FastAPI's router, dependencies and middleware.

Registering a version, moving an alias, logging a batch of metrics and searching versions are
what training scripts and CI call in loops. On those calls FastAPI's machinery (routing, the
dependency graph, the middleware stack) cost as much as the work itself: ~0.6 ms of a ~3 ms
``create_version`` (measured, same server, same service call in the thread pool). The lane
below answers the plain, well-formed case of each with the same service call, in a worker
thread as FastAPI's sync routes, with the same body schema and the same responses.

A small registration (and, on SQLite, an alias move) runs on the event loop itself
(`_HotRoute.inline`): handing a call to a worker thread and back costs two thread wake-ups,
~0.15 ms of a ~1 ms registration on SQLite and ~0.4 ms of ~2.1 ms on PostgreSQL (measured).
That is safe only for a call that never waits, so the store runs it in `without_waiting()`
mode. On SQLite, when another connection holds the write lock, the write refuses before
writing anything; what the call still does on the loop is CPU work (a small file read back and
checked, the statements), which would hold the interpreter's lock in a worker thread just the
same. On PostgreSQL the write is built but not sent, and the loop awaits its one statement over
an async connection (`commit_held`), serving other requests meanwhile; a write that would need
the network sooner (a claim or a ledger tip this process cannot predict), or whose prediction
the database refuses, is refused with nothing written. Either way a refused call then goes to
a worker thread as usual. A search on PostgreSQL is awaited on the loop the same way
(`list_versions_json_on_loop`): its page is one query, sent over the loop's own connections.

A caller's token is taken from the token service's cache when it was verified moments ago,
and otherwise read from the store before the lane goes on (`auth.authenticated`: on the loop
over its own connections on PostgreSQL, else in a worker): a caller's first call, or its first
after a pause longer than the cache keeps a token, is answered by the lane too. Handed to
FastAPI, a registration after 5.5 s of quiet took 9.3-11.2 ms on PostgreSQL; answered here,
6.3 ms (medians of 8-12, measured): what a CI job or a training script calling now and then
meets, not the loops of a benchmark.

Anything else is handed to FastAPI unchanged, with the body replayed: a token that is missing,
unknown, revoked or expired, a caller without the role, a body that is not a valid JSON object
of the schema, a query that is not the plain form, NUL characters. So every refusal is
FastAPI's (the same codes, messages and error envelope), and the routes in ``routes/`` stay
what the OpenAPI schema documents; tests send the same requests through both and compare the
answers.

Served by `CoalescingHttpToolsProtocol` (as `steward server` runs), the lane's answers skip
ASGI too: the protocol asks `direct_route` for a handler and writes its answer itself, with no
``send`` messages for uvicorn to check and turn into bytes (4-5% of a registration and of an
alias move, measured with paired servers). FastAPI's answers on these paths are gathered from
its messages and written the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pydantic_core
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.api.auth import Principal, authenticated, bearer_secret
from steward.api.errors import steward_error_response, unexpected_error_response
from steward.domain.enums import Role
from steward.errors import StewardError
from steward.schemas.registry import AliasSet, VersionCreate
from steward.schemas.tracking import LogBatch
from steward.store.base import WouldWait, WriteWouldWait
from steward.wiring import Services

logger = logging.getLogger(__name__)
_PREFIX = "/api/v1/"
_JSON = b"application/json"
_MAX_LIMIT = 10_000  # as the route's Query(le=...)
# The most bytes of files a registration on the event loop reads back to check them.
_INLINE_FILE_BYTES = 1024 * 1024
# The largest page of versions a search on the event loop turns into JSON (~2.5 ms of it).
_LOOP_PAGE_ROWS = 500


@dataclass(frozen=True)
class _Answer:
    """An answer, as `steward.api.http_protocol.DirectAnswer` writes it."""

    status: int
    content: bytes
    headers: Mapping[str, str] | None = None  # None: the content is JSON
    after: Callable[[], None] | None = None


# A call: (services, actor, path parameters, body or query) -> its answer; run in the pool.
_Call = Callable[[Services, str, tuple[str, ...], Any], _Answer]
# The same call awaited on the event loop.
_AwaitedCall = Callable[[Services, str, tuple[str, ...], Any], Awaitable[_Answer]]


@dataclass(frozen=True)
class _HotRoute:
    role: Role
    schema: TypeAdapter[Any] | None  # the body's; None: no body, the query is passed instead
    call: _Call
    # Whether a call with this argument may run on the event loop (see the module's doc).
    inline: Callable[[Services, Any], bool] | None = None
    # The call's form awaited on the event loop, where ``inline`` allows it; without one, the
    # call itself runs there in the store's no-wait mode.
    awaited: _AwaitedCall | None = None


def _create_version(services: Services, actor: str, path: tuple[str, ...], body: Any) -> _Answer:
    version = services.registry.create_version(actor, path[0], body)
    return _Answer(201, version.model_dump_json().encode())


def _set_alias(services: Services, actor: str, path: tuple[str, ...], body: Any) -> _Answer:
    moved = services.registry.set_alias(actor, path[0], path[1], body.version)
    return _Answer(200, moved.model_dump_json().encode())


def _log_batch(services: Services, actor: str, path: tuple[str, ...], body: Any) -> _Answer:
    points = services.tracking.log_batch(actor, path[0], body)
    return _Answer(200, b'{"points":%d}' % points)


def _list_versions(services: Services, _: str, __: tuple[str, ...], query: Any) -> _Answer:
    return _Answer(200, services.registry.list_versions_json(**query))


async def _list_versions_on_loop(
    services: Services, _: str, __: tuple[str, ...], query: Any
) -> _Answer:
    return _Answer(200, await services.registry.list_versions_json_on_loop(**query))


def _small_local_registration(services: Services, body: VersionCreate) -> bool:
    """A registration whose files, at most `_INLINE_FILE_BYTES` in all, are on a local disk,
    with no reference sample to profile: what it reads and computes is bounded. (The sizes are
    the caller's; a file bigger than it says is read all the same, once.)"""
    refs = body.files.values()
    return (
        body.reference_sample is None
        and sum(ref.size for ref in refs) <= _INLINE_FILE_BYTES
        and all(services.artifacts.local_path(ref.digest) is not None for ref in refs)
    )


def _small_page_read_on_loop(services: Services, query: dict[str, Any]) -> bool:
    """A page of at most `_LOOP_PAGE_ROWS` versions, where the store reads on the event loop:
    its rows become JSON on the loop (~5 µs each), which serves nothing else meanwhile."""
    return bool(query["limit"] <= _LOOP_PAGE_ROWS and services.store.reads_on_loop())


_CREATE_VERSION = _HotRoute(
    Role.DEVELOPER, TypeAdapter(VersionCreate), _create_version, _small_local_registration
)
_SET_ALIAS = _HotRoute(
    Role.DEVELOPER,
    TypeAdapter(AliasSet),
    _set_alias,
    # A move reads the alias before it writes: on PostgreSQL, a round trip the loop must not
    # wait on (`without_waiting` would refuse it), so it goes to a worker at once.
    lambda services, _: services.store.dialect != "postgresql",
)
_LOG_BATCH = _HotRoute(Role.DEVELOPER, TypeAdapter(LogBatch), _log_batch)
_LIST_VERSIONS = _HotRoute(
    Role.VIEWER, None, _list_versions, _small_page_read_on_loop, _list_versions_on_loop
)


def _match(method: str, path: str) -> tuple[_HotRoute, tuple[str, ...]] | None:
    """The hot route of ``method path`` and its path parameters (a segment holds no slash)."""
    if not path.startswith(_PREFIX):
        return None
    parts = tuple(path[len(_PREFIX) :].split("/"))
    if not all(parts) or any("\x00" in part for part in parts):
        return None
    if method == "POST" and len(parts) == 3 and parts[0] == "models" and parts[2] == "versions":
        return _CREATE_VERSION, (parts[1],)
    if method == "PUT" and len(parts) == 4 and parts[0] == "models" and parts[2] == "aliases":
        return _SET_ALIAS, (parts[1], parts[3])
    if method == "POST" and len(parts) == 3 and parts[0] == "runs" and parts[2] == "batch":
        return _LOG_BATCH, (parts[1],)
    if method == "GET" and parts == ("versions",):
        return _LIST_VERSIONS, ()
    return None


def _version_query(query_string: bytes) -> dict[str, Any] | None:
    """The search's parameters in their plain form (each at most once, a limit in range)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    query: dict[str, Any] = dict(pairs)
    if len(query) != len(pairs) or not set(query) <= {"filter", "model", "limit", "page_token"}:
        return None
    if any("\x00" in value for value in query.values()):
        return None
    limit = query.get("limit", "100")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= _MAX_LIMIT):
        return None
    query["limit"] = int(limit)
    return query


class HotRoutes:
    """The hot lane in front of ``app``, the FastAPI application's own ``__call__``."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.direct_route(scope) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        answer = await handler(receive, send)
        if answer is not None:
            await _send_json(send, answer)

    def direct_route(self, scope: Scope) -> Callable[..., Awaitable[_Answer | None]] | None:
        """The answer of a hot route, as a function of the request's ``receive`` (None for
        every other request; the answer is None when the client left, or when FastAPI, handed
        the request, already answered it through ``send``). Without a ``send``, FastAPI's answer
        is gathered and returned instead: how `CoalescingHttpToolsProtocol` asks for answers it
        writes itself, with no ASGI messages."""
        hot = _match(scope["method"], scope["path"])
        if hot is None:
            return None
        return functools.partial(self._answer, hot[0], hot[1], scope)

    async def _answer(
        self,
        route: _HotRoute,
        path: tuple[str, ...],
        scope: Scope,
        receive: Receive,
        send: Send | None = None,
    ) -> _Answer | None:
        actor = await self._actor(scope, route.role)
        if actor is None:
            return await self._fastapi(scope, receive, send)
        body = await _read_body(receive)
        if body is None:  # the client went away
            return None
        argument = self._argument(route, scope, body)
        if argument is None:
            return await self._fastapi(scope, _replay(body, receive), send)
        call = functools.partial(_answered, route.call, self.services, actor, path, argument)
        answer = None
        if route.inline is not None and route.inline(self.services, argument):
            if route.awaited is not None:
                answer = await _awaited(route.awaited, self.services, actor, path, argument)
            else:
                answer = await self._on_the_loop(call)
        if answer is None:
            # The loop's own executor rather than Starlette's `run_in_threadpool` (anyio's
            # worker threads and capacity limiter): ~0.15 ms less per call (measured).
            answer = await asyncio.get_running_loop().run_in_executor(None, call)
        return answer

    async def _fastapi(self, scope: Scope, receive: Receive, send: Send | None) -> _Answer | None:
        """FastAPI's answer: sent through ``send`` (None returned), or gathered without one."""
        if send is not None:
            await self.app(scope, receive, send)
            return None
        return await _gathered(self.app, scope, receive)

    async def _on_the_loop(self, call: Callable[[], _Answer]) -> _Answer | None:
        """The call's answer, run here if its writes need not wait; None if they would."""
        store = self.services.store
        with store.without_waiting() as never_waits:
            if not never_waits:
                return None
            try:
                answer = call()
            except WriteWouldWait:  # nothing was written
                return None
            held = store.held()
        if held is None or answer.status >= 400:  # an error answer: its write is dropped
            return answer
        try:
            await store.commit_held(held)
        except WriteWouldWait:  # nothing was written
            return None
        except Exception as error:  # answered as `_answered` answers a call's error
            return _error_answer(error)
        return answer

    async def _actor(self, scope: Scope, needed: Role) -> str | None:
        """The caller's name when their token allows ``needed`` (`authenticated`: cached, or
        read from the store); None for FastAPI to refuse."""
        header = _header(scope, b"authorization")
        try:
            secret = bearer_secret(None if header is None else header.decode("latin-1"))
            token = None if secret is None else await authenticated(self.services, secret)
        except Exception:  # malformed, unknown, revoked, expired, a store down: FastAPI answers
            return None
        if token is None or not token.role.allows(needed):
            return None
        return Principal.of(token).name

    @staticmethod
    def _argument(route: _HotRoute, scope: Scope, body: bytes) -> Any:
        """The validated body (or query) for the call; None when FastAPI must answer."""
        if route.schema is None:
            return None if body else _version_query(scope["query_string"])
        if _header(scope, b"content-type") != _JSON:
            return None
        try:
            # As FastAPI does it: JSON parsed first, then validated as Python data (lax mode).
            return route.schema.validate_python(pydantic_core.from_json(body))
        except (ValueError, ValidationError):
            return None


def _answered(
    call: _Call, services: Services, actor: str, path: tuple[str, ...], arg: Any
) -> _Answer:
    """The call's answer, or its error's as the API's handlers answer it (a store that would
    wait is left to the caller)."""
    try:
        return call(services, actor, path, arg)
    except WriteWouldWait:
        raise
    except Exception as error:
        return _error_answer(error)


async def _awaited(
    call: _AwaitedCall, services: Services, actor: str, path: tuple[str, ...], arg: Any
) -> _Answer | None:
    """As `_answered`, awaited on the loop; None when the store would wait (nothing was done)."""
    try:
        return await call(services, actor, path, arg)
    except WouldWait:
        return None
    except Exception as error:
        return _error_answer(error)


def _error_answer(error: Exception) -> _Answer:
    """The answer the API's handlers give ``error``: its own for a Steward error, else the
    500 envelope with nothing of the error in it."""
    if isinstance(error, StewardError):
        response = steward_error_response(error)
    else:
        response = unexpected_error_response(error)
    return _Answer(response.status_code, bytes(response.body))


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the connection sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _send_json(send: Send, answer: _Answer) -> None:
    headers = [(b"content-length", b"%d" % len(answer.content)), (b"content-type", _JSON)]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.content})


async def _gathered(app: ASGIApp, scope: Scope, receive: Receive) -> _Answer | None:
    """``app``'s answer to the request, gathered from the messages it sends; None when it sent
    none (the client left). An error the app raises after answering (Starlette's
    ``ServerErrorMiddleware`` answers its 500, then raises again for the server to log) is
    logged here, as uvicorn would, and the answer kept."""
    start: Message | None = None
    chunks: list[bytes] = []
    complete = False

    async def send(message: Message) -> None:
        nonlocal start, complete
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            complete = not message.get("more_body", False)

    try:
        await app(scope, receive, send)
    except Exception:
        if not complete:
            raise
        logger.exception("Exception in ASGI application")
    if start is None or not complete:
        return None
    headers = {
        bytes(name).decode("latin-1"): bytes(value).decode("latin-1")
        for name, value in start.get("headers", ())
    }
    return _Answer(start["status"], b"".join(chunks), headers)


__all__ = ["HotRoutes"]
