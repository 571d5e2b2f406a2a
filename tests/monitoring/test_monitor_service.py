"""The monitor end to end on a real embedded store: a window of logged traffic measured against
the version's reference, stored, judged by rules; alerts opening incidents."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.domain.monitoring import (
    AlertRule,
    AlertState,
    Comparison,
    FreshnessSla,
    MonitorSpec,
    Severity,
    WindowStatus,
    default_rules,
)
from steward.monitoring.window import local_engine
from steward.settings import MonitorSettings, Settings
from steward.store.base import EventFilter
from steward.store.prediction_log import PredictionLogWriter, PredictionRecord
from steward.wiring import Services

POLICY = """\
name: monitor-policy
checks:
  - check: approvals
    count: 1
"""
FEATURES = ["a", "b", "c"]
NOW = datetime.now(UTC).replace(microsecond=0)
DRIFT_RULE = AlertRule(name="drift", metric="drift.share_drifted", op=Comparison.GE,
                       threshold=0.3, severity=Severity.HIGH)  # fmt: skip


class World:
    """Model ``fraud``: v1 in production with a reference sample; v2 in production later
    without one. Deployments ``live`` (v1) and ``bare`` (v2)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        rng = np.random.default_rng(7)
        self.train = pd.DataFrame(rng.normal(size=(2000, 3)), columns=FEATURES)
        self.label = (self.train["a"] + self.train["b"] > 0).astype(int)
        self.model = LogisticRegression().fit(self.train, self.label)
        client = Client(home=home)
        reviewer = Client(settings=Settings(url=None, home=home, actor="reviewer"))
        client.create_model("fraud", owner="ana@example.com", risk_tier=1)
        client.set_policy(POLICY, model="fraud")
        with_sample = log_model(self.model, "fraud", training_data=self.train, client=client)
        without = log_model(self.model, "fraud", sample_input=self.train.head(5), client=client)
        for number, uri in enumerate((with_sample.uri, without.uri), start=1):
            client.evaluate(uri, self.train.assign(label=self.label), "label", resamples=10,
                            latency_calls=3)  # fmt: skip
            client.gate(uri)
            reviewer.approve(uri)
            client.promote(uri, "production")  # v2's promotion deprecates v1: deploy it first
            client.deploy(("live", "bare")[number - 1], model="fraud", champion=number)
        reviewer.close()
        client.close()

    def settings(self, tmp: Path) -> Settings:
        return Settings(
            url=None, home=self.home,
            prediction_log={"root": str(tmp / "predictions")},
            labels={"root": str(tmp / "labels")},
        )  # fmt: skip

    def traffic(
        self,
        settings: Settings,
        deployment: str,
        *,
        n: int,
        shift: float = 0.0,
        version: int = 1,
        errors: int = 0,
        unanswered: int = 0,
        forced: int = 0,
        c_as_text: bool = False,
        at: datetime = NOW - timedelta(minutes=10),
        seed: int = 0,
    ) -> list[str]:
        """Log ``n`` one-row requests answered at ``at``: the first ``errors`` by the error
        fallback, the next ``unanswered`` by nothing (a 503), the next ``forced`` by a forced
        fallback (an incident's mitigation). Returns the request ids."""
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
        frame["a"] += shift
        predicted = self.model.predict(frame)
        scores = self.model.predict_proba(frame)[:, 1]
        writer = PredictionLogWriter(settings.prediction_log_root, queue_size=100_000,
                                     flush_rows=10_000, flush_seconds=0.05)  # fmt: skip
        ids = [uuid.uuid4().hex for _ in range(n)]
        if c_as_text:  # a client that started sending the column as text
            frame["c"] = frame["c"].map(lambda v: f"{v:.3f}")
        for i, (request_id, row) in enumerate(zip(ids, frame.to_dict("records"), strict=True)):
            fallback, error = None, None
            if i < errors:
                fallback, error = "error", "boom"
            elif i < errors + unanswered:
                error = "boom, and no fallback"
            elif i < errors + unanswered + forced:
                fallback, error = "forced", "serve_fallback is on"
            writer.log(PredictionRecord(
                deployment, version, request_id, at + timedelta(milliseconds=i), 3.0 + i % 7,
                row, None if fallback is None and error else int(predicted[i]),
                score=float(scores[i]), probabilities=[1 - float(scores[i]), float(scores[i])],
                fallback=fallback, error=error,
            ))  # fmt: skip
        writer.close()
        return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("monitor") / "home")


@pytest.fixture
def services(world: World, tmp_path: Path) -> Iterator[Services]:
    made = Services.from_settings(world.settings(tmp_path))
    yield made
    made.close()


def _run(services: Services, deployment: str = "live", **options: Any) -> Any:
    return services.monitoring.run("tester", deployment, end=NOW, engine=local_engine, **options)


def test_registration_stores_a_reference_profile(services: Services) -> None:
    v1 = services.registry.get_version("models:/fraud/1")
    assert v1.reference_profile is not None
    assert services.registry.get_version("models:/fraud/2").reference_profile is None


