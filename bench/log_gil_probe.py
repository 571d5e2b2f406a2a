"""How long does an idle event loop wait to wake beside the prediction log's writer?

    taskset -c 0 .venv-bench/bin/python bench/log_gil_probe.py [--seconds 60] [--rows 1]

A thread sleeps 200 µs at a time, as an event loop waits for its next request, and records how
late it wakes: the OS's wake-up, plus the GIL when another thread of the process holds it.
Meanwhile a writer thread (at idle priority, as the server's) writes a block of 1,000
requests (20 float32 features, two class probabilities) five times a second, as at concurrency
1 (``--rows 100``: 250 requests of 100 rows, twice a second). The writer switches every 0.4 s
between nothing, the thread writer and the writer processes, in one process, so the host's
slow and fast moments fall on all three alike; the percentiles of each mode's lateness are
printed. Pin it to one core (``taskset -c 0``) as the serving benchmark pins the server.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
import uuid
from typing import Any

import numpy as np

from steward.domain.signature import Signature
from steward.store import prediction_log as pl

MODES = ("none", "thread", "process")
SLEEP_S = 0.0002
SWITCH_S = 0.4


def _block(rows: int, requests: int) -> Any:
    def request() -> pl.RequestRecord:
        matrix = np.random.rand(rows, 20).astype(np.float32)
        return pl.RequestRecord(
            "bench", 1, uuid.uuid4().hex, time.time(), 0.3,
            {f"f{j}": matrix[:, j] for j in range(20)}, np.ones(rows, np.int64),
            np.random.rand(rows, 2), rows, matrix=matrix,
        )  # fmt: skip

    logged = [request() for _ in range(requests)]
    block = pl._ColumnBlock(logged[0], rows * requests)
    for record in logged:
        block.add(record)
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rows", type=int, default=1, choices=(1, 100))
    args = parser.parse_args()
    signature = Signature.model_validate(
        {"inputs": [{"name": f"f{i}", "dtype": "float32", "shape": [-1]} for i in range(20)]}
    )
    requests, period = (1000, 0.2) if args.rows == 1 else (250, 0.5)
    blocks = [_block(args.rows, requests) for _ in range(4)]
    writers = {
        mode: pl.PredictionLogWriter(tempfile.mkdtemp(), queue_size=10**6, flush_rows=10**6,
                                     flush_seconds=60, writer=mode)  # type: ignore[arg-type]
        for mode in ("thread", "process")
    }  # fmt: skip
    for writer in writers.values():
        writer.set_signature("bench", signature)
    mode = ["none"]
    stop = threading.Event()

    def write() -> None:
        pl._lower_this_threads_priority(idle=True)
        for k in itertools.count():
            if stop.is_set():
                return
            started = time.perf_counter()
            if mode[0] != "none":
                writers[mode[0]]._write_batch([blocks[k % len(blocks)]], {"bench": signature})
            time.sleep(max(0.0, period - (time.perf_counter() - started)))

    writers["process"]._write_batch([blocks[0]], {"bench": signature})  # the children warm
    threading.Thread(target=write, daemon=True).start()
    late: dict[str, list[float]] = {m: [] for m in MODES}
    end = time.perf_counter() + args.seconds
    switch, turn = 0.0, 0
    while (now := time.perf_counter()) < end:
        if now > switch:
            turn += 1
            mode[0], switch = MODES[turn % len(MODES)], now + SWITCH_S
        current = mode[0]
        before = time.perf_counter()
        time.sleep(SLEEP_S)
        late[current].append((time.perf_counter() - before - SLEEP_S) * 1e6)
    stop.set()
    for writer in writers.values():
        writer.close()
    for name, values in late.items():
        values.sort()

        def at(q: float, values: list[float] = values) -> float:
            return values[int(len(values) * q)]

        print(f"{name:8s} n={len(values):,} lateness p50 {at(0.5):.0f} µs, p90 {at(0.9):.0f}, "
              f"p99 {at(0.99):.0f}, p99.5 {at(0.995):.0f}, p99.9 {at(0.999):.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
