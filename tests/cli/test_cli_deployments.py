"""deploy, deployments and rollback on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke
from tests.cli.test_cli_gates import POLICY, _data, _write


def _production(invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """churn v2 in production, through the CLI's own release steps."""
    uri = "models:/churn/2"
    invoke("policy", "set", str(_write(tmp_path, "p.yaml", POLICY)), "--model", "churn")
    data = str(_data(tmp_path))
    assert (
        invoke("evaluate", uri, "--data", data, "--label", "y", "--resamples", "0").exit_code == 0
    )
    invoke("gate", uri)
    monkeypatch.setenv("STEWARD_ACTOR", "reviewer")
    assert invoke("approve", uri).exit_code == 0
    assert invoke("promote", uri, "--to", "production").exit_code == 0


def test_deploy_list_and_rollback(
    invoke: Invoke, registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = invoke("deploy", "churn-api", "--model", "churn", "--champion", "1")
    assert refused.exit_code == 3  # GateFailed: v1 is not in production
    assert "a champion must be production" in refused.stderr

    _production(invoke, tmp_path, monkeypatch)
    deployed = invoke(
        "deploy", "churn-api", "--model", "churn", "--champion", "2",
        "--fallback", 'default:{"churn": false}', "--timeout-ms", "300", "--batch-max", "16",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    assert "churn-api r1: champion v2" in deployed.stdout
    listed = json.loads(invoke("deployments", "--json").stdout)
    assert [(d["name"], d["champion"], d["timeout_ms"]) for d in listed] == [("churn-api", 2, 300)]
    assert listed[0]["fallbacks"] == [{"kind": "default", "rules": None, "value": {"churn": False}}]
    assert listed[0]["batching"] == {"max_batch": 16, "max_wait_ms": 2.0}
    table = invoke("deployments")
    assert "churn-api" in table.stdout
    assert "default" in table.stdout

    nothing = invoke("rollback", "churn-api")
    assert nothing.exit_code == 5  # Conflict: no canary or split to take back
    assert "Nothing to roll back" in nothing.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--split", "2=half"], "--split"),
        (["--fallback", "teleport"], "--fallback"),
        (["--fallback", "default:{oops"], "not valid JSON"),
        (["--canary", "1"], "canary"),
    ],
)
def test_bad_options_exit_2(invoke: Invoke, registry: Path, args: list[str], field: str) -> None:
    result = invoke("deploy", "x", "--model", "churn", "--champion", "2", *args)
    assert result.exit_code == 2, result.output
    assert field in result.stderr
