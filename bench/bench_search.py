"""Benchmark 4: search 10,000 versions with a metric filter, median latency through the server.

Steward: ``list_versions("metrics.auc > 0.9", limit=100)``.
MLflow: ``search_runs(filter_string="metrics.auc > 0.9", max_results=100)`` over 10,000 runs
(one ``auc`` each) and ``search_model_versions(max_results=100)`` over 10,000 versions of one
registered model: MLflow's model-version search cannot filter on metrics, so that row is the
closest call MLflow has, not the same query.

Populating (not measured; printed):
- Steward: the registry service's own ``create_version`` (validation, ledger event, hash chain)
  against the store, committing every 500 versions instead of after each one;
- MLflow: one run, one metric and one version through MLflow's own ``SqlAlchemyStore`` APIs,
  then those rows cloned 10,000 times with bulk ``INSERT``s on the same tables (MLflow's store
  API takes ~70 ms per run+metric+version here, ~12 minutes for 10,000).
"""

from __future__ import annotations

import contextlib
import pickle
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _servers import (
    Context,
    Row,
    databases,
    mlflow_server,
    quiet_mlflow_logging,
    sample_in_blocks,
    steward_admin_token,
    steward_server,
)

MODEL = "bench-search"
FILTER = "metrics.auc > 0.9"


# Consecutive calls per side. As in bench_registry: Steward's first search after the MLflow
# sides' blocks is slower on these VMs (3.4 ms against a steady 1.5-1.7 on SQLite, 4.5 against
# 2.5-2.8 on PostgreSQL: medians by position, 2026-11-29); in blocks of 5 such calls and the
# next were two fifths of Steward's samples, in blocks of 10 a fifth.
BLOCK = 10


def _aucs(n: int) -> list[float]:
    rng = random.Random(42)
    return [round(rng.uniform(0.5, 1.0), 6) for _ in range(n)]


# -- Steward -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _batched_commits(store: Any, every: int) -> Iterator[None]:
    """Make ``store.write`` share one transaction, committed every ``every`` writes."""
    from sqlalchemy.orm import Session

    from steward.store.sql.store import SqlWriteSession, _end

    session = Session(store.engine, expire_on_commit=False)
    session.begin()
    count = 0

    @contextlib.contextmanager
    def write(actor: str) -> Iterator[Any]:
        nonlocal count
        writer = SqlWriteSession(session, actor)
        yield writer
        _end(session, writer)  # the write's end: its statements left for commit, its events
        count += 1
        if count % every == 0:
            session.commit()
            session.begin()

    store.write = write
    try:
        yield
        session.commit()
    finally:
        del store.write
        session.close()


def populate_steward(home: Path, database_url: str, aucs: list[float]) -> str:
    from steward.client import Client
    from steward.schemas import parse
    from steward.schemas.registry import VersionCreate
    from steward.settings import Settings
    from steward.wiring import Services

    settings = Settings(home=home, url=None, database={"url": database_url})
    services = Services.from_settings(settings)
    try:
        client = Client(settings=settings)
        client.create_model(MODEL)
        ref = client.upload_artifact(pickle.dumps({"w": 1}))
        client.close()
        bodies = (
            parse(VersionCreate, {"flavor": "python", "files": {"model.pkl": ref},
                                  "metrics": {"auc": auc}, "trusted": True})
            for auc in aucs
        )  # fmt: skip
        try:
            with _batched_commits(services.store, 500):
                for body in bodies:
                    services.registry.create_version("bench", MODEL, body)
            how = "registry service, one commit per 500 versions"
        except (ImportError, AttributeError, TypeError):  # store internals moved: go slow
            with Client(settings=settings) as slow:
                for auc in aucs[len(slow.search_versions(model=MODEL)) :]:
                    slow.create_version(MODEL, flavor="python", files={"model.pkl": ref},
                                        metrics={"auc": auc}, trusted=True)  # fmt: skip
            how = "embedded Client.create_version, one commit per version"
        report = services.audit.verify()
        if not report.ok:
            raise AssertionError(f"ledger broken after populating: {report}")
        return how
    finally:
        services.close()


# -- MLflow ------------------------------------------------------------------------------------
def populate_mlflow(uri: str, artifact_root: Path, aucs: list[float]) -> str:
    import sqlalchemy as sa
    from mlflow.entities import Metric
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tracking = SqlAlchemyStore(uri, str(artifact_root))
    registry = RegistryStore(uri)
    exp_id = tracking.create_experiment(MODEL)
    registry.create_registered_model(MODEL)
    now = int(time.time() * 1000)
    template = tracking.create_run(exp_id, "bench", now, [], "template")
    tid = template.info.run_id
    tracking.log_batch(tid, metrics=[Metric("auc", aucs[0], now, 0)], params=[], tags=[])
    registry.create_model_version(MODEL, f"{template.info.artifact_uri}/model", run_id=tid)
    engine = tracking.engine
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        rows = {
            t: [dict(r._mapping) for r in conn.execute(
                sa.select(meta.tables[t]).where(meta.tables[t].c.run_uuid == tid))]
            for t in ("runs", "metrics", "latest_metrics", "tags")
        }  # fmt: skip
        version_row = dict(conn.execute(sa.select(meta.tables["model_versions"])).one()._mapping)
        for start in range(1, len(aucs), 1000):
            chunk = range(start, min(start + 1000, len(aucs)))
            ids = {i: uuid.uuid4().hex for i in chunk}
            for table, template_rows in rows.items():
                batch = []
                for i in chunk:
                    for row in template_rows:
                        new = {**row, "run_uuid": ids[i]}
                        if table in ("metrics", "latest_metrics"):
                            new["value"] = aucs[i]
                        if table == "runs":
                            new["name"] = f"run-{i}"
                            new["artifact_uri"] = row["artifact_uri"].replace(tid, ids[i])
                        batch.append(new)
                if batch:
                    conn.execute(meta.tables[table].insert(), batch)
            conn.execute(meta.tables["model_versions"].insert(), [
                {**version_row, "version": i + 1, "run_id": ids[i],
                 "source": version_row["source"].replace(tid, ids[i])}
                for i in chunk
            ])  # fmt: skip
    engine.dispose()
    return ("MLflow SqlAlchemyStore for the first run/metric/version, then bulk INSERTs "
            "cloning those rows (runs, metrics, latest_metrics, tags, model_versions)")  # fmt: skip


