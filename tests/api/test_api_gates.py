"""Release gates over the REST API: the rules hold below the adapters, whoever calls."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from tests.api.test_api_errors import assert_envelope

from steward.api.app import API_PREFIX
from steward.flavors import package_model
from steward.schemas.registry import ModelCreate, VersionCreate

V = API_PREFIX
APPROVALS_ONLY = "name: {name}\nchecks:\n  - check: approvals\n    count: 1\n"


def _register(api: Any, name: str) -> str:
    services = api.services
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.random(20), "b": rng.random(20)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    files = {
        file: services.registry.upload_artifact(content)
        for file, content in package_model(model).files.items()
    }
    services.registry.create_model("setup", ModelCreate(name=name))
    services.registry.create_version("setup", name, VersionCreate(flavor="sklearn", files=files))
    return f"{V}/models/{name}/versions/1"


def _post(api: Any, url: str, who: str, body: Any = None) -> Any:
    return api.http.post(url, json=body, headers=api.headers(who))


def test_transitions_route_refuses_a_version_without_a_current_passed_gate(api: Any) -> None:
    url = _register(api, "enforced")
    refused = _post(api, f"{url}/transitions", "admin", {"to": "production"})
    assert_envelope(refused, 409, "gate_failed", "to")  # registered: never gated

    policy = APPROVALS_ONLY.format(name="enforced-policy")
    body = {"text": policy, "model": "enforced"}
    assert _post(api, f"{V}/policies", "approver", body).status_code == 201
    report = _post(api, f"{url}/gate", "developer")
    assert report.status_code == 201, report.text
    assert report.json()["verdict"] == "awaiting_approval"
    approved = _post(api, f"{url}/approvals", "approver", {"comment": "ok"})
    assert approved.status_code == 201, approved.text
    assert approved.json()["approval"]["approver"] == "token:approver"
    assert approved.json()["report"]["verdict"] == "passed"

    # the policy in force changes: the passed report is no longer current evidence
    changed = {"text": policy.replace("count: 1", "count: 1\n    role: approver")}
    assert (
        api.http.put(
            f"{V}/policies/enforced-policy", json=changed, headers=api.headers("approver")
        ).status_code
        == 200
    )
    stale = _post(api, f"{url}/transitions", "approver", {"to": "production"})
    error = assert_envelope(stale, 409, "gate_failed", "gate")
    assert error["details"]["reason"] == "policy_changed"
    version = api.http.get(url, headers=api.headers("viewer")).json()
    assert version["status"] == "approved"
    model = api.http.get(f"{V}/models/enforced", headers=api.headers("viewer")).json()
    assert model["aliases"] == {}

    assert _post(api, f"{url}/gate", "developer").json()["verdict"] == "passed"
    moved = _post(api, f"{url}/transitions", "approver", {"to": "production", "reason": "go"})
    assert moved.status_code == 201, moved.text
    assert moved.json() == [{"version": 1, "from_status": "approved", "to_status": "production"}]
    history = api.http.get(f"{V}/models/enforced/history", headers=api.headers("viewer")).json()
    assert history["aliases"] == {"champion": 1}
    assert history["entries"][-1]["actor"] == "token:approver"


def test_gate_report_as_json_and_as_a_web_page(api: Any) -> None:
    url = _register(api, "reported")
    missing = api.http.get(f"{url}/gate", headers=api.headers("viewer"))
    assert_envelope(missing, 404, "not_found", "uri")
    ran = _post(api, f"{url}/gate", "developer", {"policy": APPROVALS_ONLY.format(name="adhoc")})
    assert ran.status_code == 201
    latest = api.http.get(f"{url}/gate", headers=api.headers("viewer"))
    assert latest.json()["id"] == ran.json()["id"]
    page = api.http.get(f"{url}/gate?format=html", headers=api.headers("viewer"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "adhoc" in page.text


def test_a_bad_policy_names_its_line(api: Any) -> None:
    text = "name: lined\nchecks:\n  - check: approvals\n    quorum: 2\n"
    response = _post(api, f"{V}/policies", "approver", {"text": text})
    error = assert_envelope(response, 422, "invalid_input", "policy")
    assert error["details"]["line"] == 4
    assert "line 4" in error["message"]


def test_a_reproduction_record_carries_the_caller(api: Any) -> None:
    url = _register(api, "reproduced")
    record = {"matched": True, "tolerance": 0.0, "recorded": {"auc": 0.9},
              "reproduced": {"auc": 0.9}, "detail": "ran on my laptop"}  # fmt: skip
    response = _post(api, f"{url}/reproductions", "approver", record)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["created_by"], body["matched"], body["version"]) == ("token:approver", True, 1)
