"""An experiment's analysis, report and decision through the SDK, embedded and over HTTP alike:
the same analysis, the same page, the same decisions and the same typed errors naming the same
fields.

The store is the analysis scenario (tests/experiments/scenario.py): this module provides the
``client`` and ``live_server`` of tests/client/conftest.py on a copy of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.client.conftest import LiveServer
from tests.experiments import scenario

from steward.client import Client
from steward.domain.enums import Role
from steward.domain.experiments import (
    DecisionAction,
    ExperimentAnalysis,
    ExperimentState,
    Recommendation,
)
from steward.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from steward.settings import Settings
from steward.wiring import Services


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario.build_template(tmp_path_factory.mktemp("sdk-analysis") / "home")


@pytest.fixture
def live_server(template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    home = scenario.copy_home(template, tmp_path / "server")
    server = LiveServer(Settings(home=home)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "http"])
def mode(request: pytest.FixtureRequest) -> str:
    """Embedded and over HTTP: the scenario is a copied SQLite home, so not PostgreSQL (the
    store's own behaviour there is the conformance checks')."""
    return str(request.param)


@pytest.fixture
def services(
    mode: str, template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Services]:
    """The store the client works on, with experiment ``checkout`` started: to write traffic
    and to look behind the SDK."""
    if mode == "http":
        server: LiveServer = request.getfixturevalue("live_server")
        scenario.create(server.services)
        yield server.services  # the server closes them
        return
    made = scenario.open_home(template, tmp_path / "home")
    scenario.create(made)
    yield made
    made.close()


@pytest.fixture
def client(
    mode: str, services: Services, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Client]:
    if mode == "http":
        server: LiveServer = request.getfixturevalue("live_server")
        sdk = Client(url=server.url, token=server.token())
    else:
        sdk = Client(home=tmp_path / "home")
    try:
        yield sdk
    finally:
        sdk.close()


def _field(call: Callable[[], object], kind: type[Exception] = InvalidInput) -> str | None:
    with pytest.raises(kind) as caught:
        call()
    return caught.value.details.get("field")  # type: ignore[attr-defined, no-any-return]


def test_analysis_and_its_page(client: Client, services: Services) -> None:
    scenario.traffic(services, 4_000, rates={1: 0.10, 2: 0.14})
    analysis = client.analyze_experiment("checkout")
    assert isinstance(analysis, ExperimentAnalysis)
    assert analysis.recommendation is Recommendation.SHIP
    assert analysis.ship_variant == 2
    assert sum(analysis.units.values()) == 4_000
    assert analysis.units == analysis.srm.counts
    (converted,) = (m for m in analysis.metrics if m.metric == "converted")
    assert converted.arms[0].p_value_adjusted is not None
    page = client.experiment_report_html("checkout")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<svg class="forest"') == 3
    assert "converted" in page
    assert _field(lambda: client.analyze_experiment("ghost"), NotFound) == "name"


def test_a_decision_recorded_then_refused_twice(client: Client, services: Services) -> None:
    decided = client.decide_experiment("checkout", "iterate", reason="needs a longer run")
    assert decided.state is ExperimentState.DECIDED
    assert decided.decision is not None
    assert (decided.decision.action, decided.decision.variant) == (DecisionAction.ITERATE, None)
    assert decided.decision.applied is False
    assert client.get_experiment("checkout").decision == decided.decision
    with pytest.raises(Conflict, match="already decided"):
        client.decide_experiment("checkout", DecisionAction.SHIP, reason="changed my mind")


def test_applying_a_ship_makes_the_variant_champion(client: Client, services: Services) -> None:
    decided = client.decide_experiment("checkout", "ship", reason="v2 wins", apply=True)
    assert decided.decision is not None
    assert (decided.decision.variant, decided.decision.applied) == (2, True)
    deployment = client.get_deployment("churn-ab")
    assert (deployment.champion, deployment.split) == (2, None)
    assert client.get_version("models:/churn/2").status.value == "production"


def test_applying_a_rollback(client: Client, services: Services) -> None:
    decided = client.decide_experiment("checkout", "rollback", reason="latency", apply=True)
    assert decided.decision is not None
    assert decided.decision.applied is True
    deployment = client.get_deployment("churn-ab")
    assert (deployment.champion, deployment.split) == (1, None)


def test_malformed_decisions_name_the_field(client: Client, services: Services) -> None:
    assert _field(lambda: client.decide_experiment("checkout", "launch", reason="r")) == "action"
    assert _field(lambda: client.decide_experiment("checkout", "ship", reason="")) == "reason"
    assert _field(lambda: client.decide_experiment("checkout", "ship", reason=" \n")) == "reason"
    assert (
        _field(lambda: client.decide_experiment("checkout", "ship", reason="r", variant=1))
        == "variant"
    )
    assert (
        _field(lambda: client.decide_experiment("checkout", "rollback", reason="r", variant=2))
        == "variant"
    )
    assert (
        _field(lambda: client.decide_experiment("ghost", "iterate", reason="r"), NotFound) == "name"
    )
    assert client.get_experiment("checkout").state is ExperimentState.RUNNING


@pytest.mark.parametrize("mode", ["http"], indirect=True)  # roles are the server's
def test_over_http_a_developer_cannot_apply_a_ship(
    mode: str, services: Services, live_server: LiveServer
) -> None:
    server = live_server
    with Client(url=server.url, token=server.token(Role.DEVELOPER, name="dev")) as developer:
        with pytest.raises(PermissionDenied, match="approver role"):
            developer.decide_experiment("checkout", "ship", reason="v2 wins", apply=True)
        decided = developer.decide_experiment("checkout", "ship", reason="v2 wins")
    assert decided.decision is not None
    assert decided.decision.applied is False
    assert services.deployments.get("churn-ab").split is not None
