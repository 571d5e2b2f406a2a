"""LabelService: all-or-nothing logging with one ledger event, fields named on bad input,
unknown request ids counted, and the join of labels to predictions."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests.store.test_deployment_feed import release

from steward.errors import InvalidInput, NotFound, Unavailable
from steward.monitoring import labels as labels_module
from steward.monitoring.labels import EVENT_KIND, LabelService, join
from steward.schemas.serving import DeploymentSpec
from steward.store.label_log import read_labels
from steward.store.prediction_log import PredictionLogWriter, PredictionRecord, read_predictions
from steward.wiring import Services


def make_deployment(services: Services, name: str = "fraud-api", model: str = "fraud") -> None:
    """``name`` serving v1 of ``model`` (gated by an approvals-only policy, in production)."""
    release(services, model, [False])
    spec = DeploymentSpec.model_validate({"model": model, "champion": 1})
    services.deployments.deploy("ana", name, spec)


def log_predictions(root: str, deployment: str, request_ids: list[str], **extra: Any) -> None:
    writer = PredictionLogWriter(root, queue_size=1000, flush_rows=1000, flush_seconds=0.01)
    for request_id in request_ids:
        writer.log(PredictionRecord(
            deployment=deployment, version=1, request_id=request_id,
            timestamp=datetime.now(UTC), latency_ms=1.0, inputs={"a": 1.0}, prediction=1, **extra,
        ))  # fmt: skip
    writer.close()


def _files(root: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(root)
    return fs.find(path) if fs.exists(path) else []


@pytest.fixture
def deployed(services: Services) -> Services:
    make_deployment(services)
    return services


def test_log_writes_one_file_and_records_one_event(deployed: Services) -> None:
    service = deployed.labels
    receipt = service.log("ana", "fraud-api", {"r1": 1, "r2": False, "r3": "spam"})
    assert (receipt.deployment, receipt.rows, receipt.source) == ("fraud-api", 3, "sdk")
    assert receipt.file.startswith("deployment=fraud-api/hour=")
    assert [Path(f).name for f in _files(service.root)] == [receipt.file.rsplit("/", 1)[1]]
    events = deployed.audit.list_events(kind=EVENT_KIND).items
    assert len(events) == 1
    event = events[0]
    assert (event.actor, event.subject_type, event.subject_id) == ("ana", "deployment", "fraud-api")
    assert event.payload["rows"] == 3
    assert event.payload["file"] == receipt.file
    assert event.payload["source"] == "sdk"
    stored = read_labels(service.root, "fraud-api").table
    assert stored.column("label").to_pylist() == [1.0, 0.0, None]
    assert stored.column("label_text").to_pylist() == [None, None, "spam"]


@pytest.mark.parametrize(
    ("labels", "field", "match"),
    [
        ({}, "labels", "No labels given"),
        ({"": 1}, "labels.0.request_id", "non-empty text"),
        ({1234: 1}, "labels.0.request_id", "non-empty text"),
        ({"a": 1, "b": float("nan")}, "labels.1.label", "finite number"),
        ({"a": float("inf")}, "labels.0.label", "finite number"),
        ({"a": 10**400}, "labels.0.label", "finite number"),
        ({"a": None}, "labels.0.label", "has no label"),
        ({"a": [1, 2]}, "labels.0.label", "a boolean or text"),
        ([{"request_id": "a", "label": 1, "row": -1}], "labels.0.row", "from 0 to"),
        ([{"request_id": "a", "label": 1, "row": True}], "labels.0.row", "from 0 to"),
        ([{"request_id": "a", "label": 1, "colour": "red"}], "labels.0.colour", "unknown key"),
        (["a"], "labels.0", "each label is a mapping"),
        (42, "labels", "Cannot read labels from a int"),
        ("missing.csv", "labels", "does not exist"),
        (pd.DataFrame({"request_id": ["a"], "y": [1]}), "label", "no column 'label'"),
        (pd.DataFrame({"request_id": ["a", "b"], "label": [1.0, np.nan]}), "labels.1.label",
         "'b'"),
        (pd.DataFrame({"request_id": ["a", None], "label": [1, 0]}), "labels.1.request_id",
         "missing or empty"),
        (pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0], "row": [0.0, 1.5]}),
         "labels.1.row", "from 0 to"),
        (pa.table({"request_id": ["a"], "label": [datetime(2024, 1, 1)]}), "label",
         "numbers, booleans or text"),
    ],
    ids=[
        "empty", "empty-id", "int-id", "nan", "inf", "overflow", "none", "list", "row-negative",
        "row-bool", "extra-key", "not-a-mapping", "not-labels", "no-file", "no-label-column",
        "table-nan", "table-null-id", "table-fractional-row", "table-timestamp",
    ],
)  # fmt: skip
def test_bad_labels_name_the_field_and_write_nothing(
    deployed: Services, labels: object, field: str, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match) as refused:
        deployed.labels.log("ana", "fraud-api", labels)
    assert refused.value.field == field
    assert _files(deployed.labels.root) == []
    assert deployed.audit.list_events(kind=EVENT_KIND).items == []


def test_duplicates_within_one_call_are_refused_naming_them(deployed: Services) -> None:
    rows = [{"request_id": f"r{i % 7}", "label": i} for i in range(20)]
    rows += [{"request_id": "r0", "row": 1, "label": 0}]  # another row: not a duplicate
    with pytest.raises(InvalidInput, match="appear more than once") as refused:
        deployed.labels.log("ana", "fraud-api", rows)
    assert refused.value.field == "request_id"
    assert refused.value.details["count"] == 7
    assert len(refused.value.details["duplicates"]) == 5
    assert _files(deployed.labels.root) == []


def test_too_many_labels_in_one_call(deployed: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labels_module, "MAX_LABELS_PER_CALL", 3)
    with pytest.raises(InvalidInput, match="at most 3") as refused:
        deployed.labels.log("ana", "fraud-api", {f"r{i}": 1 for i in range(4)})
    assert refused.value.field == "labels"


def test_unknown_deployment_and_source(deployed: Services) -> None:
    with pytest.raises(NotFound):
        deployed.labels.log("ana", "ghost", {"r1": 1})
    with pytest.raises(InvalidInput) as refused:
        deployed.labels.log("ana", "fraud-api", {"r1": 1}, source="fax")  # type: ignore[arg-type]
    assert refused.value.field == "source"
    assert _files(deployed.labels.root) == []


def test_tables_and_files(deployed: Services, tmp_path: Path) -> None:
    table = pa.table({
        "request_id": pa.array([7, 8]),  # integer ids are read as text
        "label": pa.array(["cat", "dog"]).dictionary_encode(),
        "row": pa.array([0.0, 2.0]),  # a pandas int column with a gap is float: whole is fine
        "feature": [1.0, 2.0],  # other columns are ignored
    })  # fmt: skip
    assert deployed.labels.log("ana", "fraud-api", table).rows == 2
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label\n007,1\n008,0\n")
    assert deployed.labels.log("ana", "fraud-api", csv, source="file").source == "file"
    stored = read_labels(deployed.labels.root, "fraud-api").table
    assert sorted(stored.column("request_id").to_pylist()) == ["007", "008", "7", "8"]
    rows = {r["request_id"]: (r["row"], r["label"], r["label_text"]) for r in stored.to_pylist()}
    assert rows["8"] == (2, None, "dog")
    assert rows["007"] == (0, 1.0, None)


def test_unknown_request_ids_are_stored_counted_and_warned(
    deployed: Services, caplog: pytest.LogCaptureFixture
) -> None:
    log_predictions(deployed.settings.prediction_log_root, "fraud-api", ["r1", "r2"])
    labels = {f"r{i}": i % 2 for i in range(1, 10)}
    with caplog.at_level(logging.WARNING, logger="steward.monitoring.labels"):
        receipt = deployed.labels.log("ana", "fraud-api", labels)
    assert receipt.rows == 9
    assert receipt.unknown_request_ids == 7
    assert receipt.unknown_examples == ["r3", "r4", "r5", "r6", "r7"]
    assert "7 request id(s) labelled for deployment 'fraud-api'" in caplog.text
    assert read_labels(deployed.labels.root, "fraud-api").table.num_rows == 9  # still stored
    event = deployed.audit.list_events(kind=EVENT_KIND).items[0]
    assert event.payload["unknown_request_ids"] == 7

    caplog.clear()
    known = deployed.labels.log("ana", "fraud-api", {"r1": 0, "r2": 1})
    assert (known.unknown_request_ids, known.unknown_examples) == (0, [])
    assert "have no prediction" not in caplog.text


def test_the_unknown_check_is_skipped_when_not_cheap(deployed: Services) -> None:
    root = deployed.settings.prediction_log_root
    log_predictions(root, "fraud-api", ["r1"])
    unchecked = LabelService(deployed.store, deployed.labels.root)  # no prediction log
    assert unchecked.log("ana", "fraud-api", {"r9": 1}).unknown_request_ids is None
    capped = LabelService(deployed.store, deployed.labels.root, predictions_root=root,
                          check_max_files=0)  # fmt: skip
    receipt = capped.log("ana", "fraud-api", {"r9": 0})
    assert (receipt.unknown_request_ids, receipt.unknown_examples) == (None, [])
    # an unreadable prediction-log file: the check is skipped, the labels are still logged
    hour = Path(root) / "deployment=fraud-api" / f"hour={datetime.now(UTC):%Y-%m-%dT%H}"
    hour.mkdir(parents=True, exist_ok=True)
    (hour / "part-broken.parquet").write_bytes(b"not parquet")
    broken = deployed.labels.log("ana", "fraud-api", {"r8": 1})
    assert (broken.rows, broken.unknown_request_ids) == (1, None)


class _LedgerDown:
    """A store whose reads work and whose writes fail, as when the database drops mid-call."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def read(self) -> AbstractContextManager[Any]:
        return self.store.read()

    def write(self, actor: str) -> AbstractContextManager[Any]:
        raise Unavailable("the database is down")