def test_a_window_without_traffic_is_recorded_as_no_data(services: Services) -> None:
    services.monitoring.configure(
        "tester", "live",
        MonitorSpec(freshness=FreshnessSla(max_prediction_age_s=600), rules=[]),
    )  # fmt: skip
    outcome = _run(services)
    assert outcome.window.status is WindowStatus.NO_DATA
    assert outcome.window.metrics["freshness.prediction_late"] == 1.0  # never answered
    (stored,) = services.monitoring.windows("live")
    assert stored.id == outcome.window.id
    with services.store.read() as rx:
        kinds = [e.kind for e in rx.list_events(EventFilter(subject_id="live"), limit=50,
                                                 offset=0)]  # fmt: skip
    assert "monitor.window" in kinds
    assert "monitor.configured" in kinds


def test_healthy_traffic_measures_every_section_and_fires_only_the_budget_rule(
    services: Services, world: World
) -> None:
    services.monitoring.configure("tester", "live", MonitorSpec(rules=default_rules(1)))
    world.traffic(services.settings, "live", n=400, errors=4)
    outcome = _run(services)
    window, metrics = outcome.window, outcome.window.metrics
    assert window.status is WindowStatus.OK
    assert window.rows == 400
    assert window.versions == [1]
    assert metrics["drift.dataset_drift"] == 0.0
    assert metrics["drift.n_tested"] == 3.0
    assert "drift.prediction.score" in metrics
    assert metrics["drift.prediction.drifted"] == 0.0
    assert metrics["quality.schema_violations"] == 0.0
    assert metrics["slo.requests"] == 400.0
    assert metrics["slo.errors"] == 4.0
    assert metrics["slo.error_rate"] == pytest.approx(0.01)
    assert 0.0 < metrics["estimated.accuracy"] <= 1.0
    assert "performance.roc_auc" not in metrics  # no labels yet
    assert metrics["performance.labeled_rows"] == 0.0
    # 1% of requests failed: a 99.9% target's budget is spent tenfold, nothing else is wrong
    assert metrics["slo.error_budget_remaining"] == pytest.approx(-9.0)
    assert [a.rule.name for a in outcome.fired] == ["error-budget-exhausted"]
    assert window.report["drift"]["columns"][0]["histogram"] is not None


def test_drift_fires_once_keeps_firing_then_resolves(services: Services, world: World) -> None:
    services.monitoring.configure("tester", "live", MonitorSpec(rules=[DRIFT_RULE]))
    world.traffic(services.settings, "live", n=300, shift=1.5, at=NOW - timedelta(minutes=50))
    first = _run(services)
    assert first.window.metrics["drift.column.a.drifted"] == 1.0
    assert first.window.metrics["drift.column.b.drifted"] == 0.0
    assert [a.rule.name for a in first.fired] == ["drift"]
    again = _run(services)
    assert again.fired == []  # the same episode
    # seeded: a sample of the same distribution whose Wasserstein distances stay under 0.1
    world.traffic(services.settings, "live", n=1500, at=NOW - timedelta(minutes=5), seed=3)
    healthy = _run(services, window_s=10 * 60)
    assert [a.id for a in healthy.resolved] == [first.fired[0].id]
    with services.store.read() as rx:
        (alert,) = [a for a in rx.list_alerts(deployment="live") if a.rule.name == "drift"]
    assert alert.state is AlertState.RESOLVED
    assert alert.last_value >= 0.3


def test_labels_give_live_performance_against_the_release(services: Services, world: World) -> None:
    ids = world.traffic(services.settings, "live", n=300, seed=4)
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=FEATURES)
    truth = (frame["a"] + frame["b"] > 0).astype(int).tolist()
    services.labels.log("tester", "live", dict(zip(ids[:150], truth[:150], strict=True)))
    metrics = _run(services).window.metrics
    assert metrics["performance.labeled_rows"] == 150.0
    assert metrics["performance.label_coverage"] == pytest.approx(0.5)
    assert metrics["performance.accuracy"] > 0.9
    assert "performance.roc_auc.delta" in metrics
    assert "estimated.accuracy.error" in metrics
    assert abs(metrics["estimated.accuracy.error"]) < 0.1


def test_a_version_without_reference_sample_is_no_reference(
    services: Services, world: World
) -> None:
    world.traffic(services.settings, "bare", n=50, version=2)
    window = _run(services, "bare").window
    assert window.status is WindowStatus.NO_REFERENCE
    assert "slo.requests" in window.metrics
    assert "drift.share_drifted" not in window.metrics
    assert "reference sample" in window.report["drift"]["note"]


