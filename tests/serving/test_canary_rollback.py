"""Automatic rollback on a canary SLO breach, end to end.

The gateway serves ``churn`` (v1 production, v2 approved; tests/serving/test_gateway.py's
store) with v2 as a canary that fails or is slow. Under concurrent requests the breach rolls
the deployment back through the store (one ``deployment.rolled_back`` event with the
evidence), counts ``steward_canary_rollbacks_total`` and posts to a webhook served by the
test. The store-level cases (the compare-and-set a rollback relies on, two replicas racing)
run on SQLite and, when STEWARD_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression
from tests.serving.test_gateway import ROWS, Store

from steward.alerts import WebhookAlerts
from steward.domain.clock import utcnow
from steward.domain.deployments import CanarySlo
from steward.domain.enums import Role
from steward.errors import Conflict, Unavailable
from steward.flavors import package_model
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.schemas.serving import DeploymentSpec
from steward.serving.canary_rollback import SERVICE_ACTOR, CanaryGuard
from steward.serving.canary_watch import Breach, CanaryWatch
from steward.serving.gateway import Gateway, create_gateway
from steward.serving.metrics import GatewayMetrics
from steward.serving.runtime import Runtime, ServedVersion
from steward.settings import Settings
from steward.store.prediction_log import PredictionLogWriter
from steward.wiring import Services

SLO = {"max_error_rate": 0.2, "window_s": 60, "min_requests": 20}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    made = Store(tmp_path_factory.mktemp("canary") / "home")
    yield made
    made.client.close()


# -- a webhook to post to -----------------------------------------------------------------------


@dataclass
class Hook:
    """An HTTP server on 127.0.0.1 that records each POSTed JSON body and answers ``status``."""

    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    url: str = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.attempts += 1
            if found.status == 200:
                found.bodies.append(json.loads(body))
            self.send_response(found.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/secret"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


# -- the gateway harness ------------------------------------------------------------------------


@dataclass
class Served:
    http: httpx.AsyncClient
    runtime: Runtime
    gateway: Gateway

    async def drain(self) -> None:
        """Wait for the automatic rollbacks in flight (they run in the guard's thread)."""
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, self.gateway.guard.drain, 20.0)

    async def metric(self, name: str, **labels: str) -> float:
        text = (await self.http.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0


@asynccontextmanager
async def serving(
    home: Path, log_root: Path, name: str, alerts: WebhookAlerts | None = None
) -> AsyncIterator[Served]:
    services = Services.from_settings(Settings(home=home, url=None))
    # Faults are injected at Runtime.call (below), which inline calls do not go through.
    runtime = Runtime(
        services.store, services.artifacts, names=(name,), model_threads=16, inline_budget_ms=0
    )
    log = PredictionLogWriter(str(log_root), queue_size=10_000, flush_rows=500, flush_seconds=0.1)
    app = create_gateway(runtime, log, poll_seconds=None, alerts=alerts)
    gateway: Gateway = app.state.gateway
    await runtime.start(poll_seconds=None)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield Served(http, runtime, gateway)
    finally:
        await runtime.close()
        log.close()
        await asyncio.get_running_loop().run_in_executor(None, gateway.guard.close, 10.0)
        services.close()


def _break(runtime: Runtime, version: int, *, sleep_s: float = 0.0) -> None:
    """Make every call of ``version`` raise (or, with ``sleep_s``, answer that much later).

    At the runtime's model call, so it holds whatever the loaded model's methods are."""
    real = runtime.call

    async def call(served: ServedVersion, data: Any, rows: int, proba: bool) -> Any:
        if served.version == version:
            if not sleep_s:
                raise RuntimeError("canary exploded")
            await asyncio.sleep(sleep_s)
        return await real(served, data, rows, proba)

    runtime.call = call  # type: ignore[method-assign]


async def _load(served: Served, name: str, n: int, *, clients: int = 16) -> list[httpx.Response]:
    """``n`` single-row requests from ``clients`` concurrent callers, one unit id each."""
    answers: list[httpx.Response] = []
    queue = list(range(n))

    async def caller() -> None:
        while queue:
            i = queue.pop()
            body = {"instances": ROWS[:1], "unit_id": f"user-{i}-{time.monotonic_ns()}"}
            answers.append(await served.http.post(f"/predict/{name}", json=body))

    await asyncio.gather(*(caller() for _ in range(clients)))
    return answers


def _rollbacks(store: Store, name: str) -> list[Any]:
    events = store.client.list_events(subject_type="deployment", subject_id=name).items
    return [e for e in events if e.kind == "deployment.rolled_back"]


# -- end to end ---------------------------------------------------------------------------------


def test_failing_canary_is_rolled_back_with_evidence_metric_and_alert(
    store: Store, tmp_path: Path, hook: Hook
) -> None:
    fallback = [{"kind": "default", "value": -1}]
    store.deploy("err-api", champion=1, canary=2, canary_share=0.5, fallbacks=fallback,
                 canary_slo=SLO)  # fmt: skip
    alerts = WebhookAlerts(hook.url, backoff_s=0.01)

    async def run() -> None:
        async with serving(store.home, tmp_path / "log", "err-api", alerts) as served:
            watch = served.runtime.served["err-api"].watch
            assert watch is not None
            _break(served.runtime, 2)
            for i in range(30):  # the client's mistakes never count against the canary
                bad = {"instances": [{"a": 1.0}], "unit_id": f"u{i}"}
                assert (await served.http.post("/predict/err-api", json=bad)).status_code == 422
            assert watch._canary.requests == 0

            answers = await _load(served, "err-api", 200)
            assert {a.status_code for a in answers} == {200}  # the fallback covered the canary
            bodies = [a.json() for a in answers]
            from_canary = [b for b in bodies if b["version"] == 2]
            assert len(from_canary) >= SLO["min_requests"]
            assert {(b["predictions"][0], b["fallback"]) for b in from_canary} == {(-1, "error")}
            await served.drain()

            assert watch.breached
            deployment = store.client.get_deployment("err-api")
            assert deployment.revision == 2
            assert (deployment.canary, deployment.canary_slo) == (None, None)
            assert deployment.fallbacks[0].value == -1  # the safety net stays
            labels = {"deployment": "err-api", "version": "2"}
            assert await served.metric("steward_canary_rollbacks_total", **labels) == 1.0

            assert await served.runtime.refresh() == ["err-api"]  # the normal swap
            after = await _load(served, "err-api", 40)
            assert {(a.status_code, a.json()["version"], a.json()["fallback"]) for a in after} == {
                (200, 1, None)
            }
            assert served.runtime.served["err-api"].watch is None

    asyncio.run(run())
    (event,) = _rollbacks(store, "err-api")
    assert event.actor == SERVICE_ACTOR
    assert event.payload["from_versions"] == [2]
    assert event.payload["reason"].startswith("canary SLO breached: canary v2: error rate ")
    evidence = event.payload["evidence"]
    assert evidence["rule"] == "canary_slo"
    assert (evidence["deployment"], evidence["revision"]) == ("err-api", 1)
    assert evidence["breached"] == ["error_rate"]
    assert evidence["limits"] == {"max_error_rate": 0.2, "max_p95_ms": None}
    assert (evidence["window_s"], evidence["min_requests"]) == (60, 20)
    canary, champion = evidence["canary"], evidence["champion"]
    assert canary["version"] == 2
    assert canary["requests"] >= 20
    assert canary["errors"] == canary["requests"]
    assert canary["error_rate"] == 1.0
    assert champion["version"] == 1
    assert champion["errors"] == 0
    assert champion["error_rate"] in (0.0, None)
    assert event.payload["canary_slo"] is None  # the new spec, without the SLO
    assert len(hook.bodies) == 1
    text = hook.bodies[0]["text"]
    assert "rolled back the canary of err-api" in text
    assert "champion v1 (revision 1 -> 2)" in text
    assert alerts.sent == 1


def test_slow_canary_breaks_its_p95_and_is_rolled_back(store: Store, tmp_path: Path) -> None:
    slo = {"max_p95_ms": 15, "window_s": 30, "min_requests": 10}
    store.deploy("slow-api", champion=1, canary=2, canary_share=0.5, canary_slo=slo)

    async def run() -> None:
        async with serving(store.home, tmp_path / "log", "slow-api") as served:
            _break(served.runtime, 2, sleep_s=0.03)
            answers = await _load(served, "slow-api", 80)
            assert {a.status_code for a in answers} == {200}
            assert {a.json()["fallback"] for a in answers} == {None}  # slow, not timed out
            await served.drain()
            labels = {"deployment": "slow-api", "version": "2"}
            assert await served.metric("steward_canary_rollbacks_total", **labels) == 1.0

    asyncio.run(run())
    assert store.client.get_deployment("slow-api").canary is None
    (event,) = _rollbacks(store, "slow-api")
    evidence = event.payload["evidence"]
    assert evidence["breached"] == ["p95_ms"]
    assert evidence["canary"]["errors"] == 0
    assert evidence["canary"]["p95_ms"] > 15
    assert evidence["canary"]["over_p95_limit"] > evidence["canary"]["requests"] * 0.05
    # the champion is there to compare with; its own latency depends on the machine's load
    assert evidence["champion"]["requests"] > 0


@pytest.mark.parametrize("failure", ["http_500", "refused"])
def test_a_failing_webhook_never_breaks_serving(
    store: Store, tmp_path: Path, hook: Hook, failure: str
) -> None:
    name = f"hook-{failure.replace('_', '-')}"
    fallback = [{"kind": "default", "value": -1}]
    store.deploy(name, champion=1, canary=2, canary_share=0.5, fallbacks=fallback, canary_slo=SLO)
    if failure == "http_500":
        hook.status, url = 500, hook.url
    else:  # nothing listens there
        url = "http://127.0.0.1:9/hook"
    alerts = WebhookAlerts(url, attempts=3, backoff_s=0.01, timeout_s=2)

    async def run() -> None:
        async with serving(store.home, tmp_path / "log", name, alerts) as served:
            _break(served.runtime, 2)
            answers = await _load(served, name, 120)
            await served.drain()
            more = await _load(served, name, 40)
            assert {a.status_code for a in answers + more} == {200}

    asyncio.run(run())  # the shutdown waits for the alert's retries
    assert store.client.get_deployment(name).canary is None
    assert len(_rollbacks(store, name)) == 1
    assert (alerts.sent, alerts.failed) == (0, 1)
    if failure == "http_500":
        assert hook.attempts == 3
        assert hook.bodies == []


def test_two_replicas_breaching_roll_back_once(store: Store, tmp_path: Path, hook: Hook) -> None:
    fallback = [{"kind": "default", "value": -1}]
    store.deploy("race-api", champion=1, canary=2, canary_share=0.5, fallbacks=fallback,
                 canary_slo=SLO)  # fmt: skip
    senders = [WebhookAlerts(hook.url, backoff_s=0.01) for _ in range(2)]

    async def run() -> list[float]:
        async with (
            serving(store.home, tmp_path / "a", "race-api", senders[0]) as one,
            serving(store.home, tmp_path / "b", "race-api", senders[1]) as two,
        ):
            for replica in (one, two):
                _break(replica.runtime, 2)
            # each replica sees its own share of the traffic, and breaches on it
            await asyncio.gather(_load(one, "race-api", 120), _load(two, "race-api", 120))
            await asyncio.gather(one.drain(), two.drain())
            for replica in (one, two):
                watch = replica.runtime.served["race-api"].watch
                assert watch is not None
                assert watch.breached
            labels = {"deployment": "race-api", "version": "2"}
            return [await r.metric("steward_canary_rollbacks_total", **labels) for r in (one, two)]

    counts = asyncio.run(run())
    assert sorted(counts) == [0.0, 1.0]  # the replica that lost the race stayed quiet
    assert len(_rollbacks(store, "race-api")) == 1
    assert store.client.get_deployment("race-api").revision == 2
    assert len(hook.bodies) == 1


# -- the store's compare-and-set, on every backend ----------------------------------------------

APPROVALS = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"


def _released(services: Services, name: str) -> None:
    """``name`` v1 in production and v2 approved (an approvals-only policy)."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.random(12), "b": rng.random(12)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    files = {
        file: services.registry.upload_artifact(content)
        for file, content in package_model(model).files.items()
    }
    services.registry.create_model("ana", ModelCreate(name=name))
    services.gates.set_policy("admin", APPROVALS, model=name)
    for version in (1, 2):
        services.registry.create_version("ana", name, VersionCreate(flavor="sklearn", files=files))
        services.gates.gate("ana", f"models:/{name}/{version}")
        services.gates.approve("bo", Role.APPROVER, f"models:/{name}/{version}")
    services.gates.promote("ana", f"models:/{name}/1", "production")


def _spec(**changes: Any) -> DeploymentSpec:
    body = {"model": "m", "champion": 1, "canary": 2, "canary_share": 0.5, "canary_slo": SLO,
            "shadow": None, "fallbacks": [{"kind": "default", "value": 0}], **changes}  # fmt: skip
    return DeploymentSpec.model_validate(body)


def _breach(revision: int) -> Breach:
    watch = CanaryWatch("d", revision, 1, 2, CanarySlo.model_validate(SLO))
    found = [watch.record(2, False, 0.01) for _ in range(20)]
    breach = found[-1]
    assert breach is not None
    return breach


@dataclass
class StubAlerts:
    texts: list[str] = field(default_factory=list)

    def send(self, text: str, **fields: Any) -> Future[bool]:
        self.texts.append(text)
        done: Future[bool] = Future()
        done.set_result(True)
        return done

    def close(self, timeout_s: float = 10.0) -> None:
        pass


def test_rollback_is_a_compare_and_set_on_the_revision(services: Services) -> None:
    _released(services, "m")
    deployments = services.deployments
    first = deployments.deploy("alice", "d", _spec())
    assert first.canary_slo == CanarySlo.model_validate(SLO)
    second = deployments.deploy("alice", "d", _spec(timeout_ms=500))
    with pytest.raises(Conflict, match="revision 2, not 1") as stale:
        deployments.rollback("bot", "d", reason="late", if_revision=first.revision)
    assert stale.value.details["field"] == "revision"
    with pytest.raises(Conflict, match="changed meanwhile"), services.store.write("bot") as tx:
        tx.put_deployment("d", "m", _spec().routing(), utcnow(), expected_revision=1)
    back = deployments.rollback("bot", "d", reason="now", if_revision=second.revision)
    assert (back.revision, back.canary, back.canary_slo, back.timeout_ms) == (3, None, None, 500)
    assert back.fallbacks == second.fallbacks
    with pytest.raises(Conflict, match="Nothing to roll back"):
        deployments.rollback("bot", "d")
    # a deployment written before canary_slo existed has no such key in its stored spec
    with services.store.write("alice") as tx:
        tx.put_deployment("old", "m", {"champion": 1, "fallbacks": [], "timeout_ms": 100}, utcnow())
    assert deployments.get("old").canary_slo is None
    assert CanaryWatch.of(deployments.get("old")) is None


def test_racing_guards_roll_back_once(services_factory: Any) -> None:
    setup = services_factory()
    _released(setup, "m")
    setup.deployments.deploy("alice", "d", _spec())
    replicas = [services_factory() for _ in range(4)]
    alerts = [StubAlerts() for _ in replicas]
    metrics = [GatewayMetrics() for _ in replicas]
    guards = [
        CanaryGuard(r.store, m, a, backoff_s=0.01)
        for r, m, a in zip(replicas, metrics, alerts, strict=True)
    ]
    breach = _breach(revision=1)
    start = threading.Barrier(len(guards))

    def race(guard: CanaryGuard) -> Any:
        start.wait()
        return guard.roll_back(breach)

    with ThreadPoolExecutor(len(guards)) as pool:
        results = list(pool.map(race, guards))
    assert sum(r is not None for r in results) == 1
    events = setup.audit.list_events(subject_type="deployment", subject_id="d").items
    assert [e.kind for e in events] == ["deployment.created", "deployment.rolled_back"]
    assert events[-1].payload["evidence"] == breach.evidence()
    assert sum(len(a.texts) for a in alerts) == 1
    counts = [m.canary_rollbacks.labels("d", "2")._value.get() for m in metrics]
    assert sorted(counts) == [0, 0, 0, 1]
    assert setup.audit.verify().ok


def test_a_breach_of_an_old_revision_changes_nothing(services: Services) -> None:
    _released(services, "m")
    services.deployments.deploy("alice", "d", _spec())
    services.deployments.deploy("alice", "d", _spec(canary_share=0.2))  # revision 2
    alerts = StubAlerts()
    guard = CanaryGuard(services.store, GatewayMetrics(), alerts)
    assert guard.roll_back(_breach(revision=1)) is None
    assert services.deployments.get("d").canary == 2
    assert alerts.texts == []


def test_a_store_that_stays_down_is_alerted_with_the_manual_command(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = StubAlerts()
    guard = CanaryGuard(services.store, GatewayMetrics(), alerts, attempts=3, backoff_s=0.01)
    calls: list[int] = []

    def down(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise Unavailable("The metadata database is unavailable: connection refused.")

    monkeypatch.setattr(guard.deployments, "rollback", down)
    assert guard.roll_back(_breach(revision=1)) is None
    assert len(calls) == 3
    (text,) = alerts.texts
    assert "automatic rollback failed" in text
    assert "steward rollback d" in text
