"""ExperimentService on every backend: metrics defined and refused by field, experiments filled
in from their deployment (model, variants, weights, salt, control, start), and outcome events
checked, written and recorded all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests.store.test_deployment_feed import release

from steward.domain.assignment import canary_salt
from steward.domain.experiments import (
    Aggregation,
    Direction,
    ExperimentState,
    MetricRole,
    MetricSource,
)
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound, Unavailable
from steward.experiments import _outcomes
from steward.experiments.service import OUTCOMES_EVENT, ExperimentService
from steward.schemas.serving import DeploymentSpec
from steward.store.outcome_log import read_outcomes
from steward.wiring import Services

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def deployed(services: Services) -> Services:
    """``churn``: v1 in production, v2 and v3 approved; deployments ``churn-ab`` (a 30/70
    split of v1 and v2), ``churn-canary`` (v3 on 10%), ``churn-live`` (v1 alone) and
    ``churn-new`` (a split of v2 and v3, without the champion)."""
    release(services, "churn", [False, False, False])
    for name, routing in (
        ("churn-ab", {"split": {1: 0.3, 2: 0.7}, "unit_key": "user_id"}),
        ("churn-canary", {"canary": 3, "canary_share": 0.1}),
        ("churn-live", {}),
        ("churn-new", {"split": {2: 1, 3: 1}, "unit_key": "user_id", "experiment": "salted"}),
    ):
        spec = DeploymentSpec.model_validate({"model": "churn", "champion": 1, **routing})
        services.deployments.deploy("ana", name, spec)
    for metric, body in (
        ("revenue", {"source": "outcome", "event": "purchase"}),
        ("conversion", {"source": "outcome", "event": "purchase", "aggregation": "any"}),
        ("latency", {"source": "latency", "aggregation": "mean"}),
    ):
        services.experiments.define_metric("ana", metric, body)
    return services


def _create(services: Services, name: str = "checkout", **fields: Any) -> Any:
    body = {
        "name": name, "deployment": "churn-ab",
        "metrics": [{"metric": "revenue", "role": "primary"},
                    {"metric": "conversion", "role": "secondary"},
                    {"metric": "latency", "role": "guardrail", "direction": "decrease",
                     "tolerance": 0.05}],
        **fields,
    }  # fmt: skip
    return services.experiments.create("ana", body)


def _field(call: Callable[[], object], kind: type[Exception] = InvalidInput) -> str:
    with pytest.raises(kind) as caught:
        call()
    details = getattr(caught.value, "details", {})
    return str(details.get("field"))


# metrics ---------------------------------------------------------------------------------------
def test_metrics_are_defined_once_and_listed(deployed: Services) -> None:
    service = deployed.experiments
    revenue = service.metric("revenue")
    assert (revenue.source, revenue.event, revenue.aggregation) == (
        MetricSource.OUTCOME, "purchase", Aggregation.SUM,
    )  # fmt: skip
    assert revenue.created_by == "ana"
    assert [m.name for m in service.metrics()] == ["conversion", "latency", "revenue"]
    score = service.define_metric(
        "bo", "score", {"source": "prediction", "event": "score", "aggregation": "mean",
                        "covariate": "spend_before", "description": "Mean score ✓"},
    )  # fmt: skip
    assert (score.covariate, score.description) == ("spend_before", "Mean score ✓")
    kinds = [
        e.payload["redefined"] for e in deployed.audit.list_events(kind="metric.defined").items
    ]
    assert kinds == [False] * 4


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("bad name", {"source": "outcome", "event": "x"}, "name"),
        ("m", {"source": "telepathy"}, "source"),
        ("m", {"source": "outcome"}, "event"),
        ("m", {"source": "outcome", "event": "no spaces"}, "event"),
        ("m", {"source": "prediction", "event": "label"}, "event"),
        ("m", {"source": "latency", "event": "purchase"}, "event"),
        ("m", {"source": "error", "aggregation": "median"}, "aggregation"),
        ("m", {"source": "error", "covariate": "a b"}, "covariate"),
        ("m", {"source": "error", "colour": "red"}, "colour"),
        ("m", {"source": "error", "description": "nul\x00"}, "description"),
    ],
)
def test_a_bad_metric_names_its_field(
    deployed: Services, name: str, body: dict[str, Any], field: str
) -> None:
    assert _field(lambda: deployed.experiments.define_metric("ana", name, body)) == field


def test_a_metric_in_use_cannot_be_redefined(deployed: Services) -> None:
    service = deployed.experiments
    _create(deployed)
    same = {"source": "outcome", "event": "purchase"}
    assert service.define_metric("ana", "revenue", same).aggregation is Aggregation.SUM
    with pytest.raises(Conflict, match="checkout"):
        service.define_metric("ana", "revenue", {**same, "aggregation": "mean"})
    assert service.metric("revenue").aggregation is Aggregation.SUM
    with pytest.raises(Conflict):  # a guardrail is used too
        service.define_metric("ana", "latency", {"source": "latency", "aggregation": "sum"})
    service.define_metric("ana", "spare", {"source": "error"})
    spare = service.define_metric("ana", "spare", {"source": "error", "aggregation": "any"})
    assert spare.aggregation is Aggregation.ANY  # no running experiment uses it
    redefined = deployed.audit.list_events(kind="metric.defined", subject_id="spare").items
    assert [e.payload["redefined"] for e in redefined] == [False, True]


# experiments -----------------------------------------------------------------------------------
def test_create_fills_in_the_design_from_the_deployment(deployed: Services) -> None:
    before = datetime.now(UTC)
    experiment = _create(deployed, mde=0.02, planned_units=10_000, hypothesis="v2 sells more")
    assert (experiment.model_name, experiment.variants, experiment.control) == ("churn", [1, 2], 1)
    assert (experiment.weights, experiment.salt) == ({1: 0.3, 2: 0.7}, "churn-ab")
    assert experiment.state is ExperimentState.RUNNING
    assert before <= experiment.start <= datetime.now(UTC)
    assert experiment.primary.metric == "revenue"
    guardrail = experiment.metrics[2]
    assert (guardrail.role, guardrail.direction, guardrail.tolerance) == (
        MetricRole.GUARDRAIL, Direction.DECREASE, 0.05,
    )  # fmt: skip
    assert deployed.experiments.get("checkout") == experiment
    assert list(deployed.experiments.list(deployment="churn-ab")) == [experiment]
    (event,) = deployed.audit.list_events(kind="experiment.created").items
    assert (event.actor, event.subject_type, event.subject_id) == ("ana", "experiment", "checkout")
    assert event.payload["variants"] == [1, 2]


def test_the_control_and_the_start(deployed: Services) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    start = datetime(2026, 2, 1, 9, tzinfo=india)
    explicit = _create(deployed, control=2, start=start)
    assert (explicit.control, explicit.start) == (2, start)
    assert explicit.start.utcoffset() == timedelta(0)
    new = _create(deployed, "no-champion", deployment="churn-new")
    assert (new.variants, new.control, new.salt) == ([2, 3], 2, "salted")  # the lowest version
    assert new.weights == {2: 1.0, 3: 1.0}
    canary = _create(deployed, "canary", deployment="churn-canary")
    assert (canary.variants, canary.control) == ([1, 3], 1)
    assert canary.weights == pytest.approx({1: 0.9, 3: 0.1})
    assert canary.salt == canary_salt(3)


@pytest.mark.parametrize(
    ("fields", "kind", "field"),
    [
        ({"deployment": "ghost"}, NotFound, "deployment"),
        ({"deployment": "churn-live"}, InvalidInput, "deployment"),
        ({"control": 3}, InvalidInput, "control"),
        ({"metrics": [{"metric": "ghost", "role": "primary"}]}, NotFound, "metrics.0.metric"),
        ({"metrics": [{"metric": "revenue", "role": "secondary"}]}, InvalidInput, "metrics"),
        ({"metrics": [{"metric": "revenue", "role": "primary", "tolerance": 0.1}]},
         InvalidInput, "metrics.0.tolerance"),
        ({"metrics": [{"metric": "revenue", "role": "primary"},
                      {"metric": "revenue", "role": "guardrail"}]}, InvalidInput, "metrics"),
        ({"name": "with space"}, InvalidInput, "name"),
        ({"alpha": 0.7}, InvalidInput, "alpha"),
        ({"mde": float("inf")}, InvalidInput, "mde"),
        ({"planned_units": 1}, InvalidInput, "planned_units"),
        ({"start": datetime(2026, 1, 1)}, InvalidInput, "start"),
        ({"method": "vibes"}, InvalidInput, "method"),
    ],
)  # fmt: skip
def test_a_bad_experiment_names_its_field(
    deployed: Services, fields: dict[str, Any], kind: type[Exception], field: str
) -> None:
    assert _field(lambda: _create(deployed, **fields), kind) == field
    assert deployed.audit.list_events(kind="experiment.created").items == []


def test_one_running_experiment_per_deployment(deployed: Services) -> None:
    _create(deployed)
    with pytest.raises(AlreadyExists):
        _create(deployed, deployment="churn-canary")
    with pytest.raises(Conflict, match="checkout"):
        _create(deployed, "second")
    with deployed.store.write("ana") as tx:
        tx.update_experiment("checkout", {"state": ExperimentState.DECIDED},
                             kind="experiment.ended", payload={})  # fmt: skip
    assert _create(deployed, "second").state is ExperimentState.RUNNING
    running = deployed.experiments.list(state=ExperimentState.RUNNING)
    assert [e.name for e in running] == ["second"]


# outcomes --------------------------------------------------------------------------------------
def _files(root: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(root)
    return sorted(p for p in fs.find(path) if p.endswith(".parquet")) if fs.exists(path) else []


def test_outcomes_in_every_shape(deployed: Services, tmp_path: Path) -> None:
    service = deployed.experiments
    rows = [
        {"name": "purchase", "value": 12.5, "unit_id": "u1", "timestamp": T0},
        {"name": "purchase", "value": True, "request_id": "r1",
         "timestamp": datetime(2026, 3, 1, 12)},  # naive: UTC
        {"name": "click", "value": np.int64(1), "unit_id": "u2"},  # no timestamp: now
    ]  # fmt: skip
    receipt = service.log_outcomes("ana", rows)
    assert (receipt.rows, receipt.outcomes, receipt.source) == (
        3,
        {"click": 1, "purchase": 2},
        "sdk",
    )
    assert len(receipt.files) == 2
    frame = pd.DataFrame({"name": ["purchase"] * 2, "value": [1, 2], "unit_id": ["u3", None],
                          "request_id": [None, "r2"],
                          "timestamp": pd.to_datetime(["2026-03-02", "2026-03-02"])})  # fmt: skip
    assert service.log_outcomes("ana", frame).rows == 2
    csv = tmp_path / "outcomes.csv"
    csv.write_text("name,value,unit_id,timestamp\npurchase,3,007,2026-03-03T10:00:00+02:00\n")
    assert service.log_outcomes("ana", csv, source="file").source == "file"
    table = read_outcomes(
        service.outcome_root, ["purchase"], since=T0, until=T0 + timedelta(days=3)
    )
    columns = [table[c].to_pylist() for c in ("unit_id", "request_id", "value", "timestamp")]
    got = sorted(zip(*columns, strict=True), key=str)
    assert got == sorted([
        ("u1", None, 12.5, T0), (None, "r1", 1.0, T0 + timedelta(hours=12)),
        ("u3", None, 1.0, T0 + timedelta(days=1)), (None, "r2", 2.0, T0 + timedelta(days=1)),
        ("007", None, 3.0, T0 + timedelta(days=2, hours=8)),
    ], key=str)  # fmt: skip
    events = deployed.audit.list_events(kind=OUTCOMES_EVENT).items
    assert [(e.subject_type, e.subject_id) for e in events] == [
        ("outcome", "*"),
        ("outcome", "purchase"),
        ("outcome", "purchase"),
    ]
    assert events[0].payload == {
        "rows": 3, "outcomes": {"click": 1, "purchase": 2}, "files": receipt.files,
        "source": "sdk",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("outcomes", "field"),
    [
        ([], "outcomes"),
        ([{"name": "p", "value": float("nan"), "unit_id": "u"}], "outcomes.0.value"),
        ([{"name": "p", "value": "12", "unit_id": "u"}], "outcomes.0.value"),
        ([{"name": "p", "value": 1, "unit_id": "u", "request_id": "r"}], "outcomes.0.unit_id"),
        ([{"name": "p", "value": 1}], "outcomes.0.unit_id"),
        ([{"name": "p", "value": 1, "unit_id": ""}], "outcomes.0.unit_id"),
        ([{"name": "p", "value": 1, "unit_id": 7}], "outcomes.0.unit_id"),
        ([{"name": "p", "value": 1, "unit_id": "u"}, {"name": "a b", "value": 1, "unit_id": "u"}],
         "outcomes.1.name"),
        ([{"name": "p", "value": 1, "unit_id": "u", "timestamp": "soon"}],
         "outcomes.0.timestamp"),
        ([{"name": "p", "value": 1, "unit_id": "u", "colour": "red"}], "outcomes.0.colour"),
        (["p"], "outcomes.0"),
        (pa.table({"name": ["p", "p"], "value": [1.0, float("inf")], "unit_id": ["u", "v"]}),
         "outcomes.1.value"),
        (pa.table({"name": ["p", None], "value": [1.0, 2.0], "unit_id": ["u", "v"]}),
         "outcomes.1.name"),
        (pa.table({"name": ["p"], "value": ["1"], "unit_id": ["u"]}), "value"),
        (pa.table({"name": ["p", "p"], "value": [1, 2], "unit_id": ["u", None]}),
         "outcomes.1.unit_id"),
        (pa.table({"name": ["p"], "value": [1], "unit_id": ["u"], "timestamp": [1.5]}),
         "timestamp"),
        (pa.table({"name": ["p"], "value": [1], "unit_id": ["u"], "timestamp": ["x", ]}),
         "outcomes.0.timestamp"),
        (pa.table({"name": ["p"], "value": [1]}), "unit_id"),
        (pa.table({"name": ["p", "p"], "value": [1, 2], "unit_id": ["u", "v"],
                   "timestamp": pa.array([0, 20_000 * 365 * 86_400 * 10**6],
                                         pa.timestamp("us", tz="UTC"))}),
         "outcomes.1.timestamp"),
        (pa.table({"value": [1], "unit_id": ["u"]}), "name"),
        ({"p": 1}, "outcomes"),
    ],
)  # fmt: skip
def test_bad_outcomes_name_the_field_and_write_nothing(
    deployed: Services, outcomes: object, field: str
) -> None:
    assert _field(lambda: deployed.experiments.log_outcomes("ana", outcomes)) == field
    assert _files(deployed.experiments.outcome_root) == []
    assert deployed.audit.list_events(kind=OUTCOMES_EVENT).items == []


def test_limits_per_call(deployed: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_outcomes, "MAX_PARTITIONS_PER_CALL", 3)
    days = [{"name": "visit", "value": 1, "unit_id": "u", "timestamp": T0 + timedelta(days=d)}
            for d in range(4)]  # fmt: skip
    assert _field(lambda: deployed.experiments.log_outcomes("ana", days)) == "timestamp"
    assert deployed.experiments.log_outcomes("ana", days[:3]).rows == 3
    monkeypatch.setattr(_outcomes, "MAX_OUTCOMES_PER_CALL", 2)
    assert _field(lambda: deployed.experiments.log_outcomes("ana", days[:3])) == "outcomes"
    with pytest.raises(InvalidInput, match="source"):
        deployed.experiments.log_outcomes("ana", days[:1], source="fax")  # type: ignore[arg-type]


class _LedgerDown:
    """A store whose reads work and whose writes fail, as when the database drops mid-call."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def read(self) -> AbstractContextManager[Any]:
        return self.store.read()

    def write(self, actor: str) -> AbstractContextManager[Any]:
        raise Unavailable("the database is down")


def test_no_event_no_files(deployed: Services) -> None:
    root = deployed.experiments.outcome_root
    service = ExperimentService(_LedgerDown(deployed.store), root, root)  # type: ignore[arg-type]
    rows = [{"name": n, "value": 1, "unit_id": "u"} for n in ("a", "b", "c")]
    with pytest.raises(Unavailable):
        service.log_outcomes("ana", rows)
    assert _files(root) == []
