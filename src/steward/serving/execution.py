"""Where a model call runs: on the event loop (inline) or in the model thread pool.

A thread hop costs more than a fast model: on one core, handing a one-row call to a worker
thread and back halved the gateway's throughput (measured: a 1-row scikit-learn call answered
~1,800 req/s through the pool, ~2,300 inline; a bare Starlette app calling the model ~2,500).
The hop is not the thread switch alone: while a worker holds the GIL, every syscall the event
loop makes (a socket read, a random id) waits for the worker's switch interval.

So a version whose calls are measured fast runs inline, and everything else keeps the pool,
where a timeout can leave a slow call behind:

- only scikit-learn and ONNX versions are candidates: their cost is CPU-bound and depends on the
  number of rows; a python-flavor model is user code that may block on I/O;
- at load, after the warm-up, the call is timed on 1 row and on `_PROBE_ROWS` rows, giving a
  fixed cost and a cost per row; a request runs inline when its predicted cost is within the
  budget (``inline_budget_ms``, at most a tenth of the deployment's timeout). Each is the
  fastest of `_PROBE_CALLS` calls, as timeit advises: a busy machine only ever adds time, and a
  median taken while another process held the core sent one of two identical models to the
  pool (seen in CI: 34 ms per request against 0.8 ms for its twin on the loop);
- an inline call cannot be interrupted, so its duration is checked afterwards: past the
  deployment's timeout it counts as a timeout (the fallback answers, as in the pool); that
  call, or `_DEMOTE_AFTER` calls in a row that each used more than `_DEMOTE_FACTOR` times the
  budget in CPU time, move the version to the pool for good (until it is loaded again). CPU
  time, not wall time: on a busy machine the process is preempted mid-call, and a wall clock would
  demote a fast model for the machine's load (seen here: 22 ms for a 0.2 ms call); in a row,
  because a garbage collection pause lands inside some call (seen: 132 ms of CPU). The CPU
  clock is only read once a call overran in wall time, until the calls are fast again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.domain.enums import Flavor

logger = logging.getLogger(__name__)

DEFAULT_INLINE_BUDGET_MS = 2.0
INLINE_FLAVORS = frozenset({Flavor.SKLEARN, Flavor.ONNX})
_PROBE_ROWS = 64
_PROBE_CALLS = 7
_DEMOTE_FACTOR = 5.0
_DEMOTE_AFTER = 3  # consecutive over-budget calls: one can be a garbage collection pause


@dataclass
class InlineExecution:
    """The measured cost of one loaded version, and whether it still runs inline."""

    what: str  # "model vN", for the log line on demotion
    fixed_s: float
    per_row_s: float
    budget_s: float
    timeout_s: float
    demoted: bool = False
    over_budget: int = 0  # consecutive calls past the demotion threshold in CPU time
    # A call past the threshold in wall time makes the next calls measure CPU time too: in a
    # sandbox the CPU clock is a real syscall (~2 µs), too dear for every call of a 10 µs model.
    suspect: bool = False

    def allows(self, rows: int) -> bool:
        return not self.demoted and self.fixed_s + self.per_row_s * rows <= self.budget_s

    def run(self, call: Callable[[], Any]) -> Any:
        """``call()`` on the caller's thread; TimeoutError when it took longer than the
        deployment's timeout, whatever it returned or raised (as in the pool, where the
        fallback answers at the deadline)."""
        cpu_started = time.thread_time() if self.suspect else None
        started = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - started
            cpu = None if cpu_started is None else time.thread_time() - cpu_started
            self._observe(cpu, elapsed)
            if elapsed > self.timeout_s:
                raise TimeoutError  # the deadline wins over the call's own outcome

    def _observe(self, cpu: float | None, elapsed: float) -> None:
        threshold = _DEMOTE_FACTOR * self.budget_s
        if cpu is None:
            self.suspect = elapsed > threshold
        else:
            over = cpu > threshold
            self.over_budget = self.over_budget + 1 if over else 0
            self.suspect = over or elapsed > threshold
        if self.demoted or (self.over_budget < _DEMOTE_AFTER and elapsed <= self.timeout_s):
            return
        self.demoted = True
        logger.warning(
            "%s took %.1f ms inline, over its budget of %.1f ms; its calls move to the thread "
            "pool", self.what, elapsed * 1000, self.budget_s * 1000,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallCost:
    """A loaded model's measured call time: a fixed part and a part per row."""

    fixed_s: float
    per_row_s: float


def measure_cost(flavor: Flavor, call: Callable[[Any], Any], row: Any) -> CallCost | None:
    """Time ``call`` on ``row`` and on `_PROBE_ROWS` copies of it (after the warm-up); None
    when the flavor may not run inline or the probe failed."""
    if flavor not in INLINE_FLAVORS:
        return None
    try:
        many = _repeat(row, _PROBE_ROWS)
        one_s = _fastest_seconds(call, row)
        many_s = _fastest_seconds(call, many)
    except Exception as error:  # the warm-up already logged why this model refuses the row
        logger.debug("not timing a %s model for inline calls: %s", flavor.value, error)
        return None
    return CallCost(one_s, max(0.0, (many_s - one_s) / (_PROBE_ROWS - 1)))


def inline_execution(
    what: str, cost: CallCost | None, *, budget_ms: float, timeout_s: float
) -> InlineExecution | None:
    """The inline policy of one served version; None when it always uses the pool."""
    budget_s = min(budget_ms / 1000, timeout_s / 10)
    if cost is None or budget_s <= 0 or cost.fixed_s > budget_s:
        return None
    return InlineExecution(what, cost.fixed_s, cost.per_row_s, budget_s, timeout_s)


def _fastest_seconds(call: Callable[[Any], Any], data: Any) -> float:
    fastest = float("inf")
    for _ in range(_PROBE_CALLS):
        started = time.perf_counter()
        call(data)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def _repeat(row: Any, count: int) -> Any:
    if isinstance(row, dict):
        return {name: np.repeat(column, count, axis=0) for name, column in row.items()}
    return np.repeat(row, count, axis=0)
