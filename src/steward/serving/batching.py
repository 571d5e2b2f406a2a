"""Micro-batching: concurrent single-row requests gathered into one model call.

``MicroBatcher(call, max_batch=32, max_wait_ms=5)``; each request awaits ``submit(row)`` and
gets its own result. ``call`` takes a list of rows and returns one result per row, in order;
it may be async, or sync (then it runs in ``executor``, the loop's default thread pool unless
given, so the event loop keeps accepting requests while the model works). ``inline(rows)``,
when given, may answer a batch on the event loop instead (returning None leaves it to the
executor): the gateway's choice for a model measured fast enough (steward.serving.execution).

Dispatch policy (adaptive, as BentoML's batching, without a latency model): queued rows go to
the model as one batch, in arrival order, as soon as a call slot is free (at most
``max_concurrency`` calls in flight, default 1) and one of these holds:

- the queue holds ``max_batch`` rows (a full batch leaves at once);
- no call is in flight: an idle model does not wait on a clock. The batcher lets the event
  loop turn `GATHER_TURNS` times first (a few microseconds each when it has nothing to do), so
  requests read from their sockets in those turns share the call: a request needs two turns
  from its bytes to its row (the read starts its task, the task submits it on the next turn).
  Measured with `steward serve` at concurrency 32, 1-row requests, calling after one turn
  against after three: scikit-learn 13,626 -> 16,479 requests/s (its calls had averaged
  10.7 rows), ONNX 17,228 -> 18,977; at concurrency 1 the same rate and p99.
  ``max_wait_ms=0`` calls after one turn, as it always did;
- the oldest queued row has waited ``max_wait_ms`` (with ``max_concurrency > 1``, this sends a
  partial batch to a free slot while other calls are running).

So batches grow with the load by themselves: under light load each row is called alone with
no added latency; under heavy load, rows that arrive while the model is busy go together in the
next call. ``max_wait_ms`` bounds the wait for companions, not the wait for a busy model.

An exception in ``call`` fails every request of that batch with it. A request cancelled
while it waits is dropped from its batch (the model never sees its row) and does not affect
the others. ``close()`` refuses new rows, sends everything queued, and waits for the calls.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from steward.errors import InvalidInput, StewardError, Unavailable

Row = TypeVar("Row")
Result = TypeVar("Result")

# Event-loop turns an idle model waits for company (see the module's policy).
GATHER_TURNS = 3


class _Waiting(Generic[Row, Result]):
    __slots__ = ("future", "row", "since")

    def __init__(self, row: Row, future: asyncio.Future[Result], since: float) -> None:
        self.row = row
        self.future = future
        self.since = since


class MicroBatcher(Generic[Row, Result]):
    """Gathers ``submit(row)`` calls into batched ``call(rows)``; see the module's policy."""

    def __init__(
        self,
        call: Callable[[list[Row]], Any],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_concurrency: int = 1,
        executor: Executor | None = None,
        inline: Callable[[list[Row]], Sequence[Result] | None] | None = None,
    ) -> None:
        # Checked here rather than at first use: a bad knob should fail the deployment's load,
        # not its first request.
        if max_batch < 1:
            raise InvalidInput(f"max_batch must be at least 1. Got {max_batch}.", field="max_batch")
        if not max_wait_ms >= 0:
            raise InvalidInput(
                f"max_wait_ms must be 0 or more. Got {max_wait_ms}.", field="max_wait_ms"
            )
        if max_concurrency < 1:
            raise InvalidInput(
                f"max_concurrency must be at least 1. Got {max_concurrency}.",
                field="max_concurrency",
            )
        self._call = call
        self._is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
            getattr(call, "__call__", None)  # noqa: B004 - an object with an async __call__
        )
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.max_concurrency = max_concurrency
        self._executor = executor
        self._inline = inline
        self._queue: deque[_Waiting[Row, Result]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False  # a dispatch is scheduled for the next loop iteration
        self._closed = False
        self.calls = 0  # model calls made (for metrics and tests)
        self.rows = 0  # rows sent to the model

    @property
    def queued(self) -> int:
        """Rows waiting for a call (cancelled ones included until they are dropped)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def submit(self, row: Row) -> Result:
        """The model's result for ``row``, computed in a batch with its concurrent neighbours."""
        if self._closed:
            raise Unavailable("The micro-batcher is closed: the deployment is shutting down.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append(_Waiting(row, future, loop.time()))
        if len(self._queue) >= self.max_batch:
            self._dispatch()
        elif not self._soon:
            self._soon = True
            turns = GATHER_TURNS if self.max_wait_s > 0 else 1
            loop.call_soon(self._dispatch_soon, turns - 1)
        return await future

    async def close(self) -> None:
        """Refuse new rows, send every queued row now, and wait until all calls are done."""
        self._closed = True
        while self._queue or self._running:
            self._dispatch(flush=True)
            if self._running:
                await asyncio.wait(set(self._running))

    async def __aenter__(self) -> MicroBatcher[Row, Result]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch_soon(self, turns_left: int) -> None:
        # Not bounded by max_wait_ms: the loop's clock (uvloop's) moves in milliseconds, and
        # under load a turn is a fraction of one, spent answering other requests.
        if turns_left and not self._running and len(self._queue) < self.max_batch:
            asyncio.get_running_loop().call_soon(self._dispatch_soon, turns_left - 1)
            return
        self._soon = False
        self._dispatch()

    def _dispatch(self, *, flush: bool = False) -> None:
        """Start every batch the policy allows now; arm the timer for the next one."""
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self._queue or len(self._running) >= self.max_concurrency:
                break
            waited = loop.time() - self._queue[0].since
            if not (
                flush
                or len(self._queue) >= self.max_batch
                or not self._running
                or waited >= self.max_wait_s
            ):
                break
            self._start(loop)
        self._arm_timer(loop)

    def _drop_cancelled(self) -> None:
        queue = self._queue
        while queue and queue[0].future.done():
            queue.popleft()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch: list[_Waiting[Row, Result]] = []
        while self._queue and len(batch) < self.max_batch:
            waiting = self._queue.popleft()
            if not waiting.future.done():  # cancelled while queued: the model never sees it
                batch.append(waiting)
        if not batch:
            return
        self.calls += 1
        self.rows += len(batch)
        task = loop.create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _arm_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # A timer only helps when a slot is free but the policy chose to wait (calls in
        # flight below max_concurrency); otherwise a finishing call triggers the next dispatch.
        if self._queue and 0 < len(self._running) < self.max_concurrency:
            self._timer = loop.call_at(self._queue[0].since + self.max_wait_s, self._dispatch)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._queue and not self._closed:
            self._dispatch()

    async def _run(self, batch: list[_Waiting[Row, Result]]) -> None:
        rows = [waiting.row for waiting in batch]
        try:
            results = await self._invoke(rows)
            if len(results) != len(rows):
                raise StewardError(
                    f"The model returned {len(results)} results for a batch of {len(rows)} "
                    f"rows; a batch call must return one result per row, in order."
                )
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.future.cancel()
            raise
        except Exception as error:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.future.done():  # the caller may have gone meanwhile
                waiting.future.set_result(result)

    async def _invoke(self, rows: list[Row]) -> Sequence[Result]:
        if self._is_async:
            result: Sequence[Result] = await self._call(rows)
            return result
        if self._inline is not None:
            answered = self._inline(rows)
            if answered is not None:
                return answered
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, rows)
