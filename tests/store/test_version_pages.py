"""The API's page of versions as JSON, built from the stored rows, equals the entities' dumps.

`RegistryService.list_versions_json` passes the stored JSON columns through instead of building
a `ModelVersion` per row; whatever a version holds, each item must parse to exactly what
`list_versions` returns, on both backends, for every kind of filter and page.
"""

from __future__ import annotations

import asyncio
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.store.conftest import on_a_loop

from steward.domain.clock import utcnow
from steward.errors import InvalidInput, StewardError
from steward.schemas import parse
from steward.schemas.registry import ModelCreate, VersionCreate, VersionUpdate
from steward.settings import Settings
from steward.store.base import ReadWouldWait, encode_page_token
from steward.store.sql import _loop_connections
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


QUERIES = pytest.mark.parametrize(
    "query",
    [
        {},
        {"filter": "metrics.auc > 0.4"},
        {"filter": "metrics.auc >= 0.3 and tags.team = 'risk'"},
        {"filter": "status = 'production'"},
        {"model": "churn"},
        {"model": "fraud", "filter": "metrics.loss < 0.5"},
        {"filter": "metrics.auc > 2"},
        {"filter": "name != 'fraud' and version >= 2"},
        {"limit": 3, "page_token": encode_page_token(4)},
    ],
    ids=[
        "all",
        "one-metric",
        "metric-and-tag",
        "status",
        "model",
        "model-and-metric",
        "none",
        "model-field",
        "deep-page",
    ],
)


@QUERIES
def test_json_page_equals_the_entities(services: Services, query: dict[str, Any]) -> None:
    _populate(services)
    as_json, entities = _both(services, **query)
    assert as_json == entities
    assert query.get("filter") == "metrics.auc > 2" or as_json["items"]


# What `_populate` registers: six versions of each model; listing order is model name, then
# newest first.
_LISTED = [("churn", n) for n in range(6, 0, -1)] + [("fraud", n) for n in range(6, 0, -1)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, _LISTED),
        ({"filter": "name != 'fraud' and version >= 2"}, _LISTED[:5]),
        ({"filter": "version <= 2"}, [("churn", 2), ("churn", 1), ("fraud", 2), ("fraud", 1)]),
        ({"limit": 4, "page_token": encode_page_token(4)}, _LISTED[4:8]),
        ({"model": "fraud", "limit": 2, "page_token": encode_page_token(3)}, _LISTED[9:11]),
    ],
    ids=["all", "model-field", "version-field", "across-models", "one-model"],
)
def test_pages_list_models_by_name_then_newest_first(
    services: Services, query: dict[str, Any], expected: list[tuple[str, int]]
) -> None:
    _populate(services)
    items = json.loads(services.registry.list_versions_json(**query))["items"]
    assert [(item["model_name"], item["version"]) for item in items] == expected


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


# -- the page awaited on an event loop (a server's, on PostgreSQL) ------------------------------
def _awaited(services: Services, **query: Any) -> dict[str, Any]:
    registry = services.registry
    page = on_a_loop(services, lambda: registry.list_versions_json_on_loop(**query))
    return dict(json.loads(page))


@QUERIES
def test_a_page_awaited_on_the_loop_equals_the_entities(
    postgres_services: Services, query: dict[str, Any]
) -> None:
    _populate(postgres_services)
    entities = postgres_services.registry.list_versions(**query).model_dump(mode="json")
    assert _awaited(postgres_services, **query) == entities


def test_pages_awaited_on_the_loop_walk_the_same_pages(postgres_services: Services) -> None:
    _populate(postgres_services)
    token: str | None = None
    numbers: list[tuple[str, int]] = []
    while True:
        page = _awaited(postgres_services, limit=5, page_token=token)
        entities = postgres_services.registry.list_versions(limit=5, page_token=token)
        assert page == entities.model_dump(mode="json")
        numbers += [(item["model_name"], item["version"]) for item in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert len(set(numbers)) == 12


def test_the_loop_refuses_what_a_worker_refuses(postgres_services: Services) -> None:
    _populate(postgres_services)
    for query, field in [
        ({"model": "no-such-model"}, "name"),
        ({"filter": "metrics.auc >"}, "filter"),
        ({"limit": 0}, "limit"),
        ({"page_token": "not-a-token"}, "page_token"),
    ]:
        with pytest.raises(StewardError) as error:
            _awaited(postgres_services, **query)
        assert error.value.details.get("field") == field, query
        with pytest.raises(type(error.value)):
            postgres_services.registry.list_versions_json(**query)


def test_a_loop_without_connections_of_its_own_reads_nothing(
    postgres_services: Services, sqlite_services: Services
) -> None:
    """Where the store cannot await a read (SQLite, or a loop that did not open connections),
    the read is refused before anything is sent, for a worker to run."""

    async def unopened(services: Services) -> bytes:
        return await services.registry.list_versions_json_on_loop()

    for services in (postgres_services, sqlite_services):
        with pytest.raises(ReadWouldWait):
            asyncio.run(unopened(services))
    with pytest.raises(ReadWouldWait):
        on_a_loop(sqlite_services, sqlite_services.registry.list_versions_json_on_loop)


def test_a_connection_lost_under_the_loop_leaves_the_read_for_a_worker(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop connection the database dropped (a restart, an administrator): the read is
    refused as one that would wait (a worker then reads on a connection of its own), and the
    loop's next read gets a fresh connection."""
    # One connection, so the one dropped is the one lent next; just used, it is not pinged
    # before that use: the read itself meets the loss.
    settings = Settings(home=tmp_path / "home", database={"url": postgres_url, "pool_size": 1})
    services = Services.from_settings(settings)
    monkeypatch.setattr(_loop_connections, "PING_AFTER_IDLE_SECONDS", 3600.0)
    try:
        _read_after_a_lost_connection(services, postgres_url)
    finally:
        services.close()


def _read_after_a_lost_connection(services: Services, postgres_url: str) -> None:
    _populate(services)
    registry = services.registry
    expected = registry.list_versions_json()

    async def scenario() -> list[bytes | None]:
        pages: list[bytes | None] = [await registry.list_versions_json_on_loop()]
        _drop_page_connections(postgres_url)
        try:
            pages.append(await registry.list_versions_json_on_loop())
        except ReadWouldWait:
            pages.append(None)
        pages.append(await registry.list_versions_json_on_loop())
        return pages

    assert on_a_loop(services, scenario) == [expected, None, expected]


def _drop_page_connections(url: str) -> None:
    """End the sessions that read a page of versions last, as a database restart would."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        ended = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state = 'idle' AND query LIKE '%model_versions%'"
        ).fetchall()
    assert ended, "no connection had read a page"
