"""The SDK's keep-alive transport against a bare HTTP server that misbehaves on purpose."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from steward.client._http import HttpBackend
from steward.client._transport import Transport, TransportError
from steward.errors import InvalidInput, Unavailable


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: list[tuple[str, str, bytes]] = []
    drop_after_response = False

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.drop_after_response:
            # Close without saying so: the client learns on its next request.
            self.close_connection = True

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, b""))
        self._reply(json.dumps({"path": self.path}).encode())

    def do_POST(self) -> None:
        if self.headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.requests.append(("POST", self.path, body))
        self._reply(json.dumps({"received": len(body)}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    _Handler.requests = []
    _Handler.drop_after_response = False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: http.server.ThreadingHTTPServer, path: str = "") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


def test_prefix_query_and_json(server: http.server.ThreadingHTTPServer) -> None:
    transport = Transport(_url(server, "/api/v1"), headers={"authorization": "Bearer t"})
    response = transport.request("GET", "/versions", params={"limit": 5, "all": True, "q": "a b"})
    assert response.status_code == 200
    assert response.json() == {"path": "/api/v1/versions?limit=5&all=true&q=a+b"}


def test_a_connection_closed_by_the_server_is_replaced_once(
    server: http.server.ThreadingHTTPServer,
) -> None:
    _Handler.drop_after_response = True
    transport = Transport(_url(server))
    for i in range(3):  # each request after the first finds its kept-alive socket closed
        assert transport.request("POST", f"/n/{i}", content=b"x" * i).json() == {"received": i}
    assert [path for _, path, _ in _Handler.requests] == ["/n/0", "/n/1", "/n/2"]


def test_streamed_bodies_are_sent_chunked(server: http.server.ThreadingHTTPServer) -> None:
    transport = Transport(_url(server))
    chunks = (bytes([i]) * 1000 for i in range(5))
    assert transport.request("POST", "/upload", content=chunks).json() == {"received": 5000}
    assert _Handler.requests[-1][2] == b"".join(bytes([i]) * 1000 for i in range(5))


def test_each_thread_gets_its_own_connection(server: http.server.ThreadingHTTPServer) -> None:
    transport = Transport(_url(server))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                assert transport.request("GET", f"/t{n}/{i}").json() == {"path": f"/t{n}/{i}"}
        except BaseException as exc:  # collected: an assert in a thread is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_Handler.requests) == 80
    transport.close()


def test_unreachable_server_is_a_transport_error_and_unavailable_in_the_sdk() -> None:
    probe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens on this port now
    with pytest.raises(TransportError):
        Transport(f"http://127.0.0.1:{port}").request("GET", "/health")
    with pytest.raises(Unavailable, match="Cannot reach the Steward server"):
        HttpBackend(f"http://127.0.0.1:{port}", None).whoami()


@pytest.mark.parametrize("url", ["localhost:5050", "ftp://host/x", "http://"])
def test_a_url_that_is_not_http_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(InvalidInput, match="STEWARD_URL") as refused:
        HttpBackend(url, None)
    assert refused.value.field == "url"


def test_the_socket_sends_small_writes_at_once(server: http.server.ThreadingHTTPServer) -> None:
    # Without TCP_NODELAY, a small request on a kept-alive socket can wait for a delayed ACK.
    transport = Transport(_url(server))
    transport.request("GET", "/health")
    sock = transport._local.connection.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize(("size", "writes"), [(0, 1), (14, 1), (200_000, 2)])
def test_a_request_goes_out_in_one_write_unless_its_body_is_large(
    server: http.server.ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    writes: int,
) -> None:
    sent: list[bytes] = []
    original = http.client.HTTPConnection.send

    def counting(self: http.client.HTTPConnection, data: bytes) -> None:
        sent.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", counting)
    transport = Transport(_url(server))
    for i in range(2):  # a fresh connection, then the kept-alive one
        sent.clear()
        response = transport.request("POST", f"/w/{i}", content=b"x" * size)
        assert response.json() == {"received": size}
        assert len(sent) == writes
        assert sent[0].startswith(f"POST /w/{i} HTTP/1.1\r\n".encode())
        assert b"".join(sent).endswith(b"\r\n\r\n" + b"x" * size)
