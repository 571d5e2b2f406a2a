"""The gateway under faults: bad input of every kind, a model that raises on some rows and one
slower than its deployment's timeout, all under concurrent load; the ``previous`` and ``rule``
fallback steps; the unit id read from the deployment's ``unit_key`` column; and a revision that
fails to load while the old one keeps serving.

The store holds model ``risk`` (columns ``a``, ``b`` float64 and ``n`` int64): v1 released then
deprecated by v2 (so a ``previous`` fallback has somewhere to go), v2 in production, v3
approved (a canary or split variant). Faults are injected by wrapping the loaded v2 and v3
models: a row with ``a == FAIL`` makes them raise, one with ``a == SLOW`` makes them sleep past
the timeout; v1 is left alone.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression
from tests.serving.test_gateway import POLICY

from steward.client import Client, log_model
from steward.domain.assignment import bucket, canary_salt, variant_for
from steward.serving.gateway import create_gateway
from steward.serving.runtime import Runtime
from steward.settings import PredictionLogWriterKind, Settings
from steward.store.prediction_log import PredictionLogWriter, read_predictions
from steward.wiring import Services

FAIL = 999.0  # a row with a == FAIL makes v2 and v3 raise
SLOW = 777.0  # a row with a == SLOW makes v2 and v3 sleep for SLEEP_S
SLEEP_S = 1.5
# Of the deployments the faults are injected into. A well-behaved call must stay well inside
# it on a 2-core machine running another test worker beside this load: at 400 ms one did not
# once in a full `make test` (the writer processes' imports starting with the load).
TIMEOUT_MS = 800
MAX_BODY = 4_096
RULES = [{"when": {"b": {">=": 0}}, "then": 1}, {"when": {"b": {"<": 0}}, "then": 0}]
ROWS = [
    {"a": 0.5, "b": -1.0, "n": 3},
    {"a": -2.0, "b": 0.3, "n": 17},
    {"a": 1.5, "b": 2.0, "n": 40},
]


class Store:
    """``risk`` v1 deprecated (was production), v2 production, v3 approved."""

    def __init__(self, home: Path) -> None:
        self.home = home
        rng = np.random.default_rng(11)
        frame = pd.DataFrame(
            {"a": rng.normal(size=120), "b": rng.normal(size=120), "n": rng.integers(0, 50, 120)}
        )
        label = (frame["a"] + frame["b"] > 0).astype(int)
        # v1 leans on `n` alone, so its answers differ from v2's on the test rows.
        self.models = {
            1: LogisticRegression().fit(frame, (frame["n"] > 20).astype(int)),
            2: LogisticRegression().fit(frame, label),
            3: LogisticRegression(C=0.01).fit(frame, label),
        }
        self.client = Client(home=home)
        reviewer = Client(settings=Settings(url=None, home=home, actor="reviewer"))
        self.client.create_model("risk", owner="ana@example.com")
        self.client.set_policy(POLICY, model="risk")
        table = frame.assign(label=label)
        for model in self.models.values():
            uri = log_model(model, "risk", sample_input=frame.head(5), client=self.client).uri
            self.client.evaluate(uri, table, "label", resamples=10, latency_calls=3)
            self.client.gate(uri)
            reviewer.approve(uri)
        reviewer.close()
        self.client.promote("models:/risk/1", "production")
        self.client.promote("models:/risk/2", "production")  # v1 is deprecated now

    def deploy(self, name: str, **routing: Any) -> None:
        self.client.deploy(name, model="risk", **routing)

    def predict(self, version: int, rows: list[dict[str, Any]]) -> list[int]:
        return [int(p) for p in self.models[version].predict(pd.DataFrame(rows))]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    made = Store(tmp_path_factory.mktemp("faults") / "home")
    default = [{"kind": "default", "value": -1}]
    made.deploy("guarded", champion=2, timeout_ms=TIMEOUT_MS, fallbacks=default)
    made.deploy("bare", champion=2, timeout_ms=TIMEOUT_MS)
    made.deploy("prev", champion=2, timeout_ms=TIMEOUT_MS, fallbacks=[{"kind": "previous"}])
    rule = [{"kind": "rule", "rules": RULES}]
    made.deploy("ruled", champion=2, timeout_ms=TIMEOUT_MS, fallbacks=rule)
    made.deploy("sticky", champion=2, canary=3, canary_share=0.5, unit_key="n")
    made.deploy("ab", champion=2, split={2: 0.5, 3: 0.5}, experiment="exp-n", unit_key="n")
    yield made
    made.client.close()


# -- the harness --------------------------------------------------------------------------------


@dataclass
class Gateway:
    http: httpx.AsyncClient
    runtime: Runtime
    log: PredictionLogWriter

    def logged(self, deployment: str) -> list[dict[str, Any]]:
        assert self.log.flush(timeout=10)
        try:
            return list(read_predictions(self.log.root, deployment).to_pylist())
        except FileNotFoundError:
            return []

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = (await self.http.get("/metrics")).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def _inject_faults(runtime: Runtime) -> None:
    """Wrap the loaded v2 and v3 (shared by every deployment of this runtime)."""
    seen: set[int] = set()
    for served in runtime.served.values():
        for version in served.versions.values():
            if version.version == 1 or id(version.model) in seen:
                continue
            seen.add(id(version.model))
            model = version.model
            for method in ("predict", "predict_with_proba"):
                setattr(model, method, _faulty(getattr(model, method)))


def _faulty(real: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(data: Any) -> Any:
        a = np.asarray(data["a"])
        if (a == FAIL).any():
            raise RuntimeError(f"model exploded on a={FAIL}")
        if (a == SLOW).any():
            time.sleep(SLEEP_S)
        return real(data)

    return call


@asynccontextmanager
async def gateway(
    home: Path, root: Path, *names: str, faults: bool = True,
    writer: PredictionLogWriterKind = "thread",
) -> AsyncIterator[Gateway]:  # fmt: skip
    services = Services.from_settings(Settings(home=home, url=None))
    # Timed-out calls keep their model thread until they finish: room for them and the load.
    # The injected faults sleep inside a scikit-learn model, which an inline call cannot leave
    # behind: these tests run every call in the pool (inline calls: tests/serving/test_execution).
    runtime = Runtime(
        services.store, services.artifacts, names=names, model_threads=64, inline_budget_ms=0
    )
    log = PredictionLogWriter(str(root), queue_size=100_000, flush_rows=200, flush_seconds=0.05,
                              writer=writer)  # fmt: skip
    app = create_gateway(runtime, log, poll_seconds=None, max_body_bytes=MAX_BODY)
    await runtime.start(poll_seconds=None)
    if faults:
        _inject_faults(runtime)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield Gateway(http, runtime, log)
    finally:
        await runtime.close()
        log.close()
        services.close()


def predict_body(rows: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"instances": rows, **extra}).encode()


def oip_tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": c, "shape": [len(rows)], "datatype": t, "data": [r[c] for r in rows]}
        for c, t in (("a", "FP64"), ("b", "FP64"), ("n", "INT64"))
    ]


def oip_body(rows: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"inputs": oip_tensors(rows), **extra}).encode()


def _oip_with(change: str) -> bytes:
    tensors = oip_tensors(ROWS[:2])
    if change == "missing":
        tensors = tensors[:2]
    elif change == "extra":
        tensors.append({"name": "zz", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]})
    elif change == "datatype":
        tensors[0] = {**tensors[0], "datatype": "BYTES", "data": ["x", "y"]}
    elif change == "shape":
        tensors[1] = {**tensors[1], "shape": [3]}
    elif change == "nan":
        return json.dumps({"inputs": tensors}).replace("[3, 17]", "[NaN, 17]").encode()
    return json.dumps({"inputs": tensors}).encode()


# (status, what the message must name), per bad-input kind and route
BAD_PREDICT: dict[str, tuple[bytes, int, str]] = {
    "malformed": (b'{"instances": [{"a": 1', 400, "not valid JSON"),
    "missing": (predict_body([{"a": 1.0, "b": 2.0}]), 422, "missing input 'n'"),
    "extra": (predict_body([{**ROWS[0], "zz": 1}]), 422, "'zz'"),
    "datatype": (predict_body([{**ROWS[0], "a": "x"}]), 422, "'a'"),
    "nan": (b'{"instances": [{"a": 1.0, "b": 2.0, "n": NaN}]}', 422, "NaN"),
    "shape": (json.dumps({"inputs": {"a": [1.0, 2.0], "b": [1.0], "n": [1, 2]}}).encode(), 422,
              "same number of rows"),
    "too_large": (predict_body(ROWS * 200), 413, "larger than 4096 bytes"),
}  # fmt: skip
BAD_OIP: dict[str, tuple[bytes, int, str]] = {
    "malformed": (b'{"inputs": [', 400, "not valid JSON"),
    "missing": (_oip_with("missing"), 422, "'n'"),
    "extra": (_oip_with("extra"), 422, "'zz'"),
    "datatype": (_oip_with("datatype"), 422, "'a'"),
    "nan": (_oip_with("nan"), 422, "NaN"),
    "shape": (_oip_with("shape"), 422, "'b'"),
    "too_large": (oip_body(ROWS * 200), 413, "larger than 4096 bytes"),
}


@dataclass(frozen=True)
class Case:
    """One request and the answer it must get."""

    rid: str
    deployment: str
    oip: bool
    body: bytes
    rows: int  # rows answered (0: refused)
    expect: str  # ok, fallback:error, fallback:timeout, 503:error, 503:timeout, refused
    status: int = 200
    names: str = ""  # what a refusal's message must contain
    kind: str = ""  # the bad-input kind
    logged: int | None = None  # rows the prediction log holds, when not the rows answered

    @property
    def route(self) -> str:
        if self.oip:
            return f"/v2/models/{self.deployment}/infer"
        return f"/predict/{self.deployment}"


def _cases() -> list[Case]:
    cases: list[Case] = []
    for rnd in range(2):
        for deployment in ("guarded", "bare"):
            for oip in (False, True):
                tag = f"{rnd}-{deployment}-{'oip' if oip else 'json'}"
                encode = oip_body if oip else predict_body
                for i in range(12):
                    rows = ROWS[: 1 + i % 3]
                    rid = f"{tag}-ok{i}"
                    cases.append(Case(rid, deployment, oip, encode(rows, id=rid), len(rows), "ok"))
                for fault, marker, count in (("error", FAIL, 5), ("timeout", SLOW, 3)):
                    for i in range(count):
                        rows = [{**ROWS[0], "a": marker}, *ROWS[1 : 1 + i % 3]]
                        rid = f"{tag}-{fault}{i}"
                        answered = deployment == "guarded"
                        expect = f"fallback:{fault}" if answered else f"503:{fault}"
                        cases.append(Case(
                            rid, deployment, oip, encode(rows, id=rid),
                            len(rows) if answered else 0, expect, 200 if answered else 503,
                            logged=len(rows),
                        ))  # fmt: skip
                for kind, (body, status, names) in (BAD_OIP if oip else BAD_PREDICT).items():
                    rid = f"{tag}-bad-{kind}"
                    cases.append(
                        Case(rid, deployment, oip, body, 0, "refused", status, names, kind)
                    )
            for oip in (False, True):
                rid = f"{rnd}-nope-{oip}"
                body = oip_body(ROWS, id=rid) if oip else predict_body(ROWS, id=rid)
                cases.append(Case(rid, "nope", oip, body, 0, "refused", 404, "'nope'", "unknown"))
    return cases


async def _drive(gw: Gateway, cases: list[Case], clients: int) -> list[httpx.Response]:
    answers: list[httpx.Response | None] = [None] * len(cases)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in np.random.default_rng(0).permutation(len(cases)).tolist():
        queue.put_nowait(index)

    async def client() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            case = cases[index]
            headers = {"content-type": "application/json"}
            answers[index] = await gw.http.post(case.route, content=case.body, headers=headers)

    await asyncio.gather(*(client() for _ in range(clients)))
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _check(case: Case, answer: httpx.Response, store: Store) -> None:
    where = f"{case.rid}: {answer.status_code} {answer.text[:300]}"
    assert answer.status_code == case.status, where
    assert answer.headers["content-type"] == "application/json", where
    body = answer.json()
    if case.status != 200:
        error = body["error"]
        if case.oip:  # the protocol's error format: {"error": "<message>"}
            assert isinstance(error, str), where
            message = error
        else:  # Steward's envelope
            assert set(error) == {"code", "message", "details"}, where
            message = error["message"]
        if case.expect == "refused":
            assert case.names in message, where
        elif case.expect == "503:error":
            assert "model exploded" in message, where
            assert "no fallback" in message, where
            if not case.oip:
                assert error["code"] == "unavailable", where
                assert error["details"]["reasons"][0]["source"] == "primary", where
        else:
            assert case.expect == "503:timeout", where
            assert "(timeout)" in message, where
            assert "no fallback" in message, where
        return
    if case.oip:
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        version, fallback = body["parameters"]["version"], body["parameters"]["fallback"]
        assert (body["id"], body["model_version"]) == (case.rid, str(version)), where
        predictions = outputs["prediction"]
    else:
        version, fallback = body["version"], body["fallback"]
        assert body["request_id"] == case.rid, where
        predictions = body["predictions"]
    assert version == 2, where
    assert len(predictions) == case.rows, where
    if case.expect == "ok":
        assert fallback is None, where
        assert predictions == store.predict(2, _rows_of(case)), where
    else:
        assert fallback == case.expect.split(":")[1], where
        assert predictions == [-1] * case.rows, where


def _rows_of(case: Case) -> list[dict[str, Any]]:
    body = json.loads(case.body)
    if not case.oip:
        return list(body["instances"])
    columns = {t["name"]: t["data"] for t in body["inputs"]}
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


# -- 1. every fault, under concurrent load ------------------------------------------------------


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_every_fault_under_concurrent_load(
    store: Store, tmp_path: Path, writer: PredictionLogWriterKind
) -> None:
    cases = _cases()
    assert len(cases) > 200

    async def run() -> None:
        root = tmp_path / "log"
        async with gateway(store.home, root, "guarded", "bare", writer=writer) as gw:
            answers = await _drive(gw, cases, clients=12)
            for case, answer in zip(cases, answers, strict=True):
                _check(case, answer, store)
            assert not any(a.status_code >= 500 and a.status_code != 503 for a in answers)
            metrics = await gw.metrics()
            logged = {d: gw.logged(d) for d in ("guarded", "bare")}
        _check_metrics(cases, metrics)
        _check_log(cases, logged)

    asyncio.run(run())


def _count(cases: list[Case], deployment: str, *expects: str) -> int:
    return sum(1 for c in cases if c.deployment == deployment and c.expect in expects)


def _check_metrics(
    cases: list[Case], metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    for reason in ("error", "timeout"):
        fell_back = _count(cases, "guarded", f"fallback:{reason}")
        assert fell_back > 0
        got = value(
            "steward_fallbacks_total", deployment="guarded", reason=reason, source="default"
        )
        assert got == fell_back, reason
        assert (
            value("steward_fallbacks_total", deployment="bare", reason=reason, source="default")
            == 0
        )
    unavailable = _count(cases, "bare", "503:error", "503:timeout")
    assert (
        value("steward_request_errors_total", deployment="bare", kind="unavailable") == unavailable
    )
    assert value("steward_request_errors_total", deployment="guarded", kind="unavailable") == 0
    for deployment in ("guarded", "bare"):
        answered = _count(cases, deployment, "ok", "fallback:error", "fallback:timeout")
        got = value("steward_requests_total", deployment=deployment, version="2")
        assert got == answered, deployment
        refused = [c for c in cases if c.deployment == deployment and c.expect == "refused"]
        too_large = sum(1 for c in refused if c.kind == "too_large")
        kind = "payload_too_large"
        assert value("steward_request_errors_total", deployment=deployment, kind=kind) == too_large
        invalid = len(refused) - too_large
        got = value("steward_request_errors_total", deployment=deployment, kind="invalid_input")
        assert got == invalid, deployment
    unknown = _count(cases, "nope", "refused")
    assert value("steward_request_errors_total", deployment="nope", kind="not_found") == unknown
    assert not [k for k in metrics if ("kind", "internal") in k[1]]


def _check_log(cases: list[Case], logged: dict[str, list[dict[str, Any]]]) -> None:
    """Every answered request is logged, and so is every one nothing answered (a 503: the
    monitor counts it against availability); refused requests are not."""
    for deployment, records in logged.items():
        wanted = Counter(
            (c.rid, row)
            for c in cases
            if c.deployment == deployment
            for row in range(c.rows if c.logged is None else c.logged)
        )
        assert Counter((r["request_id"], r["row"]) for r in records) == wanted, deployment
        fallback_of = {c.rid: c.expect for c in cases if c.deployment == deployment}
        for record in records:
            expect = fallback_of[record["request_id"]]
            assert record["version"] == 2
            if expect.startswith("503:"):
                assert record["fallback"] is None
                assert record["prediction"] is None
                want = "timeout" if expect == "503:timeout" else "model exploded"
                assert want in record["error"]
            elif expect == "ok":
                assert (record["fallback"], record["error"]) == (None, None)
            else:
                assert record["fallback"] == expect.split(":")[1]
                assert record["prediction"] == -1
                want = "timeout" if expect == "fallback:timeout" else "model exploded"
                assert want in record["error"]


# -- 2. the previous production version and a rule set as fallbacks ---------------------------


def test_previous_version_answers_when_the_champion_fails(store: Store, tmp_path: Path) -> None:
    async def run() -> None:
        async with gateway(store.home, tmp_path / "log", "prev") as gw:
            assert gw.runtime.served["prev"].previous == 1
            failing = [{**ROWS[0], "a": FAIL}, ROWS[1], ROWS[2]]
            answer = await gw.http.post("/predict/prev", content=predict_body(failing, id="p1"))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {
                "predictions": store.predict(1, failing), "version": 1, "request_id": "p1",
                "fallback": "error",
            }  # fmt: skip
            slow = [{**ROWS[1], "a": SLOW}]
            oip = (await gw.http.post("/v2/models/prev/infer", content=oip_body(slow))).json()
            assert oip["parameters"] == {"version": 1, "fallback": "timeout"}
            assert oip["model_version"] == "1"
            outputs = {o["name"]: o["data"] for o in oip["outputs"]}
            assert outputs["prediction"] == store.predict(1, slow)
            assert len(outputs["probabilities"]) == 2  # v1's own outputs, probabilities too
            good = (await gw.http.post("/predict/prev", content=predict_body(ROWS))).json()
            assert (good["version"], good["fallback"]) == (2, None)
            assert good["predictions"] == store.predict(2, ROWS)
            metrics = await gw.metrics()
            logged = gw.logged("prev")
        key = "steward_fallbacks_total"
        for reason in ("error", "timeout"):
            labels = (("deployment", "prev"), ("reason", reason), ("source", "previous"))
            assert metrics[(key, labels)] == 1.0
        assert metrics[("steward_requests_total", (("deployment", "prev"), ("version", "1")))] == 2
        p1 = sorted((r for r in logged if r["request_id"] == "p1"), key=lambda r: r["row"])
        assert [(r["version"], r["fallback"]) for r in p1] == [(1, "error")] * 3
        assert [r["prediction"] for r in p1] == store.predict(1, failing)
        assert all("model exploded" in r["error"] for r in p1)
        assert len(logged) == 3 + 1 + 3

    asyncio.run(run())


def test_rule_set_answers_by_a_column_value(store: Store, tmp_path: Path) -> None:
    async def run() -> None:
        async with gateway(store.home, tmp_path / "log", "ruled") as gw:
            rows = [{**ROWS[0], "a": FAIL}, ROWS[1], ROWS[2]]  # b: -1.0, 0.3, 2.0
            answer = (await gw.http.post("/predict/ruled", content=predict_body(rows))).json()
            assert (answer["predictions"], answer["fallback"], answer["version"]) == (
                [0, 1, 1], "error", 2,
            )  # fmt: skip
            slow = [{**ROWS[1], "a": SLOW}, ROWS[0]]
            oip = (await gw.http.post("/v2/models/ruled/infer", content=oip_body(slow))).json()
            assert oip["parameters"] == {"version": 2, "fallback": "timeout"}
            assert oip["outputs"][0]["data"] == [1, 0]
            # A missing `b` (the one value no rule matches) never reaches the model or the
            # chain: a LogisticRegression takes no NaN, so it is the client's fault, a 422.
            # (A row no rule matches: tests/serving/test_fallback.py.)
            unmatched = b'{"instances": [{"a": 999.0, "b": null, "n": 1}]}'
            refused = await gw.http.post("/predict/ruled", content=unmatched)
            assert refused.status_code == 422
            error = refused.json()["error"]
            assert error["details"]["field"] == "instances[0].b"
            assert "Input 'b' has a missing value (null/NaN) in row 0" in error["message"]
            metrics = await gw.metrics()
            logged = gw.logged("ruled")
        for reason in ("error", "timeout"):
            labels = (("deployment", "ruled"), ("reason", reason), ("source", "rule"))
            assert metrics[("steward_fallbacks_total", labels)] == 1.0
        assert sorted(r["prediction"] for r in logged) == [0, 0, 1, 1, 1]

    asyncio.run(run())


# -- 3. the unit id from the deployment's unit_key column ---------------------------------------


def test_unit_id_comes_from_the_unit_key_column(store: Store, tmp_path: Path) -> None:
    def canary_of(unit: str) -> int:
        return 3 if bucket(canary_salt(3), unit) < 0.5 else 2

    def variant_of(unit: str) -> int:
        return variant_for({2: 0.5, 3: 0.5}, unit, experiment="exp-n")

    async def run() -> None:
        async with gateway(store.home, tmp_path / "log", "sticky", "ab", faults=False) as gw:
            for deployment, want in (("sticky", canary_of), ("ab", variant_of)):
                seen = set()
                for n in range(30):
                    # the version follows the first row's `n`, whatever the other rows hold
                    rows = [{**ROWS[0], "n": n}, {**ROWS[1], "n": 1000 + n}]
                    rid = f"{deployment}-{n}"
                    answer = await gw.http.post(
                        f"/predict/{deployment}", content=predict_body(rows, id=rid)
                    )
                    version = answer.json()["version"]
                    assert version == want(str(n)), (deployment, n)
                    seen.add(version)
                    again = await gw.http.post(
                        f"/v2/models/{deployment}/infer", content=oip_body(rows[:1])
                    )
                    assert again.json()["parameters"]["version"] == version
                assert seen == {2, 3}, deployment
                # an explicit unit id wins over the column
                body = predict_body(ROWS[:1], unit_id="explicit")
                answer = await gw.http.post(f"/predict/{deployment}", content=body)
                assert answer.json()["version"] == want("explicit")
            logged = gw.logged("sticky")
        by_request = {(r["request_id"], r["row"]): r for r in logged}
        for n in range(30):
            assert by_request[(f"sticky-{n}", 0)]["unit_id"] == str(n)
            assert by_request[(f"sticky-{n}", 1)]["unit_id"] == str(n)  # the request's unit

    asyncio.run(run())


# -- 4. a revision that fails to load -----------------------------------------------------------


def test_a_revision_that_fails_to_load_keeps_the_old_one_serving(
    store: Store, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(store.home, home)  # this test breaks v3's files: on its own copy
    client = Client(home=home)
    client.deploy("reload", model="risk", champion=2)

    async def run() -> None:
        async with gateway(home, tmp_path / "log", "reload", faults=False) as gw:
            http = gw.http
            assert (await http.get("/v2/health/ready")).status_code == 200
            client.deploy("reload", model="risk", champion=2, canary=3, canary_share=0.5)
            v2 = client.get_version("models:/risk/2").files
            services = Services.from_settings(Settings(home=home, url=None))
            try:
                for file in client.get_version("models:/risk/3").files.values():
                    if file.digest not in {f.digest for f in v2.values()}:
                        path = services.artifacts.local_path(file.digest)
                        assert path is not None
                        Path(path).write_bytes(b"not a model")
            finally:
                services.close()
            assert await gw.runtime.refresh() == []
            assert "reload" in gw.runtime.failures
            ready = await http.get("/v2/health/ready")
            assert (ready.status_code, ready.json()) == (503, {"ready": False})
            assert (await http.get("/v2/models/reload/ready")).json()["ready"] is True
            for i in range(20):  # the old revision answers everything, from v2
                body = predict_body(ROWS[:1], unit_id=f"u{i}")
                answer = await http.post("/predict/reload", content=body)
                assert answer.status_code == 200
                assert answer.json()["version"] == 2
            metrics = await gw.metrics()
            revision = ("steward_deployment_revision", (("deployment", "reload"),))
            failed = ("steward_deployment_load_failed", (("deployment", "reload"),))
            assert (metrics[revision], metrics[failed]) == (1.0, 2.0)
            # a revision that loads clears the failure
            client.deploy("reload", model="risk", champion=2, timeout_ms=500)
            assert await gw.runtime.refresh() == ["reload"]
            assert (await http.get("/v2/health/ready")).status_code == 200
            metrics = await gw.metrics()
            assert (metrics[revision], metrics[failed]) == (3.0, 0.0)

    try:
        asyncio.run(run())
    finally:
        client.close()
