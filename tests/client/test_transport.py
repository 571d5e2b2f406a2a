"""The SDK's keep-alive transport against a bare HTTP server that misbehaves on purpose."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steward.client import _transport
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
    original = _transport._Connection._write

    def counting(self: _transport._Connection, data: bytes) -> None:
        sent.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(_transport._Connection, "_write", counting)
    transport = Transport(_url(server))
    for i in range(2):  # a fresh connection, then the kept-alive one
        sent.clear()
        response = transport.request("POST", f"/w/{i}", content=b"x" * size)
        assert response.json() == {"received": size}
        assert len(sent) == writes
        assert sent[0].startswith(f"POST /w/{i} HTTP/1.1\r\n".encode())
        assert f"\r\ncontent-length: {size}\r\n".encode() in sent[0]
        assert b"".join(sent).endswith(b"\r\n\r\n" + b"x" * size)


# -- servers that answer in every way HTTP/1.1 allows, or break it ----------------------------


@contextlib.contextmanager
def _raw_server(answer: Callable[[socket.socket, bytes], None]) -> Iterator[tuple[str, list[int]]]:
    """A server that reads each request's head and lets ``answer`` write raw bytes; yields its
    URL and the number of requests each connection carried."""
    listener = socket.create_server(("127.0.0.1", 0))
    per_connection: list[int] = []

    def serve(conn: socket.socket) -> None:
        per_connection.append(0)
        index = len(per_connection) - 1
        with conn:
            reader = conn.makefile("rb")
            while (line := reader.readline()) not in (b"", b"\r\n"):
                head = line
                while (header := reader.readline()) not in (b"", b"\r\n"):
                    head += header
                per_connection[index] += 1
                answer(conn, head)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", per_connection
    finally:
        listener.close()


_OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"


def test_a_chunked_response_is_read_whole() -> None:
    def chunked(conn: socket.socket, _: bytes) -> None:
        conn.sendall(_OK + b'transfer-encoding: chunked\r\n\r\n4\r\n{"a"\r\n')
        conn.sendall(b"3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")

    with _raw_server(chunked) as (url, per_connection):
        transport = Transport(url)
        assert transport.request("GET", "/x").json() == {"a": 1}
        assert transport.request("GET", "/y").json() == {"a": 1}
        assert per_connection == [2]  # kept alive


def test_an_interim_answer_is_skipped_for_the_final_one() -> None:
    def hinted(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
        conn.sendall(_OK + b'content-length: 9\r\n\r\n{"ok": 1}')

    with _raw_server(hinted) as (url, per_connection):
        transport = Transport(url)
        for _ in range(2):
            response = transport.request("GET", "/x")
            assert (response.status_code, response.json()) == (200, {"ok": 1})
            assert "link" not in response.headers
        assert per_connection == [2]


def test_a_body_delimited_by_the_servers_close_is_read_whole() -> None:
    def until_close(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 300_000)
        conn.shutdown(socket.SHUT_RDWR)

    with _raw_server(until_close) as (url, per_connection):
        transport = Transport(url)
        assert transport.request("GET", "/x").content == b"z" * 300_000
        assert transport.request("GET", "/y").content == b"z" * 300_000
        assert per_connection == [1, 1]


def test_connection_close_makes_the_next_request_open_a_new_connection() -> None:
    def closing(conn: socket.socket, _: bytes) -> None:
        conn.sendall(_OK + b"connection: close\r\ncontent-length: 2\r\n\r\n{}")

    with _raw_server(closing) as (url, per_connection):
        transport = Transport(url)
        for path in ("/a", "/b", "/c"):
            response = transport.request("GET", path)
            assert (response.status_code, response.json()) == (200, {})
            assert response.headers["connection"] == "close"
        assert per_connection == [1, 1, 1]


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}", b"NOT HTTP AT ALL\r\n\r\n"],
    ids=["closed-mid-body", "not-http"],
)
def test_a_broken_response_is_a_transport_error_and_not_sent_again(answer: bytes) -> None:
    def broken(conn: socket.socket, _: bytes) -> None:
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_RDWR)

    with _raw_server(broken) as (url, per_connection):
        transport = Transport(url)
        with pytest.raises(TransportError):
            transport.request("GET", "/once")
        assert per_connection == [1]


def test_a_server_that_does_not_answer_in_time_is_a_transport_error() -> None:
    with _raw_server(lambda conn, head: None) as (url, per_connection):
        with pytest.raises(TransportError, match="timed out"):
            Transport(url, timeout=0.2).request("GET", "/slow")
        assert per_connection == [1]


def test_headers_and_paths_that_would_break_the_request_are_refused() -> None:
    with pytest.raises(_transport.InvalidHeader, match="authorization"):
        Transport("http://127.0.0.1:1", headers={"authorization": "Bearer a\r\nx-evil: 1"})
    with pytest.raises(_transport.InvalidHeader, match="Latin-1"):
        Transport("http://127.0.0.1:1", headers={"x-name": "\u20ac"})
    with pytest.raises(ValueError, match="control characters"):
        Transport("http://127.0.0.1:1").request("GET", "/a b")
    with pytest.raises(InvalidInput, match="STEWARD_TOKEN") as refused:
        HttpBackend("http://127.0.0.1:1", "secret\nmore")
    assert refused.value.field == "token"


# A self-signed certificate for 127.0.0.1, valid until 2126 (made with `openssl req -x509
# -newkey rsa:2048 -nodes -days 36500 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1`).
_TLS = Path(__file__).parent / "tls"


@pytest.fixture
def tls_server() -> Iterator[tuple[str, Path]]:
    """An HTTPS server on the self-signed certificate; its URL and certificate."""
    cert = _TLS / "cert.pem"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, _TLS / "key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", cert
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_https_verifies_the_servers_certificate(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_server
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        Transport(url).request("GET", "/untrusted")
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(_transport.ssl, "create_default_context", lambda: trusting)
    transport = Transport(url + "/api")
    assert transport.request("GET", "/trusted").json() == {"path": "/api/trusted"}
    assert transport.request("POST", "/b", content=b"abc").json() == {"received": 3}
