"""The gateway end to end: real scikit-learn versions registered, gated, approved and promoted in
an embedded store, served by `create_gateway` and called through Starlette's TestClient (or
httpx over ASGI for concurrent load)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from steward.client import Client, log_model
from steward.serving.gateway import create_gateway
from steward.serving.runtime import Runtime
from steward.settings import Settings
from steward.store.prediction_log import PredictionLogWriter, read_predictions
from steward.wiring import Services

POLICY = """\
name: serve-policy
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.5
  - check: approvals
    count: 1
"""
ROWS = [{"a": 0.5, "b": -1.0, "c": 2.0}, {"a": -2.0, "b": 0.3, "c": -0.1}]


class Store:
    """v1 in production, v2 approved; both LogisticRegression on a, b, c."""

    def __init__(self, home: Path) -> None:
        self.home = home
        rng = np.random.default_rng(3)
        frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
        label = (frame["a"] + frame["b"] > 0).astype(int)
        self.v1 = LogisticRegression().fit(frame, label)
        self.v2 = LogisticRegression(C=0.01).fit(frame, label)
        self.client = Client(home=home)
        reviewer = Client(settings=Settings(url=None, home=home, actor="reviewer"))
        self.client.create_model("churn", owner="ana@example.com")
        self.client.set_policy(POLICY, model="churn")
        table = frame.assign(label=label)
        for model in (self.v1, self.v2):
            uri = log_model(model, "churn", sample_input=frame.head(5), client=self.client).uri
            self.client.evaluate(uri, table, "label", resamples=10, latency_calls=3)
            self.client.gate(uri)
            reviewer.approve(uri)
        reviewer.close()
        self.client.promote("models:/churn/1", "production")

    def deploy(self, name: str, **routing: Any) -> None:
        self.client.deploy(name, model="churn", **routing)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    made = Store(tmp_path_factory.mktemp("gateway") / "home")
    made.deploy("plain", champion=1)
    made.deploy("safe", champion=1, fallbacks=[{"kind": "default", "value": -1}])
    made.deploy("canary", champion=1, canary=2, canary_share=0.5)
    made.deploy("shadowed", champion=1, shadow=2)
    made.deploy("slow", champion=1, timeout_ms=50, fallbacks=[{"kind": "default", "value": 0}])
    made.deploy("batched", champion=1, batching={"max_batch": 8, "max_wait_ms": 2})
    yield made
    made.client.close()


class Served:
    def __init__(self, http: TestClient, runtime: Runtime, log: PredictionLogWriter) -> None:
        self.http, self.runtime, self.log = http, runtime, log

    def rows(self, deployment: str) -> list[dict[str, Any]]:
        assert self.log.flush(timeout=10)
        return read_predictions(self.log.root, deployment).to_pylist()


@pytest.fixture
def serve(store: Store, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    with ExitStack() as stack:

        def make(*names: str, **options: Any) -> Served:
            services = Services.from_settings(Settings(home=store.home, url=None))
            stack.callback(services.close)
            runtime = Runtime(services.store, services.artifacts, names=names)
            log = PredictionLogWriter(
                str(tmp_path / "predictions"), queue_size=10_000, flush_rows=100,
                flush_seconds=0.05,
            )  # fmt: skip
            app = create_gateway(runtime, log, poll_seconds=None, **options)
            http = stack.enter_context(TestClient(app))
            return Served(http, runtime, log)

        yield make


def oip_body(rows: list[dict[str, float]], **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": col, "shape": [len(rows)], "datatype": "FP64", "data": [r[col] for r in rows]}
        for col in ("a", "b", "c")
    ]
    return {"inputs": inputs, **extra}


def expected(model: LogisticRegression) -> list[int]:
    return model.predict(pd.DataFrame(ROWS)).tolist()


def test_oip_infer_round_trip(serve: Callable[..., Served], store: Store) -> None:
    served = serve("plain")
    answer = served.http.post("/v2/models/plain/infer", json=oip_body(ROWS, id="req-7"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("plain", "1", "req-7")
    assert body["parameters"] == {"version": 1, "fallback": None}
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["prediction"]["data"] == expected(store.v1)
    assert outputs["prediction"]["shape"] == [2]
    proba = store.v1.predict_proba(pd.DataFrame(ROWS))
    assert outputs["probabilities"]["shape"] == [2, 2]
    assert np.allclose(outputs["probabilities"]["data"], proba.ravel())
    only = served.http.post(
        "/v2/models/plain/infer", json=oip_body(ROWS, outputs=[{"name": "prediction"}])
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["prediction"]
    assert len(only["id"]) == 32  # a uuid4 hex made by the gateway


def test_predict_rows_lists_and_columns(serve: Callable[..., Served], store: Store) -> None:
    served = serve("plain")
    as_objects = served.http.post("/predict/plain", json={"instances": ROWS, "id": "r1"}).json()
    assert as_objects == {
        "predictions": expected(store.v1), "version": 1, "request_id": "r1", "fallback": None,
    }  # fmt: skip
    lists = [[r["a"], r["b"], r["c"]] for r in ROWS]
    as_lists = served.http.post("/predict/plain", json={"instances": lists}).json()
    columns = {col: [r[col] for r in ROWS] for col in ("a", "b", "c")}
    as_columns = served.http.post("/predict/plain", json={"inputs": columns}).json()
    assert as_lists["predictions"] == as_columns["predictions"] == expected(store.v1)


def test_metadata_and_readiness(serve: Callable[..., Served]) -> None:
    served = serve("plain", "canary")
    http = served.http
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    assert http.get("/v2/models/plain/ready").json() == {"name": "plain", "ready": True}
    assert http.get("/v2/models/nope/ready").status_code == 404
    meta = http.get("/v2/models/canary").json()
    assert meta["name"] == "canary"
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "steward_sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("a", "FP64", [-1]), ("b", "FP64", [-1]), ("c", "FP64", [-1]),
    ]  # fmt: skip
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "probabilities"]


@pytest.mark.parametrize(
    ("route", "body", "status", "names"),
    [
        ("/predict/plain", b"{not json", 400, "not valid JSON"),
        ("/predict/plain", b"[1, 2]", 400, "must be a JSON object"),
        ("/predict/plain", {"instances": [{"a": 1, "b": 2}]}, 422, "'c'"),
        ("/predict/plain", {"instance": ROWS}, 422, "instance"),
        ("/predict/plain", {"instances": [{"a": "x", "b": 1, "c": 1}]}, 422, "'a'"),
        ("/predict/nope", {"instances": ROWS}, 404, "nope"),
        ("/v2/models/plain/infer", b"{not json", 400, "not valid JSON"),
        ("/v2/models/plain/infer", {"inputs": []}, 422, "inputs"),
        ("/v2/models/nope/infer", oip_body(ROWS), 404, "nope"),
    ],
)
def test_bad_input_gets_the_right_4xx(
    serve: Callable[..., Served], route: str, body: Any, status: int, names: str
) -> None:
    served = serve("plain")
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = served.http.post(route, content=content)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    message = error if route.startswith("/v2") else error["message"]
    assert isinstance(message, str)
    assert names in message


def test_oip_refusals_name_the_field(serve: Callable[..., Served]) -> None:
    served = serve("plain")
    wrong_type = oip_body(ROWS)
    wrong_type["inputs"][0]["datatype"] = "BYTES"
    answer = served.http.post("/v2/models/plain/infer", json=wrong_type)
    assert answer.status_code == 422
    assert "'a'" in answer.json()["error"]
    shape = oip_body(ROWS)
    shape["inputs"][1]["shape"] = [3]
    assert served.http.post("/v2/models/plain/infer", json=shape).status_code == 422
    assert served.http.post("/predict/plain", json={"instances": ROWS}).status_code == 200


def test_body_over_the_limit_is_413(serve: Callable[..., Served]) -> None:
    served = serve("plain", max_body_bytes=2_000)
    big = {"instances": ROWS * 100}
    answer = served.http.post("/predict/plain", json=big)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert served.http.post("/v2/models/plain/infer", json=oip_body(ROWS * 100)).status_code == 413


def test_a_fast_model_is_called_on_the_event_loop(
    serve: Callable[..., Served], store: Store
) -> None:
    served = serve("plain")
    version = served.runtime.served["plain"].versions[1]
    assert version.inline is not None
    assert version.inline.allows(1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an inline call went to the thread pool")

    served.runtime.executor.submit = refuse  # type: ignore[method-assign]
    answer = served.http.post("/predict/plain", json={"instances": ROWS}).json()
    assert answer["predictions"] == expected(store.v1)


def test_inline_calls_can_be_turned_off(store: Store) -> None:
    services = Services.from_settings(Settings(home=store.home, url=None))
    runtime = Runtime(services.store, services.artifacts, names=("plain",), inline_budget_ms=0)
    try:
        with TestClient(create_gateway(runtime, None, poll_seconds=None)) as http:
            assert runtime.served["plain"].versions[1].inline is None
            answer = http.post("/predict/plain", json={"instances": ROWS}).json()
            assert answer["predictions"] == expected(store.v1)
    finally:
        services.close()


def _break(runtime: Runtime, deployment: str, version: int) -> None:
    def boom(data: object) -> Any:
        raise RuntimeError("model exploded")

    model = runtime.served[deployment].versions[version].model
    model.predict = boom  # type: ignore[method-assign]
    model.predict_with_proba = boom  # type: ignore[method-assign]


def test_model_error_falls_back_and_is_counted(serve: Callable[..., Served]) -> None:
    served = serve("safe", "plain")
    _break(served.runtime, "safe", 1)
    answer = served.http.post("/predict/safe", json={"instances": ROWS})
    assert answer.status_code == 200
    assert answer.json() == {
        "predictions": [-1, -1], "version": 1, "request_id": answer.json()["request_id"],
        "fallback": "error",
    }  # fmt: skip
    oip = served.http.post("/v2/models/safe/infer", json=oip_body(ROWS)).json()
    assert oip["parameters"] == {"version": 1, "fallback": "error"}
    assert oip["outputs"][0]["data"] == [-1, -1]
    metrics = served.http.get("/metrics").text
    assert 'steward_fallbacks_total{deployment="safe",reason="error",source="default"} 2.0' in (
        metrics
    )
    logged = served.rows("safe")
    assert [r["fallback"] for r in logged] == ["error"] * 4
    assert all("model exploded" in r["error"] for r in logged)


def test_timeout_falls_back(serve: Callable[..., Served]) -> None:
    served = serve("slow")
    model = served.runtime.served["slow"].versions[1].model
    model.predict = lambda data: time.sleep(0.3)  # type: ignore[method-assign]
    model.predict_with_proba = lambda data: time.sleep(0.3)  # type: ignore[method-assign]
    answer = served.http.post("/predict/slow", json={"instances": ROWS}).json()
    assert (answer["predictions"], answer["fallback"]) == ([0, 0], "timeout")
    assert 'reason="timeout",source="default"} 1.0' in served.http.get("/metrics").text


def test_no_fallback_is_503_with_the_reason(serve: Callable[..., Served]) -> None:
    served = serve("plain")
    _break(served.runtime, "plain", 1)
    answer = served.http.post("/predict/plain", json={"instances": ROWS})
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "unavailable"
    assert "model exploded" in json.dumps(error)
    oip = served.http.post("/v2/models/plain/infer", json=oip_body(ROWS))
    assert oip.status_code == 503
    assert "model exploded" in oip.json()["error"]


def test_canary_share_is_sticky_per_unit(serve: Callable[..., Served]) -> None:
    served = serve("canary")
    by_unit = {}
    for i in range(200):
        body = {"instances": ROWS[:1], "unit_id": f"user-{i}"}
        by_unit[i] = served.http.post("/predict/canary", json=body).json()["version"]
    counts = {v: list(by_unit.values()).count(v) for v in (1, 2)}
    assert 60 < counts[2] < 140, counts  # share 0.5 over 200 units
    for i in range(0, 200, 20):  # the same unit sees the same version again
        body = {"instances": ROWS[:1], "unit_id": f"user-{i}"}
        assert served.http.post("/predict/canary", json=body).json()["version"] == by_unit[i]
    oip = served.http.post(
        "/v2/models/canary/infer", json=oip_body(ROWS[:1], parameters={"unit_id": "user-3"})
    ).json()
    assert oip["parameters"]["version"] == by_unit[3]


def test_shadow_is_logged_never_returned(serve: Callable[..., Served]) -> None:
    served = serve("shadowed")
    for i in range(3):
        answer = served.http.post("/predict/shadowed", json={"instances": ROWS, "id": f"s{i}"})
        assert answer.json()["version"] == 1
    served.http.portal.call(asyncio.sleep, 0.2)  # let the shadow copies finish
    logged = served.rows("shadowed")
    answered = [r for r in logged if not r["shadow"]]
    shadows = [r for r in logged if r["shadow"]]
    assert len(answered) == len(shadows) == 6
    assert {r["version"] for r in answered} == {1}
    assert {r["version"] for r in shadows} == {2}
    assert sorted((r["request_id"], r["row"]) for r in shadows) == sorted(
        (r["request_id"], r["row"]) for r in answered
    )


def test_prediction_log_has_one_record_per_row(serve: Callable[..., Served], store: Store) -> None:
    served = serve("plain")
    served.http.post("/predict/plain", json={"instances": ROWS, "id": "two", "unit_id": "u"})
    served.http.post("/v2/models/plain/infer", json=oip_body(ROWS[:1], id="one"))
    served.http.post("/predict/plain", json={"instances": [{"a": 1}]})  # refused: not logged
    logged = served.rows("plain")
    assert [(r["request_id"], r["row"]) for r in sorted(logged, key=lambda r: r["request_id"])] == [
        ("one", 0), ("two", 0), ("two", 1),
    ]  # fmt: skip
    two = [r for r in logged if r["request_id"] == "two"]
    assert [r["prediction"] for r in two] == expected(store.v1)
    assert two[0]["unit_id"] == "u"
    assert two[0]["input.a"] == ROWS[0]["a"]
    assert two[0]["score"] == pytest.approx(two[0]["probabilities"][1])


def test_micro_batching_answers_each_row(serve: Callable[..., Served], store: Store) -> None:
    served = serve("batched")
    for row, want in zip(ROWS, expected(store.v1), strict=True):
        answer = served.http.post("/predict/batched", json={"instances": [row]}).json()
        assert answer["predictions"] == [want]
    assert served.http.post("/predict/batched", json={"instances": ROWS}).json()[
        "predictions"
    ] == expected(store.v1)
    batcher = served.runtime.served["batched"].versions[1].batcher
    assert batcher is not None
    assert batcher.rows == 2


def test_metrics_expose_the_counters(serve: Callable[..., Served]) -> None:
    served = serve("plain")
    served.http.post("/predict/plain", json={"instances": ROWS})
    served.http.post("/predict/plain", content=b"{")
    served.http.post("/predict/nope", json={"instances": ROWS})
    text = served.http.get("/metrics").text
    assert 'steward_requests_total{deployment="plain",version="1"} 1.0' in text
    assert 'steward_request_errors_total{deployment="plain",kind="invalid_input"} 1.0' in text
    assert 'steward_request_errors_total{deployment="nope",kind="not_found"} 1.0' in text
    assert 'steward_request_latency_seconds_count{deployment="plain",version="1"} 1.0' in text
    assert 'steward_model_load_seconds{deployment="plain",version="1"}' in text
    assert "steward_prediction_log_queue_depth" in text
    assert 'steward_prediction_log_dropped{reason="queue_full"} 0.0' in text


def test_a_deployment_change_swaps_with_no_failed_request(store: Store, tmp_path: Path) -> None:
    store.deploy("swap", champion=1, canary=2, canary_share=0.5)
    services = Services.from_settings(Settings(home=store.home, url=None))
    runtime = Runtime(services.store, services.artifacts, names=("swap",))
    log = PredictionLogWriter(
        str(tmp_path / "p"), queue_size=10_000, flush_rows=500, flush_seconds=0.1
    )
    app = create_gateway(runtime, log, poll_seconds=None)

    async def drive() -> tuple[list[int], set[int], set[int], list[str]]:
        await runtime.start(poll_seconds=None)
        transport = httpx.ASGITransport(app=app)
        statuses: list[int] = []
        before: set[int] = set()
        after: set[int] = set()
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:

            async def one(i: int, seen: set[int]) -> None:
                body = {"instances": ROWS[:1], "unit_id": f"u{i}"}
                answer = await http.post("/predict/swap", json=body)
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    seen.add(answer.json()["version"])

            async def load(seen: set[int], n: int) -> None:
                for k in range(n):
                    await asyncio.gather(*(one(k * 20 + i, seen) for i in range(20)))

            loop = asyncio.get_running_loop()
            await load(before, 3)
            rollback = loop.run_in_executor(None, lambda: store.client.rollback("swap"))
            during = asyncio.create_task(load(set(), 5))
            await rollback
            swapped = await runtime.refresh()
            await during
            await load(after, 3)
        await runtime.close()
        log.close()
        return statuses, before, after, swapped

    try:
        statuses, before, after, swapped = asyncio.run(drive())
    finally:
        services.close()
    assert swapped == ["swap"]
    assert set(statuses) == {200}
    assert len(statuses) == 220
    assert before == {1, 2}
    assert after == {1}


def test_oip_server_metadata_and_versioned_routes(serve: Callable[..., Served]) -> None:
    served = serve("canary")
    server = served.http.get("/v2").json()
    assert server["name"] == "steward"
    assert "binary_tensor_data" in server["extensions"]
    assert served.http.get("/v2/models/canary/versions/2").json()["versions"] == ["1", "2"]
    assert served.http.get("/v2/models/canary/versions/2/ready").json()["ready"] is True
    answered = served.http.post("/v2/models/canary/versions/1/infer", json=oip_body(ROWS))
    assert answered.status_code == 200
    assert answered.json()["model_version"] in ("1", "2")  # the policy routes, not the path
    for path in ("/v2/models/canary/versions/7", "/v2/models/canary/versions/7/ready"):
        refused = served.http.get(path)
        assert refused.status_code == 404
        assert "not '7'" in refused.json()["error"]
    refused = served.http.post("/v2/models/canary/versions/7/infer", json=oip_body(ROWS))
    assert refused.status_code == 404
    assert "answers with version(s) 1, 2" in refused.json()["error"]


def test_a_body_in_several_chunks_is_read_whole(serve: Callable[..., Served], store: Store) -> None:
    served = serve("plain")
    body = json.dumps({"instances": ROWS}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    answer = served.http.post("/predict/plain", content=chunks())
    assert answer.status_code == 200
    assert answer.json()["predictions"] == expected(store.v1)


@pytest.mark.parametrize(
    "path", ["/predict/", "/predict/plain/x", "/v2/models//infer", "/v2/models/a/b/infer"]
)
def test_paths_that_only_look_like_the_hot_routes_go_to_the_router(
    serve: Callable[..., Served], path: str
) -> None:
    served = serve("plain")
    assert served.http.post(path, json={"instances": ROWS}).status_code == 404
