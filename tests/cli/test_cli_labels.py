"""``steward labels log``: a file of labels for a deployment; bad input exits non-zero with one
clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.cli.conftest import Invoke
from tests.monitoring.test_labels_service import make_deployment

from steward.settings import Settings
from steward.wiring import Services


@pytest.fixture
def deployed(home: Path) -> str:
    services = Services.from_settings(Settings(home=home))
    try:
        make_deployment(services, name="fraud-api", model="fraud")
    finally:
        services.close()
    return "fraud-api"


def test_log_a_csv_file(invoke: Invoke, deployed: str, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label\nr1,1\nr2,0\nr3,1\n")
    result = invoke("labels", "log", str(csv), "--deployment", deployed)
    assert result.exit_code == 0, result.output
    assert "Logged 3 labels for fraud-api" in result.stdout
    assert "3 request id(s) have no prediction" in result.stderr  # stored, but said so

    events = invoke("audit", "log", "--kind", "labels.logged", "--json")
    assert [e["payload"]["source"] for e in json.loads(events.stdout)] == ["file"]


def test_named_columns_and_json(invoke: Invoke, deployed: str, tmp_path: Path) -> None:
    path = tmp_path / "truth.parquet"
    table = pa.table({"id": ["a", "a", "b"], "position": [0, 1, 0], "y": ["cat", "dog", "cat"]})
    pq.write_table(table, path)
    result = invoke(
        "labels", "log", str(path), "-d", deployed, "--request-id-column", "id",
        "--label-column", "y", "--row-column", "position", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.stdout)
    assert (receipt["rows"], receipt["source"], receipt["deployment"]) == (3, "file", deployed)
    assert receipt["unknown_request_ids"] == 2  # a and b: distinct ids, not rows
    assert receipt["file"].startswith("deployment=fraud-api/hour=")


@pytest.mark.parametrize(
    ("content", "args", "code", "message"),
    [
        (None, [], 2, "does not exist"),
        ("request_id,label\nr1,1\nr1,0\n", [], 2, "appear more than once"),
        ("request_id,label\nr1,1\nr2,\n", [], 2, "Label 1 (request id 'r2') has no label"),
        ("request_id,label\nr1,1\n", ["--label-column", "truth"], 2, "--label-column"),
        ("request_id,label\nr1,1\n", ["--row-column", "position"], 2, "--row-column"),
        ("request_id,label\nr1,1\n", ["--deployment", "ghost"], 4, "ghost"),
    ],
    ids=["missing-file", "duplicates", "missing-label", "no-label-column", "no-row-column",
         "unknown-deployment"],
)  # fmt: skip
def test_bad_input_exits_non_zero_with_one_line(
    invoke: Invoke,
    deployed: str,
    tmp_path: Path,
    content: str | None,
    args: list[str],
    code: int,
    message: str,
) -> None:
    path = tmp_path / "labels.csv"
    if content is not None:
        path.write_text(content)
    if "--deployment" not in args:
        args = [*args, "--deployment", deployed]
    result = invoke("labels", "log", str(path), *args)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ")
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
