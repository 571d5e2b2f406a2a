"""Metrics, experiments and outcomes over the API: viewers read, developers write, the
deployment fills in the design, and outcomes arrive as JSON rows or a Parquet upload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from tests.api.conftest import ApiEnv
from tests.api.test_api_errors import assert_envelope
from tests.store.test_deployment_feed import release

from steward.api.app import API_PREFIX
from steward.schemas.experiments import PARQUET_MEDIA_TYPE, parquet_body
from steward.schemas.serving import DeploymentSpec
from steward.store.outcome_log import read_outcomes

V = API_PREFIX


@pytest.fixture(scope="module")
def shop(api: ApiEnv) -> ApiEnv:
    """Model ``shop`` (v1 in production, v2 approved) behind ``shop-ab``, a 50/50 split."""
    release(api.services, "shop", [False, False])
    spec = DeploymentSpec(model="shop", champion=1, split={1: 0.5, 2: 0.5}, unit_key="user_id")
    api.services.deployments.deploy("setup", "shop-ab", spec)
    return api


def _put_metric(env: ApiEnv, name: str, body: dict[str, Any], who: str = "developer") -> Any:
    return env.http.put(f"{V}/metrics/{name}", json=body, headers=env.headers(who))


def test_metrics_and_an_experiment_end_to_end(shop: ApiEnv) -> None:
    answer = _put_metric(shop, "shop-revenue", {"source": "outcome", "event": "purchase"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["created_by"] == "token:developer"
    _put_metric(shop, "shop-p95", {"source": "latency", "aggregation": "mean"})
    listed = shop.http.get(f"{V}/metrics", headers=shop.headers("viewer"))
    assert {"shop-revenue", "shop-p95"} <= {m["name"] for m in listed.json()}

    body = {
        "name": "shop-checkout", "deployment": "shop-ab", "mde": 0.03, "planned_units": 5000,
        "metrics": [{"metric": "shop-revenue", "role": "primary"},
                    {"metric": "shop-p95", "role": "guardrail", "direction": "decrease",
                     "tolerance": 0.1}],
    }  # fmt: skip
    created = shop.http.post(f"{V}/experiments", json=body, headers=shop.headers("developer"))
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert (experiment["model_name"], experiment["variants"], experiment["control"]) == (
        "shop", [1, 2], 1,
    )  # fmt: skip
    assert experiment["weights"] == {"1": 0.5, "2": 0.5}
    assert experiment["state"] == "running"
    viewer = shop.headers("viewer")
    fetched = shop.http.get(f"{V}/experiments/shop-checkout", headers=viewer)
    assert fetched.json() == experiment
    by_deployment = shop.http.get(f"{V}/experiments", params={"deployment": "shop-ab"},
                                  headers=viewer)  # fmt: skip
    assert [e["name"] for e in by_deployment.json()] == ["shop-checkout"]
    decided = shop.http.get(f"{V}/experiments", params={"state": "decided"}, headers=viewer)
    assert "shop-checkout" not in [e["name"] for e in decided.json()]

    again = shop.http.post(f"{V}/experiments", json={**body, "name": "shop-second"},
                           headers=shop.headers("developer"))  # fmt: skip
    error = assert_envelope(again, 409, "conflict", "deployment")
    assert "shop-checkout" in error["message"]
    redefined = _put_metric(shop, "shop-revenue", {"source": "outcome", "event": "refund"})
    assert_envelope(redefined, 409, "conflict", "name")
    taken = shop.http.post(f"{V}/experiments", json=body, headers=shop.headers("developer"))
    assert_envelope(taken, 409, "already_exists", "name")


def test_an_unknown_metric_is_named(shop: ApiEnv) -> None:
    body = {"name": "shop-ghostly", "deployment": "shop-ab",
            "metrics": [{"metric": "shop-ghost", "role": "primary"}]}  # fmt: skip
    answer = shop.http.post(f"{V}/experiments", json=body, headers=shop.headers("developer"))
    error = assert_envelope(answer, 404, "not_found", "metrics.0.metric")
    assert "shop-ghost" in error["message"]


def test_outcomes_as_json_rows(shop: ApiEnv) -> None:
    rows = [
        {"name": "api-purchase", "value": 19.9, "unit_id": "u1",
         "timestamp": "2026-03-01T10:00:00+01:00"},
        {"name": "api-purchase", "value": True, "request_id": "r1",
         "timestamp": "2026-03-01T10:00:00"},
    ]  # fmt: skip
    answer = shop.http.post(f"{V}/outcomes", json={"outcomes": rows},
                            headers=shop.headers("developer"))  # fmt: skip
    assert answer.status_code == 201, answer.text
    receipt = answer.json()
    assert (receipt["rows"], receipt["outcomes"], receipt["source"]) == (
        2, {"api-purchase": 2}, "api",
    )  # fmt: skip
    stored = read_outcomes(shop.services.experiments.outcome_root, ["api-purchase"])
    assert sorted(stored.column("timestamp").to_pylist()) == [
        datetime(2026, 3, 1, 9, tzinfo=UTC), datetime(2026, 3, 1, 10, tzinfo=UTC),
    ]  # fmt: skip
    (event,) = shop.services.audit.list_events(kind="outcomes.logged", subject_id="api-purchase",
                                               actor="token:developer").items  # fmt: skip
    assert event.payload["files"] == receipt["files"]


def test_outcomes_as_a_parquet_upload(shop: ApiEnv) -> None:
    rows = 30_000
    table = pa.table({
        "name": ["api-click"] * rows, "value": pa.array([1] * rows, pa.int8()),
        "request_id": [f"req-{i}" for i in range(rows)],
    })  # fmt: skip
    headers = {**shop.headers("developer"), "content-type": PARQUET_MEDIA_TYPE}
    answer = shop.http.post(f"{V}/outcomes", content=parquet_body(table), headers=headers,
                            params={"source": "file"})  # fmt: skip
    assert answer.status_code == 201, answer.text
    assert (answer.json()["rows"], answer.json()["source"]) == (rows, "file")
    stored = read_outcomes(shop.services.experiments.outcome_root, "api-click", columns=["value"])
    assert stored.num_rows == rows


@pytest.mark.parametrize(
    ("table", "field"),
    [
        (pa.table({"name": ["p"], "value": [float("nan")], "unit_id": ["u"]}), "outcomes.0.value"),
        (pa.table({"name": ["p"], "value": [1.0]}), "unit_id"),
        (pa.table({"name": ["p p"], "value": [1.0], "unit_id": ["u"]}), "outcomes.0.name"),
    ],
)
def test_a_bad_upload_names_the_field(shop: ApiEnv, table: pa.Table, field: str) -> None:
    headers = {**shop.headers("developer"), "content-type": PARQUET_MEDIA_TYPE}
    answer = shop.http.post(f"{V}/outcomes", content=parquet_body(table), headers=headers)
    assert_envelope(answer, 422, "invalid_input", field)


def test_the_openapi_documents_the_bodies(shop: ApiEnv) -> None:
    schema = shop.http.get("/openapi.json").json()
    assert {"MetricBody", "ExperimentCreate"} <= set(schema["components"]["schemas"])
    outcomes = schema["paths"][f"{V}/outcomes"]["post"]["requestBody"]["content"]
    assert set(outcomes) == {"application/json", PARQUET_MEDIA_TYPE}
    assert "$defs" not in str(outcomes)
