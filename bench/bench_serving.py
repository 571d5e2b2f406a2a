"""Benchmark 6: online inference over HTTP, Steward's gateway against its peers (issue 4, Speed).

One model, a scikit-learn ``LogisticRegression`` on 20 features (and its ONNX export, made by
Steward's ``export_onnx``), served on 127.0.0.1 by one process each, all pinned to core 0
(``taskset -c 0``) while the load generator, wrk with a Lua POST script, runs on core 1
(``taskset -c 1``, one wrk thread, keep-alive, ``-c 1`` or ``-c 32``):

- ``steward serve`` over a scratch store where the model is registered, evaluated, gated,
  approved, promoted to production and deployed (routing, prediction log and metrics on, as
  shipped); ``POST /predict/{name}`` and OIP ``/v2/models/{name}/infer``; deployments with
  and without micro-batching; the same version's ONNX export through onnxruntime (deployments
  with ``runtime="onnx"``);
- a bare Starlette app calling ``model.predict`` (or the onnxruntime session) on the parsed
  JSON, and the same returning a constant: the HTTP floor (``_bare_starlette.py``);
- ``mlflow models serve --env-manager local -w 1`` on the same estimator saved with
  ``mlflow.sklearn``, tensor input (``{"inputs": ...}``) and ``dataframe_split``;
- BentoML (``bentoml serve``, ``_bentoml_service.py``) when a BentoML venv is found
  (``BENCH_BENTOML``, default ``.venv-bentoml/bin/bentoml``); otherwise not measured.

Every cell (concurrency 1 / 32, 1-row / 100-row bodies) runs each server in turn, a short
warm-up then a measured run, three rounds; the table gives medians of the three. Throughput
counts 2xx answers only; a non-2xx answer is counted and reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from _servers import BENCH_DIR, HOST, Context, Row, Server, _child_env, free_port

ROOT = BENCH_DIR.parent
N_FEATURES = 20
CELLS = [(1, 1), (32, 1), (1, 100), (32, 100)]  # (concurrency, rows per request)
SERVER_CPU, LOAD_CPU = "0", "1"
WRK_TIMEOUT = "10s"
BATCHING = {"max_batch": 32, "max_wait_ms": 2}
GOAL_P99 = 1.2  # Steward's p99 at most 1.2x the bare app's

POLICY = """\
name: bench-serving
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.5
  - check: approvals
    count: 1
