"""Labels through the SDK, embedded and over HTTP alike: every input shape, the same receipt,
the same errors naming the same fields, one ledger event per call."""

from __future__ import annotations

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
from steward.errors import InvalidInput, NotFound
from steward.schemas.labels import JSON_ROWS_LIMIT, PARQUET_MEDIA_TYPE

APPROVALS = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"


@pytest.fixture
def deployment(client: Client, reviewer: Client) -> str:
    """``scoring-api``: v1 of ``scoring`` in production (approvals-only policy)."""
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) % 3})
    model = LogisticRegression().fit(frame, (frame["a"] > 4).astype(int))
    client.create_model("scoring", owner="ana@example.com")
    client.set_policy(APPROVALS, model="scoring")
    uri = log_model(model, "scoring", client=client).uri
    client.gate(uri)
    reviewer.approve(uri)
    client.promote(uri, "production")
    client.deploy("scoring-api", model="scoring", champion=1)
    return "scoring-api"


def _sent(client: Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The content types of the labels requests the HTTP backend sends (none when embedded)."""
    types: list[str] = []
    transport = getattr(client._backend, "http", None)
    if transport is None:
        return types
    request = transport.request

    def spy(method: str, path: str, **kwargs: Any) -> Any:
        if path.endswith("/labels"):
            types.append(kwargs["headers"]["content-type"])
        return request(method, path, **kwargs)

    monkeypatch.setattr(transport, "request", spy)
    return types


def test_every_input_shape_logs_the_same_way(
    client: Client, deployment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _sent(client, monkeypatch)
    first = client.log_labels(deployment, {"r1": 1, "r2": False, "r3": "spam"})
    assert (first.rows, first.source, first.deployment) == (3, "sdk", deployment)
    assert first.unknown_request_ids == 3  # nothing was predicted: stored anyway, and said so
    rows = [{"request_id": "r4", "label": 0.5, "row": 2}, {"request_id": "r5", "label": True}]
    assert client.log_labels(deployment, rows).rows == 2
    frame = pd.DataFrame({"id": ["d1", "d2"], "y": np.array([1, 0], dtype=np.int64)})
    assert client.log_labels(
        deployment, frame, request_id_column="id", label_column="y"
    ).rows == 2  # fmt: skip
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label\n007,cat\n008,dog\n")
    from_file = client.log_labels(deployment, csv)
    assert (from_file.rows, from_file.source) == (2, "file")

    big = pa.table({  # over the JSON limit: one Parquet request over HTTP
        "request_id": [f"b{i}" for i in range(JSON_ROWS_LIMIT + 1)],
        "label": np.arange(JSON_ROWS_LIMIT + 1, dtype=np.float64) % 2,
    })  # fmt: skip
    path = tmp_path / "big.parquet"
    pq.write_table(big, path)
    assert steward.log_labels(deployment, path, client=client).rows == JSON_ROWS_LIMIT + 1

    events = client.list_events(kind="labels.logged", limit=10).items
    assert [e.payload["rows"] for e in events] == [3, 2, 2, 2, JSON_ROWS_LIMIT + 1]
    assert [e.payload["source"] for e in events] == ["sdk", "sdk", "sdk", "file", "file"]
    assert {e.subject_id for e in events} == {deployment}
    if client.is_remote:
        json = "application/json"
        assert sent == [json, json, json, json, PARQUET_MEDIA_TYPE]
    else:
        assert sent == []


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"a": float("nan")}, "labels.0.label"),
        ({"a": 1, "": 0}, "labels.1.request_id"),
        ([{"request_id": "a", "label": 1, "row": -3}], "labels.0.row"),
        ([{"request_id": "a", "label": {"nested": 1}}], "labels.0.label"),
        ([{"request_id": "a", "label": 1}, {"request_id": "a", "label": 0}], "request_id"),
        ([], "labels"),
        (pd.DataFrame({"request_id": ["a", "b"], "label": [1.0, np.inf]}), "labels.1.label"),
        (pd.DataFrame({"request_id": ["a"], "y": [1]}), "label"),
        (pa.table({"request_id": ["a"], "label": [b"bytes"]}), "label"),
    ],
    ids=["nan", "empty-id", "negative-row", "object-label", "duplicates", "empty",
         "frame-inf", "no-label-column", "binary-label"],
)  # fmt: skip
def test_bad_labels_fail_alike_in_both_modes(
    client: Client, deployment: str, labels: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        client.log_labels(deployment, labels)
    assert refused.value.field == field
    assert client.list_events(kind="labels.logged").items == []


def test_unknown_deployment(client: Client) -> None:
    with pytest.raises(NotFound):
        client.log_labels("ghost", {"r1": 1})
