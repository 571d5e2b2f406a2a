"""Benchmark 3: register a version and move an alias through the server, median latency.

Steward: ``create_version`` of a file uploaded once beforehand (metadata only: the server still
checks the file exists and reads it to validate the flavor), then ``set_alias``.
MLflow: ``create_model_version(name, source=<run artifact URI>, run_id=...)``, then
``set_registered_model_alias``. Calls are interleaved across the servers.
"""

from __future__ import annotations

import contextlib
import pickle
import uuid
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

# Consecutive calls per side before the other side's turn. A side's first calls after the
# other's block are slower on these VMs (a vCPU woken from halt, caches the other side's
# servers filled): a Steward registration after MLflow's block took 2.1-2.8 ms, the next
# 1.2-1.5, the third 0.8-1.2, then its steady 0.65-0.95 (medians by position, 2026-11-29),
# while MLflow's ~10 ms calls show no such step. In blocks of 10 those three calls moved
# Steward's median by 10-30%; in blocks of 30 a tenth of its samples are such calls, as in a
# script's loop, and the median is the loop's.
BLOCK = 30


def run_backend(ctx: Context, backend: str) -> list[Row]:
    from mlflow import MlflowClient

    from steward.client import Client

    quiet_mlflow_logging()
    n = 10 if ctx.quick else 150  # five blocks per side
    warm = 5
    home = ctx.scratch(f"registry-{backend}")
    name = f"bench-registry-{uuid.uuid4().hex[:6]}"
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(databases(ctx, backend, home, ["steward", "mlflow"]))
        token = steward_admin_token(home, urls["steward"])
        st_server = stack.enter_context(steward_server(ctx, home, urls["steward"]))
        steward = stack.enter_context(Client(url=st_server.url, token=token))
        steward.create_model(name)
        ref = steward.upload_artifact(pickle.dumps({"w": 1}))
        mlflow_init_db(urls["mlflow"], home / "mlartifacts")
        ml: dict[int, tuple[Any, str, str, str]] = {}
        for workers in ctx.mlflow_workers:
            server = stack.enter_context(
                mlflow_server(ctx, urls["mlflow"], home / "mlartifacts", workers)
            )
            client = MlflowClient(tracking_uri=server.url)
            model = f"{name}-w{workers}"
            client.create_registered_model(model)
            run = client.create_run(client.create_experiment(model)).info
            ml[workers] = (client, model, run.run_id, f"{run.artifact_uri}/model")

        def st_create(_: int) -> None:
            steward.create_version(
                name, flavor="python", files={"model.pkl": ref}, metrics={"auc": 0.9},
                trusted=True,
            )  # fmt: skip

        def ml_create(workers: int) -> Any:
            client, model, run_id, source = ml[workers]
            return lambda _: client.create_model_version(
                model, source, run_id=run_id, await_creation_for=0
            )

        calls = {"steward": st_create, **{f"w{w}": ml_create(w) for w in ml}}
        create = {k: [s * 1000 for s in v] for k, v in
                  sample_in_blocks(calls, n, warm=warm, block=BLOCK).items()}  # fmt: skip
        ctx.log(f"  create_version[{backend}] done ({n} samples)")

        def ml_alias(workers: int) -> Any:
            client, model, _, _ = ml[workers]
            return lambda i: client.set_registered_model_alias(
                model, "champion", str(1 + i % (warm + n))
            )

        calls = {
            "steward": lambda i: steward.set_alias(name, "champion", 1 + i % (warm + n)),
            **{f"w{w}": ml_alias(w) for w in ml},
        }
        alias = {k: [s * 1000 for s in v] for k, v in
                 sample_in_blocks(calls, n, warm=warm, block=BLOCK).items()}  # fmt: skip
        ctx.log(f"  set_alias[{backend}] done ({n} samples)")
    rows: list[Row] = []
    for w in ml:
        setting = f"mlflow server --workers {w}"
        rows.append(Row("registry", f"create version (metadata only), {backend}", "ms", False,
                        create["steward"], create[f"w{w}"], setting, goal=10.0))  # fmt: skip
        rows.append(Row("registry", f"set alias, {backend}", "ms", False,
                        alias["steward"], alias[f"w{w}"], setting, goal=10.0))  # fmt: skip
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for backend in ctx.backends:
        rows += run_backend(ctx, backend)
    return rows
