"""Paired A/B of Steward's gateway: several source trees served at once, loaded at once.

Why: on a shared VM the same server's throughput moves by a factor of two between runs a few
minutes apart (measured here: 3,400 to 8,600 requests/s, same code, 3 s runs), so running two
variants one after the other cannot resolve a 5% change. This runs every variant as its own
``steward serve`` (or the bare Starlette app calling the model, ``bare``, or returning a
constant, ``floor``: the HTTP floor of the micro-batching goal), all pinned to core 0, and
loads them all in the same seconds with one wrk each on core 1: the host's slow and fast
moments fall on every variant alike, and the ratio of each variant's requests/s to the first
one's stays within a few percent from round to round. What it measures is each variant's
CPU cost per request, as they share one core; not the latency a lone server would have (p99
is printed but means little with several servers on one core). That cost is also read
directly: each server's CPU seconds (its threads and child processes, from the kernel) over
the round, divided by its answers.

A tree is a folder whose ``src`` holds a ``steward`` package (a ``git worktree`` of a commit,
with the change under test applied), put first on the servers' PYTHONPATH.

    git worktree add /tmp/ab/base HEAD
    git worktree add /tmp/ab/change HEAD   # then edit /tmp/ab/change/src/steward/...
    .venv-bench/bin/python bench/ab_serving.py /tmp/ab/base /tmp/ab/change --rounds 6

``--alone`` measures latency instead: every tree is started once, and in each round each is
loaded by itself in turn (the others idle), so its p99 is a lone server's; the medians of the
rounds' p99 are compared, with each tree's prediction-log drops read off ``/metrics``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import threading
from pathlib import Path
from typing import Any

import bench_serving as serving
from _servers import BENCH_DIR, HOST, Context, Server, _child_env, free_port, tree_cpu_seconds

ROOT = BENCH_DIR.parent
DEPLOYMENTS = ["clf", "clf-onnx", "clf-batch", "clf-onnx-batch"]  # what `prepare` deploys
BARE = ("bare", "floor")  # the reference apps: the model called bare, and a constant answer


def _start(
    stack: contextlib.ExitStack, tree: str, i: int, prep: serving.Prepared, route: str
) -> Server:
    port = free_port()
    logs = prep.steward_home.parent / "logs"
    if tree in BARE:
        onnx = "onnx" in route
        model = prep.onnx_path if onnx else prep.pickle_path
        mode = "constant" if tree == "floor" else "onnx" if onnx else "sklearn"
        cmd = [str(ROOT / ".venv-bench/bin/python"), str(BENCH_DIR / "_bare_starlette.py"),
               mode, str(model), str(port)]  # fmt: skip
        return stack.enter_context(serving._server(f"bare-{i}", cmd, port, logs, "/health",
                                                   _child_env()))  # fmt: skip
    env = _child_env({"STEWARD_HOME": str(prep.steward_home),
                      "PYTHONPATH": str(Path(tree).resolve() / "src")})  # fmt: skip
    cmd = [str(ROOT / ".venv-bench/bin/steward"), "serve", "--host", HOST,
           "--port", str(port), *DEPLOYMENTS]  # fmt: skip
    return stack.enter_context(serving._server(f"steward-{i}", cmd, port, logs,
                                               "/v2/health/ready", env))  # fmt: skip


def _load_all(urls: list[str], scripts: list[Path], connections: int, seconds: int) -> list[Any]:
    """One wrk per server, all started together; their summaries in the servers' order."""
    found: list[Any] = [None] * len(urls)

    def load(i: int) -> None:
        found[i] = serving.wrk(urls[i], scripts[i], connections, seconds)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="folders with src/steward, 'bare' or 'floor'")
    parser.add_argument(
        "--route",
        default="/predict/clf-onnx",
        help="e.g. /predict/clf, /v2/models/clf/infer, /predict/clf-onnx-batch",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32, help="wrk -c, per server")
    parser.add_argument("--rows", type=int, default=1, help="rows per request body")
    parser.add_argument(
        "--alone", action="store_true", help="load one server at a time and compare p99"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ab-serving-"))
    try:
        _run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path) -> None:
    ctx = Context(python=str(ROOT / ".venv-bench/bin/python"), quick=False, backends=[],
                  pg_admin_url="", mlflow_workers=[1], workdir=workdir)  # fmt: skip
    prep = serving.prepare(ctx)
    oip = "/infer" in args.route
    body = serving.oip(prep.x, args.rows, "FP64") if oip else serving.instances(prep.x, args.rows)
    script, bare_script = workdir / "post.lua", workdir / "bare.lua"
    script.write_text(serving.LUA.format(body=body))
    bare_script.write_text(serving.LUA.format(body=serving.instances(prep.x, args.rows)))
    # the bare app takes `{"instances": ...}` on /predict whatever route Steward is loaded on
    scripts = [bare_script if tree in BARE else script for tree in args.trees]
    with contextlib.ExitStack() as stack:
        servers = [_start(stack, tree, i, prep, args.route) for i, tree in enumerate(args.trees)]
        urls = [s.url + ("/predict" if t in BARE else args.route)
                for s, t in zip(servers, args.trees, strict=True)]  # fmt: skip
        _load_all(urls, scripts, args.connections, 1)  # warm-up
        if args.alone:
            _compare_alone(args, servers, urls, scripts)
            return
        rps: list[list[float]] = [[] for _ in urls]
        cpu_us: list[list[float]] = [[] for _ in urls]  # server CPU per answered request
        for r in range(args.rounds):
            before = [tree_cpu_seconds(s.proc.pid) for s in servers]
            for i, got in enumerate(_load_all(urls, scripts, args.connections, args.seconds)):
                good = got["requests"] - got["non2xx"]
                rps[i].append(good / (got["duration_us"] / 1e6))
                cpu_us[i].append((tree_cpu_seconds(servers[i].proc.pid) - before[i]) * 1e6
                                 / max(good, 1))  # fmt: skip
            print(f"round {r + 1}: " + "  ".join(
                f"T{i} {v[-1]:,.0f} req/s ({v[-1] / rps[0][-1]:.3f}), {cpu_us[i][-1]:.0f} µs CPU"
                for i, v in enumerate(rps)
            ), flush=True)  # fmt: skip
        # a variant that logs less (drops under load) does less work: say how much it dropped
        dropped = ["-" if t in BARE else serving.steward_log_stats(s)
                   for s, t in zip(servers, args.trees, strict=True)]  # fmt: skip
    for i in range(1, len(urls)):
        ratios = [a / b for a, b in zip(rps[i], rps[0], strict=True)]
        cpu_ratios = [a / b for a, b in zip(cpu_us[i], cpu_us[0], strict=True)]
        print(f"T{i} {args.trees[i]} / T0 {args.trees[0]}: median {statistics.median(ratios):.3f}"
              f" (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds),"
              f" CPU per request {statistics.median(cpu_us[i]):.0f} against"
              f" {statistics.median(cpu_us[0]):.0f} µs (ratio median"
              f" {statistics.median(cpu_ratios):.3f}), log drops {dropped[i]}")  # fmt: skip


