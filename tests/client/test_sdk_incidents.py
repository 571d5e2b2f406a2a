"""The SDK's incident methods, embedded and over HTTP to a real server, behave alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.client.conftest import LiveServer
from tests.incidents._store import build_template, copy_home, fire

from steward.client import Client
from steward.domain.incidents import IncidentState
from steward.domain.monitoring import Severity
from steward.errors import Conflict, InvalidInput, NotFound
from steward.schemas.serving import DeploymentSpec
from steward.settings import Settings
from steward.wiring import Services


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("sdk-incidents") / "home")


def _open_incident(services: Services) -> int:
    spec = DeploymentSpec(model="churn", champion=1, canary=2, canary_share=0.5)
    services.deployments.deploy("setup", "prod", spec)
    alert = fire(services.store, "prod", severity=Severity.HIGH)
    return services.incidents.escalate("steward-monitor", [alert])[0].id


@pytest.fixture(params=["embedded", "http"])
def sdk(
    request: pytest.FixtureRequest, template: Path, tmp_path: Path
) -> Iterator[tuple[Client, int]]:
    home = copy_home(template, tmp_path / "home")
    if request.param == "http":
        server = LiveServer(Settings(home=home, url=None)).start()
        number = _open_incident(server.services)
        client = Client(url=server.url, token=server.token())
        yield client, number
        client.close()
        server.stop()
        return
    services = Services.from_settings(Settings(home=home, url=None))
    number = _open_incident(services)
    services.close()
    with Client(home=home) as client:
        yield client, number


def test_the_incident_round_trip(sdk: tuple[Client, int]) -> None:
    client, number = sdk
    (alert,) = client.list_alerts(state="firing")
    assert alert.incident_id == number
    assert client.list_alerts(deployment="elsewhere") == []
    assert [i.id for i in client.list_incidents(model="churn", state="open")] == [number]
    assert client.get_incident(number).severity is Severity.HIGH
    client.note_incident(number, "looking")
    result = client.mitigate_incident(number, "disable-canary", reason="v2 drifts")
    assert (result.incident.state, result.deployment.canary) == (IncidentState.MITIGATED, None)
    client.set_postmortem(number, summary="Canary v2 drifted.")
    assert client.resolve_incident(number, reason="v2 withdrawn").state is IncidentState.RESOLVED
    kinds = [e.kind for e in client.incident_timeline(number)]
    assert kinds[-4:] == [
        "deployment.rolled_back", "incident.mitigated", "incident.postmortem_updated",
        "incident.resolved",
    ]  # fmt: skip
    assert "## Summary\n\nCanary v2 drifted." in client.postmortem(number)


def test_errors_are_the_same_types(sdk: tuple[Client, int]) -> None:
    client, number = sdk
    with pytest.raises(NotFound):
        client.get_incident(4242)
    with pytest.raises(InvalidInput) as section:
        client.set_postmortem(number, lessons="x")
    assert section.value.field == "sections.lessons"
    with pytest.raises(InvalidInput) as action:
        client.mitigate_incident(number, "reboot")
    assert action.value.field == "action"
    client.resolve_incident(number)
    with pytest.raises(Conflict):
        client.resolve_incident(number)
