"""/api/v1/monitors: roles, unknown deployments, specs refused naming the field, the windows,
the HTML report and a run, every failure in the one error envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.api.conftest import ApiEnv, build_env
from tests.cli.test_cli_monitor import DRIFT, END, build_deployments, window
from tests.client.conftest import LiveServer

from steward.client import Client
from steward.domain.enums import Role
from steward.domain.monitoring import MonitorWindow, WindowStatus
from steward.errors import InvalidInput, NotFound
from steward.settings import Settings

MONITORS = "/api/v1/monitors"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    """``churn-api`` (an hour of traffic before END) and ``quiet-api`` (none), one token per
    role."""
    home: Path = tmp_path_factory.mktemp("monitors") / "home"
    build_deployments(home)
    yield from build_env(home)


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def add_windows(env: ApiEnv, windows: list[MonitorWindow]) -> None:
    with env.services.store.write("test") as tx:
        for stored in windows:
            tx.add_window(stored)


# -- roles -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"{MONITORS}/churn-api", {"window_s": 600}),
        ("POST", f"{MONITORS}/run", {"deployments": ["quiet-api"]}),
    ],
)
def test_writing_needs_a_developer(
    env: ApiEnv, method: str, path: str, body: dict[str, Any]
) -> None:
    assert error_of(env.http.request(method, path, json=body), 401)["code"] == "unauthenticated"
    viewer = env.http.request(method, path, json=body, headers=env.headers("viewer"))
    denied = error_of(viewer, 403)
    assert denied["code"] == "permission_denied"
    assert "monitor" in denied["message"]
    allowed = env.http.request(method, path, json=body, headers=env.headers("developer"))
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize(
    "path",
    [f"{MONITORS}/churn-api", f"{MONITORS}/churn-api/windows", f"{MONITORS}/churn-api/report.html"],
)
def test_reading_needs_a_token(env: ApiEnv, path: str) -> None:
    assert error_of(env.http.get(path), 401)["code"] == "unauthenticated"


# -- the spec --------------------------------------------------------------------------------
def test_put_and_get_a_spec(env: ApiEnv) -> None:
    developer, viewer = env.headers("developer"), env.headers("viewer")
    default = env.http.get(f"{MONITORS}/quiet-api", headers=viewer)
    assert default.status_code == 200, default.text
    assert default.json()["configured"] is False
    assert default.json()["spec"]["rules"]  # the risk tier's default rules

    spec = {
        "interval_s": 900, "window_s": 1800, "thresholds": {"age": 0.01}, "drift_share": 0.25,
        "rules": [{"name": "drifting", "metric": "drift.share_drifted", "op": ">=",
                   "threshold": 0.25, "severity": "high", "for_windows": 2}],
    }  # fmt: skip
    stored = env.http.put(f"{MONITORS}/quiet-api", json=spec, headers=developer)
    assert stored.status_code == 200, stored.text
    assert stored.json()["deployment"] == "quiet-api"
    assert stored.json()["updated_by"] == "token:developer"
    read = env.http.get(f"{MONITORS}/quiet-api", headers=viewer).json()
    assert read["configured"] is True
    assert read["spec"]["rules"][0]["name"] == "drifting"
    assert read["spec"]["window_s"] == 1800


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"drift_share": 2}, "drift_share"),
        ({"interval_s": 5}, "interval_s"),
        ({"window_s": "an hour"}, "window_s"),
        ({"rules": [{"name": "a", "metric": "bad metric", "op": ">", "threshold": 1}]},
         "rules.0.metric"),
        ({"rules": [{"name": "a", "metric": "slo.p95_ms", "op": "=>", "threshold": 1}]},
         "rules.0.op"),
        ({"rules": [{"name": "a", "metric": "slo.p95_ms", "op": ">", "threshold": 1,
                     "severity": "urgent"}]}, "rules.0.severity"),
        ({"thresholds": {"a\x00": 0.1}}, "thresholds"),
        ({"bogus": 1}, "bogus"),
    ],
)  # fmt: skip
def test_a_bad_spec_is_a_422_naming_the_field(
    env: ApiEnv, body: dict[str, Any], field: str
) -> None:
    response = env.http.put(f"{MONITORS}/churn-api", json=body, headers=env.headers("developer"))
    error = error_of(response, 422)
    assert error["code"] == "invalid_input"
    assert error["details"]["field"] == field
    assert field in error["message"]


# -- unknown deployments ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"{MONITORS}/nope", {}),
        ("GET", f"{MONITORS}/nope", None),
        ("GET", f"{MONITORS}/nope/windows", None),
        ("GET", f"{MONITORS}/nope/report.html", None),
        ("POST", f"{MONITORS}/run", {"deployments": ["quiet-api", "nope"]}),
    ],
)
def test_an_unknown_deployment_is_a_404(
    env: ApiEnv, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = env.http.request(method, path, json=body, headers=env.headers("developer"))
    error = error_of(response, 404)
    assert error["code"] == "not_found"
    assert "nope" in error["message"]


# -- windows and the report ------------------------------------------------------------------
def test_windows_and_the_html_report(env: ApiEnv) -> None:
    viewer = env.headers("viewer")
    missing = error_of(env.http.get(f"{MONITORS}/churn-api/report.html", headers=viewer), 404)
    assert "steward monitor run churn-api" in missing["message"]

    add_windows(env, [
        window(-1, {"drift.share_drifted": 0.0, "slo.p95_ms": 12.0}),
        window(0, {"drift.share_drifted": 0.5, "slo.p95_ms": 20.0}, report={"drift": DRIFT}),
    ])  # fmt: skip
    listed = env.http.get(f"{MONITORS}/churn-api/windows", params={"limit": 1}, headers=viewer)
    assert listed.status_code == 200, listed.text
    assert [w["metrics"]["slo.p95_ms"] for w in listed.json()] == [20.0]  # newest first

    page = env.http.get(f"{MONITORS}/churn-api/report.html", headers=viewer)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "share_drifted" in page.text
    assert "<polyline" in page.text  # the trend over both windows


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_a_bad_limit_is_a_422(env: ApiEnv, limit: str) -> None:
    response = env.http.get(
        f"{MONITORS}/churn-api/windows", params={"limit": limit}, headers=env.headers("viewer")
    )
    assert error_of(response, 422)["details"]["field"] == "limit"


# -- running ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"window": "1.5h"}, "window"),
        ({"window": "90d"}, "window"),
        ({"end": "2025-03-01T12:00:00"}, "end"),
        ({"engine": "spark"}, "engine"),
        ({"deployments": "churn-api"}, "deployments"),
        ({"deployments": [""]}, "deployments"),
    ],
)
def test_a_bad_run_request_is_a_422(env: ApiEnv, body: dict[str, Any], field: str) -> None:
    response = env.http.post(f"{MONITORS}/run", json=body, headers=env.headers("developer"))
    error = error_of(response, 422)
    assert error["details"]["field"] == field


def test_a_run_without_traffic_stores_a_no_data_window(env: ApiEnv) -> None:
    body = {"deployments": ["quiet-api"], "end": END.isoformat(), "window": "1h"}
    response = env.http.post(f"{MONITORS}/run", json=body, headers=env.headers("developer"))
    assert response.status_code == 200, response.text
    [outcome] = response.json()["outcomes"]
    assert outcome["window"]["status"] == "no_data"
    assert outcome["window"]["deployment"] == "quiet-api"
    assert outcome["fired"] == []


# -- the SDK, in-process and over HTTP -------------------------------------------------------
def test_the_sdk_answers_alike_in_process_and_over_http(env: ApiEnv) -> None:
    settings = env.services.settings
    server = LiveServer(settings).start()
    try:
        remote = Client(server.url, token=server.token(Role.DEVELOPER))
        local = Client(settings=Settings(url=None, home=settings.home))
        stored = remote.configure_monitor("churn-api", {"window_s": 7200, "drift_share": 0.4})
        assert stored.spec.window_s == 7200
        remote.run_monitors("churn-api", window="2h", end=END)  # not on other tests' windows
        for client in (remote, local):
            read = client.get_monitor("churn-api")
            assert read.configured is True
            assert read.spec == stored.spec
        assert remote.monitor_windows("churn-api", limit=5) == local.monitor_windows(
            "churn-api", limit=5
        )
        assert remote.monitor_report_html("churn-api") == local.monitor_report_html("churn-api")
        for client in (remote, local):
            result = client.run_monitors("quiet-api", window="1h", end=END)
            assert [o.window.status for o in result.outcomes] == [WindowStatus.NO_DATA]
            with pytest.raises(InvalidInput, match="window") as bad:
                client.run_monitors("quiet-api", window="an hour")
            assert bad.value.field == "window"
            with pytest.raises(NotFound, match="nope"):
                client.get_monitor("nope")
            with pytest.raises(InvalidInput) as spec:
                client.configure_monitor("churn-api", {"drift_share": 5})
            assert spec.value.field == "drift_share"
        remote.close()
        local.close()
    finally:
        server.stop()
