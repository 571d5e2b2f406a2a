"""uvicorn's httptools protocol with each response leaving in one write.

uvicorn writes a response's status line and headers, then its body, as separate writes on the
socket: two ``write`` system calls and, with the ``TCP_NODELAY`` asyncio sets, two TCP
segments for every answer, each waking the client. `CoalescingHttpToolsProtocol` gives the
protocol a transport that gathers the writes made within one turn of the event loop and sends
them together at the end of that turn: one system call and one segment for a response written
at once, while a body streamed over several turns still leaves as it is produced. Measured on
`steward serve` under wrk (ONNX ``/predict``, concurrency 32): 2.0 write calls a request
before, 1.0 after (strace), and +2-4% requests/s (``bench/ab_serving.py``).

The protocol's own code is uvicorn's, untouched, but for one hook: an application may answer
some requests itself, without ASGI's messages (`direct_route`, below).

Direct answers. An ASGI app costs, per request, a task running the app, a ``receive`` and two
``send`` calls whose messages uvicorn checks and turns into bytes, header by header. For a
route whose answer is one body of known length that is most of what is left around a fast
model: the gateway's ``/predict`` and OIP ``infer`` (measured with `bench/ab_serving.py`,
paired: ONNX ``/predict`` 1.076x requests/s, micro-batched scikit-learn 1.052x). So an app
with a ``direct_route(scope)`` method is asked, for every request, for a handler; given one,
the protocol awaits ``handler(receive)`` for a `DirectAnswer` and writes the status line, the
server's default headers, the answer's headers and its body at once, then runs its ``after``.
Everything around it stays uvicorn's: the request's parsing and scope, ``receive`` (with
``Expect: 100-continue`` and flow control), keep-alive and ``Connection: close``, pipelined
requests, back-pressure on writing, a client that left, and the 500 of a handler that raised.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

logger = logging.getLogger(__name__)
_JSON = b"application/json"


class CoalescedWrites:
    """A transport whose writes within one event-loop turn go out as one ``write``.

    Everything else is the wrapped transport's; closing, half-closing and the write buffer's
    size account for what is still gathered, so nothing is reordered or lost.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what was gathered now (the loop calls it at the end of the turn)."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        gathered = sum(len(data) for data in self._pending or ())
        return self._transport.get_write_buffer_size() + gathered

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DirectAnswer(Protocol):
    """A direct route's answer: sent with ``content-length`` and, when ``headers`` is None,
    ``content-type: application/json``; ``after`` runs once it is written."""

    @property
    def status(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str] | None: ...

    @property
    def after(self) -> Callable[[], None] | None: ...


# ``handler(receive)``: the answer, or None when the client left before it (nothing is sent).
DirectHandler = Callable[[Any], Awaitable[DirectAnswer | None]]


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol writing through `CoalescedWrites`, and answering the
    requests its app claims with ``direct_route`` itself; pass it as
    ``uvicorn.run(app, http=CoalescingHttpToolsProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        super().connection_made(coalesced)  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn calls this for each request, pipelined ones included, once its turn comes;
        # the app it passes is wrapped when uvicorn adds middleware, which then has no
        # direct_route: such a server answers through ASGI, as does a 503 over the limit.
        route = getattr(app, "direct_route", None)
        handler: DirectHandler | None = route(cycle.scope) if route is not None else None
        if handler is None:
            super()._start_asgi_task(cycle, app)
            return
        answering = _answer_directly(cycle, handler, self.tasks)
        if getattr(self.config, "reset_contextvars", False):
            task = self.loop.create_task(answering, context=contextvars.Context())
        else:
            task = self.loop.create_task(answering)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


async def _answer_directly(
    cycle: RequestResponseCycle, handler: DirectHandler, in_progress: set[Any]
) -> None:
    """What ``cycle.run_asgi`` and ``cycle.send`` do for an app that answers at once.

    The answer leaves at once when it is the only request the server has in progress
    (``in_progress`` holds this one's task): a lone client waits neither for the answer's
    follow-up (the prediction log's record) nor for the end of the loop's turn. With others in
    progress it leaves with the turn's other writes, at its end, which costs less CPU per
    answer. Measured on ONNX ``/predict``: at concurrency 1, 6,626 -> 7,742 requests/s; at 32
    the same rate (15,799 / 15,990); writing at once whatever the load cost 17% at 32.
    """
    try:
        answer = await handler(cycle.receive)
        if answer is None:
            return
        head = _head(cycle, answer)
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if cycle.disconnected:
            return
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.transport.write(head + answer.content)
        if len(in_progress) <= 1 and isinstance(cycle.transport, CoalescedWrites):
            cycle.transport.flush()
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
        if cycle.access_log:
            _log_access(cycle, answer.status)
    except BaseException as error:
        cycle.logger.error("Exception in ASGI application\n", exc_info=error)
        if not cycle.response_started:
            await cycle.send_500_response()
        else:
            cycle.transport.close()
        return
    finally:
        cycle.on_response = lambda: None
    if answer.after is not None:
        try:
            answer.after()
        except Exception:  # the answer is sent: its follow-up's failure is only logged
            logger.exception("the follow-up of an answered request failed")


def _log_access(cycle: RequestResponseCycle, status: int) -> None:
    """The line uvicorn logs for a response it sends (`RequestResponseCycle.send`)."""
    scope = cycle.scope
    cycle.access_logger.info(
        '%s - "%s %s HTTP/%s" %d',
        get_client_addr(scope),
        scope["method"],
        get_path_with_query_string(scope),
        scope["http_version"],
        status,
    )


def _head(cycle: RequestResponseCycle, answer: DirectAnswer) -> bytes:
    """The status line and headers: the server's defaults (date, server), the length, the
    type, and the answer's own headers, checked as uvicorn checks an ASGI app's."""
    parts = [STATUS_LINE[answer.status]]
    for name, value in cycle.default_headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"content-length: ", str(len(answer.content)).encode(), b"\r\n")
    if answer.headers is None:
        parts += (b"content-type: ", _JSON, b"\r\n")
    connection = None  # the answer's own Connection header, lowercased
    for key, text in (answer.headers or {}).items():
        name, value = key.lower().encode("latin-1"), text.encode("latin-1")
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            raise RuntimeError(f"Invalid HTTP header {key!r}.")
        if name == b"content-length":
            continue  # the protocol's own, from the body it writes
        if name == b"connection":
            connection = value.lower()
        parts += (name, b": ", value, b"\r\n")
    if connection is not None and b"close" in connection:
        cycle.keep_alive = False
    elif connection is None and not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


__all__ = ["CoalescedWrites", "CoalescingHttpToolsProtocol", "DirectAnswer", "DirectHandler"]
