"""``steward deploy --runtime``: onnx for a version with its ONNX export, shown by
``steward deployments``; refused (exit 2, naming the option or field) otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tests.cli.conftest import Invoke
from tests.cli.test_cli_gates import _write

from steward.client import Client, log_model

APPROVALS = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"


def _release(invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *uris: str) -> None:
    """Gate and approve ``uris`` (an approvals-only policy), then promote the first."""
    invoke("policy", "set", str(_write(tmp_path, "p.yaml", APPROVALS)), "--model", "churn")
    for uri in uris:
        invoke("gate", uri)  # exits 3 while the approval is missing
    monkeypatch.setenv("STEWARD_ACTOR", "reviewer")
    for uri in uris:
        assert invoke("approve", uri).exit_code == 0
    assert invoke("promote", uris[0], "--to", "production").exit_code == 0


def test_deploy_with_the_onnx_runtime(
    invoke: Invoke, registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0], "income": [1, 2, 3, 4.0]})
    with Client(home=registry) as client:  # churn v3, with its ONNX export
        log_model(LogisticRegression().fit(x, [0, 0, 1, 1]), "churn", export_onnx=True,
                  client=client)  # fmt: skip
    _release(invoke, tmp_path, monkeypatch, "models:/churn/3", "models:/churn/2")

    deployed = invoke(
        "deploy", "churn-api", "--model", "churn", "--champion", "3", "--runtime", "onnx"
    )
    assert deployed.exit_code == 0, deployed.output
    assert "churn-api r1: champion v3, runtime onnx" in deployed.stdout
    listed = json.loads(invoke("deployments", "--json").stdout)
    assert [(d["name"], d["runtime"]) for d in listed] == [("churn-api", "onnx")]
    table = invoke("deployments")
    assert "churn-api" in table.stdout
    assert "onnx" in table.stdout

    # v2 was registered without its ONNX export
    refused = invoke(
        "deploy", "churn-api", "--model", "churn", "--champion", "3", "--canary", "2",
        "--canary-share", "0.1", "--runtime", "onnx",
    )  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "runtime" in refused.stderr
    assert "export_onnx=True" in refused.stderr
    native = invoke(
        "deploy", "churn-api", "--model", "churn", "--champion", "3", "--canary", "2",
        "--canary-share", "0.1",
    )  # fmt: skip
    assert native.exit_code == 0, native.output
    assert "runtime" not in native.stdout  # native: the default, not repeated


def test_a_bad_runtime_exits_2_naming_the_option(invoke: Invoke, registry: Path) -> None:
    result = invoke("deploy", "x", "--model", "churn", "--champion", "1", "--runtime", "tpu")
    assert result.exit_code == 2, result.output
    assert "--runtime" in result.stderr
