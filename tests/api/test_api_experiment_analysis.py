"""An experiment's analysis and decision over the API: developers analyse (JSON or a standalone
page) and decide; applying a ship decision is a promotion to production and needs the approver
role, as ``POST .../transitions`` does; every refusal is in the one envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.api.conftest import ApiEnv, build_env
from tests.api.test_api_errors import assert_envelope
from tests.experiments import scenario

from steward.api.app import API_PREFIX
from steward.domain.experiments import Experiment, ExperimentAnalysis, ExperimentState
from steward.store.base import EventFilter

V = API_PREFIX
ANALYSIS = f"{V}/experiments/checkout/analysis"
DECISION = f"{V}/experiments/checkout/decision"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario.build_template(tmp_path_factory.mktemp("api-analysis") / "home")


@pytest.fixture
def env(template: Path, tmp_path: Path) -> Iterator[ApiEnv]:
    """An app on a copy of the scenario, with experiment ``checkout`` started (no traffic)."""
    for made in build_env(scenario.copy_home(template, tmp_path / "home")):
        scenario.create(made.services)
        yield made


def _decide(env: ApiEnv, who: str, **body: Any) -> Any:
    return env.http.post(DECISION, json=body, headers=env.headers(who))


def test_developers_analyse_as_json_or_as_a_page(env: ApiEnv) -> None:
    scenario.traffic(env.services, 4_000, rates={1: 0.10, 2: 0.14})
    denied = env.http.post(ANALYSIS, headers=env.headers("viewer"))
    error = assert_envelope(denied, 403, "permission_denied", None)
    assert error["details"] == {"needed": "developer", "role": "viewer"}

    answer = env.http.post(ANALYSIS, headers=env.headers("developer"))
    assert answer.status_code == 200, answer.text
    analysis = ExperimentAnalysis.model_validate_json(answer.content)
    assert (analysis.recommendation.value, analysis.ship_variant) == ("ship", 2)
    assert [m.metric for m in analysis.metrics] == ["converted", "revenue", "latency"]
    assert not analysis.srm.mismatch

    page = env.http.post(ANALYSIS, params={"format": "html"}, headers=env.headers("developer"))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count('<svg class="forest"') == 3
    assert "ship v2" in page.text

    with env.services.store.read() as rx:
        events = rx.list_events(EventFilter(kind="experiment.analyzed"), limit=10, offset=0)
    assert [e.actor for e in events] == ["token:developer"] * 2
    bad = env.http.post(ANALYSIS, params={"format": "pdf"}, headers=env.headers("developer"))
    assert_envelope(bad, 422, "invalid_input", "format")


def test_unknown_experiments_are_404_naming_the_name(env: ApiEnv) -> None:
    ghost = f"{V}/experiments/ghost"
    for url, body in ((f"{ghost}/analysis", None),
                      (f"{ghost}/decision", {"action": "iterate", "reason": "r"})):  # fmt: skip
        answer = env.http.post(url, json=body, headers=env.headers("developer"))
        assert_envelope(answer, 404, "not_found", "name")


def test_a_decision_is_recorded_once(env: ApiEnv) -> None:
    answer = _decide(env, "developer", action="ship", reason="v2 converts 38% better")
    assert answer.status_code == 200, answer.text
    decided = Experiment.model_validate_json(answer.content)
    assert decided.state is ExperimentState.DECIDED
    assert decided.decision is not None
    assert (decided.decision.variant, decided.decision.applied) == (2, False)
    assert decided.decision.decided_by == "token:developer"
    assert env.services.deployments.get("churn-ab").split is not None  # not applied
    again = _decide(env, "developer", action="iterate", reason="again")
    error = assert_envelope(again, 409, "conflict", "name")
    assert "already decided" in error["message"]


def test_applying_a_ship_needs_the_approver_role(env: ApiEnv) -> None:
    body = {"action": "ship", "reason": "v2 wins", "apply": True}
    denied = _decide(env, "developer", **body)
    error = assert_envelope(denied, 403, "permission_denied", None)
    assert error["details"] == {"needed": "approver", "role": "developer"}
    assert env.services.experiments.get("checkout").state is ExperimentState.RUNNING

    answer = _decide(env, "approver", **body)
    assert answer.status_code == 200, answer.text
    decision = answer.json()["decision"]
    assert (decision["variant"], decision["applied"]) == (2, True)
    deployment = env.services.deployments.get("churn-ab")
    assert (deployment.champion, deployment.split) == (2, None)
    version = env.services.registry.get_version("models:/churn/2")
    assert version.status.value == "production"


def test_developers_apply_a_rollback(env: ApiEnv) -> None:
    answer = _decide(env, "developer", action="rollback", reason="latency", apply=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"]["applied"] is True
    deployment = env.services.deployments.get("churn-ab")
    assert (deployment.champion, deployment.split) == (1, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "ship"}, "reason"),
        ({"action": "ship", "reason": ""}, "reason"),
        ({"action": "ship", "reason": "   "}, "reason"),
        ({"action": "launch", "reason": "r"}, "action"),
        ({"action": "ship", "reason": "r", "variant": 1}, "variant"),
        ({"action": "ship", "reason": "r", "variant": 0}, "variant"),
        ({"action": "iterate", "reason": "r", "variant": 2}, "variant"),
        ({"action": "ship", "reason": "r", "apply": "maybe"}, "apply"),
        ({"action": "ship", "reason": "r", "force": True}, "force"),
    ],
    ids=[
        "no-reason",
        "empty-reason",
        "blank-reason",
        "bad-action",
        "control-shipped",
        "variant-zero",
        "iterate-variant",
        "apply-text",
        "extra-field",
    ],
)
def test_a_malformed_decision_is_422_naming_the_field(
    env: ApiEnv, body: dict[str, Any], field: str
) -> None:
    assert_envelope(_decide(env, "approver", **body), 422, "invalid_input", field)
    assert env.services.experiments.get("checkout").state is ExperimentState.RUNNING
