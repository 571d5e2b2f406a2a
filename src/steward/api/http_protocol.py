"""uvicorn's httptools protocol with each response leaving in one write.

uvicorn writes a response's status line and headers, then its body, as separate writes on the
socket: two ``write`` system calls and, with the ``TCP_NODELAY`` asyncio sets, two TCP
segments for every answer, each waking the client. `CoalescingHttpToolsProtocol` gives the
protocol a transport that gathers the writes made within one turn of the event loop and sends
them together at the end of that turn: one system call and one segment for a response written
at once, while a body streamed over several turns still leaves as it is produced. Measured on
`steward serve` under wrk (ONNX ``/predict``, concurrency 32): 2.0 write calls a request
before, 1.0 after (strace), and +2-4% requests/s (``bench/ab_serving.py``).

The protocol's own code is uvicorn's, untouched: only the transport it writes to differs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol writing through `CoalescedWrites`; pass it as
    ``uvicorn.run(app, http=CoalescingHttpToolsProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        super().connection_made(coalesced)  # type: ignore[arg-type]


__all__ = ["CoalescedWrites", "CoalescingHttpToolsProtocol"]
