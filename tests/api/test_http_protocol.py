"""CoalescingHttpToolsProtocol: a response's writes leave together, nothing reordered or lost;
an app's direct answers are the ASGI answers, byte for byte, with uvicorn's connection
handling around them."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from tests.api.conftest import serve_in_thread

from steward.api.http_protocol import CoalescedWrites, CoalescingHttpToolsProtocol


class FakeTransport:
    """Records what reaches the socket, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)


def _run(scenario: Any) -> FakeTransport:
    transport = FakeTransport()

    async def main() -> None:
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        await scenario(coalesced, transport)

    asyncio.run(main())
    return transport


def test_writes_within_one_turn_leave_as_one_at_its_end() -> None:
    async def scenario(coalesced: CoalescedWrites, transport: FakeTransport) -> None:
        coalesced.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalesced.write(b"ok")
        assert transport.calls == []  # nothing sent before the turn ends
        assert coalesced.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        assert transport.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")]
        coalesced.write(b"next")  # a later turn: a write of its own
        await asyncio.sleep(0)

    transport = _run(scenario)
    assert [data for _, data in transport.calls] == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"next",
    ]  # fmt: skip


def test_closing_sends_what_was_gathered_first() -> None:
    async def scenario(coalesced: CoalescedWrites, transport: FakeTransport) -> None:
        coalesced.writelines([b"a", b"b"])
        coalesced.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left: no second write

    assert _run(scenario).calls == [("write", b"ab"), ("close", None)]


def test_half_closing_sends_what_was_gathered_first() -> None:
    async def scenario(coalesced: CoalescedWrites, transport: FakeTransport) -> None:
        coalesced.write(b"last")
        coalesced.write_eof()

    assert _run(scenario).calls == [("write", b"last"), ("write_eof", None)]


def test_an_abort_drops_what_was_gathered_and_a_closed_transport_gets_no_write() -> None:
    async def scenario(coalesced: CoalescedWrites, transport: FakeTransport) -> None:
        coalesced.write(b"dropped")
        coalesced.abort()
        await asyncio.sleep(0)
        coalesced.write(b"too late")  # the peer is gone: not written, not an error
        await asyncio.sleep(0)

    assert _run(scenario).calls == [("abort", None)]


def test_a_mutable_buffer_is_copied_when_written() -> None:
    async def scenario(coalesced: CoalescedWrites, transport: FakeTransport) -> None:
        data = bytearray(b"abc")
        coalesced.write(data)
        data[:] = b"xyz"
        await asyncio.sleep(0)

    assert _run(scenario).calls == [("write", b"abc")]


def test_everything_else_is_the_transports() -> None:
    async def scenario(coalesced: CoalescedWrites, transport: FakeTransport) -> None:
        assert coalesced.get_extra_info("peername") == ("127.0.0.1", 5000)
        transport.buffered = 7
        assert coalesced.get_write_buffer_size() == 7
        assert coalesced.is_closing() is False

    _run(scenario)


# -- a real uvicorn server with the protocol -------------------------------------------------


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with a body at once, a streamed body, a large body or none."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"x" * 8_000_000 if path == "/large" else path.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _serve(app: Any) -> Iterator[str]:
    # no proxy-headers middleware: uvicorn would wrap the app, hiding its direct_route
    yield from serve_in_thread(app, log_level="warning", lifespan="off", proxy_headers=False,
                               http=CoalescingHttpToolsProtocol)  # fmt: skip


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    yield from _serve(_app)


