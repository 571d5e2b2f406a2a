"""The demo's deployment: the breast cancer champion behind a canary and a fallback chain, real
traffic through the inference gateway, and a rollback.

The canary is a new candidate (``breast-cancer`` v3 on a fresh store: the same pipeline with
less regularisation, C=1.0), evaluated, gated and approved like the others but not promoted: a
canary earns production on live traffic. The gateway is the app ``steward serve`` runs
(`create_gateway` over a `Runtime` and a `PredictionLogWriter`), called in-process through
httpx's ASGI transport, so the demo needs no free port. Every store call goes through the SDK.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from steward.demo import _monitoring
from steward.demo._gates import RESAMPLES
from steward.demo._gateway import gateway_in_process

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from steward.client import Client
    from steward.demo._train import Dataset
    from steward.domain.deployments import Deployment
    from steward.domain.entities import ModelVersion
    from steward.settings import Settings

DEPLOYMENT = "breast-cancer-triage"
CANARY_SHARE = 0.2
TIMEOUT_MS = 1000
REQUESTS = 200  # /predict calls with the canary in place, one unit id each
AFTER_ROLLBACK = 40  # /predict calls once the rollback is served
CLIENTS = 16  # requests in flight at once
# concurrent one-row requests share a model call: the scikit-learn pipeline's cost is mostly
# per call (building the frame), not per row
BATCHING = {"max_batch": 32, "max_wait_ms": 2.0}
CANDIDATE_LATENCY_CALLS = 20  # the latency check's p95 is far under its budget
# If the model fails or is slower than TIMEOUT_MS: small, smooth nuclei are called benign (1) by
# a rule; anything else gets the safe default, malignant (0), which puts the sample at the
# front of the pathologist's queue. A triage aid errs towards reading a sample early.
FALLBACK_RULES: list[dict[str, Any]] = [
    {"when": {"worst_radius": {"<": 13.0}, "worst_concave_points": {"<": 0.1}}, "then": 1}
]
SAFE_DEFAULT = 0
FALLBACKS: list[dict[str, Any]] = [
    {"kind": "rule", "rules": FALLBACK_RULES},
    {"kind": "default", "value": SAFE_DEFAULT},
]


@dataclass
class Serving:
    """What the serving step did, for the demo's summary."""

    deployment: str = ""
    champion: int = 0
    canary: int = 0
    canary_status: str = ""  # the canary version's status when deployed (approved)
    canary_share: float = CANARY_SHARE
    revision: int = 0  # the deployment's revision with the canary
    answers: dict[int, int] = field(default_factory=dict)  # version -> /predict answers
    latency_ms: dict[int, tuple[float, float]] = field(default_factory=dict)  # (p50, p95)
    throughput: float = 0.0  # requests per second while the canary was in place
    fallbacks: int = 0  # answers given by the fallback chain
    refused: int = 0  # requests not answered with 200
    oip: dict[str, Any] = field(default_factory=dict)  # the OIP v2 infer response
    log_rows: int = 0  # prediction log rows of this step, after flushing
    requests: int = 0  # requests answered (each one row): what the log should hold
    rolled_back: bool = False  # the store took the canary out, and the gateway swapped
    answers_after_rollback: dict[int, int] = field(default_factory=dict)
    sample_row: dict[str, float] = field(default_factory=dict)  # a held-out row, for curl
    files: dict[str, Path] = field(default_factory=dict)  # request bodies written for curl
    watch: _monitoring.Watch = field(default_factory=_monitoring.Watch)  # monitor, incident
    seconds: float = 0.0


def release_candidate(
    client: Client, reviewer: Client, console: Console, version: ModelVersion, data: Dataset
) -> str:
    """Evaluate, gate and approve the canary's version (not promoted); returns its status."""
    with console.status(f"Evaluating and gating {version.uri}…"):
        evaluation = client.evaluate(
            version.uri, data.evaluation, "target", groups=data.group_columns,
            resamples=RESAMPLES, latency_calls=CANDIDATE_LATENCY_CALLS,
        )  # fmt: skip
        report = client.gate(version.uri)
    auc = evaluation.summary.metrics["roc_auc"]
    outcomes = [r.outcome.value for r in report.results]
    passed = outcomes.count("passed")
    console.print(
        f"[green]✓[/green] evaluate + gate {version.uri}: roc_auc {auc.value:.3f}, "
        f"{passed} of {len(outcomes) - outcomes.count('not_applicable')} checks passed "
        f"→ {report.verdict.value.replace('_', ' ')}"
    )
    approved = reviewer.approve(
        version.uri, comment="Canary candidate: same inputs, less regularised."
    )
    status = client.get_version(version.uri).status.value
    console.print(
        f"[green]✓[/green] {escape(approved.approval.approver)} approves {version.uri} → "
        f"{status} [dim](not promoted: a canary earns production on live traffic)[/dim]"
    )
    return status


