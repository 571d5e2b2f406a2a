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


CANARY = ["--canary", "1", "--canary-share", "0.1"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--split", "2=half"], "--split"),
        (["--fallback", "teleport"], "--fallback"),
        (["--fallback", "default:{oops"], "not valid JSON"),
        (["--canary", "1"], "canary"),
        ([*CANARY, "--canary-max-error-rate", "1.5"], "--canary-max-error-rate"),
        ([*CANARY, "--canary-max-error-rate", "lots"], "--canary-max-error-rate"),
        ([*CANARY, "--canary-max-p95-ms", "0"], "--canary-max-p95-ms"),
        ([*CANARY, "--canary-max-p95-ms", "50", "--slo-window", "soon"], "--slo-window"),
        ([*CANARY, "--canary-max-p95-ms", "50", "--slo-window", "2s"], "--slo-window"),
        ([*CANARY, "--canary-max-p95-ms", "50", "--slo-window", "2h"], "--slo-window"),
        ([*CANARY, "--canary-max-p95-ms", "50", "--slo-min-requests", "0"],
         "--slo-min-requests"),
        ([*CANARY, "--slo-window", "60"], "--canary-max-error-rate"),
        (["--canary-max-error-rate", "0.1"], "add --canary"),
        (["--split", "1=1,2=1", "--unit-key", "u", "--canary-max-p95-ms", "9"], "--split"),
    ],
)  # fmt: skip
def test_bad_options_exit_2(invoke: Invoke, registry: Path, args: list[str], field: str) -> None:
    result = invoke("deploy", "x", "--model", "churn", "--champion", "2", *args)
    assert result.exit_code == 2, result.output
    assert field in result.stderr
    assert "Traceback" not in result.output


def test_deploy_with_a_canary_slo(
    invoke: Invoke, registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _production(invoke, tmp_path, monkeypatch)  # v2 in production; the reviewer acts from here
    v1 = "models:/churn/1"
    data = str(_data(tmp_path))
    evaluated = invoke(
        "evaluate", v1, "--data", data, "--label", "y", "--groups", "region", "--resamples", "0"
    )
    assert evaluated.exit_code == 0, evaluated.output
    invoke("gate", v1)
    assert invoke("approve", v1).exit_code == 0
    deployed = invoke(
        "deploy", "churn-api", "--model", "churn", "--champion", "2", "--canary", "1",
        "--canary-share", "0.2", "--canary-max-error-rate", "0.05", "--canary-max-p95-ms", "50",
        "--slo-window", "2m", "--slo-min-requests", "30", "--json",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    slo = {"max_error_rate": 0.05, "max_p95_ms": 50.0, "window_s": 120, "min_requests": 30}
    assert json.loads(deployed.stdout)["canary_slo"] == slo
    listed = invoke("deployments")
    assert listed.exit_code == 0, listed.output
    assert "SLO" in listed.stdout
    only_rate = invoke(
        "deploy", "churn-api", "--model", "churn", "--champion", "2", "--canary", "1",
        "--canary-share", "0.2", "--canary-max-error-rate", "0.1",
    )  # fmt: skip
    assert only_rate.exit_code == 0, only_rate.output
    assert "SLO errors <= 10.0% over 60 s, from 50 requests" in only_rate.stdout
    back = invoke("rollback", "churn-api", "--json")
    assert back.exit_code == 0, back.output
    rolled_back = json.loads(back.stdout)
    assert (rolled_back["canary"], rolled_back["canary_slo"]) == (None, None)
