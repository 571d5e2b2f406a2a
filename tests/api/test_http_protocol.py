"""CoalescingHttpToolsProtocol: a response's writes leave together, nothing reordered or lost."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

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


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", http=CoalescingHttpToolsProtocol)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


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