def serve_canary(
    client: Client,
    console: Console,
    settings: Settings,
    *,
    champion: int,
    canary: int,
    canary_status: str,
    data: Dataset,
    kept: bool,
) -> Serving:
    """Deploy the champion with the canary and the fallback chain, drive traffic through the
    gateway in-process (half of it drifted), let the monitor open an incident, mitigate it by
    rolling the canary back, and show the gateway following and the incident's timeline."""
    started = time.perf_counter()
    out = Serving(DEPLOYMENT, champion, canary, canary_status)
    deployment = client.deploy(
        DEPLOYMENT, model="breast-cancer", champion=champion, canary=canary,
        canary_share=CANARY_SHARE, fallbacks=FALLBACKS, timeout_ms=TIMEOUT_MS,
        batching=BATCHING,
    )  # fmt: skip
    out.revision = deployment.revision
    _print_deployment(console, deployment, canary_status)
    rows = _rows(data)
    out.sample_row = rows[0]
    with console.status(f"Serving {DEPLOYMENT}: {REQUESTS} requests through the gateway…"):
        asyncio.run(_traffic(client, console, settings, rows, out))
    if kept:
        out.files = _write_requests(settings.home / "requests", out.sample_row)
    out.seconds = time.perf_counter() - started
    return out


def _print_deployment(console: Console, deployment: Deployment, canary_status: str) -> None:
    out = Table(
        title=f"client.deploy({deployment.name!r}): revision {deployment.revision}",
        title_justify="left",
    )
    out.add_column("field")
    out.add_column("value", overflow="fold")
    share = deployment.canary_share or 0.0
    rule = FALLBACK_RULES[0]["when"]
    conditions = " and ".join(f"{k} {op} {v}" for k, c in rule.items() for op, v in c.items())
    out.add_row("model", deployment.model_name)
    out.add_row("champion", f"v{deployment.champion} (production): {1 - share:.0%} of units")
    out.add_row("canary", f"v{deployment.canary} ({canary_status}): {share:.0%} of units, "
                          "sticky by unit id")  # fmt: skip
    out.add_row(
        "fallbacks",
        f"1. rule: {conditions} → 1 (benign)\n2. default: {SAFE_DEFAULT} (malignant: read first)",
    )
    out.add_row("timeout", f"{deployment.timeout_ms} ms, then the fallbacks answer")
    if deployment.batching is not None:
        out.add_row("batching", f"concurrent one-row requests share a model call: up to "
                    f"{deployment.batching.max_batch} rows, {deployment.batching.max_wait_ms:g} "
                    "ms wait")  # fmt: skip
    console.print(out)
    console.print(
        "[dim]A `previous` step (the model's last production version) is allowed only once "
        "there is one; the demo leaves it out so a fresh store and a kept one deploy alike."
        "[/dim]"
    )


def _rows(data: Dataset) -> list[dict[str, float]]:
    """The held-out rows as JSON objects, values as the source prints them."""
    frame = data.x_test
    return [
        {str(k): float(f"{v:.6g}") for k, v in zip(frame.columns, values, strict=True)}
        for values in frame.to_numpy().tolist()
    ]


async def _traffic(
    client: Client,
    console: Console,
    settings: Settings,
    rows: list[dict[str, float]],
    out: Serving,
) -> None:
    from steward.store.prediction_log import read_predictions

    since = datetime.now(UTC)
    async with gateway_in_process(settings, (DEPLOYMENT,)) as gateway:
        http, runtime, log = gateway.http, gateway.runtime, gateway.log
        _monitoring.configure(client, DEPLOYMENT)
        began = time.perf_counter()
        seen = await _drive(http, rows, range(REQUESTS), out)
        out.throughput = REQUESTS / (time.perf_counter() - began)
        out.answers = {v: len(ms) for v, ms in sorted(seen.items())}
        out.latency_ms = {
            v: (float(np.percentile(ms, 50)), float(np.percentile(ms, 95)))
            for v, ms in sorted(seen.items())
        }
        out.oip = await _infer(http, rows[0], _unit(0))
        await gateway.flush_log()
        _print_traffic(console, out)
        # the monitor reads the log just written: the drifted half trips its rule, and the
        # alert opens an incident, mitigated by the same rollback `steward rollback` makes
        out.watch = _monitoring.watch(client, console, DEPLOYMENT, "breast-cancer")
        mitigated = _monitoring.mitigate(client, out.watch, DEPLOYMENT, out.canary)
        # `steward serve` follows the ledger and swaps by itself; here it refreshes once
        swapped = await runtime.refresh()
        served = runtime.find(DEPLOYMENT)
        out.rolled_back = (
            mitigated
            and DEPLOYMENT in swapped
            and served is not None
            and served.deployment.canary is None
        )
        after = await _drive(http, rows, range(REQUESTS, REQUESTS + AFTER_ROLLBACK), out)
        after_counts = {v: len(ms) for v, ms in sorted(after.items())}
        out.answers_after_rollback = after_counts
        answered_oip = int(out.oip.get("model_version") is not None)
        out.requests = sum(out.answers.values()) + answered_oip + sum(after_counts.values())
        await gateway.flush_log()
        table = read_predictions(log.root, DEPLOYMENT, since=since, columns=["version"])
        out.log_rows = table.num_rows
        _print_rollback(console, out)
        _monitoring.show_incident(client, console, out.watch)