# -- benchmark ---------------------------------------------------------------------------------
def _vacuum_analyze(url: str) -> None:
    """What autovacuum does a minute or so after a bulk load, done at once on both databases:
    measured straight after populating, the planner had no statistics for either side's
    tables (10,000 rows estimated as a handful) and planned both searches blind."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def run_backend(ctx: Context, backend: str) -> list[Row]:
    from mlflow import MlflowClient

    from steward.client import Client

    quiet_mlflow_logging()
    size = 1000 if ctx.quick else 10_000
    n = 7 if ctx.quick else 30
    aucs = _aucs(size)
    home = ctx.scratch(f"search-{backend}")
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(databases(ctx, backend, home, ["steward", "mlflow"]))
        start = time.perf_counter()
        st_how = populate_steward(home, urls["steward"], aucs)
        st_pop = time.perf_counter() - start
        start = time.perf_counter()
        ml_how = populate_mlflow(urls["mlflow"], home / "mlartifacts", aucs)
        ml_pop = time.perf_counter() - start
        ctx.log(f"  populated {size} versions [{backend}]: steward {st_pop:.1f} s ({st_how}); "
                f"mlflow {ml_pop:.1f} s")  # fmt: skip
        if backend == "postgres":
            for url in urls.values():
                _vacuum_analyze(url)
        token = steward_admin_token(home, urls["steward"])
        st_server = stack.enter_context(steward_server(ctx, home, urls["steward"]))
        steward = stack.enter_context(Client(url=st_server.url, token=token))
        ml: dict[int, tuple[Any, str]] = {}
        for workers in ctx.mlflow_workers:
            server = stack.enter_context(
                mlflow_server(ctx, urls["mlflow"], home / "mlartifacts", workers)
            )
            client = MlflowClient(tracking_uri=server.url)
            ml[workers] = (client, client.get_experiment_by_name(MODEL).experiment_id)
        expected = sum(a > 0.9 for a in aucs)
        page = steward.list_versions(FILTER, limit=100)
        runs = ml[ctx.mlflow_workers[0]][0].search_runs(
            [ml[ctx.mlflow_workers[0]][1]], filter_string=FILTER, max_results=100
        )
        if len(page.items) != min(100, expected) or len(runs) != min(100, expected):
            raise AssertionError(f"got {len(page.items)} / {len(runs)}, expected 100 of {expected}")
        calls: dict[str, Any] = {"steward": lambda _: steward.list_versions(FILTER, limit=100)}
        for w, (client, exp_id) in ml.items():
            calls[f"runs-w{w}"] = lambda _, c=client, e=exp_id: c.search_runs(
                [e], filter_string=FILTER, max_results=100
            )
            calls[f"mv-w{w}"] = lambda _, c=client: c.search_model_versions(max_results=100)
        samples = {k: [s * 1000 for s in v] for k, v in
                   sample_in_blocks(calls, n, warm=2, block=BLOCK).items()}  # fmt: skip
        ctx.log(f"  search[{backend}] done ({n} samples)")
    extra = {"backend": backend, "versions": size, "matching": expected,
             "steward_populate_s": round(st_pop, 1),
             "steward_populate": st_how, "mlflow_populate_s": round(ml_pop, 1),
             "mlflow_populate": ml_how}  # fmt: skip
    rows: list[Row] = []
    for w in ml:
        setting = f"mlflow server --workers {w}"
        rows.append(Row("search", f"{size:,} versions, `{FILTER}`, 100 results, {backend}: "
                        "vs MLflow search_runs", "ms", False, samples["steward"],
                        samples[f"runs-w{w}"], setting, goal=10.0, extra=extra))  # fmt: skip
        rows.append(Row("search", f"{size:,} versions, `{FILTER}`, 100 results, {backend}: "
                        "vs MLflow search_model_versions (no metric filter possible)", "ms",
                        False, samples["steward"], samples[f"mv-w{w}"], setting, goal=10.0,
                        notes="MLflow's search_model_versions cannot filter on metrics; "
                        "it returns the first 100 versions unfiltered"))  # fmt: skip
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for backend in ctx.backends:
        rows += run_backend(ctx, backend)
    return rows
