"""Where does a Steward request spend its time? py-spy on the real server, per operation.

    pip install py-spy   # a standalone binary; any venv will do
    .venv-bench/bin/python bench/profile_steward.py [--database-url URL] [--op log_batch ...]

Starts the server as the benchmarks do (one uvicorn process), drives one operation at a time
from this process for ``--seconds``, samples the server with ``py-spy record --format raw``
(all threads, including the threadpool that runs FastAPI's sync routes), and prints, per
operation, the server's CPU per call and its share inside each function (inclusive), for the
functions that take the most.

The CPU per call is read from the kernel (``/proc/PID/task/*/stat``, every thread of the
server), not from py-spy's sample count: on a 2-core machine py-spy competes with the server,
client and database for the cores and falls behind its rate, so samples / rate undercounted
the server's work by about half (measured: a PostgreSQL registration ~1.0 ms by py-spy, 1.9 ms
by the kernel and by ``perf stat --per-thread``, of which the worker thread 1.3 ms). py-spy
says where the time goes, the kernel how much there is.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _servers import Context, steward_admin_token, steward_server, thread_cpu_seconds

OPS = ["log_batch", "create_version", "set_alias", "list_versions"]
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:]+)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


_IDLE = ("EpollSelector.select", "select", "Condition.wait", "Queue.get", "SimpleQueue.get",
         "Event.wait", "_worker", "Thread._wait_for_tstate_lock")  # fmt: skip
# Pure pass-through layers (ASGI middleware, event loop, thread start): always ~100%, no news.
_WRAPPERS = ("uvicorn/", "asyncio/", "starlette/", "threading.py", "anyio/", "contextlib.py",
             "_steward_server.py", "fastapi/routing.py", "fastapi/middleware", "fastapi/_body",
             "fastapi/telemetry")  # fmt: skip


def inclusive(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Per function: samples it appears in (inclusive) and is the leaf of (self); the total."""
    counts: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";")[1:]]
        # Idle threads (waiting on the selector or for work) say nothing about a request.
        if not frames or frames[-1].split(" (")[0] in _IDLE:
            continue
        total += int(n)
        leaves[frames[-1]] += int(n)
        for frame in set(frames):
            if not any(w in frame for w in _WRAPPERS):
                counts[frame] += int(n)
    return counts, leaves, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--op", nargs="+", choices=OPS, default=OPS)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    # On PATH, or installed in this interpreter's venv (`pip install py-spy` there).
    beside = Path(sys.executable).with_name("py-spy")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(beside))
    args = parser.parse_args()

    from steward.client import Client
    from steward.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="steward-profile-"))
    ctx = Context(python=sys.executable, quick=True, backends=[], pg_admin_url="",
                  mlflow_workers=[], workdir=workdir)  # fmt: skip
    home = workdir / "home"
    url = args.database_url or f"sqlite:///{home / 'steward.db'}"
    home.mkdir()
    with Client(settings=Settings(home=home, url=None, database={"url": url})) as local:
        local.create_model("m")
        ref = local.upload_artifact(pickle.dumps({"w": 1}))
        for _ in range(100):
            local.create_version("m", flavor="python", files={"model.pkl": ref},
                                 metrics={"auc": 0.8 + (_ % 20) / 100}, trusted=True)  # fmt: skip
    token = steward_admin_token(home, url)
    try:
        with steward_server(ctx, home, url) as server, Client(url=server.url, token=token) as c:
            run_id = c.create_run("profile").id
            steps = iter(range(10**9))

            def log_batch() -> int:
                first = next(steps) * 1000
                points = [{"key": "loss", "value": 0.1, "step": first + i} for i in range(1000)]
                return c.log_batch(run_id, points)

            calls: dict[str, Callable[[], Any]] = {
                "log_batch": log_batch,
                "create_version": lambda: c.create_version(
                    "m", flavor="python", files={"model.pkl": ref}, metrics={"auc": 0.95},
                    trusted=True),
                "set_alias": lambda: c.set_alias("m", "champion", 1 + next(steps) % 2),
                "list_versions": lambda: c.list_versions("metrics.auc > 0.9", limit=100),
            }  # fmt: skip
            for op in args.op:
                for _ in range(3):
                    calls[op]()
                raw = workdir / f"{op}.txt"
                spy = subprocess.Popen(
                    [args.py_spy, "record", "--format", "raw", "--rate", str(args.rate),
                     "--pid", str(server.proc.pid), "--duration", str(int(args.seconds) + 2),
                     "--output", str(raw), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                time.sleep(1.0)  # let py-spy attach
                n, start = 0, time.perf_counter()
                cpu_before = thread_cpu_seconds(server.proc.pid)
                while time.perf_counter() - start < args.seconds:
                    calls[op]()
                    n += 1
                elapsed = time.perf_counter() - start
                cpu_after = thread_cpu_seconds(server.proc.pid)
                spy.wait()
                counts, leaves, total = inclusive(raw)
                by_thread = {t: (cpu_after[t] - cpu_before.get(t, 0.0)) * 1000 / n
                             for t in cpu_after}  # fmt: skip
                per_call = sum(by_thread.values())
                ranked = sorted(by_thread.items(), key=lambda item: -item[1])
                busiest = ", ".join(f"{t} {ms:.2f}" for t, ms in ranked if ms >= 0.01)
                print(f"\n===== {op}: {n} calls, {elapsed / n * 1000:.1f} ms per call seen by "
                      f"the client; server CPU {per_call:.2f} ms per call (by thread: {busiest});"
                      f" py-spy: {total} samples, {1000.0 / args.rate * total / n:.2f} ms per call"
                      f" at {args.rate} Hz")  # fmt: skip
                print("  inclusive (pass-through ASGI/event-loop layers omitted):")
                for func, k in counts.most_common(args.top):
                    print(f"  {k / total * 100:5.1f}%  {per_call * k / total:7.2f} ms  {func}")
                print("  self (leaf frames):")
                for func, k in leaves.most_common(12):
                    print(f"  {k / total * 100:5.1f}%  {per_call * k / total:7.2f} ms  {func}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
