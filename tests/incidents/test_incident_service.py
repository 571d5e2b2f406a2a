"""IncidentService on a real embedded store: alerts open and join incidents, people note,
mitigate (through real deployment changes, served by a real gateway) and resolve them, and the
timeline and postmortem are read back from the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.incidents._store import MODEL, OWNER, build_template, copy_home, fire
from tests.serving.test_gateway import ROWS

from steward.alerts import WebhookAlerts
from steward.client import Client
from steward.domain.entities import Event
from steward.domain.enums import VersionStatus
from steward.domain.incidents import POSTMORTEM_SECTIONS, IncidentState, MitigationAction
from steward.domain.monitoring import Alert, AlertState, Severity
from steward.errors import Conflict, InvalidInput, NotFound
from steward.incidents.postmortem import SECTION_GUIDE, format_duration
from steward.incidents.service import IncidentService
from steward.schemas import parse
from steward.schemas.serving import DeploymentSpec
from steward.serving.gateway import create_gateway
from steward.serving.runtime import Runtime
from steward.settings import Settings
from steward.store.base import EventFilter, MetadataStore, ReadSession, WriteSession
from steward.wiring import Services

ROLLBACK = MitigationAction.ROLLBACK
DISABLE = MitigationAction.DISABLE_CANARY
FALLBACK = MitigationAction.FALLBACK
HOOK = "https://hooks.example.com/services/T0/B0/secret"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("incidents") / "home")


class Env:
    """A copy of the template store: the SDK to deploy, the services, and the service under
    test whose webhook posts are recorded in ``posted``."""

    def __init__(self, home: Path) -> None:
        self.client = Client(home=home)
        self.services = Services.from_settings(Settings(home=home, url=None))
        self.posted: list[dict[str, Any]] = []
        self.notifier = WebhookAlerts(HOOK, post=self._post, backoff_s=0)
        self.incidents = IncidentService(
            self.services.store, self.services.deployments, self.notifier
        )

    def _post(self, url: str, body: bytes, timeout_s: float) -> int:
        self.posted.append(json.loads(body))
        return 200

    @property
    def store(self) -> MetadataStore:
        return self.services.store

    def deploy(self, name: str, **routing: Any) -> None:
        self.client.deploy(name, model=MODEL, **routing)

    def fire(self, deployment: str, **options: Any) -> Alert:
        return fire(self.store, deployment, **options)

    def open(self, deployment: str, **options: Any) -> int:
        """Fire an alert on ``deployment`` and escalate it; the incident's number."""
        (incident,) = self.incidents.escalate("steward-monitor", [self.fire(deployment, **options)])
        return incident.id

    def events(self, kind: str, subject_type: str | None = None) -> list[Event]:
        with self.store.read() as rx:
            return rx.list_events(
                EventFilter(kind=kind, subject_type=subject_type), limit=1000, offset=0
            )

    def close(self) -> None:
        self.notifier.close()
        self.client.close()
        self.services.close()


@pytest.fixture
def env(template: Path, tmp_path: Path) -> Iterator[Env]:
    made = Env(copy_home(template, tmp_path / "home"))
    yield made
    made.close()


# -- escalation ---------------------------------------------------------------------------------


def test_a_first_alert_opens_an_incident_and_the_next_joins_it(env: Env) -> None:
    env.deploy("prod", champion=1)
    env.deploy("eu", champion=1)
    first = env.fire("prod", rule="feature-drift")
    (incident,) = env.incidents.escalate("steward-monitor", [first])
    assert (incident.state, incident.severity, incident.owner) == (
        IncidentState.OPEN, Severity.MEDIUM, OWNER,
    )  # fmt: skip
    assert (incident.model_name, incident.deployment) == (MODEL, "prod")
    assert incident.title == "feature-drift on prod: drift.share_drifted >= 0.5"
    assert incident.opened_by == "steward-monitor"

    second = env.fire("eu", rule="prediction-drift", severity=Severity.LOW)
    assert env.incidents.escalate("steward-monitor", [second]) == [env.incidents.show(incident.id)]
    joined = env.incidents.alerts(incident=incident.id)
    assert {a.id for a in joined} == {first.id, second.id}
    assert env.incidents.show(incident.id).severity is Severity.MEDIUM  # a milder one: as is
    assert len(env.events("incident.opened")) == 1
    assert len(env.events("alert.joined")) == 2
    assert env.events("incident.escalated") == []
    env.notifier.close()
    assert [p["text"] for p in env.posted] == [
        f"[medium] INC-{incident.id} opened for model churn (owner {OWNER}): {incident.title}"
    ]


