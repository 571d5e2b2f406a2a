"""``steward serve``: the gateway app handed to uvicorn (stubbed), and its refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.cli.conftest import Invoke
from tests.cli.test_cli_deployments import _production
from typer.testing import CliRunner

from steward.api.http_protocol import CoalescingHttpToolsProtocol
from steward.cli.main import app
from steward.serving.gateway import Gateway

GATEWAY_ROUTES = {
    "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
    "/v2/models/{name}/infer", "/predict/{name}", "/metrics", "/v2",
    "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready",
    "/v2/models/{name}/versions/{version}/infer",
}  # fmt: skip


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``uvicorn.run`` call; each one starts the app (its lifespan) and asks it a few
    questions, as a real server would, instead of binding a port."""
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        with TestClient(app) as http:
            ready = http.get("/v2/health/ready").json()
            body = {"instances": [{"age": 35.0, "income": 3.0}]}
            answer = http.post("/predict/churn-api", json=body)
        calls.append({"app": app, "ready": ready, "answer": answer, **kwargs})

    monkeypatch.setattr("uvicorn.run", fake_run)
    return calls


def test_serve_runs_the_gateway_on_host_and_port(
    invoke: Invoke,
    registry: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runs: list[dict[str, Any]],
) -> None:
    _production(invoke, tmp_path, monkeypatch)
    deployed = invoke("deploy", "churn-api", "--model", "churn", "--champion", "2")
    assert deployed.exit_code == 0, deployed.output
    result = invoke("serve", "--host", "0.0.0.0", "--port", "9123", "churn-api")
    assert result.exit_code == 0, result.output
    assert "http://0.0.0.0:9123" in result.stdout
    assert "churn-api" in result.stdout
    (call,) = runs
    assert (call["host"], call["port"], call["lifespan"]) == ("0.0.0.0", 9123, "on")
    assert "workers" not in call  # one process, one event loop
    assert call["http"] is CoalescingHttpToolsProtocol  # a response leaves in one write
    assert call["access_log"] is False  # never printed at level warning, and it costs ~3%
    assert call["proxy_headers"] is False  # the gateway never reads the client's address
    app = call["app"]
    assert isinstance(app.state.gateway, Gateway)
    assert app.state.gateway.runtime.names == ("churn-api",)
    assert {getattr(r, "path", None) for r in app.routes} == GATEWAY_ROUTES
    assert call["ready"] == {"ready": True}
    assert call["answer"].status_code == 200, call["answer"].text
    assert call["answer"].json()["version"] == 2


def test_serve_every_deployment_by_default(
    invoke: Invoke, registry: Path, runs: list[dict[str, Any]]
) -> None:
    result = invoke("serve")
    assert result.exit_code == 0, result.output
    assert "every deployment" in result.stdout
    (call,) = runs
    assert call["app"].state.gateway.runtime.names == ()
    assert (call["host"], call["port"]) == ("127.0.0.1", 8000)
    assert call["answer"].status_code == 404  # nothing deployed yet: not served here


def test_serve_unknown_deployment_exits_4_before_binding(
    invoke: Invoke, registry: Path, runs: list[dict[str, Any]]
) -> None:
    result = invoke("serve", "nope", "--port", "9124")
    assert result.exit_code == 4, result.output
    assert "No deployment named 'nope'" in result.stderr
    assert "steward deployments" in result.stderr
    assert runs == []


def test_serve_refuses_a_remote_url(runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["--url", "http://steward.example:5000", "serve"])
    assert result.exit_code == 2
    assert "reads deployments from the store itself" in result.stderr
    assert runs == []


def test_serve_bad_port_exits_2(invoke: Invoke) -> None:
    assert invoke("serve", "--port", "0").exit_code == 2


def test_serve_passes_the_alert_webhook_to_the_gateway(
    invoke: Invoke, registry: Path, runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = "https://hooks.example.com/services/T0/B0/flag"
    assert invoke("serve", "--alert-webhook", flag).exit_code == 0
    monkeypatch.setenv("STEWARD_ALERTS_WEBHOOK_URL", "https://hooks.example.com/services/env")
    assert invoke("serve").exit_code == 0
    assert invoke("serve", "--alert-webhook", flag).exit_code == 0  # the flag wins
    urls = [call["app"].state.gateway.guard.alerts.url for call in runs]
    assert urls == [flag, "https://hooks.example.com/services/env", flag]
    monkeypatch.delenv("STEWARD_ALERTS_WEBHOOK_URL")
    assert invoke("serve").exit_code == 0
    assert runs[-1]["app"].state.gateway.guard.alerts is None


def test_serve_refuses_a_bad_alert_webhook(invoke: Invoke, runs: list[dict[str, Any]]) -> None:
    result = invoke("serve", "--alert-webhook", "hooks.example.com/secret-token")
    assert result.exit_code == 2, result.output
    assert "alert webhook must be an http(s) URL" in result.stderr
    assert "secret-token" not in result.stderr  # the path may hold the hook's token
    assert runs == []
