"""``steward alerts`` and ``steward incident ...`` on the embedded store: tables and JSON, the
mitigations, the postmortem export, and exit codes for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke
from tests.incidents._store import OWNER, build_template, copy_home, fire

from steward.domain.monitoring import Severity
from steward.schemas.serving import DeploymentSpec
from steward.settings import Settings
from steward.wiring import Services


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("cli-incidents") / "home")


@pytest.fixture
def incident(template: Path, home: Path) -> int:
    """HOME holds deployment ``prod`` (v1, canary v2 at 50%) and INC-1, opened by a high
    feature-drift alert on it."""
    copy_home(template, home)
    services = Services.from_settings(Settings(home=home, url=None))
    try:
        spec = DeploymentSpec(model="churn", champion=1, canary=2, canary_share=0.5)
        services.deployments.deploy("setup", "prod", spec)
        alert = fire(services.store, "prod", severity=Severity.HIGH)
        (opened,) = services.incidents.escalate("steward-monitor", [alert])
        return opened.id
    finally:
        services.close()


def test_alerts_and_incident_lists(invoke: Invoke, incident: int) -> None:
    table = invoke("alerts")
    assert table.exit_code == 0, table.output
    assert "feature-drift on prod" in table.output
    assert f"INC-{incident}" in table.output
    data = json.loads(invoke("alerts", "--state", "firing", "--json").stdout)
    assert [(a["deployment"], a["incident_id"]) for a in data] == [("prod", incident)]
    assert json.loads(invoke("alerts", "--state", "resolved", "--json").stdout) == []
    listed = invoke("incident")  # `list` is the default command
    assert listed.exit_code == 0, listed.output
    assert f"INC-{incident}" in listed.output
    assert "churn" in listed.output
    data = json.loads(invoke("incident", "list", "--state", "open", "--json").stdout)
    assert [(i["id"], i["severity"]) for i in data] == [(incident, "high")]


def test_show_prints_the_header_alerts_and_timeline(invoke: Invoke, incident: int) -> None:
    assert invoke("incident", "note", str(incident), "looking at the CRM import").exit_code == 0
    shown = invoke("incident", "show", str(incident))
    assert shown.exit_code == 0, shown.output
    for text in (f"INC-{incident}", "feature-drift on prod", OWNER, "Alerts (1)", "Timeline",
                 "incident.noted", "Note: looking at"):  # fmt: skip
        assert text in shown.output, text
    data = json.loads(invoke("incident", "show", str(incident), "--json").stdout)
    assert set(data) == {"incident", "alerts", "timeline"}
    assert data["timeline"][-1]["kind"] == "incident.noted"


def test_mitigate_and_resolve(invoke: Invoke, incident: int) -> None:
    refused = invoke("incident", "mitigate", str(incident), "--action", "fallback")
    assert refused.exit_code == 5
    assert "no rule or default fallback" in refused.output
    done = invoke(
        "incident", "mitigate", str(incident), "--action", "disable-canary", "--reason", "v2"
    )
    assert done.exit_code == 0, done.output
    assert f"INC-{incident} is mitigated: disable-canary on prod (revision 1 -> 2" in done.output
    deployment = json.loads(invoke("deployments", "--json").stdout)[0]
    assert deployment["canary"] is None
    assert invoke("incident", "resolve", str(incident), "--reason", "fixed").exit_code == 0
    again = invoke("incident", "resolve", str(incident))
    assert again.exit_code == 5
    assert "resolved; it cannot become resolved" in again.output


def test_postmortem_sets_sections_and_exports(
    invoke: Invoke, incident: int, tmp_path: Path
) -> None:
    impact = tmp_path / "impact.md"
    impact.write_text("12% of scores were wrong for 3 hours.", encoding="utf-8")
    out = tmp_path / "pm.md"
    written = invoke(
        "incident", "postmortem", str(incident), "--set", "summary=Canary drifted.",
        "--set", f"impact=@{impact}", "--output", str(out),
    )  # fmt: skip
    assert written.exit_code == 0, written.output
    text = out.read_text(encoding="utf-8")
    assert "## Summary\n\nCanary drifted." in text
    assert "## Impact\n\n12% of scores were wrong for 3 hours." in text
    assert "_To be written" in text  # the root causes and actions are still to write
    printed = invoke("incident", "postmortem", str(incident))
    assert printed.stdout == text


def test_bad_input_exits_non_zero_naming_it(invoke: Invoke, incident: int) -> None:
    section = invoke("incident", "postmortem", str(incident), "--set", "lessons=x")
    assert section.exit_code == 2
    assert "'lessons'" in section.output
    assert invoke("incident", "note", str(incident), "  ").exit_code == 2
    missing = invoke("incident", "show", "4242")
    assert missing.exit_code == 4
    assert "INC-4242" in missing.output
    assert invoke("incident", "mitigate", str(incident), "--action", "reboot").exit_code == 2
    assert invoke("alerts", "--state", "burning").exit_code == 2
    no_file = invoke("incident", "postmortem", str(incident), "--set", "summary=@/nope.md")
    assert no_file.exit_code == 2