def test_answers_on_one_kept_alive_connection(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as client:
        answers = [client.get(f"/n{i}") for i in range(20)]
        head = client.head("/head")
    assert [a.text for a in answers] == [f"/n{i}" for i in range(20)]
    assert all(a.http_version == "HTTP/1.1" for a in answers)
    assert head.status_code == 200
    assert head.content == b""


def test_a_streamed_body_arrives_whole_and_in_order(server_url: str) -> None:
    with httpx.stream("GET", server_url + "/stream") as answer:
        assert answer.headers["transfer-encoding"] == "chunked"
        assert b"".join(answer.iter_bytes()) == b"one,two,three"


def test_a_large_body_and_an_empty_one(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        large = client.get("/large")
        empty = client.get("/empty")
    assert len(large.content) == 8_000_000
    assert set(large.content) == {ord("x")}
    assert empty.status_code == 204
    assert empty.content == b""


def test_a_response_reaches_the_socket_in_one_write(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real_flush = CoalescedWrites.flush

    def counting_flush(self: CoalescedWrites) -> None:
        pending = self._pending
        if pending:
            writes.append(b"".join(pending))
        real_flush(self)

    monkeypatch.setattr(CoalescedWrites, "flush", counting_flush)
    with httpx.Client(base_url=server_url) as client:
        assert client.get("/one").text == "/one"
    (sent,) = writes  # status line, headers and body together
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n")
    assert sent.endswith(b"\r\n\r\n/one")


# -- direct answers: an app's direct_route, answered by the protocol without ASGI messages ---


@dataclass(frozen=True)
class Answer:
    status: int
    content: bytes
    headers: dict[str, str] | None = None
    after: Callable[[], None] | None = None


class DirectApp:
    """Answers ``/direct/...`` through ``direct_route`` and everything else through ASGI with
    the same answer, so the two paths can be compared byte for byte."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def direct_route(self, scope: dict[str, Any]) -> Any:
        if not scope["path"].startswith("/direct/"):
            return None
        return lambda receive: self._answer(scope, receive)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.events.append(f"asgi {scope['path']}")
        answer = await self._answer(scope, receive)
        assert answer is not None
        headers = [(b"content-length", str(len(answer.content)).encode())]
        if answer.headers is None:
            headers.append((b"content-type", b"application/json"))
        else:
            headers += [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.content})

    async def _answer(self, scope: dict[str, Any], receive: Any) -> Answer | None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.events.append("left")
                return None
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        name = scope["path"].rsplit("/", 1)[-1]
        if name == "raise":
            raise ValueError("a bug in the handler")
        if name == "bad-header":
            return Answer(200, b"{}", {"x-evil": "a\r\nset-cookie: b"})
        if name == "typed":
            return Answer(201, b"<p>hi</p>", {"content-type": "text/html", "x-answered": "yes"})
        if name == "after":
            return Answer(200, b'"after"', after=lambda: self.events.append("after ran"))
        if name == "after-fails":

            def fails() -> None:
                raise RuntimeError("the follow-up failed")

            return Answer(200, b'"sent anyway"', after=fails)
        echo = f'{{"echo": "{name}", "body": {len(body)}}}'
        return Answer(200, echo.encode())


@pytest.fixture(scope="module")
def direct_app() -> DirectApp:
    return DirectApp()


@pytest.fixture(scope="module")
def direct_url(direct_app: DirectApp) -> Iterator[str]:
    yield from _serve(direct_app)


def _exchange(url: str, request: bytes, *, until: int = 1, shut: bool = False) -> bytes:
    """Send raw bytes on a new connection; read until ``until`` responses arrived or EOF."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while data.count(b"HTTP/1.1 ") < until or not _complete(data, until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def _complete(data: bytes, responses: int) -> bool:
    """Whether ``data`` holds ``responses`` whole responses (each with a content-length)."""
    rest = data
    for _ in range(responses):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


def _post(path: str, body: bytes = b"{}", version: bytes = b"1.1") -> bytes:
    head = f"POST {path} HTTP/{version.decode()}\r\nhost: t\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.startswith(b"date:"))


def test_a_direct_answer_is_the_asgi_answer_byte_for_byte(
    direct_url: str, direct_app: DirectApp
) -> None:
    direct = _exchange(direct_url, _post("/direct/x", b"12345"))
    asgi = _exchange(direct_url, _post("/asgi/x", b"12345"))
    assert direct.startswith(b"HTTP/1.1 200 OK\r\n")
    assert direct.endswith(b'\r\n\r\n{"echo": "x", "body": 5}')
    assert _without_date(direct) == _without_date(asgi)
    assert "asgi /asgi/x" in direct_app.events  # the app was called for one of the two only
    assert "asgi /direct/x" not in direct_app.events
    typed_direct = _exchange(direct_url, _post("/direct/typed"))
    typed_asgi = _exchange(direct_url, _post("/asgi/typed"))
    assert typed_direct.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"content-type: text/html\r\n" in typed_direct
    assert b"x-answered: yes\r\n" in typed_direct
    assert b"application/json" not in typed_direct
    assert sorted(_without_date(typed_direct).split(b"\r\n")) == sorted(
        _without_date(typed_asgi).split(b"\r\n")
    )


def test_direct_and_asgi_answers_share_a_kept_alive_connection(direct_url: str) -> None:
    with httpx.Client(base_url=direct_url) as client:
        answers = [client.post(f"/{'direct' if i % 2 else 'asgi'}/n{i}", content=b"ab")
                   for i in range(20)]  # fmt: skip
    assert [a.json() for a in answers] == [{"echo": f"n{i}", "body": 2} for i in range(20)]
    assert all(a.headers["server"] == "uvicorn" and "date" in a.headers for a in answers)


def test_pipelined_requests_are_answered_in_order(direct_url: str) -> None:
    requests = _post("/direct/a") + _post("/asgi/b") + _post("/direct/c", b"xyz")
    data = _exchange(direct_url, requests, until=3)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b'{"echo": "a", "body": 2}', b'{"echo": "b", "body": 2}',
                      b'{"echo": "c", "body": 3}']  # fmt: skip


def test_an_http_1_0_request_gets_its_answer_and_the_connection_closed(direct_url: str) -> None:
    data = _exchange(direct_url, _post("/direct/old", version=b"1.0"), until=2)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in data
    assert data.endswith(b'{"echo": "old", "body": 2}')  # and then EOF: _exchange returned


def test_expect_100_continue_is_answered_before_the_body(direct_url: str) -> None:
    host, port = direct_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /direct/big HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n"
                     b"expect: 100-continue\r\n\r\n")  # fmt: skip
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        data = b""
        while not _complete(data, 1):
            data += sock.recv(65536)
    assert data.endswith(b'{"echo": "big", "body": 4}')


def test_a_handler_that_raises_gets_a_500_and_the_server_goes_on(
    direct_url: str, direct_app: DirectApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        data = _exchange(direct_url, _post("/direct/raise"), until=2)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert data.endswith(b"Internal Server Error")
    assert any("a bug in the handler" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    bad = _exchange(direct_url, _post("/direct/bad-header"), until=2)
    assert bad.startswith(b"HTTP/1.1 500 ")  # a header that would split the response: refused
    assert b"set-cookie" not in bad
    assert httpx.post(direct_url + "/direct/after-ok").status_code == 200
    assert not [e for e in direct_app.events if e.startswith("asgi /direct/")]


def test_after_runs_once_the_answer_is_sent_and_its_failure_stays_in_the_log(
    direct_url: str, direct_app: DirectApp, caplog: pytest.LogCaptureFixture
) -> None:
    assert httpx.post(direct_url + "/direct/after").json() == "after"
    deadline = time.monotonic() + 5
    while "after ran" not in direct_app.events:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with caplog.at_level(logging.ERROR, logger="steward.api.http_protocol"):
        answer = httpx.post(direct_url + "/direct/after-fails")
        # the follow-up runs after the answer is sent: its failure is logged a moment later
        deadline = time.monotonic() + 5
        while "follow-up" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert answer.json() == "sent anyway"
    assert "the follow-up of an answered request failed" in caplog.text


def test_a_client_that_leaves_before_its_body_gets_nothing_and_breaks_nothing(
    direct_url: str, direct_app: DirectApp
) -> None:
    data = _exchange(direct_url, b"POST /direct/cut HTTP/1.1\r\nhost: t\r\ncontent-length: 10"
                     b"\r\n\r\nabc", shut=True)  # fmt: skip
    assert data == b""
    deadline = time.monotonic() + 5
    while "left" not in direct_app.events:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert httpx.post(direct_url + "/direct/still").json() == {"echo": "still", "body": 0}


def _fake_cycle(transport: Any, **fields: Any) -> Any:
    """What `_answer_directly` reads and sets of uvicorn's request cycle, over ``transport``;
    ``fields`` add to it or replace its defaults (no access log)."""
    return SimpleNamespace(**{
        "transport": transport, "flow": SimpleNamespace(write_paused=False),
        "disconnected": False, "keep_alive": True, "response_started": False,
        "response_complete": False, "waiting_for_100_continue": False,
        "message_event": asyncio.Event(), "default_headers": [], "on_response": lambda: None,
        "receive": None, "access_log": False, **fields,
    })  # fmt: skip


@pytest.mark.parametrize(("in_progress", "sent_before_follow_up"), [(1, True), (3, False)])
def test_a_lone_requests_answer_leaves_before_its_follow_up(
    in_progress: int, sent_before_follow_up: bool
) -> None:
    """Alone on the server, an answer is written at once; among others, at the turn's end
    (with their writes), in both cases whole and before the connection is reused."""
    from steward.api.http_protocol import _answer_directly

    transport = FakeTransport()
    seen_by_follow_up: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        cycle = _fake_cycle(CoalescedWrites(transport, loop))  # type: ignore[arg-type]
        follow_up = lambda: seen_by_follow_up.append(len(transport.calls))  # noqa: E731

        async def handler(receive: Any) -> Answer:
            return Answer(200, b'"ok"', after=follow_up)

        tasks = {object() for _ in range(in_progress)}
        await _answer_directly(cycle, handler, tasks)  # type: ignore[arg-type]
        assert cycle.response_complete
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen_by_follow_up == [1 if sent_before_follow_up else 0]
    ((kind, sent),) = transport.calls
    assert kind == "write"
    assert sent.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n")
    assert sent.endswith(b'\r\n\r\n"ok"')


@pytest.mark.parametrize("access_log", [True, False])
def test_a_direct_answer_is_in_the_access_log_when_the_server_keeps_one(access_log: bool) -> None:
    """The line uvicorn logs for an answer it sends through ASGI, for one the protocol wrote."""
    from steward.api.http_protocol import _answer_directly

    lines: list[str] = []
    logger = SimpleNamespace(info=lambda message, *args: lines.append(message % args))
    scope = {"method": "POST", "path": "/api/v1/models/m/versions", "query_string": b"a=1",
             "http_version": "1.1", "client": ("10.0.0.9", 4242)}  # fmt: skip

    async def main() -> None:
        cycle = _fake_cycle(
            FakeTransport(), access_log=access_log, access_logger=logger, scope=scope
        )

        async def handler(receive: Any) -> Answer:
            return Answer(201, b"{}")

        await _answer_directly(cycle, handler, set())  # type: ignore[arg-type]

    asyncio.run(main())
    expected = '10.0.0.9:4242 - "POST /api/v1/models/m/versions?a=1 HTTP/1.1" 201'
    assert lines == ([expected] if access_log else [])