"""

LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {{"requests": %d, "duration_us": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "non2xx": %d, "socket_errors": %d}}\\n', summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


# -- the model and the stores ------------------------------------------------------------------
@dataclass
class Prepared:
    x: Any  # the feature matrix, float64
    pickle_path: Path
    onnx_path: Path
    mlflow_path: Path
    steward_home: Path


def prepare(ctx: Context) -> Prepared:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from steward.client import Client, log_model
    from steward.flavors import package_model
    from steward.settings import Settings

    work = ctx.scratch("serving")
    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    pickle_path = work / "model.pkl"
    pickle_path.write_bytes(pickle.dumps(model))
    onnx_path = work / "model.onnx"  # Steward's own export, what log_model(export_onnx=True) keeps
    onnx_path.write_bytes(package_model(model, export_onnx=True).files["model.onnx"])

    home = work / "steward-home"
    settings = Settings(url=None, home=home)
    table = pd.DataFrame(x, columns=[f"x{i}" for i in range(N_FEATURES)]).assign(label=y)
    with (
        Client(settings=settings) as client,
        Client(settings=Settings(url=None, home=home, actor="reviewer")) as reviewer,
    ):
        client.create_model("clf", owner="bench@example.com")
        client.set_policy(POLICY, model="clf")
        uri = log_model(model, "clf", sample_input=x[:5], client=client, export_onnx=True).uri
        client.evaluate(uri, table, "label", resamples=10, latency_calls=3)
        client.gate(uri)
        reviewer.approve(uri)
        client.promote(uri, "production")
        for runtime, name in (("native", "clf"), ("onnx", "clf-onnx")):  # onnx: its export
            client.deploy(name, model="clf", champion=1, runtime=runtime)
            client.deploy(f"{name}-batch", model="clf", champion=1, runtime=runtime,
                          batching=BATCHING)  # fmt: skip

    mlflow_path = work / "mlflow-model"
    _save_mlflow(model, x, mlflow_path)
    return Prepared(x, pickle_path, onnx_path, mlflow_path, home)


def _save_mlflow(model: Any, x: Any, path: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(x[:5], model.predict(x[:5]))
    mlflow.sklearn.save_model(model, str(path), signature=signature)


# -- request bodies ----------------------------------------------------------------------------
def _rows(x: Any, n: int) -> list[list[float]]:
    return [list(map(float, row)) for row in x[:n]]


def instances(x: Any, n: int) -> str:
    return json.dumps({"instances": _rows(x, n)})


def oip(x: Any, n: int, datatype: str) -> str:
    data = [v for row in _rows(x, n) for v in row]
    tensor = {"name": "X", "shape": [n, N_FEATURES], "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor]})


def mlflow_tensor(x: Any, n: int) -> str:
    return json.dumps({"inputs": _rows(x, n)})


def mlflow_split(x: Any, n: int) -> str:
    return json.dumps({"dataframe_split": {"columns": list(range(N_FEATURES)),
                                           "data": _rows(x, n)}})  # fmt: skip


# -- servers -----------------------------------------------------------------------------------
def _pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", SERVER_CPU, *cmd] if _can_pin() else cmd


def _can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


@contextlib.contextmanager
def _server(
    name: str, cmd: list[str], port: int, logdir: Path, health: str, env: dict[str, str]
) -> Iterator[Server]:
    server = Server(name, _pinned(cmd), port, logdir, env)
    try:
        server.wait_healthy(health, timeout=180)
        yield server
    finally:
        server.stop()


def bentoml_cli() -> Path | None:
    given = os.environ.get("BENCH_BENTOML")
    path = Path(given) if given else ROOT / ".venv-bentoml" / "bin" / "bentoml"
    return path if path.exists() else None


@dataclass
class Target:
    key: str  # e.g. "steward/sklearn/predict"
    server: str
    path: str
    body: Callable[[int], str]
    rows: tuple[int, ...] = (1, 100)
    check: str = ""  # a substring every answer holds


@dataclass
class Measured:
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    non2xx: int = 0
    total: int = 0


def targets(prep: Prepared, with_bentoml: bool) -> list[Target]:
    x = prep.x
    found = [
        Target("bare/sklearn", "bare-sklearn", "/predict", lambda n: instances(x, n)),
        Target("bare/onnx", "bare-onnx", "/predict", lambda n: instances(x, n)),
        Target("floor", "constant", "/predict", lambda n: instances(x, n), rows=(1,)),
        Target("steward/sklearn/predict", "steward", "/predict/clf",
               lambda n: instances(x, n), check='"version":1'),
        Target("steward/sklearn/oip", "steward", "/v2/models/clf/infer",
               lambda n: oip(x, n, "FP64"), check='"model_version":"1"'),
        Target("steward/sklearn/batch", "steward", "/predict/clf-batch",
               lambda n: instances(x, n), rows=(1,), check='"version":1'),
        Target("steward/onnx/predict", "steward", "/predict/clf-onnx",
               lambda n: instances(x, n), check='"version":1'),
        Target("steward/onnx/oip", "steward", "/v2/models/clf-onnx/infer",
               lambda n: oip(x, n, "FP64"), check='"model_version":"1"'),
        Target("steward/onnx/batch", "steward", "/predict/clf-onnx-batch",
               lambda n: instances(x, n), rows=(1,), check='"version":1'),
        Target("mlflow/tensor", "mlflow", "/invocations", lambda n: mlflow_tensor(x, n)),
        Target("mlflow/split", "mlflow", "/invocations", lambda n: mlflow_split(x, n)),
    ]  # fmt: skip
    if with_bentoml:
        found.append(Target("bentoml", "bentoml", "/predict", lambda n: instances(x, n)))
    return found


@contextlib.contextmanager
def servers(ctx: Context, prep: Prepared, with_bentoml: bool) -> Iterator[dict[str, Server]]:
    bin_dir = Path(ctx.python).parent
    logs = prep.steward_home.parent / "logs"
    bare = str(BENCH_DIR / "_bare_starlette.py")
    with contextlib.ExitStack() as stack:
        started: dict[str, Server] = {}

        def start(name: str, cmd: list[str], health: str, env: dict[str, str], port: int) -> None:
            ctx.log(f"   starting {name}")
            started[name] = stack.enter_context(_server(name, cmd, port, logs, health, env))

        for mode, model in (("sklearn", prep.pickle_path), ("onnx", prep.onnx_path),
                            ("constant", prep.pickle_path)):  # fmt: skip
            port = free_port()
            name = mode if mode == "constant" else f"bare-{mode}"
            start(name, [ctx.python, bare, mode, str(model), str(port)], "/health",
                  _child_env(), port)  # fmt: skip
        port = free_port()
        start("steward", [str(bin_dir / "steward"), "serve", "--host", HOST, "--port", str(port),
                          "clf", "clf-batch", "clf-onnx", "clf-onnx-batch"],
              "/v2/health/ready", _child_env({"STEWARD_HOME": str(prep.steward_home)}),
              port)  # fmt: skip
        port = free_port()  # mlflow execs `uvicorn` from PATH: the venv's bin goes first
        start("mlflow", [str(bin_dir / "mlflow"), "models", "serve", "-m", str(prep.mlflow_path),
                         "--env-manager", "local", "-w", "1", "-h", HOST, "-p", str(port)],
              "/health", _child_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}),
              port)  # fmt: skip
        cli = bentoml_cli()
        if with_bentoml and cli is not None:
            port = free_port()
            path = f"{cli.parent}{os.pathsep}{os.environ['PATH']}"
            home = str(prep.steward_home.parent / "bentoml")
            env = _child_env({"BENCH_MODEL": str(prep.pickle_path), "PATH": path,
                              "BENTOML_HOME": home})  # fmt: skip
            start("bentoml", [str(cli), "serve", "_bentoml_service:Classifier",
                              "--working-dir", str(BENCH_DIR), "--host", HOST,
                              "--port", str(port)], "/readyz", env, port)  # fmt: skip
        yield started


# -- load --------------------------------------------------------------------------------------
def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "?"


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT,
           "-s", str(script), url]  # fmt: skip
    if _can_pin():
        cmd = ["taskset", "-c", LOAD_CPU, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary for {url}: {out.stdout}\n{out.stderr}")
    return dict(json.loads(line.removeprefix("BENCHJSON ")))


def check_answer(server: Server, target: Target, body: str) -> None:
    answer = httpx.post(server.url + target.path, content=body,
                        headers={"Content-Type": "application/json"}, timeout=30)  # fmt: skip
    text = answer.text.replace(" ", "")
    if answer.status_code != 200 or (target.check and target.check not in text):
        raise RuntimeError(f"{target.key}: {answer.status_code} {answer.text[:300]}")


def measure(
    ctx: Context, prep: Prepared, running: dict[str, Server], found: list[Target]
) -> dict[tuple[str, int, int], Measured]:
    rounds, warm, seconds = (1, 1, 2) if ctx.quick else (3, 1, 5)  # wrk takes whole seconds
    scripts = prep.steward_home.parent / "lua"
    scripts.mkdir(exist_ok=True)
    paths: dict[tuple[str, int], Path] = {}
    for target in found:
        for rows in target.rows:
            body = target.body(rows)
            check_answer(running[target.server], target, body)
            path = scripts / f"{target.key.replace('/', '-')}-{rows}.lua"
            path.write_text(LUA.format(body=body))
            paths[(target.key, rows)] = path
    results: dict[tuple[str, int, int], Measured] = {}
    for r in range(rounds):
        for conc, rows in CELLS:
            for target in found:  # servers interleaved within every cell and round
                if rows not in target.rows:
                    continue
                url = running[target.server].url + target.path
                script = paths[(target.key, rows)]
                wrk(url, script, conc, warm)
                got = wrk(url, script, conc, seconds)
                good = got["requests"] - got["non2xx"]
                m = results.setdefault((target.key, conc, rows), Measured())
                m.rps.append(good / (got["duration_us"] / 1e6))
                m.p50_ms.append(got["p50_us"] / 1000)
                m.p99_ms.append(got["p99_us"] / 1000)
                m.non2xx += int(got["non2xx"] + got["socket_errors"])
                m.total += int(got["requests"])
                ctx.log(f"   round {r + 1} c={conc} rows={rows} {target.key}: "
                        f"{m.rps[-1]:,.0f} req/s, p99 {m.p99_ms[-1]:.1f} ms"
                        + (f", {got['non2xx']} non-2xx" if got["non2xx"] else ""))  # fmt: skip
    return results


def steward_log_stats(server: Server) -> str:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    dropped = sum(
        float(m.group(1))
        for m in re.finditer(r"^steward_prediction_log_dropped\{[^}]*\} (\S+)", text, re.M)
    )
    return f"{dropped:,.0f}"


# -- rows --------------------------------------------------------------------------------------
def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peer_goal(conc: int, rows: int, ratio: float) -> float | None:
    """The issue sets the MLflow (4x) and BentoML (8x) goals where it measured them, 1-row
    requests at concurrency 32; the other cells show the ratio without a goal."""
    return ratio if (conc, rows) == (32, 1) else None


def rows_of(results: dict[tuple[str, int, int], Measured], notes: str) -> list[Row]:
    out: list[Row] = []

    def row(case: str, unit: str, higher: bool, ours: list[float], theirs: list[float],
            peer: str, goal: float | None) -> None:  # fmt: skip
        out.append(Row("serving", case, unit, higher, ours, theirs, peer, goal, notes))

    for model in ("sklearn", "onnx"):
        for conc, rows in CELLS:
            cell = f"{model}, c={conc}, {rows}-row"
            bare = results[(f"bare/{model}", conc, rows)]
            st = results[(f"steward/{model}/predict", conc, rows)]
            oip_ = results[(f"steward/{model}/oip", conc, rows)]
            call = "model.predict" if model == "sklearn" else "onnxruntime"
            peer_bare = f"bare Starlette + {call}"
            row(f"{cell}: `/predict` vs bare", "req/s", True, st.rps, bare.rps, peer_bare, 0.9)
            row(f"{cell}: `/predict` p99 vs bare", "ms p99", False, st.p99_ms, bare.p99_ms,
                peer_bare, round(1 / GOAL_P99, 2))  # fmt: skip
            row(f"{cell}: OIP `/infer` vs bare", "req/s", True, oip_.rps, bare.rps, peer_bare, 0.9)
            tensor = results[("mlflow/tensor", conc, rows)]
            split = results[("mlflow/split", conc, rows)]
            best, fmt = (tensor, "`inputs` tensor") if _med(tensor.rps) >= _med(split.rps) else (
                split, "`dataframe_split`")  # fmt: skip
            other = split if best is tensor else tensor
            row(f"{cell}: `/predict` vs MLflow best format", "req/s", True, st.rps, best.rps,
                f"mlflow models serve -w 1 (sklearn), {fmt}; the other format "
                f"{_med(other.rps):,.0f} req/s", peer_goal(conc, rows, 4.0))  # fmt: skip
            bento = results.get(("bentoml", conc, rows))
            if bento is not None:
                row(f"{cell}: `/predict` vs BentoML", "req/s", True, st.rps, bento.rps,
                    "bentoml serve, 1 worker (sklearn)", peer_goal(conc, rows, 8.0))  # fmt: skip
            if rows == 1:
                batch = results[(f"steward/{model}/batch", conc, rows)]
                floor = results[("floor", conc, rows)]
                row(f"{cell}: micro-batching `/predict` vs HTTP floor", "req/s", True, batch.rps,
                    floor.rps, "bare Starlette returning a constant",
                    0.5 if conc == 32 else None)  # fmt: skip
    return out


def describe(results: dict[tuple[str, int, int], Measured], dropped: str, bento: str) -> str:
    errors = sorted(
        f"{key} c={c} {r}-row: {m.non2xx:,} of {m.total:,}"
        for (key, c, r), m in results.items()
        if m.non2xx
    )
    return (
        "What is measured: each server is one process on 127.0.0.1 pinned to core 0 "
        f"(`taskset -c {SERVER_CPU}`); wrk {wrk_version()} runs on core 1 "
        f"(`taskset -c {LOAD_CPU} wrk -t1 -c{{1,32}} -d5s --timeout {WRK_TIMEOUT} -s post.lua`, "
        "keep-alive, one Lua script per body), after a 1 s warm-up run per server and cell; "
        "3 rounds, servers interleaved within each cell, medians shown. Throughput counts 2xx "
        "answers only. The model: scikit-learn LogisticRegression on 20 float features "
        "(make_classification, seed 0) and its ONNX export (Steward's export_onnx, served by "
        "deployments of the same version with runtime onnx). Steward: `steward serve` on a "
        "scratch store (registered, evaluated, gated, approved, promoted, deployed), routing + "
        "prediction log + "
        "/metrics on as shipped, deployment timeout 1,000 ms (default); `/predict/{name}` with "
        '`{"instances": [[20 floats]]}`, OIP with one `[N, 20]` FP64 tensor; '
        f"micro-batching max_batch {BATCHING['max_batch']}, max_wait_ms "
        f"{BATCHING['max_wait_ms']}. Steward answers predict and predict_proba; the bare app "
        "predict only, called on the event loop with no validation. MLflow: "
        "`mlflow models serve --env-manager local -w 1` on `mlflow.sklearn.save_model` of the "
        "same estimator (it serves the sklearn model in the ONNX rows too). Prediction-log "
        f"records dropped by Steward over the run: {dropped}. "
        + (f"Non-2xx answers: {'; '.join(errors)}. " if errors else "No non-2xx answers. ")
        + bento
    )


def run(ctx: Context) -> list[Row]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu)")
    prep = prepare(ctx)
    cli = bentoml_cli()
    with_bentoml = cli is not None
    bento = (
        f"BentoML: `{cli.name} serve` from its own venv ({_bentoml_version(cli)}), 1 worker, "
        "`_bentoml_service.py`."
        if cli is not None
        else "BentoML: not measured (no BentoML venv: set BENCH_BENTOML to its `bentoml`)."
    )
    with servers(ctx, prep, with_bentoml) as running:
        found = targets(prep, with_bentoml)
        results = measure(ctx, prep, running, found)
        dropped = steward_log_stats(running["steward"])
    return rows_of(results, describe(results, dropped, bento))


def _bentoml_version(cli: Path) -> str:
    out = subprocess.run([str(cli), "--version"], capture_output=True, text=True)
    return out.stdout.strip() or "?"
