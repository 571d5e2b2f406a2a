"""Micro-batching: gathering, fan-out, the wait bound, errors, cancellation and close."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from steward.errors import InvalidInput, StewardError, Unavailable
from steward.serving.batching import GATHER_TURNS, MicroBatcher


class Model:
    """Doubles each row; records the size of every call."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[int]] = []

    async def __call__(self, rows: list[int]) -> list[int]:
        self.batches.append(rows)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return [2 * r for r in rows]


@pytest.mark.parametrize(("n", "max_batch"), [(1, 8), (50, 8), (64, 8), (100, 100), (33, 1)])
def test_concurrent_submits_are_batched(n: int, max_batch: int) -> None:
    model = Model(delay_s=0.002)

    async def main() -> list[int]:
        batcher = MicroBatcher(model, max_batch=max_batch, max_wait_ms=5)
        return await asyncio.gather(*(batcher.submit(i) for i in range(n)))

    assert asyncio.run(main()) == [2 * i for i in range(n)]
    assert len(model.batches) <= math.ceil(n / max_batch) + 1
    assert all(len(b) <= max_batch for b in model.batches)
    assert sorted(r for b in model.batches for r in b) == list(range(n))


def test_sync_model_runs_in_a_thread() -> None:
    threads: set[str] = set()

    def model(rows: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        time.sleep(0.002)
        return [r + 1 for r in rows]

    async def main() -> list[int]:
        batcher = MicroBatcher(model, max_batch=16, max_wait_ms=5)
        out = await asyncio.gather(*(batcher.submit(i) for i in range(40)))
        assert batcher.calls <= math.ceil(40 / 16) + 1
        return out

    assert asyncio.run(main()) == [i + 1 for i in range(40)]
    assert threading.main_thread().name not in threads


def test_an_inline_call_answers_small_batches_on_the_loop() -> None:
    threads: list[str] = []

    def model(rows: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [r + 1 for r in rows]

    def inline(rows: list[int]) -> list[int] | None:
        return model(rows) if len(rows) <= 4 else None  # larger batches: the thread pool

    async def main(n: int) -> list[int]:
        batcher = MicroBatcher(model, max_batch=16, max_wait_ms=5, inline=inline)
        return await asyncio.gather(*(batcher.submit(i) for i in range(n)))

    assert asyncio.run(main(3)) == [1, 2, 3]
    assert threads == [threading.main_thread().name]
    threads.clear()
    assert asyncio.run(main(12)) == [i + 1 for i in range(12)]
    assert threading.main_thread().name not in threads


def test_rows_arriving_while_busy_go_together() -> None:
    model = Model(delay_s=0.02)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=1)
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0.005)  # the first row is alone and is called at once
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 11)]
        for i in range(11, 21):  # these arrive a little later, still during the first call
            rest.append(asyncio.create_task(batcher.submit(i)))
            await asyncio.sleep(0)
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert model.batches == [[0], list(range(1, 21))]


def test_an_idle_model_does_not_wait() -> None:
    async def main() -> float:
        batcher = MicroBatcher(Model(), max_batch=32, max_wait_ms=500)
        start = time.perf_counter()
        assert await batcher.submit(4) == 8
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.25  # far below max_wait_ms


@pytest.mark.parametrize(("max_wait_ms", "calls"), [(5, [[0, 1]]), (0, [[0], [1]])])
def test_an_idle_model_waits_a_few_loop_turns_for_company(
    max_wait_ms: float, calls: list[list[int]]
) -> None:
    """A row that reaches the batcher a turn of the event loop after the first shares its
    call (under load, the requests read meanwhile); with max_wait_ms=0 it does not."""
    model = Model()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=8, max_wait_ms=max_wait_ms)
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0)  # the first row is queued in this turn
        second = asyncio.create_task(batcher.submit(1))  # and this one in the next
        assert await asyncio.gather(first, second) == [0, 2]
        later = [asyncio.create_task(batcher.submit(2))]
        for _ in range(GATHER_TURNS + 2):  # past the gathering: a call of its own
            await asyncio.sleep(0)
        later.append(asyncio.create_task(batcher.submit(3)))
        assert await asyncio.gather(*later) == [4, 6]

    asyncio.run(main())
    assert model.batches == [*calls, [2], [3]]


