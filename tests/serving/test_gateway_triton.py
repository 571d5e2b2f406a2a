"""tritonclient.http with its defaults (binary tensor data both ways) against a real gateway:
`create_gateway` under uvicorn in a thread, as `steward serve` runs it, over scikit-learn models
registered, gated, approved and promoted in an embedded store. Also missing values end to end:
refused with a 422 (never a fallback, never a 5xx) where the champion cannot take them.

Deployments (each with a default fallback of -1, which must never answer here):
``mixed``  a pipeline on x32 (float32), x64 (float64), n (int64), flag (bool), city (string);
``lr``     a LogisticRegression on a, b, c (takes no NaN);
``hgb``    a HistGradientBoostingClassifier on a, b, c (takes NaN);
``strict`` the same HistGradientBoostingClassifier, its signature saying ``a`` is not nullable.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
import uvicorn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.serving.test_gateway import POLICY
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import InferenceServerException

from steward.cli.serve import gateway_uvicorn_options
from steward.client import Client, log_model
from steward.domain.signature import Signature
from steward.flavors import package_model
from steward.serving.gateway import create_gateway
from steward.serving.runtime import Runtime
from steward.settings import Settings
from steward.store.prediction_log import PredictionLogWriter, read_predictions
from steward.wiring import Services

ABC = ["a", "b", "c"]
MISSING = "has a missing value (null/NaN) in row"


class Store:
    def __init__(self, home: Path) -> None:
        self.home = home
        rng = np.random.default_rng(7)
        n = 150
        self.mixed_frame = pd.DataFrame({
            "x32": rng.normal(size=n).astype("float32"), "x64": rng.normal(size=n),
            "n": rng.integers(0, 50, n), "flag": rng.random(n) > 0.5,
            "city": rng.choice(["Paris", "Oslo", "Köln"], n),
        })  # fmt: skip
        mixed_label = (self.mixed_frame.x32 + self.mixed_frame.x64 > 0) | self.mixed_frame.flag
        self.mixed = make_pipeline(
            ColumnTransformer(
                [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                remainder="passthrough",
            ),
            LogisticRegression(max_iter=1000),
        ).fit(self.mixed_frame, mixed_label.astype(int))
        self.frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=ABC)
        label = (self.frame.a + self.frame.b > 0).astype(int)
        self.lr = LogisticRegression().fit(self.frame, label)
        self.hgb = HistGradientBoostingClassifier(max_iter=20).fit(self.frame, label)
        self.client = Client(home=home)
        self.reviewer = Client(settings=Settings(url=None, home=home, actor="reviewer"))
        self._release("mixed", self.mixed, self.mixed_frame, mixed_label.astype(int))
        self._release("lr", self.lr, self.frame, label)
        self._release("hgb", self.hgb, self.frame, label)
        self._release("strict", self.hgb, self.frame, label, not_nullable="a")
        self.reviewer.close()

    def _release(
        self, name: str, model: Any, frame: pd.DataFrame, label: Any, not_nullable: str = ""
    ) -> None:
        self.client.create_model(name, owner="ana@example.com")
        self.client.set_policy(POLICY, model=name)
        if not not_nullable:
            uri = log_model(model, name, sample_input=frame.head(5), client=self.client).uri
        else:
            packaged = package_model(model, sample_input=frame.head(5))
            assert packaged.signature is not None
            uri = self.client.create_version(
                name, flavor=packaged.flavor, primary_file=packaged.primary_file,
                files={f: self.client.upload_artifact(c) for f, c in packaged.files.items()},
                signature=_not_nullable(packaged.signature, not_nullable),
            ).uri  # fmt: skip
        self.client.evaluate(uri, frame.assign(label=label), "label", resamples=10, latency_calls=3)
        self.client.gate(uri)
        self.reviewer.approve(uri)
        self.client.promote(uri, "production")
        self.client.deploy(
            name, model=name, champion=1, fallbacks=[{"kind": "default", "value": -1}]
        )


def _not_nullable(signature: Signature, column: str) -> Signature:
    data = signature.model_dump()
    for spec in data["inputs"]:
        spec["nullable"] = spec["name"] != column
    return Signature.model_validate(data)


@dataclass
class Server:
    url: str  # host:port, as tritonclient takes it
    runtime: Runtime
    http: httpx.Client
    log: PredictionLogWriter

    def triton(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(self.url)

    def logged(self, deployment: str) -> list[dict[str, Any]]:
        assert self.log.flush(timeout=10)
        return list(read_predictions(self.log.root, deployment).to_pylist())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    made = Store(tmp_path_factory.mktemp("triton") / "home")
    yield made
    made.client.close()


@pytest.fixture(scope="module")
def server(store: Store) -> Iterator[Server]:
    services = Services.from_settings(Settings(home=store.home, url=None))
    runtime = Runtime(services.store, services.artifacts)
    root = store.home.parent / "predictions"
    log = PredictionLogWriter(str(root), queue_size=10_000, flush_rows=100, flush_seconds=0.05)
    app = create_gateway(runtime, log, poll_seconds=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    # as `steward serve` runs it: /infer answered by the protocol itself (direct_route)
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, **gateway_uvicorn_options()))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uvicorn_server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uvicorn_server.started
    try:
        with httpx.Client(base_url=f"http://{host}:{port}") as http:
            yield Server(f"{host}:{port}", runtime, http, log)
    finally:
        uvicorn_server.should_exit = True
        thread.join(15)
        services.close()
        sock.close()


@pytest.fixture
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    made = server.triton()
    yield made
    made.close()


def _inputs(columns: dict[str, tuple[np.ndarray[Any, Any], str]]) -> list[triton.InferInput]:
    made = []
    for name, (values, datatype) in columns.items():
        infer_input = triton.InferInput(name, list(values.shape), datatype)
        infer_input.set_data_from_numpy(values)  # the default: binary data
        made.append(infer_input)
    return made


def _abc(rows: np.ndarray[Any, Any]) -> list[triton.InferInput]:
    return _inputs({c: (rows[:, j].copy(), "FP64") for j, c in enumerate(ABC)})


# -- tritonclient's defaults: binary inputs, binary outputs ----------------------------------


def test_every_input_datatype_with_tritonclient_defaults(
    client: triton.InferenceServerClient, store: Store
) -> None:
    frame = store.mixed_frame.head(7)
    inputs = _inputs({
        "x32": (frame.x32.to_numpy(np.float32), "FP32"),
        "x64": (frame.x64.to_numpy(np.float64), "FP64"),
        "n": (frame.n.to_numpy(np.int64), "INT64"),
        "flag": (frame.flag.to_numpy(bool), "BOOL"),
        "city": (frame.city.to_numpy(object), "BYTES"),
    })  # fmt: skip
    outputs = [
        triton.InferRequestedOutput("prediction"),
        triton.InferRequestedOutput("probabilities"),
    ]
    result = client.infer("mixed", inputs, outputs=outputs, request_id="tri-1")
    np.testing.assert_array_equal(result.as_numpy("prediction"), store.mixed.predict(frame))
    np.testing.assert_allclose(result.as_numpy("probabilities"), store.mixed.predict_proba(frame))
    response = result.get_response()
    assert (response["id"], response["model_version"]) == ("tri-1", "1")
    assert response["parameters"] == {"version": 1, "fallback": None}
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    # no outputs named: tritonclient asks for all of them, binary
    every = client.infer("mixed", inputs)
    np.testing.assert_array_equal(every.as_numpy("prediction"), store.mixed.predict(frame))
    assert every.as_numpy("probabilities").shape == (7, 2)


def test_binary_requests_are_logged_like_any_other(
    client: triton.InferenceServerClient, server: Server, store: Store
) -> None:
    frame = store.mixed_frame.head(2)
    inputs = _inputs({
        "x32": (frame.x32.to_numpy(np.float32), "FP32"),
        "x64": (frame.x64.to_numpy(np.float64), "FP64"),
        "n": (frame.n.to_numpy(np.int64), "INT64"),
        "flag": (frame.flag.to_numpy(bool), "BOOL"),
        "city": (frame.city.to_numpy(object), "BYTES"),
    })  # fmt: skip
    client.infer("mixed", inputs, request_id="logged-1")
    rows = sorted(
        (r for r in server.logged("mixed") if r["request_id"] == "logged-1"),
        key=lambda r: r["row"],
    )
    assert [r["prediction"] for r in rows] == store.mixed.predict(frame).tolist()
    assert [r["input.city"] for r in rows] == frame.city.tolist()
    assert [r["input.flag"] for r in rows] == frame.flag.tolist()


def test_a_table_as_one_binary_matrix(client: triton.InferenceServerClient, store: Store) -> None:
    rows = store.frame.head(4).to_numpy()
    matrix = triton.InferInput("input-0", list(rows.shape), "FP64")
    matrix.set_data_from_numpy(rows)
    result = client.infer("lr", [matrix])
    np.testing.assert_array_equal(
        result.as_numpy("prediction"), store.lr.predict(store.frame.head(4))
    )


def test_binary_request_asking_json_outputs(
    client: triton.InferenceServerClient, server: Server, store: Store
) -> None:
    rows = store.frame.head(3).to_numpy()
    outputs = [triton.InferRequestedOutput("prediction", binary_data=False)]
    result = client.infer("lr", _abc(rows), outputs=outputs)
    assert (
        result.get_response()["outputs"][0]["data"]
        == store.lr.predict(store.frame.head(3)).tolist()
    )
    body, length = _tritonclient_body(_abc(rows), outputs)
    answer = server.http.post("/v2/models/lr/infer", content=body,
                              headers={"Inference-Header-Content-Length": length})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in answer.headers


def test_json_request_asking_binary_outputs(server: Server, store: Store) -> None:
    rows = store.frame.head(3)
    body = {
        "inputs": [
            {"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()} for c in ABC
        ],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "prediction", "parameters": {"binary_data": False}},
                    {"name": "probabilities"}],
    }  # fmt: skip
    answer = server.http.post("/v2/models/lr/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    length = int(answer.headers["inference-header-content-length"])
    result = triton.InferResult.from_response_body(answer.content, header_length=length)
    assert result.get_response()["outputs"][0]["data"] == store.lr.predict(rows).tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), store.lr.predict_proba(rows))


def _tritonclient_body(
    inputs: list[triton.InferInput], outputs: list[triton.InferRequestedOutput] | None = None
) -> tuple[bytes, str]:
    body, size = _get_inference_request(
        inputs=inputs, request_id="", outputs=outputs, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, custom_parameters=None,
    )  # fmt: skip
    return body, str(size)


# -- malformed binary requests over HTTP: 400 / 422 in the OIP error format -------------------


def _blob(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, str | None]:
    text = json.dumps(header).encode()
    return text + b"".join(blobs), str(len(text))


def _column(name: str, size: Any, **changes: Any) -> dict[str, Any]:
    return {"name": name, "shape": [2], "datatype": "FP64",
            "parameters": {"binary_data_size": size}, **changes}  # fmt: skip


_TWO = np.array([0.5, -1.0]).tobytes()
_GOOD = _blob({"inputs": [_column(c, 16) for c in ABC]}, _TWO, _TWO, _TWO)
BAD: dict[str, tuple[bytes, str | None, int, str]] = {
    "header not a number": (_GOOD[0], "x", 400, "Inference-Header-Content-Length"),
    "header past the body": (_GOOD[0], str(len(_GOOD[0]) + 5), 400, "Inference-Header"),
    "leftover bytes": (_GOOD[0] + b"\x00" * 3, _GOOD[1], 400, "3 bytes after the JSON"),
    "binary past the end": (_GOOD[0][:-8], _GOOD[1], 400, "Input 'c' (16 bytes"),
    "binary without the header": (_GOOD[0][: int(str(_GOOD[1]))], None, 400, "Input 'a'"),
    "size does not match the shape": (
        *_blob({"inputs": [_column("a", 16), _column("b", 8), _column("c", 16)]},
               _TWO, _TWO[:8], _TWO), 422, "Input 'b' declares shape [2] of FP64 (16 bytes)"),
    "unknown datatype": (
        *_blob({"inputs": [_column("a", 16, datatype="DOUBLE"), _column("b", 16),
                           _column("c", 16)]}, _TWO, _TWO, _TWO), 422, "Input 'a' has datatype"),
    "datatype the input does not take": (
        *_blob({"inputs": [_column("a", 16), _column("b", 16, datatype="INT64"),
                           _column("c", 16)]}, _TWO, _TWO, _TWO), 422,
        "Input 'b' has datatype INT64 but the model expects FP64"),
    "bad size": (
        *_blob({"inputs": [_column("a", "16"), _column("b", 16), _column("c", 16)]},
               _TWO, _TWO, _TWO), 422, "Input 'a' has binary_data_size '16'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_binary_is_refused_in_the_oip_format(server: Server, case: str) -> None:
    body, length, status, words = BAD[case]
    headers = {} if length is None else {"Inference-Header-Content-Length": length}
    answer = server.http.post("/v2/models/lr/infer", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert isinstance(error, str)
    assert words in error


def test_tritonclient_sees_the_refusal(client: triton.InferenceServerClient) -> None:
    inputs = _inputs({"a": (np.zeros(2), "FP64"), "b": (np.zeros(2), "FP64")})
    with pytest.raises(InferenceServerException) as caught:
        client.infer("lr", inputs)
    assert caught.value.status() == "422"
    assert "missing input 'c'" in caught.value.message()


# -- missing values: the champion's model decides -------------------------------------------


def test_the_champions_model_says_whether_it_takes_nan(server: Server) -> None:
    served = server.runtime.served
    assert served["lr"].champion.model.accepts_missing is False
    assert served["hgb"].champion.model.accepts_missing is True
    assert served["mixed"].champion.model.accepts_missing is None  # a ColumnTransformer inside


def _post(server: Server, route: str, body: bytes) -> httpx.Response:
    return server.http.post(route, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"instances": [{"a": 1.0, "b": null, "c": 0.5}]}', "instances[0].b"),
        (b'{"instances": [[0.1, 0.2, 0.3], [0.5, NaN, 1.0]]}', "instances[1].b"),
        (b'{"inputs": {"a": [1.0], "b": [2.0], "c": [null]}}', "inputs.c"),
    ],
)
def test_a_model_without_nan_refuses_missing_values_on_predict(
    server: Server, body: bytes, field: str
) -> None:
    answer = _post(server, "/predict/lr", body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["details"]["field"]) == ("invalid_input", field)
    assert MISSING in error["message"]
    assert "this model does not accept missing values" in error["message"]


def test_a_model_without_nan_refuses_missing_values_on_oip(
    server: Server, client: triton.InferenceServerClient, store: Store
) -> None:
    rows = store.frame.head(3).to_numpy()
    json_body = {"inputs": [
        {"name": c, "shape": [3], "datatype": "FP64", "data": rows[:, j].tolist()}
        for j, c in enumerate(ABC)
    ]}  # fmt: skip
    json_body["inputs"][2]["data"][1] = None
    answer = server.http.post("/v2/models/lr/infer", json=json_body)
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "Input 'c' has a missing value (null/NaN) in row 1; this model does not accept "
        "missing values."
    }
    with_nan = rows.copy()
    with_nan[2, 0] = np.nan
    with pytest.raises(InferenceServerException) as caught:
        client.infer("lr", _abc(with_nan))
    assert caught.value.status() == "422"
    assert "Input 'a' has a missing value (null/NaN) in row 2" in caught.value.message()
    matrix = triton.InferInput("m", list(with_nan.shape), "FP64")
    matrix.set_data_from_numpy(with_nan)
    with pytest.raises(InferenceServerException, match="Input 'a' has a missing value"):
        client.infer("lr", [matrix])
    # never the fallback, never a 5xx: nothing reached the model
    metrics = server.http.get("/metrics").text
    assert 'steward_fallbacks_total{deployment="lr"' not in metrics
    assert 'steward_request_errors_total{deployment="lr",kind="invalid_input"}' in metrics
    assert 'kind="unavailable"' not in metrics


def test_a_model_that_takes_nan_answers(
    server: Server, client: triton.InferenceServerClient, store: Store
) -> None:
    rows = store.frame.head(4).copy()
    rows.iloc[1, 1] = np.nan
    rows.iloc[3, 0] = np.nan
    want = store.hgb.predict(rows).tolist()
    instances = json.dumps({"instances": rows.to_numpy().tolist()}).replace("NaN", "null")
    answer = _post(server, "/predict/hgb", instances.encode())
    assert answer.status_code == 200, answer.text
    assert (answer.json()["predictions"], answer.json()["fallback"]) == (want, None)
    result = client.infer("hgb", _abc(rows.to_numpy()))
    np.testing.assert_array_equal(result.as_numpy("prediction"), want)
    np.testing.assert_allclose(result.as_numpy("probabilities"), store.hgb.predict_proba(rows))
    assert result.get_response()["parameters"]["fallback"] is None


def test_nullable_false_refuses_even_for_a_model_that_takes_nan(
    server: Server, client: triton.InferenceServerClient, store: Store
) -> None:
    refused = _post(server, "/predict/strict", b'{"instances": [{"a": NaN, "b": 1, "c": 2}]}')
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "instances[0].a"
    allowed = _post(server, "/predict/strict", b'{"instances": [{"a": 1, "b": null, "c": 2}]}')
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["fallback"] is None
    rows = store.frame.head(2).to_numpy(copy=True)
    rows[1, 0] = np.nan
    with pytest.raises(InferenceServerException, match="Input 'a' has a missing value"):
        client.infer("strict", _abc(rows))
    rows[1, 0], rows[0, 2] = 0.0, np.nan
    assert client.infer("strict", _abc(rows)).as_numpy("prediction").shape == (2,)


def test_refusals_and_answers_share_a_kept_alive_connection(server: Server) -> None:
    """The protocol's own answers (steward serve's /predict and /infer) keep the connection
    and give each refusal its status and format; a body past the limit is refused unread."""
    good = b'{"instances": [{"a": 1.0, "b": 2.0, "c": 0.5}]}'
    too_large = b'{"instances": [' + b"[0.1, 0.2, 0.3], " * 700_000 + b"[0.1, 0.2, 0.3]]}"
    answers = [
        _post(server, "/predict/lr", b"{not json"),
        _post(server, "/predict/nowhere", good),
        _post(server, "/predict/lr", too_large),
        server.http.post("/v2/models/lr/infer", content=b"[]"),
        _post(server, "/predict/lr", good),
    ]
    assert [a.status_code for a in answers] == [400, 404, 413, 400, 200]
    assert [a.json()["error"]["code"] for a in answers[:3]] == [
        "invalid_input", "not_found", "payload_too_large",
    ]  # fmt: skip
    assert isinstance(answers[3].json()["error"], str)  # OIP's own error format
    assert answers[4].json()["version"] == 1
    assert all(a.headers["server"] == "uvicorn" and "date" in a.headers for a in answers)
    assert all(a.headers["content-type"] == "application/json" for a in answers)
    assert all(int(a.headers["content-length"]) == len(a.content) for a in answers)
