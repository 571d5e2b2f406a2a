"""The API's page of versions as JSON, built from the stored rows, equals the entities' dumps.

`RegistryService.list_versions_json` passes the stored JSON columns through instead of building
a `ModelVersion` per row; whatever a version holds, each item must parse to exactly what
`list_versions` returns, on both backends, for every kind of filter and page.
"""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.domain.clock import utcnow
from steward.errors import InvalidInput
from steward.schemas import parse
from steward.schemas.registry import ModelCreate, VersionCreate, VersionUpdate
from steward.wiring import Services

ACTOR = "tester"


def _parquet_sample() -> bytes:
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.normal(size=200), "kind": ["a", "b"] * 100})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _populate(services: Services) -> None:
    registry = services.registry
    for name in ("churn", "fraud"):
        registry.create_model(ACTOR, parse(ModelCreate, {"name": name, "owner": "ml"}))
    model_file = registry.upload_artifact(pickle.dumps({"w": 1}))
    sample = registry.upload_artifact(_parquet_sample())
    bare = {"flavor": "python", "files": {"model.pkl": model_file}, "trusted": True}
    full: dict[str, Any] = {
        **bare,
        "signature": {
            "inputs": [
                {"name": "x", "dtype": "float64"},
                {"name": "kind", "dtype": "string", "nullable": False},
            ],
            "outputs": [{"name": "score", "dtype": "float64", "shape": [-1, 1]}],
        },
        "params": {"depth": 4, "penalty": "l2", "note": 'quotes " and \\ and ünïcode'},
        "tags": {"team": "risk", "stage": "candidate"},
        "lineage": {
            "git": {"commit": "a" * 40, "dirty": True, "branch": "main"},
            "training_data": "sha256:" + "b" * 64,
            "environment": {"python": "3.11.7", "packages": {"scikit-learn": "1.5.0"}},
            "command": "python train.py --depth 4",
            "external": {"mlflow_run_id": "r1"},
        },
        "reference_sample": sample,
        "description": "multi\nline, with a comma",
    }
    for i in range(12):
        auc = [0.5, 0.1 + 0.2, 0.9, 1e-7, 0.95, 0.8][i % 6]
        body = {**(full if i % 3 else bare), "metrics": {"auc": auc, "loss": 1.0 / (i + 1)}}
        registry.create_version(ACTOR, "churn" if i % 2 else "fraud", parse(VersionCreate, body))
    registry.update_version(
        ACTOR, "churn", 2, parse(VersionUpdate, {"description": "updated", "tags": {"x": "y"}})
    )
    with services.store.write(ACTOR) as tx:  # as a promotion writes it
        tx.update_version("churn", 4, {"status": "production", "status_changed_at": utcnow()})
    registry.set_alias(ACTOR, "churn", "champion", 4)
    registry.set_alias(ACTOR, "churn", "challenger", 4)
    registry.set_alias(ACTOR, "fraud", "champion", 1)


def _both(services: Services, **query: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    as_json = json.loads(services.registry.list_versions_json(**query))
    entities = services.registry.list_versions(**query).model_dump(mode="json")
    return as_json, entities


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"filter": "metrics.auc > 0.4"},
        {"filter": "metrics.auc >= 0.3 and tags.team = 'risk'"},
        {"filter": "status = 'production'"},
        {"model": "churn"},
        {"model": "fraud", "filter": "metrics.loss < 0.5"},
        {"filter": "metrics.auc > 2"},
    ],
    ids=["all", "one-metric", "metric-and-tag", "status", "model", "model-and-metric", "none"],
)
def test_json_page_equals_the_entities(services: Services, query: dict[str, Any]) -> None:
    _populate(services)
    as_json, entities = _both(services, **query)
    assert as_json == entities
    assert query.get("filter") == "metrics.auc > 2" or as_json["items"]


def test_json_pages_walk_the_same_pages(services: Services) -> None:
    _populate(services)
    token: str | None = None
    seen = 0
    while True:
        as_json, entities = _both(services, limit=5, page_token=token)
        assert as_json == entities
        seen += len(as_json["items"])
        token = as_json["next_page_token"]
        if token is None:
            break
    assert seen == 12


def test_json_page_keeps_the_stored_values_exactly(services: Services) -> None:
    _populate(services)
    items = json.loads(services.registry.list_versions_json(model="churn"))["items"]
    by_number = {item["version"]: item for item in items}
    assert by_number[4]["aliases"] == ["challenger", "champion"]
    assert by_number[4]["status"] == "production"
    assert {i["metrics"]["auc"] for i in items} >= {0.1 + 0.2, 1e-7}  # no rounding on the way
    assert by_number[2]["signature"] is None
    assert by_number[2]["reference_profile"] is None
    assert by_number[1]["reference_profile"] is not None
    assert by_number[1]["params"]["note"] == 'quotes " and \\ and ünïcode'


def test_json_page_refuses_what_the_entity_page_refuses(services: Services) -> None:
    with pytest.raises(InvalidInput) as error:
        services.registry.list_versions_json(filter="metrics.auc >", limit=10)
    assert error.value.field == "filter"
    with pytest.raises(InvalidInput) as error:
        services.registry.list_versions_json(limit=0)
    assert error.value.field == "limit"