def test_no_event_no_file(deployed: Services) -> None:
    service = LabelService(_LedgerDown(deployed.store), deployed.labels.root)  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        service.log("ana", "fraud-api", {"r1": 1})
    assert _files(deployed.labels.root) == []


def test_join_counts(deployed: Services) -> None:
    root = deployed.settings.prediction_log_root
    log_predictions(root, "fraud-api", ["p1", "p2", "p3", "p4"])
    log_predictions(root, "fraud-api", ["p1"], shadow=True)  # the shadow's answer to p1
    deployed.labels.log("ana", "fraud-api", {"p1": 0, "p2": 1, "gone": 1})
    deployed.labels.log("ana", "fraud-api", {"p1": 1})  # a correction
    predictions = read_predictions(root, "fraud-api", since=datetime.now(UTC) - timedelta(hours=1))
    result = join(predictions, deployed.labels.read("fraud-api"))
    assert result.matched == 3  # p1 twice (champion and shadow), p2
    assert result.unlabeled_predictions == 2  # p3, p4
    assert result.labels_without_prediction == 1  # gone
    assert result.duplicates_superseded == 1  # p1's first label
    rows = sorted((r["request_id"], r["shadow"], r["label"]) for r in result.table.to_pylist())
    assert rows == [("p1", False, 1.0), ("p1", True, 1.0), ("p2", False, 1.0)]
    assert set(predictions.column_names) < set(result.table.column_names)
    assert {"label", "label_text"} <= set(result.table.column_names)


def test_join_deduplicates_a_raw_table_and_names_missing_keys() -> None:
    predictions = pa.table({"request_id": ["a", "b"], "row": pa.array([0, 0], pa.int32()),
                            "probabilities": [[0.2, 0.8], [0.9, 0.1]]})  # fmt: skip
    labels = pa.table({
        "request_id": ["a", "a"], "row": [0, 0], "label": [0.0, 1.0], "label_text": [None, None],
        "logged_at": [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)],
    })  # fmt: skip
    result = join(predictions, labels)
    assert (result.matched, result.unlabeled_predictions) == (1, 1)
    assert result.duplicates_superseded == 1
    assert result.table.to_pylist() == [
        {"request_id": "a", "row": 0, "probabilities": [0.2, 0.8], "label": 1.0,
         "label_text": None},
    ]  # fmt: skip
    empty = join(predictions.slice(0, 0), labels)
    assert (empty.matched, empty.labels_without_prediction) == (0, 1)
    with pytest.raises(InvalidInput) as refused:
        join(predictions.drop_columns(["row"]), labels)
    assert refused.value.field == "predictions"