def test_one_failing_deployment_does_not_stop_the_others(services: Services, world: World) -> None:
    later = NOW + timedelta(hours=3)  # every monitor is due again
    services.monitoring.clock = lambda: later
    world.traffic(services.settings, "live", n=50, at=later - timedelta(minutes=10))
    hour = (later - timedelta(minutes=10)).strftime("%Y-%m-%dT%H")
    broken = Path(services.settings.prediction_log_root) / "deployment=bare" / f"hour={hour}"
    broken.mkdir(parents=True)
    (broken / "part-corrupt.parquet").write_bytes(b"not parquet")
    outcomes = {o.window.deployment: o.window for o in services.monitoring.run_due("tester")}
    assert outcomes["bare"].status is WindowStatus.FAILED
    assert outcomes["bare"].error
    assert outcomes["live"].status is WindowStatus.OK


def test_run_monitors_opens_an_incident_for_a_fired_alert(services: Services, world: World) -> None:
    services.monitoring.configure("tester", "live", MonitorSpec(rules=[]))
    _run(services)  # a removed rule's alert resolves: start from none firing
    services.monitoring.configure("tester", "live", MonitorSpec(rules=[DRIFT_RULE]))
    world.traffic(services.settings, "live", n=300, shift=2.0)
    (outcome,) = services.run_monitors("tester", ["live"], end=NOW)
    (alert,) = outcome.fired
    with services.store.read() as rx:
        incident = rx.active_incident("fraud")
        (stored,) = rx.list_alerts(deployment="live", state=AlertState.FIRING)
    assert incident is not None
    assert incident.severity is Severity.HIGH
    assert stored.incident_id == incident.id
    assert stored.id == alert.id


def test_unanswered_requests_fail_availability_and_forced_fallbacks_do_not(
    services: Services, world: World
) -> None:
    world.traffic(services.settings, "live", n=100, errors=3, unanswered=2, forced=10)
    metrics = _run(services).window.metrics
    assert metrics["slo.requests"] == 100.0
    assert metrics["slo.errors"] == 5.0  # 3 fallbacks for a failed model, 2 unanswered
    assert metrics["slo.availability"] == pytest.approx(0.95)


def test_a_reference_sample_that_is_not_parquet_is_refused_at_registration(
    services: Services,
) -> None:
    from steward.domain.enums import Flavor
    from steward.errors import InvalidInput
    from steward.schemas.registry import VersionCreate

    registry = services.registry
    v1 = registry.get_version("models:/fraud/1")
    before = registry.get_model("fraud").latest_version
    body = VersionCreate(
        flavor=Flavor.SKLEARN,
        files=v1.files,
        primary_file=v1.primary_file,
        reference_sample=registry.upload_artifact(b"a,b\n1,2\n"),
    )
    with pytest.raises(InvalidInput) as refused:
        registry.create_version("tester", "fraud", body)
    assert refused.value.field == "reference_sample"
    assert registry.get_model("fraud").latest_version == before  # nothing recorded


def test_the_server_scheduler_runs_due_monitors_and_survives_a_failing_tick(
    services: Services, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from steward.api import scheduler
    from steward.api.app import create_app

    later = NOW + timedelta(hours=6)  # every monitor is due
    services.monitoring.clock = lambda: later
    settings = services.settings.model_copy(
        update={"monitor": MonitorSettings(scheduler=True, tick_s=0.05)}
    )
    with TestClient(create_app(settings, services=services, scheduler=True)):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if services.monitoring.windows("live", limit=1)[0].end == later:
                break
            time.sleep(0.05)
    assert services.monitoring.windows("live", limit=1)[0].end == later
    assert services.monitoring.windows("bare", limit=1)[0].end == later

    class Broken:
        def run_due_monitors(self, actor: str) -> list[Any]:
            raise RuntimeError("the database went away")

    assert scheduler.tick(Broken()) == 0  # type: ignore[arg-type]
    assert "retrying on the next one" in caplog.text


def test_a_feature_whose_type_changed_is_named_and_the_others_still_tested(
    services: Services, world: World
) -> None:
    services.monitoring.configure("tester", "live", MonitorSpec(rules=[]))
    world.traffic(services.settings, "live", n=1500, seed=3, c_as_text=True)
    window = _run(services).window
    assert window.status is WindowStatus.OK
    assert window.metrics["drift.type_changed"] == 1.0
    assert window.metrics["drift.n_tested"] == 2.0
    assert window.report["drift"]["type_changed"] == ["c"]
    assert window.metrics["quality.schema_violations"] >= 1.0


def test_live_performance_waits_for_the_label_delay(services: Services, world: World) -> None:
    services.monitoring.configure("tester", "live", MonitorSpec(rules=[], label_delay_s=3600))
    old = world.traffic(services.settings, "live", n=200, at=NOW - timedelta(minutes=90))
    world.traffic(services.settings, "live", n=300, seed=5)  # this hour's: no labels yet
    services.labels.log("tester", "live", dict.fromkeys(old[:120], 1))
    metrics = _run(services).window.metrics
    assert metrics["window.rows"] == 300.0  # drift and SLOs: this hour
    assert metrics["performance.labeled_rows"] == 120.0  # performance: the hour before
    assert metrics["performance.label_coverage"] == pytest.approx(120 / 200)