def _compare_alone(
    args: argparse.Namespace, servers: list[Server], urls: list[str], scripts: list[Path]
) -> None:
    p99: list[list[float]] = [[] for _ in urls]
    rps: list[list[float]] = [[] for _ in urls]
    cpu_us: list[list[float]] = [[] for _ in urls]
    for r in range(args.rounds):
        for i, url in enumerate(urls):
            before = tree_cpu_seconds(servers[i].proc.pid)
            got = serving.wrk(url, scripts[i], args.connections, args.seconds)
            good = got["requests"] - got["non2xx"]
            cpu_us[i].append((tree_cpu_seconds(servers[i].proc.pid) - before) * 1e6 / max(good, 1))
            p99[i].append(got["p99_us"] / 1000)
            rps[i].append(good / (got["duration_us"] / 1e6))
        print(f"round {r + 1}: " + "  ".join(
            f"T{i} p99 {v[-1]:.2f} ms {rps[i][-1]:,.0f} req/s" for i, v in enumerate(p99)
        ), flush=True)  # fmt: skip
    for i, tree in enumerate(args.trees):
        dropped = "-" if tree in BARE else serving.steward_log_stats(servers[i])
        print(f"T{i} {tree}: p99 median {statistics.median(p99[i]):.2f} ms "
              f"(min {min(p99[i]):.2f}, max {max(p99[i]):.2f}), "
              f"{statistics.median(rps[i]):,.0f} req/s, "
              f"CPU {statistics.median(cpu_us[i]):.0f} µs per request, "
              f"log drops {dropped}")  # fmt: skip


if __name__ == "__main__":
    main()