def test_max_wait_is_respected_when_a_slot_is_free() -> None:
    """With two slots and one busy, a partial batch leaves after max_wait, not when full."""

    async def main() -> tuple[float, list[list[int]]]:
        gate = asyncio.Event()
        batches: list[list[int]] = []

        async def model(rows: list[int]) -> list[int]:
            batches.append(rows)
            if rows == [0]:
                await gate.wait()  # the first call blocks its slot until released
            return rows

        batcher = MicroBatcher(model, max_batch=100, max_wait_ms=50, max_concurrency=2)
        blocker = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0.005)
        start = time.perf_counter()
        waited = await asyncio.gather(batcher.submit(1), batcher.submit(2))
        elapsed = time.perf_counter() - start
        assert waited == [1, 2]
        gate.set()
        await blocker
        return elapsed, batches

    elapsed, batches = asyncio.run(main())
    assert batches == [[0], [1, 2]]
    assert 0.04 <= elapsed < 0.5  # 50 ms, with a generous upper bound


def test_an_error_fails_every_request_of_its_batch() -> None:
    calls = 0

    async def model(rows: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if 3 in rows:
            raise RuntimeError("model exploded")
        return rows

    async def main() -> list[object]:
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=5)
        return await asyncio.gather(*(batcher.submit(i) for i in range(8)), return_exceptions=True)

    results = asyncio.run(main())
    assert [isinstance(r, RuntimeError) for r in results] == [True] * 4 + [False] * 4
    assert results[4:] == [4, 5, 6, 7]
    assert calls == 2


def test_wrong_number_of_results_fails_the_batch() -> None:
    async def model(rows: list[int]) -> list[int]:
        return rows[:-1]

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=5)
        with pytest.raises(StewardError, match="one result per row"):
            await asyncio.gather(*(batcher.submit(i) for i in range(3)))

    asyncio.run(main())


def test_a_cancelled_caller_does_not_break_the_others() -> None:
    model = Model(delay_s=0.01)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=5)
        busy = asyncio.create_task(batcher.submit(100))  # keeps the model busy
        await asyncio.sleep(0.001)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(5)]
        await asyncio.sleep(0)
        tasks[2].cancel()  # cancelled while queued: its row is never sent
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        assert [results[i] for i in (0, 1, 3, 4)] == [0, 2, 6, 8]
        assert await busy == 200
        # cancelled during the call: the others still get their results
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0.003)
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert results[1:] == [2, 4]

    asyncio.run(main())
    assert [2 not in b for b in model.batches[:2]] == [True, True]


def test_close_drains_and_then_refuses() -> None:
    model = Model(delay_s=0.005)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=1000)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
        await asyncio.sleep(0)
        await batcher.close()
        assert all(t.done() for t in tasks)
        assert [t.result() for t in tasks] == [2 * i for i in range(10)]
        assert batcher.queued == 0
        assert batcher.in_flight == 0
        with pytest.raises(Unavailable, match="closed"):
            await batcher.submit(1)

    asyncio.run(main())


def test_async_context_manager_closes() -> None:
    async def main() -> int:
        async with MicroBatcher(Model(), max_batch=2, max_wait_ms=1) as batcher:
            return await batcher.submit(21)

    assert asyncio.run(main()) == 42


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"max_batch": 0, "max_wait_ms": 1}, "max_batch"),
        ({"max_batch": 1, "max_wait_ms": -1}, "max_wait_ms"),
        ({"max_batch": 1, "max_wait_ms": float("nan")}, "max_wait_ms"),
        ({"max_batch": 1, "max_wait_ms": 1, "max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_knobs_name_the_field(knobs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        MicroBatcher(Model(), **knobs)  # type: ignore[arg-type]
    assert caught.value.field == field
