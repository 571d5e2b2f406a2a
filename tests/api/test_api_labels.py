"""POST /deployments/{name}/labels: JSON rows or a Parquet upload; bad input is a 4xx naming
the field, never a 500."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from tests.api.conftest import ApiEnv
from tests.api.test_api_errors import assert_envelope
from tests.monitoring.test_labels_service import make_deployment

from steward.api.app import API_PREFIX
from steward.schemas.labels import PARQUET_MEDIA_TYPE, parquet_body
from steward.store.label_log import read_labels

URL = f"{API_PREFIX}/deployments/labelled-api/labels"
PARQUET = {"content-type": PARQUET_MEDIA_TYPE}


@pytest.fixture(scope="module")
def labelled(api: ApiEnv) -> ApiEnv:
    make_deployment(api.services, name="labelled-api", model="labelled")
    return api


def test_parquet_upload(labelled: ApiEnv) -> None:
    rows = 20_000
    table = pa.table({
        "request_id": [f"req-{i}" for i in range(rows)],
        "label": pa.array([i % 2 for i in range(rows)], pa.int8()),
        "row": pa.array([i % 3 for i in range(rows)], pa.int32()),
    })  # fmt: skip
    headers = {**labelled.headers("developer"), **PARQUET}
    response = labelled.http.post(
        URL, content=parquet_body(table), headers=headers, params={"source": "file"}
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert (receipt["rows"], receipt["source"], receipt["deployment"]) == (
        rows, "file", "labelled-api",
    )  # fmt: skip
    assert receipt["unknown_request_ids"] == rows  # nothing was predicted: all unknown, kept
    assert len(receipt["unknown_examples"]) == 5
    stored = read_labels(labelled.services.labels.root, "labelled-api", request_ids={"req-7"})
    assert stored.table.select(["request_id", "row", "label"]).to_pylist() == [
        {"request_id": "req-7", "row": 1, "label": 1.0}
    ]


def test_json_rows(labelled: ApiEnv) -> None:
    rows = [{"request_id": "j1", "label": "spam", "row": 2}, {"request_id": "j2", "label": True}]
    body = {"labels": rows}
    response = labelled.http.post(URL, json=body, headers=labelled.headers("developer"))
    assert response.status_code == 201, response.text
    assert (response.json()["rows"], response.json()["source"]) == (2, "api")


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "field"),
    [
        ({"content": b'{"labels": [{"request_id": "a", "label": NaN}]}'}, 422, "invalid_input",
         "labels.0.label"),
        ({"json": {"labels": [{"request_id": "a", "label": [1]}]}}, 422, "invalid_input",
         "labels.0.label"),
        ({"json": {"labels": [{"request_id": "", "label": 1}]}}, 422, "invalid_input",
         "labels.0.request_id"),
        ({"json": {"labels": [{"request_id": "a", "label": 1, "row": -1}]}}, 422,
         "invalid_input", "labels.0.row"),
        ({"json": {"labels": []}}, 422, "invalid_input", "labels"),
        ({"json": {"labels": [{"request_id": "a", "label": 1}] * 2}}, 422, "invalid_input",
         "request_id"),
        ({"json": ["a"]}, 422, "invalid_input", "body"),
        ({"content": b"{"}, 422, "invalid_input", "body"),
        ({"content": b"not parquet", "headers": PARQUET}, 422, "invalid_input", "body"),
        ({"content": parquet_body(pa.table({"request_id": ["a"], "y": [1]})),
          "headers": PARQUET}, 422, "invalid_input", "label"),
        ({"content": b"a,b", "headers": {"content-type": "text/csv"}}, 415,
         "unsupported_media_type", None),
    ],
    ids=["nan", "list-label", "empty-id", "negative-row", "no-labels", "duplicates",
         "not-an-object", "bad-json", "bad-parquet", "no-label-column", "csv"],
)  # fmt: skip
def test_bad_labels_are_4xx_naming_the_field(
    labelled: ApiEnv, kwargs: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    # a copy: the parameters are shared by the SQLite and PostgreSQL runs
    request = dict(kwargs)
    headers = {**labelled.headers("developer"), "content-type": "application/json",
               **request.pop("headers", {})}  # fmt: skip
    response = labelled.http.post(URL, headers=headers, **request)
    assert_envelope(response, status, code, field)


def test_unknown_deployment_and_roles(labelled: ApiEnv) -> None:
    body = {"labels": [{"request_id": "a", "label": 1}]}
    ghost = labelled.http.post(
        f"{API_PREFIX}/deployments/ghost/labels", json=body, headers=labelled.headers("admin")
    )
    assert_envelope(ghost, 404, "not_found", None)
    viewer = labelled.http.post(URL, json=body, headers=labelled.headers("viewer"))
    assert_envelope(viewer, 403, "permission_denied", None)
