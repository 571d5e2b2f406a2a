"""The alerts and incidents routes: roles, the error envelope (404, 409, 422) and the round
trip of an incident from its alert to its postmortem, on a copy of tests/incidents' store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api.conftest import ApiEnv, build_env
from tests.api.test_api_errors import assert_envelope
from tests.incidents._store import OWNER, build_template, copy_home, fire

from steward.api.app import API_PREFIX as V
from steward.domain.monitoring import Severity
from steward.schemas.serving import DeploymentSpec


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("api-incidents") / "home")


@pytest.fixture
def env(template: Path, tmp_path: Path) -> Iterator[ApiEnv]:
    """The app on a copy of the store, deployment ``prod`` (v1, canary v2 at 50%) and one
    open incident (``ids["incident"]``) opened by a fired alert (``ids["alert"]``)."""
    for made in build_env(copy_home(template, tmp_path / "home")):
        services = made.services
        canary = DeploymentSpec(model="churn", champion=1, canary=2, canary_share=0.5)
        services.deployments.deploy("setup", "prod", canary)
        alert = fire(services.store, "prod", severity=Severity.HIGH)
        (incident,) = services.incidents.escalate("steward-monitor", [alert])
        made.ids.update(incident=str(incident.id), alert=alert.id)
        yield made


def _url(env: ApiEnv, tail: str = "") -> str:
    return f"{V}/incidents/{env.ids['incident']}{tail}"


def test_viewers_read_alerts_incidents_timeline_and_postmortem(env: ApiEnv) -> None:
    viewer = env.headers("viewer")
    alerts = env.http.get(f"{V}/alerts", params={"state": "firing"}, headers=viewer)
    assert alerts.status_code == 200, alerts.text
    assert [a["id"] for a in alerts.json()] == [env.ids["alert"]]
    assert alerts.json()[0]["incident_id"] == int(env.ids["incident"])
    assert env.http.get(f"{V}/alerts?state=resolved", headers=viewer).json() == []
    assert env.http.get(f"{V}/alerts?deployment=other", headers=viewer).json() == []
    listed = env.http.get(f"{V}/incidents", params={"model": "churn"}, headers=viewer).json()
    assert [(i["id"], i["state"], i["owner"]) for i in listed] == [
        (int(env.ids["incident"]), "open", OWNER)
    ]
    assert env.http.get(f"{V}/incidents?state=resolved", headers=viewer).json() == []
    shown = env.http.get(_url(env), headers=viewer).json()
    assert (shown["severity"], shown["deployment"]) == ("high", "prod")
    kinds = [e["kind"] for e in env.http.get(_url(env, "/timeline"), headers=viewer).json()]
    assert kinds[-3:] == ["alert.fired", "incident.opened", "alert.joined"]
    markdown = env.http.get(_url(env, "/postmortem"), headers=viewer)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# Postmortem: INC-{env.ids['incident']}")


def test_viewers_cannot_write_developers_can(env: ApiEnv) -> None:
    writes = [
        ("POST", "/notes", {"text": "looking"}), ("POST", "/mitigate", {"action": "rollback"}),
        ("POST", "/resolve", {}), ("PUT", "/postmortem", {"sections": {"summary": "s"}}),
    ]  # fmt: skip
    for method, tail, body in writes:
        refused = env.http.request(
            method, _url(env, tail), json=body, headers=env.headers("viewer")
        )
        error = assert_envelope(refused, 403, "permission_denied", None)
        assert error["details"]["needed"] == "developer"
    developer = env.headers("developer")
    noted = env.http.post(_url(env, "/notes"), json={"text": "looking"}, headers=developer)
    assert noted.status_code == 200, noted.text
    mitigated = env.http.post(
        _url(env, "/mitigate"), json={"action": "disable-canary", "reason": "v2"}, headers=developer
    )
    assert mitigated.status_code == 200, mitigated.text
    body = mitigated.json()
    assert body["incident"]["state"] == "mitigated"
    assert (body["deployment"]["canary"], body["revision_before"]) == (None, 1)
    assert body["deployment"]["revision"] == 2
    resolved = env.http.post(_url(env, "/resolve"), json={"reason": "fixed"}, headers=developer)
    assert resolved.json()["state"] == "resolved"
    written = env.http.put(
        _url(env, "/postmortem"), json={"sections": {"summary": "Canary drift."}}, headers=developer
    )
    assert written.json()["postmortem"] == {"summary": "Canary drift."}
    timeline = env.http.get(_url(env, "/timeline"), headers=developer).json()
    noted_by = {e["kind"]: e["actor"] for e in timeline}
    assert noted_by["incident.noted"] == noted_by["incident.mitigated"] == "token:developer"


def test_unknown_incident_is_404(env: ApiEnv) -> None:
    admin = env.headers("admin")
    calls = [
        ("GET", "", None), ("GET", "/timeline", None), ("POST", "/notes", {"text": "x"}),
        ("POST", "/resolve", {}),
    ]  # fmt: skip
    for method, tail, body in calls:
        response = env.http.request(method, f"{V}/incidents/4242{tail}", json=body, headers=admin)
        error = assert_envelope(response, 404, "not_found", "incident_id")
        assert "INC-4242" in error["message"]


def test_a_bad_transition_is_409(env: ApiEnv) -> None:
    admin = env.headers("admin")
    assert env.http.post(_url(env, "/resolve"), json={}, headers=admin).status_code == 200
    again = env.http.post(_url(env, "/resolve"), json={}, headers=admin)
    assert_envelope(again, 409, "conflict", "state")
    mitigate = env.http.post(_url(env, "/mitigate"), json={"action": "rollback"}, headers=admin)
    assert_envelope(mitigate, 409, "conflict", "state")


def test_a_mitigation_the_deployment_cannot_take_is_409(env: ApiEnv) -> None:
    response = env.http.post(
        _url(env, "/mitigate"), json={"action": "fallback"}, headers=env.headers("admin")
    )
    error = assert_envelope(response, 409, "conflict", "action")
    assert "no rule or default fallback" in error["message"]


def test_bad_bodies_are_422_naming_the_field(env: ApiEnv) -> None:
    admin = env.headers("admin")
    cases = [
        ("PUT", "/postmortem", {"sections": {"summary": "s", "lessons": "x"}}, "sections.lessons"),
        ("PUT", "/postmortem", {"sections": {}}, "sections"),
        ("POST", "/notes", {"text": "x" * 10_001}, "text"),
        ("POST", "/notes", {"text": "   "}, "text"),
        ("POST", "/mitigate", {"action": "rollback", "colour": "red"}, "colour"),
    ]
    for method, tail, body, field in cases:
        response = env.http.request(method, _url(env, tail), json=body, headers=admin)
        assert_envelope(response, 422, "invalid_input", field)
    ghost = {"action": "rollback", "deployment": "ghost"}
    response = env.http.post(_url(env, "/mitigate"), json=ghost, headers=admin)
    assert_envelope(response, 404, "not_found", "name")  # no such deployment
    assert env.http.get(_url(env), headers=admin).json()["postmortem"] == {}
