"""A keep-alive HTTP/1.1 client: requests written in one piece, responses parsed by httptools.

Why not httpx, urllib3 or the standard library's ``http.client``: the SDK's calls are small
requests on one keep-alive connection, where the client's own overhead is a large part of the
time. Measured against a local Steward server, a ``GET /health`` cost 1.1 ms of client CPU
through httpx, 0.6 ms through urllib3 and 0.3 ms through ``http.client``, and importing httpx
added ~100 ms to ``from steward.client import Client``. Of what was left in ``http.client``,
most was its response headers, parsed by the ``email`` package: a ``GET /whoami`` took 180 µs
of client CPU there and 53 µs with the request written here and the response parsed by
httptools (the C parser uvicorn uses, a dependency of the server already), 768 against
648 µs a call (measured, same server, alternating rounds).

What this module does: one connection per thread, query strings, a base path, a request's
head and a small body sent in one write (two writes cost the server a second wake-up, ~0.3 ms
a small ``PUT`` measured), chunked uploads, TLS, a timeout on every socket operation, and one
retry when a reused connection turns out to have been closed by the server before it answered.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools

from steward._version import __version__

# Errors that mean "the server closed the kept-alive connection before reading our request".
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
# A body up to this size leaves in the same write as the request's head; a larger one is sent
# on its own rather than copied, since its transfer dwarfs the cost of one more segment.
_ONE_WRITE_LIMIT = 64 * 1024
_RECEIVE_BYTES = 256 * 1024
# As http.client refuses them: a target with spaces or control characters, header names and
# values that would end the header early.
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")
_BAD_HEADER = re.compile("[\r\n\x00]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class TransportError(Exception):
    """The server could not be reached, or the connection failed mid-request."""


class InvalidHeader(ValueError):
    """A header that would break the request's head: a line break, a NUL, a colon in its name,
    a character outside Latin-1."""


class _ClosedBeforeAnswering(Exception):
    """The server closed the connection before a byte of the answer: the request did not run
    there (a kept-alive connection the server had already closed)."""


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Answer:
    """httptools' callbacks, gathering one response (the parser forgets its status and whether
    the connection stays open once the message is complete: both are read before)."""

    __slots__ = ("body", "complete", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (103 Early Hints...): the final follows
            self.status, self.headers, self.body = 0, {}, []
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True

    def delimited_by_close(self) -> bool:
        """A body that runs until the server closes (no length, not chunked: HTTP/1.0 style)."""
        names = {name.lower() for name in self.headers}
        return self.status != 0 and not names & {"content-length", "transfer-encoding"}

    def response(self) -> Response:
        return Response(self.status, self.headers, b"".join(self.body))


class _Connection:
    """One socket, one request at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def exchange(self, head: bytes, body: Any, *, streamed: bool) -> tuple[Response, bool]:
        """The response, and whether the connection may be used again."""
        if streamed:
            self._write(head)
            for chunk in body:
                if chunk:
                    self._write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self._write(b"0\r\n\r\n")
        elif body and len(body) > _ONE_WRITE_LIMIT:
            self._write(head)
            self._write(body)
        else:
            self._write(head + body if body else head)
        return self._receive()

    def _write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _receive(self) -> tuple[Response, bool]:
        answer = _Answer()
        received = False
        while not answer.complete:
            data = self.sock.recv(_RECEIVE_BYTES)
            if not data:
                if not received:
                    raise _ClosedBeforeAnswering
                if not answer.delimited_by_close():
                    raise TransportError("the server closed the connection mid-response")
                return answer.response(), False
            received = True
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError as error:
                raise TransportError(f"the server's response is not valid HTTP: {error}") from None
        return answer.response(), answer.keep_alive

    def close(self) -> None:
        self.sock.close()


class Transport:
    """Requests to ``base_url`` (scheme, host, port and an optional path prefix).

    ``headers`` go with every request; one that would break the request's head is refused
    here (`InvalidHeader`), as a URL that is not http(s) is (ValueError).
    """

    def __init__(
        self, base_url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._address = (parts.hostname, parts.port or (443 if self._https else 80))
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        host = parts.netloc.rpartition("@")[2]  # as the URL names it, without credentials
        self._head = _header_lines(
            {"host": host, "user-agent": f"steward-sdk/{__version__}",
             "accept-encoding": "identity", **(headers or {})}
        )  # fmt: skip
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | str | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        target = self._prefix + path
        if params:
            target += "?" + urlencode({k: _query_value(v) for k, v in params.items()}, doseq=True)
        if _BAD_TARGET.search(target):
            raise ValueError(f"the request's path has spaces or control characters: {target!r}")
        body: Any = content.encode() if isinstance(content, str) else content
        streamed = body is not None and not isinstance(body, bytes)
        extra = dict(headers or {})
        if streamed:
            extra["transfer-encoding"] = "chunked"
            # A generator can be sent once: start it on a fresh connection, so no retry is needed.
            self._drop()
        elif body is not None or method in _BODY_METHODS:
            extra["content-length"] = str(len(body or b""))
        head = b"%s %s HTTP/1.1\r\n%s%s\r\n" % (
            method.encode("ascii"), target.encode("ascii"), self._head, _header_lines(extra)
        )  # fmt: skip
        try:
            return self._send(head, body, streamed=streamed)
        except OSError as exc:
            self._drop()
            raise TransportError(str(exc) or type(exc).__name__) from exc
        except TransportError:
            self._drop()
            raise

    def _send(self, head: bytes, body: Any, *, streamed: bool) -> Response:
        connection, reused = self._connection()
        try:
            response, keep = connection.exchange(head, body, streamed=streamed)
        except (_ClosedBeforeAnswering, *_STALE) as error:
            self._drop()
            if not reused or streamed:
                raise TransportError("the server closed the connection") from error
            connection, _ = self._connection()
            try:
                response, keep = connection.exchange(head, body, streamed=False)
            except _ClosedBeforeAnswering as again:
                raise TransportError("the server closed the connection") from again
        if not keep:
            self._drop()
        return response

    def _connection(self) -> tuple[_Connection, bool]:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        sock = socket.create_connection(self._address, timeout=self._timeout)
        # Small requests on a kept-alive socket must not wait for delayed ACKs (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._https:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._address[0])
            except BaseException:
                sock.close()
                raise
        connection = self._local.connection = _Connection(sock)
        with self._lock:
            self._all.append(connection)
        return connection, False

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context()

    def _drop(self) -> None:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._lock:
                if connection in self._all:
                    self._all.remove(connection)

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()
        self._local = threading.local()


def _header_lines(headers: Mapping[str, str]) -> bytes:
    return b"".join(_header_line(name, value) for name, value in headers.items())


def _header_line(name: str, value: str) -> bytes:
    if not name or ":" in name or _BAD_HEADER.search(name) or _BAD_HEADER.search(value):
        raise InvalidHeader(f"the HTTP header {name!r} has a line break, NUL or colon in it")
    try:
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidHeader(f"the HTTP header {name!r} has characters outside Latin-1") from None


def _query_value(value: Any) -> Any:
    """Booleans as the API spells them; lists stay lists (repeated keys)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


__all__ = ["InvalidHeader", "Response", "Transport", "TransportError"]
