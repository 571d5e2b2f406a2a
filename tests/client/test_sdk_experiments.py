"""Metrics, experiments and outcomes through the SDK, embedded and over HTTP alike: the same
entities, the same receipts, the same errors naming the same fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

import steward
from steward.client import Client, log_model
from steward.domain.experiments import (
    Direction,
    ExperimentMetric,
    ExperimentState,
    MetricRole,
    MetricSource,
)
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound

APPROVALS = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def split(client: Client, reviewer: Client) -> str:
    """``shop-ab``: v1 (production) and v2 (approved) of ``shop``, 50/50 by ``user_id``."""
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) % 3})
    client.create_model("shop", owner="ana@example.com")
    client.set_policy(APPROVALS, model="shop")
    for c in (1.0, 0.1):
        model = LogisticRegression(C=c).fit(frame, (frame["a"] > 4).astype(int))
        uri = log_model(model, "shop", client=client).uri
        client.gate(uri)
        reviewer.approve(uri)
    client.promote("models:/shop/1", "production")
    client.deploy("shop-ab", model="shop", champion=1, split={1: 0.5, 2: 0.5}, unit_key="user_id")
    client.define_metric("revenue", source="outcome", event="purchase")
    client.define_metric("latency", source=MetricSource.LATENCY, aggregation="mean")
    return "shop-ab"


def _field(call: Any, kind: type[Exception] = InvalidInput) -> str | None:
    with pytest.raises(kind) as caught:
        call()
    return caught.value.details.get("field")  # type: ignore[attr-defined, no-any-return]


def test_metrics(client: Client, split: str) -> None:
    score = client.define_metric(
        "score", source="prediction", event="score", aggregation="mean", covariate="spend",
        description="ü ✓",
    )  # fmt: skip
    assert (score.source, score.event, score.covariate) == (
        MetricSource.PREDICTION,
        "score",
        "spend",
    )
    assert [m.name for m in client.metrics()] == ["latency", "revenue", "score"]
    assert _field(lambda: client.define_metric("m", source="outcome")) == "event"
    assert _field(lambda: client.define_metric("no way", source="error")) == "name"
    assert _field(lambda: client.define_metric("m", source="psychic")) == "source"


def test_an_experiment_from_the_sdk(client: Client, split: str) -> None:
    start = datetime(2026, 3, 1, 9)  # naive: UTC
    experiment = client.create_experiment(
        "checkout", deployment=split, metric="revenue", guardrails=["latency:decrease:0.05"],
        mde=0.02, planned_units=4000, hypothesis="v2 sells more", start=start,
    )  # fmt: skip
    assert (experiment.variants, experiment.control, experiment.salt) == ([1, 2], 1, split)
    assert experiment.start == start.replace(tzinfo=UTC)
    guardrail = experiment.metrics[1]
    assert (guardrail.metric, guardrail.role, guardrail.direction, guardrail.tolerance) == (
        "latency", MetricRole.GUARDRAIL, Direction.DECREASE, 0.05,
    )  # fmt: skip
    assert client.get_experiment("checkout") == experiment
    assert client.list_experiments(deployment=split) == [experiment]
    assert client.list_experiments(state="decided") == []
    assert client.list_experiments(state=ExperimentState.RUNNING) == [experiment]
    with pytest.raises(Conflict, match="checkout"):
        client.create_experiment("again", deployment=split, metric="revenue")
    with pytest.raises(AlreadyExists):
        client.create_experiment("checkout", deployment=split, metric="revenue")
    with pytest.raises(Conflict):
        client.define_metric("latency", source="latency", aggregation="sum")


def test_metrics_given_every_way(client: Client, split: str) -> None:
    experiment = client.create_experiment(
        "shapes", deployment=split, control=2,
        metric={"metric": "revenue", "direction": "increase"},
        secondary=ExperimentMetric(metric="latency", role=MetricRole.SECONDARY),
    )  # fmt: skip
    assert experiment.control == 2
    assert [(m.metric, m.role) for m in experiment.metrics] == [
        ("revenue", MetricRole.PRIMARY), ("latency", MetricRole.SECONDARY),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "kind", "field"),
    [
        ({"deployment": "ghost"}, NotFound, "deployment"),
        ({"metric": "ghost"}, NotFound, "metrics.0.metric"),
        ({"guardrails": ["latency:sideways"]}, InvalidInput, "guardrails.0"),
        ({"guardrails": ["latency:decrease:lots"]}, InvalidInput, "guardrails.0"),
        ({"secondary": ["latency:decrease:0.1"]}, InvalidInput, "metrics.1.tolerance"),
        ({"control": 5}, InvalidInput, "control"),
        ({"alpha": 0}, InvalidInput, "alpha"),
        ({"secondary": [3]}, InvalidInput, "secondary.0"),
    ],
)
def test_bad_experiments_fail_alike(
    client: Client, split: str, fields: dict[str, Any], kind: type[Exception], field: str
) -> None:
    args: dict[str, Any] = {"deployment": split, "metric": "revenue", **fields}
    assert _field(lambda: client.create_experiment("bad", **args), kind) == field


def test_outcomes_every_way(client: Client, split: str, tmp_path: Path) -> None:
    single = steward.log_outcome("purchase", 9.5, unit_id="u1", timestamp=T0, client=client)
    assert (single.rows, single.outcomes, single.source) == (1, {"purchase": 1}, "sdk")
    assert client.log_outcome("refund", True, request_id="r1").rows == 1
    rows = [{"name": "purchase", "value": np.float64(3.0), "unit_id": "u2",
             "timestamp": datetime(2026, 3, 2, 8)},
            {"name": "click", "value": np.int64(1), "request_id": "r2"}]  # fmt: skip
    assert client.log_outcomes(rows).outcomes == {"click": 1, "purchase": 1}
    at = pd.to_datetime(["2026-03-03 10:00", "2026-03-03 11:00"])
    frame = pd.DataFrame({"event": ["purchase", "purchase"], "amount": [1.5, 2.5],
                          "user": ["u3", "u4"], "at": at})  # fmt: skip
    columns = {"name_column": "event", "value_column": "amount", "unit_column": "user",
               "time_column": "at"}  # fmt: skip
    assert client.log_outcomes(frame, **columns).rows == 2
    path = tmp_path / "outcomes.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    from_file = client.log_outcomes(path, **columns)
    assert (from_file.rows, from_file.source) == (2, "file")
    csv = tmp_path / "outcomes.csv"
    csv.write_text("name,value,request_id\nclick,1,007\nclick,0,008\n")
    assert client.log_outcomes(str(csv)).outcomes == {"click": 2}
    events = client.list_events(kind="outcomes.logged", limit=10).items
    assert [e.payload["rows"] for e in events] == [1, 1, 2, 2, 2, 2]


@pytest.mark.parametrize(
    ("outcomes", "field"),
    [
        ([{"name": "p", "value": float("nan"), "unit_id": "u"}], "outcomes.0.value"),
        ([{"name": "p", "value": 1, "unit_id": "u", "request_id": "r"}], "outcomes.0.unit_id"),
        ([{"name": "p", "value": 1, "unit_id": 7}], "outcomes.0.unit_id"),
        ([{"name": "p", "value": 1, "unit_id": "u", "timestamp": "then"}],
         "outcomes.0.timestamp"),
        ([{"name": "a/b", "value": 1, "unit_id": "u"}], "outcomes.0.name"),
        ([], "outcomes"),
        (pd.DataFrame({"name": ["p"], "value": [np.inf], "unit_id": ["u"]}), "outcomes.0.value"),
        (pd.DataFrame({"name": ["p"], "value": [1]}), "unit_id"),
        ("missing.csv", "outcomes"),
    ],
)  # fmt: skip
def test_bad_outcomes_fail_alike(client: Client, outcomes: object, field: str) -> None:
    assert _field(lambda: client.log_outcomes(outcomes)) == field
    assert client.list_events(kind="outcomes.logged").items == []


def test_one_outcome_needs_one_key(client: Client) -> None:
    assert _field(lambda: client.log_outcome("p", 1)) == "outcomes.0.unit_id"
    late = client.log_outcome("p", 1, unit_id="u", timestamp=T0 - timedelta(days=400))
    assert late.files[0].startswith("outcome=p/day=2025-")