def test_a_worse_alert_raises_the_severity_and_is_announced(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod", severity=Severity.LOW)
    worse = env.fire("prod", rule="error-rate", severity=Severity.CRITICAL, value=0.3)
    with caplog.at_level("WARNING", logger="steward.incidents.service"):
        (raised,) = env.incidents.escalate("steward-monitor", [worse])
    assert (raised.id, raised.severity) == (number, Severity.CRITICAL)
    (event,) = env.events("incident.escalated")
    assert event.payload == {
        "from": "low", "to": "critical", "alert": worse.id, "rule": "error-rate",
        "deployment": "prod",
    }  # fmt: skip
    assert f"[critical] INC-{number} escalated from low" in caplog.text
    env.notifier.close()
    assert len(env.posted) == 2  # one for the opening, one for the escalation
    assert "escalated from low" in env.posted[1]["text"]


def test_alerts_already_attached_or_resolved_are_left_alone(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    attached = env.incidents.alerts(incident=number)[0]
    resolved = env.fire("prod", rule="stale-predictions")
    with env.store.write("steward-monitor") as tx:
        resolved = tx.update_alert(resolved.id, {"state": AlertState.RESOLVED})
    assert env.incidents.escalate("steward-monitor", [attached, resolved]) == []
    assert len(env.incidents.alerts(incident=number)) == 1


class _BlindOnce:
    """A store whose first write session does not see the model's active incident: what a
    replica sees when another one opens it between its read and its write."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.blind = True

    def read(self) -> AbstractContextManager[ReadSession]:
        return self.store.read()

    @contextmanager
    def write(self, actor: str) -> Iterator[WriteSession]:
        with self.store.write(actor) as tx:
            if not self.blind:
                yield tx
                return
            self.blind = False
            blind: Any = _Blind(tx)
            yield blind

    def dispose(self) -> None: ...
    def feed_listener(self) -> None:
        return None


class _Blind:
    def __init__(self, tx: WriteSession) -> None:
        self.tx = tx

    def active_incident(self, model_name: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)


def test_losing_the_race_to_open_joins_the_winners_incident(env: Env) -> None:
    env.deploy("prod", champion=1)
    winner = env.open("prod")
    racing = IncidentService(_BlindOnce(env.store), env.services.deployments, None)  # type: ignore[arg-type]
    late = env.fire("prod", rule="error-rate", severity=Severity.HIGH)
    (joined,) = racing.escalate("replica-2", [late])
    assert (joined.id, joined.severity) == (winner, Severity.HIGH)
    assert len(env.incidents.list()) == 1
    assert len(env.events("incident.opened")) == 1
    assert {a.id for a in env.incidents.alerts(incident=winner)} >= {late.id}


def test_a_failing_webhook_never_fails_the_escalation(env: Env) -> None:
    calls: list[str] = []

    def down(url: str, body: bytes, timeout_s: float) -> int:
        calls.append(url)
        raise OSError("connection refused")

    notifier = WebhookAlerts(HOOK, post=down, attempts=2, backoff_s=0)
    service = IncidentService(env.store, env.services.deployments, notifier)
    env.deploy("prod", champion=1)
    (incident,) = service.escalate("steward-monitor", [env.fire("prod")])
    notifier.close()
    assert incident.state is IncidentState.OPEN
    assert (len(calls), notifier.failed) == (2, 1)  # retried, then given up on, quietly

    class Broken(WebhookAlerts):
        def send(self, text: str, **fields: Any) -> Future[bool]:
            raise RuntimeError("a sender that raises")

    broken = IncidentService(env.store, env.services.deployments, Broken(HOOK))
    worse = env.fire("prod", rule="error-rate", severity=Severity.CRITICAL)
    assert broken.escalate("steward-monitor", [worse])[0].severity is Severity.CRITICAL


# -- notes and the state machine ---------------------------------------------------------------


def test_notes_go_to_the_ledger_and_bad_text_names_the_field(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    env.incidents.note("ana", number, "  Drift on age since the CRM import.  ")
    (event,) = env.events("incident.noted")
    assert (event.actor, event.payload) == ("ana", {"text": "Drift on age since the CRM import."})
    for text in ("", "   ", "x" * 10_001, "a\x00b"):
        with pytest.raises(InvalidInput) as refused:
            env.incidents.note("ana", number, text)
        assert refused.value.field == "text"
    with pytest.raises(NotFound, match="INC-999"):
        env.incidents.note("ana", 999, "hello")


def test_resolve_closes_for_good(env: Env) -> None:
    env.deploy("prod", champion=1, canary=2, canary_share=0.5)
    number = env.open("prod")
    resolved = env.incidents.resolve("ana", number, "the CRM import was fixed upstream")
    assert resolved.state is IncidentState.RESOLVED
    assert resolved.resolved_at is not None
    (event,) = env.events("incident.resolved")
    assert event.payload == {"reason": "the CRM import was fixed upstream", "from": "open"}
    with pytest.raises(Conflict, match="stays closed") as again:
        env.incidents.resolve("ana", number)
    assert again.value.details["field"] == "state"
    revision = env.services.deployments.get("prod").revision
    with pytest.raises(Conflict, match="resolved; it cannot become mitigated"):
        env.incidents.mitigate("ana", number, DISABLE)
    assert env.services.deployments.get("prod").revision == revision  # nothing changed
    env.incidents.note("ana", number, "postmortem review on Friday")  # notes still welcome
    # the next alert opens a new incident
    assert env.open("prod", rule="error-rate") != number


def test_unknown_action_and_deployment_are_named(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    with pytest.raises(InvalidInput) as unknown:
        env.incidents.mitigate("ana", number, "reboot")
    assert unknown.value.field == "action"
    with pytest.raises(NotFound):
        env.incidents.mitigate("ana", number, ROLLBACK, deployment="nowhere")


# -- mitigations change the deployment ---------------------------------------------------------


def test_disable_canary_sends_all_traffic_to_the_champion(env: Env) -> None:
    env.deploy("prod", champion=1, canary=2, canary_share=0.5)
    number = env.open("prod")
    result = env.incidents.mitigate("ana", number, DISABLE, "canary v2 drifts")
    assert (result.deployment.canary, result.deployment.champion) == (None, 1)
    assert result.deployment.revision == result.revision_before + 1
    assert result.incident.state is IncidentState.MITIGATED
    assert result.incident.mitigated_at is not None
    assert env.services.deployments.get("prod").canary is None
    (rolled,) = env.events("deployment.rolled_back")
    assert rolled.payload["from_versions"] == [2]
    assert rolled.payload["evidence"]["incident"] == number
    (event,) = env.events("incident.mitigated")
    assert event.payload == {
        "action": "disable-canary", "deployment": "prod", "reason": "canary v2 drifts",
        "revision_before": 1, "revision_after": 2, "state": "mitigated",
        "change": "prod: v2 off, all traffic to champion v1",
    }  # fmt: skip


def test_disable_canary_without_a_canary_is_a_conflict(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    with pytest.raises(Conflict, match="no canary") as refused:
        env.incidents.mitigate("ana", number, DISABLE)
    assert refused.value.details["field"] == "action"
    assert env.incidents.show(number).state is IncidentState.OPEN


def test_rollback_removes_a_canary(env: Env) -> None:
    env.deploy("prod", champion=1, canary=2, canary_share=0.2)
    result = env.incidents.mitigate("ana", env.open("prod"), ROLLBACK)
    assert (result.deployment.champion, result.deployment.canary) == (1, None)


def test_rollback_moves_the_champion_to_the_previous_production_version(env: Env) -> None:
    env.client.promote("models:/churn/2", "production")  # v1 retires to deprecated
    env.deploy("prod", champion=2)
    number = env.open("prod")
    result = env.incidents.mitigate("ana", number, ROLLBACK, "v2 misreads the new CRM fields")
    assert result.deployment.champion == 1
    assert env.client.get_version("models:/churn/1").status is VersionStatus.PRODUCTION
    assert env.client.get_version("models:/churn/2").status is VersionStatus.DEPRECATED
    assert env.client.get_model(MODEL).aliases["champion"] == 1
    (rolled,) = env.events("deployment.rolled_back")
    assert rolled.payload["from_versions"] == [2]
    assert "INC-" in rolled.payload["reason"]


def test_rollback_without_a_previous_version_is_a_conflict(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    with pytest.raises(Conflict, match="no previous production version"):
        env.incidents.mitigate("ana", number, ROLLBACK)
    assert env.services.deployments.get("prod").revision == 1


def test_fallback_makes_the_gateway_answer_from_the_default(env: Env) -> None:
    env.deploy(
        "safe", champion=1, canary=2, canary_share=0.5,
        fallbacks=[{"kind": "default", "value": -1}],
    )  # fmt: skip
    number = env.open("safe")
    result = env.incidents.mitigate("ana", number, FALLBACK, "models unreliable")
    assert result.deployment.serve_fallback
    runtime = Runtime(env.store, env.services.artifacts, names=("safe",))
    app = create_gateway(runtime, None, poll_seconds=None)
    with TestClient(app) as http:
        for request_id in ("a", "b", "c", "d"):  # canary or champion: the default answers
            answer = http.post("/predict/safe", json={"instances": ROWS, "id": request_id})
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == [-1, -1]
            assert answer.json()["fallback"] == "forced"
        metrics = http.get("/metrics").text
    assert 'steward_fallbacks_total{deployment="safe",reason="forced",source="default"} 4.0' in (
        metrics
    )
    # a second mitigation keeps the fallback on and the first mitigation's time
    again = env.incidents.mitigate("ana", number, DISABLE)
    assert again.deployment.serve_fallback
    assert again.deployment.canary is None
    assert again.incident.mitigated_at == result.incident.mitigated_at
    assert len(env.events("incident.mitigated")) == 2
    with pytest.raises(Conflict, match="already answers from its fallback"):
        env.incidents.mitigate("ana", number, FALLBACK)


def test_fallback_needs_a_rule_or_default(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    with pytest.raises(Conflict, match="no rule or default fallback") as refused:
        env.incidents.mitigate("ana", number, FALLBACK)
    assert refused.value.details["field"] == "action"


def test_a_plain_deploy_turns_the_fallback_off(env: Env) -> None:
    env.deploy("safe", champion=1, fallbacks=[{"kind": "default", "value": 0}])
    env.incidents.mitigate("ana", env.open("safe"), FALLBACK)
    env.deploy("safe", champion=1, fallbacks=[{"kind": "default", "value": 0}])
    assert not env.services.deployments.get("safe").serve_fallback


# -- timeline and postmortem -------------------------------------------------------------------


def test_the_timeline_tells_the_story_from_the_deploy_before(env: Env) -> None:
    env.deploy("other", champion=1)
    env.deploy("prod", champion=1, canary=2, canary_share=0.5)
    number = env.open("prod")
    env.incidents.note("ana", number, "canary v2 reads age as text")
    env.incidents.mitigate("ana", number, DISABLE, "stop the harm")
    env.incidents.resolve("ana", number, "v2 withdrawn")
    story = env.incidents.timeline(number)
    kinds = [(e.kind, e.subject) for e in story]
    assert kinds == [
        ("alias.set", "model:churn"),  # v1 promoted to production when the store was made
        ("deployment.created", "deployment:other"),
        ("deployment.created", "deployment:prod"),
        ("alert.fired", "deployment:prod"),
        ("incident.opened", f"incident:{number}"),
        ("alert.joined", "deployment:prod"),
        ("incident.noted", f"incident:{number}"),
        ("deployment.rolled_back", "deployment:prod"),
        ("incident.mitigated", f"incident:{number}"),
        ("incident.resolved", f"incident:{number}"),
    ]
    assert story == sorted(story, key=lambda e: e.seq)
    summaries = {e.kind: e.summary for e in story}
    assert summaries["alias.set"].startswith("Champion of churn -> v1")
    assert "champion v1, canary v2 at 50%" in summaries["deployment.created"]
    assert summaries["alert.fired"] == (
        "Alert feature-drift fired on prod (medium): drift.share_drifted >= 0.5, value 0.8"
    )
    assert summaries["incident.noted"] == "Note: canary v2 reads age as text"
    assert summaries["incident.mitigated"].startswith("Mitigated by disable-canary (prod: v2 off")
    # deploys older than the lookback are left out
    short = IncidentService(env.store, env.services.deployments, lookback=timedelta(0))
    assert [e.kind for e in short.timeline(number)][:2] == ["alert.fired", "incident.opened"]


def test_the_timeline_leaves_out_other_incidents_alerts(env: Env) -> None:
    env.deploy("prod", champion=1)
    first = env.open("prod")
    env.incidents.resolve("ana", first)
    second = env.open("prod", rule="error-rate")
    fired = [e for e in env.incidents.timeline(second) if e.kind == "alert.fired"]
    assert [e.summary.split()[1] for e in fired] == ["error-rate"]


def test_the_postmortem_has_the_sections_durations_alerts_and_timeline(env: Env) -> None:
    env.deploy("prod", champion=1, canary=2, canary_share=0.5)
    number = env.open("prod")
    env.incidents.mitigate("ana", number, DISABLE)
    env.incidents.set_postmortem(
        "ana", number, {"summary": "Canary v2 drifted | badly.", "root_cause_data": "CRM"}
    )
    env.incidents.set_postmortem("ana", number, {"root_cause_data": ""})  # cleared again
    text = env.incidents.postmortem(number)
    assert text.startswith(f"# Postmortem: INC-{number} — feature-drift on prod")
    for name in POSTMORTEM_SECTIONS:
        assert f"## {SECTION_GUIDE[name][0]}\n" in text
    assert "## Summary\n\nCanary v2 drifted | badly." in text
    assert "## Root cause: data\n\n_To be written: what changed in the inputs" in text
    assert "| Owner | ana@example.com |" in text
    assert "| Time to mitigate | " in text
    assert "| Time to resolve | — (not yet) |" in text
    assert "| feature-drift | prod | medium | drift.share_drifted >= 0.5 | 0.8 (last 0.8) |" in (
        text
    )
    assert "`incident.mitigated`" in text
    assert "`deployment.rolled_back`" in text
    env.incidents.resolve("ana", number)
    assert "not yet" not in env.incidents.postmortem(number)
    (event,) = env.events("incident.postmortem_updated")[:1]
    assert event.payload["sections"]["summary"] == "Canary v2 drifted | badly."


def test_unknown_postmortem_sections_are_named(env: Env) -> None:
    env.deploy("prod", champion=1)
    number = env.open("prod")
    with pytest.raises(InvalidInput, match="'lessons'") as refused:
        env.incidents.set_postmortem("ana", number, {"summary": "ok", "lessons": "x"})
    assert refused.value.field == "sections.lessons"
    assert env.incidents.show(number).postmortem == {}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45, "45s"),
        (725, "12m 05s"),
        (3 * 3600 + 240, "3h 04m"),
        (2 * 86400 + 5 * 3600, "2d 5h"),
    ],
)
def test_durations_read_in_two_units(seconds: int, shown: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == shown


def test_every_section_has_a_heading_and_hint() -> None:
    assert tuple(SECTION_GUIDE) == POSTMORTEM_SECTIONS


def test_serve_fallback_needs_a_rule_or_default_in_the_spec() -> None:
    base = {"model": MODEL, "champion": 1, "serve_fallback": True}
    with pytest.raises(InvalidInput) as refused:
        parse(DeploymentSpec, {**base, "fallbacks": [{"kind": "previous"}]})
    assert refused.value.field == "serve_fallback"
    spec = parse(DeploymentSpec, {**base, "fallbacks": [{"kind": "default", "value": 0}]})
    assert spec.routing()["serve_fallback"] is True
