"""``steward experiment analyze`` and ``steward experiment decide``: the sample-ratio check
before any result, a table per role, JSON and a standalone page from one analysis, exit 3 when
the analysis needs attention; decisions recorded, applied when asked, refused when malformed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke
from tests.experiments import scenario

from steward.domain.experiments import ExperimentAnalysis, ExperimentState
from steward.errors import Conflict, GateFailed, InvalidInput, NotFound
from steward.settings import Settings
from steward.store.base import EventFilter
from steward.wiring import Services


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario.build_template(tmp_path_factory.mktemp("cli-analysis") / "home")


@pytest.fixture
def services(template: Path, home: Path) -> Iterator[Services]:
    """HOME with churn-ab and experiment ``checkout`` (no traffic yet)."""
    made = scenario.open_home(template, home)
    scenario.create(made)
    yield made
    made.close()


def _order(text: str, *parts: str) -> None:
    positions = [text.index(part) for part in parts]
    assert positions == sorted(positions), list(zip(parts, positions, strict=True))


def test_analyze_reads_the_split_first_then_each_role_then_the_verdict(
    invoke: Invoke, services: Services
) -> None:
    scenario.traffic(services, 4_000, rates={1: 0.10, 2: 0.14})
    result = invoke("experiment", "analyze", "checkout")
    assert result.exit_code == 0, result.output
    out = result.stdout
    _order(out, "Sample ratio as designed", "Units per variant", "Primary metric",
           "Secondary metrics", "Guardrails", "Recommendation: ship v2")  # fmt: skip
    assert "of the planned 10,000 units" in out
    assert "v1 (control)" in out
    assert "better" in out
    assert "converted improves for v2" in out
    assert "steward experiment decide checkout" in result.stderr  # the hint, off stdout


def test_analyze_as_json_with_the_page_is_one_analysis(
    invoke: Invoke, services: Services, tmp_path: Path
) -> None:
    scenario.traffic(services, 4_000, rates={1: 0.10, 2: 0.14})
    page = tmp_path / "checkout.html"
    result = invoke("experiment", "analyze", "checkout", "--json", "--html", str(page))
    assert result.exit_code == 0, result.output
    analysis = ExperimentAnalysis.model_validate(json.loads(result.stdout))
    assert (analysis.recommendation.value, analysis.ship_variant) == ("ship", 2)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count('<svg class="forest"') == 3
    with services.store.read() as rx:
        events = rx.list_events(EventFilter(kind="experiment.analyzed"), limit=10, offset=0)
    assert len(events) == 1


def test_a_broken_split_is_a_red_warning_and_exits_3(invoke: Invoke, services: Services) -> None:
    scenario.traffic(services, 4_000, rates={1: 0.10, 2: 0.14}, drop={2: 0.3}, seed=7)
    result = invoke("experiment", "analyze", "checkout")
    assert result.exit_code == GateFailed.exit_code == 3, result.output
    _order(result.stdout, "Sample ratio mismatch", "cannot be trusted", "Units per variant",
           "Primary metric", "Recommendation: inconclusive")  # fmt: skip
    as_json = invoke("experiment", "analyze", "checkout", "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["srm"]["mismatch"] is True


def test_a_failing_guardrail_exits_3_and_recommends_rollback(
    invoke: Invoke, services: Services
) -> None:
    scenario.traffic(services, 4_000, rates={1: 0.10, 2: 0.14}, latency={1: 5.0, 2: 6.0}, seed=8)
    result = invoke("experiment", "analyze", "checkout")
    assert result.exit_code == 3, result.output
    assert "failing" in result.stdout
    assert "Recommendation: rollback" in result.stdout
    assert "Guardrail latency fails for v2" in result.stdout


def test_analyze_an_unknown_experiment_exits_4(invoke: Invoke, services: Services) -> None:
    result = invoke("experiment", "analyze", "ghost")
    assert result.exit_code == NotFound.exit_code == 4
    assert "ghost" in result.stderr


def test_decide_records_without_touching_the_deployment_then_refuses_twice(
    invoke: Invoke, services: Services
) -> None:
    result = invoke("experiment", "decide", "checkout", "ship", "--reason", "v2 converts")
    assert result.exit_code == 0, result.output
    assert "Recorded ship v2 on experiment checkout" in result.stdout
    assert "churn-ab is unchanged (no --apply)" in result.stdout
    assert "steward rollback" not in result.stdout
    assert services.deployments.get("churn-ab").split is not None
    decided = services.experiments.get("checkout")
    assert decided.state is ExperimentState.DECIDED
    assert decided.decision is not None
    assert (decided.decision.variant, decided.decision.applied) == (2, False)
    again = invoke("experiment", "decide", "checkout", "iterate", "--reason", "again")
    assert again.exit_code == Conflict.exit_code == 5
    assert "already decided" in again.stderr


def test_decide_ship_with_apply_promotes_and_makes_the_champion(
    invoke: Invoke, services: Services
) -> None:
    result = invoke("experiment", "decide", "checkout", "ship", "--reason", "v2 wins", "--apply")
    assert result.exit_code == 0, result.output
    assert "v2 is now the champion of churn-ab" in result.stdout
    deployment = services.deployments.get("churn-ab")
    assert (deployment.champion, deployment.split) == (2, None)
    assert services.registry.get_version("models:/churn/2").status.value == "production"


def test_decide_rollback_with_apply_as_json(invoke: Invoke, services: Services) -> None:
    result = invoke("experiment", "decide", "checkout", "rollback", "--reason", "latency",
                    "--apply", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)["decision"]
    assert (decision["action"], decision["applied"], decision["variant"]) == (
        "rollback",
        True,
        None,
    )
    deployment = services.deployments.get("churn-ab")
    assert (deployment.champion, deployment.split) == (1, None)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ship"], "--reason"),
        (["ship", "--reason", "   "], "reason"),
        (["ship", "--reason", "why", "--variant", "1"], "variant"),
        (["rollback", "--reason", "why", "--variant", "2"], "variant"),
        (["launch", "--reason", "why"], "launch"),
    ],
    ids=["no-reason", "blank-reason", "control-shipped", "rollback-variant", "bad-action"],
)
def test_a_malformed_decision_exits_2_naming_it(
    invoke: Invoke, services: Services, args: list[str], named: str
) -> None:
    result = invoke("experiment", "decide", "checkout", *args)
    assert result.exit_code == InvalidInput.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output
    assert services.experiments.get("checkout").state is ExperimentState.RUNNING


def test_decide_on_an_unknown_experiment_exits_4(invoke: Invoke, home: Path) -> None:
    Services.from_settings(Settings(home=home)).close()  # an empty store
    result = invoke("experiment", "decide", "ghost", "iterate", "--reason", "why")
    assert result.exit_code == 4, result.output