async def _drive(
    http: httpx.AsyncClient, rows: list[dict[str, float]], units: range, out: Serving
) -> dict[int, list[float]]:
    """One /predict call per unit id, CLIENTS at a time; each answering version's latencies
    (ms)."""
    seen: dict[int, list[float]] = {}
    pending = iter(units)

    async def one_client() -> None:
        for unit in pending:
            row = rows[unit % len(rows)]
            if _monitoring.DRIFT_FROM <= unit < REQUESTS:
                row = _monitoring.miscalibrated(row)
            body = {"instances": [row], "unit_id": _unit(unit)}
            started = time.perf_counter()
            answer = await http.post(f"/predict/{DEPLOYMENT}", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                out.refused += 1
                continue
            content = answer.json()
            out.fallbacks += content["fallback"] is not None
            seen.setdefault(int(content["version"]), []).append(elapsed)

    await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return seen


def _unit(index: int) -> str:
    return f"biopsy-{index:04d}"


async def _infer(http: httpx.AsyncClient, row: dict[str, float], unit: str) -> dict[str, Any]:
    body = {"id": "oip-demo-1", **oip_body(row), "parameters": {"unit_id": unit}}
    answer = await http.post(f"/v2/models/{DEPLOYMENT}/infer", json=body)
    content: dict[str, Any] = answer.json()
    return content


def oip_body(row: dict[str, float]) -> dict[str, Any]:
    """An Open Inference Protocol v2 request for one row: one FP64 tensor per column."""
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in row.items()
        ]
    }


def _print_traffic(console: Console, out: Serving) -> None:
    total = sum(out.answers.values())
    table = Table(
        title=f"{REQUESTS} requests: POST /predict/{DEPLOYMENT} (one row, unit ids biopsy-0000…"
        f"{REQUESTS - 1:04d}), in-process, {CLIENTS} in flight",
        title_justify="left",
    )
    for column in ("version", "role", "answers", "share", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column in ("version", "role") else "right")
    for version, count in out.answers.items():
        role = "champion" if version == out.champion else "canary"
        p50, p95 = out.latency_ms[version]
        table.add_row(f"v{version}", role, str(count), f"{count / max(total, 1):.0%}",
                      f"{p50:.1f}", f"{p95:.1f}")  # fmt: skip
    table.caption = (
        f"{out.throughput:.0f} requests/s; latency as the client saw it, queueing included; "
        f"fallbacks used: {out.fallbacks}; refused: {out.refused}"
    )
    console.print(table)
    outputs = {o["name"]: o["data"] for o in out.oip.get("outputs", [])}
    proba = ", ".join(f"{p:.3f}" for p in outputs.get("probabilities", []))
    console.print(
        f"[green]✓[/green] OIP v2: POST /v2/models/{DEPLOYMENT}/infer (30 FP64 tensors of "
        f"shape [1], unit {_unit(0)}) → model_version {out.oip.get('model_version')}, prediction "
        f"{outputs.get('prediction')}, probabilities [{proba}]"
    )


def _print_rollback(console: Console, out: Serving) -> None:
    mark = "[green]✓[/green]" if out.log_rows == out.requests else "[red]✗[/red]"
    console.print(
        f"{mark} prediction log: {out.log_rows} rows for {out.requests} answered requests "
        "(Parquet by deployment and hour; read_predictions)"
    )
    after = ", ".join(f"v{v}: {n}" for v, n in out.answers_after_rollback.items())
    mark = "[green]✓[/green]" if out.rolled_back else "[red]✗[/red]"
    console.print(
        f"{mark} steward incident mitigate {out.watch.incident} --action rollback → canary "
        f"v{out.canary} out of traffic; after runtime.refresh(), {AFTER_ROLLBACK} more requests "
        f"answered by {after}"
    )


def _write_requests(folder: Path, row: dict[str, float]) -> dict[str, Path]:
    """Request bodies and the fallback rules, for trying the served deployment with curl."""
    folder.mkdir(parents=True, exist_ok=True)
    bodies = {
        "predict": {"instances": [row]},
        "infer": oip_body(row),
        "rules": FALLBACK_RULES,
    }
    paths = {}
    for name, body in bodies.items():
        path = folder / f"{DEPLOYMENT}-{name}.json"
        path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        paths[name] = path
    return paths
