"""Benchmark 2: metric logging through the server, batches of 1,000 points, points per second.

Steward: one uvicorn process (`steward server`), SDK ``Client(url, token).log_batch``.
MLflow: ``mlflow server --workers N``, ``MlflowClient.log_batch`` with 1,000 ``Metric`` objects.
All servers run at once on the same kind of store; batches are interleaved (one Steward batch,
then one per MLflow server) so the noise of a shared machine falls on every side alike.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from _servers import (
    Context,
    Row,
    databases,
    mlflow_init_db,
    mlflow_server,
    quiet_mlflow_logging,
    sample_in_blocks,
    steward_admin_token,
    steward_server,
)

BATCH = 1000


# Consecutive calls per side. As in bench_registry: a side's first call after the other's block
# is slower on these VMs (Steward's batch 3.6 ms against a steady 2.0-2.3 on SQLite, 5.1 against
# 2.8-3.2 on PostgreSQL: medians by position, 2026-11-29), and in blocks of 3 such calls were a
# third of Steward's samples; in blocks of 10 a tenth, as in a training loop.
BLOCK = 10


def _steward_points(step0: int) -> list[dict[str, Any]]:
    return [{"key": "loss", "value": 1.0 / (i + 1), "step": step0 + i} for i in range(BATCH)]


def _mlflow_points(step0: int) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric("loss", 1.0 / (i + 1), now, step0 + i) for i in range(BATCH)]


def run_backend(ctx: Context, backend: str) -> list[Row]:
    from mlflow import MlflowClient

    from steward.client import Client

    quiet_mlflow_logging()
    n = 5 if ctx.quick else 30
    home = ctx.scratch(f"logbatch-{backend}")
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(databases(ctx, backend, home, ["steward", "mlflow"]))
        token = steward_admin_token(home, urls["steward"])
        st_server = stack.enter_context(steward_server(ctx, home, urls["steward"]))
        steward = stack.enter_context(Client(url=st_server.url, token=token))
        run_id = steward.create_run("bench-log-batch").id
        mlflow_init_db(urls["mlflow"], home / "mlartifacts")
        ml: dict[int, tuple[Any, str]] = {}
        for workers in ctx.mlflow_workers:
            server = stack.enter_context(
                mlflow_server(ctx, urls["mlflow"], home / "mlartifacts", workers)
            )
            client = MlflowClient(tracking_uri=server.url)
            exp = client.create_experiment(f"bench-log-batch-w{workers}")
            ml[workers] = (client, client.create_run(exp).info.run_id)
        # Points are built before the clock starts, on both sides.
        st_points = [_steward_points(i * BATCH) for i in range(n + 1)]
        ml_points = [_mlflow_points(i * BATCH) for i in range(n + 1)]
        calls: dict[str, Any] = {"steward": lambda i: steward.log_batch(run_id, st_points[i])}
        for workers, (client, mrun) in ml.items():
            calls[f"w{workers}"] = lambda i, c=client, r=mrun: c.log_batch(r, metrics=ml_points[i])
        # The first call per side warms connections and caches and is dropped.
        seconds = sample_in_blocks(calls, n, warm=1, block=BLOCK)
        samples = {k: [BATCH / s for s in v] for k, v in seconds.items()}
        logged = len(steward.metric_history(run_id, "loss"))
        if logged != (n + 1) * BATCH:  # every call, warm-up included, must have landed
            raise AssertionError(f"Steward stored {logged} points, expected {(n + 1) * BATCH}")
    return [
        Row("log_batch", f"log_batch 1,000 points, {backend}", "points/s", True,
            samples["steward"], samples[f"w{w}"], f"mlflow server --workers {w}", goal=20.0)
        for w in ml
    ]  # fmt: skip


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for backend in ctx.backends:
        rows += run_backend(ctx, backend)
    return rows
