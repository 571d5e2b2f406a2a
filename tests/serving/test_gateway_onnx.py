"""A deployment with runtime "onnx" answers through onnxruntime on the version's own ONNX
export, next to a native deployment of the same version, with the same answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from steward.client import Client, log_model
from steward.domain.enums import Flavor
from steward.serving.gateway import create_gateway
from steward.serving.runtime import Runtime
from steward.settings import Settings
from steward.wiring import Services

APPROVALS = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"
COLUMNS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    """churn v1 in production, registered with its ONNX export; deployed twice."""
    home = tmp_path_factory.mktemp("onnx") / "home"
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    model = LogisticRegression().fit(frame, (frame["a"] - frame["c"] > 0).astype(int))
    with (
        Client(home=home) as client,
        Client(settings=Settings(url=None, home=home, actor="reviewer")) as reviewer,
    ):
        client.create_model("churn", owner="ana@example.com")
        client.set_policy(APPROVALS, model="churn")
        uri = log_model(
            model, "churn", sample_input=frame.head(5), export_onnx=True, client=client
        ).uri
        client.gate(uri)
        reviewer.approve(uri)
        client.promote(uri, "production")
        client.deploy("native", model="churn", champion=1)
        client.deploy("onnx", model="churn", champion=1, runtime="onnx")
    return home, model


def test_the_onnx_runtime_answers_through_onnxruntime(
    home: tuple[Path, LogisticRegression],
) -> None:
    root, model = home
    rows = pd.DataFrame(np.random.default_rng(4).normal(size=(64, 3)), columns=COLUMNS)
    services = Services.from_settings(Settings(home=root, url=None))
    runtime = Runtime(services.store, services.artifacts, names=("native", "onnx"))
    try:
        with TestClient(create_gateway(runtime, None, poll_seconds=None)) as http:
            assert runtime.served["onnx"].champion.model.flavor is Flavor.ONNX
            assert runtime.served["native"].champion.model.flavor is Flavor.SKLEARN
            # one version, loaded once per runtime: the cache keeps them apart
            assert {key[2] for key in runtime._models} == {"native", "onnx"}
            meta = http.get("/v2/models/onnx").json()
            assert meta["platform"] == "steward_onnx"
            assert http.get("/v2/models/native").json()["platform"] == "steward_sklearn"
            answers = {name: _predict(http, name, rows) for name in ("native", "onnx")}
    finally:
        services.close()
    labels, probabilities = answers["onnx"]
    assert labels == model.predict(rows).tolist() == answers["native"][0]
    # onnxruntime computes in float32: close to scikit-learn's float64, not equal
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), atol=1e-5)
    np.testing.assert_allclose(answers["native"][1], model.predict_proba(rows), atol=1e-12)


def _predict(http: TestClient, name: str, rows: pd.DataFrame) -> tuple[list[Any], Any]:
    body = {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
            for c in COLUMNS
        ]
    }
    answer = http.post(f"/v2/models/{name}/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    probabilities = np.asarray(outputs["probabilities"]["data"]).reshape(len(rows), -1)
    return outputs["prediction"]["data"], probabilities
