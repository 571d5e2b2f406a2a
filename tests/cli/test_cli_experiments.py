"""``steward metric``, ``steward experiment`` and ``steward outcomes``: definitions and events
from the command line; bad input exits non-zero with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.cli.conftest import Invoke
from tests.store.test_deployment_feed import release

from steward.schemas.serving import DeploymentSpec
from steward.settings import Settings
from steward.wiring import Services


@pytest.fixture
def split(home: Path) -> str:
    """``shop-ab``: v1 (production) and v2 (approved) of ``shop``, 40/60 by user."""
    services = Services.from_settings(Settings(home=home))
    try:
        release(services, "shop", [False, False])
        spec = DeploymentSpec(model="shop", champion=1, split={1: 0.4, 2: 0.6}, unit_key="user")
        services.deployments.deploy("ana", "shop-ab", spec)
        services.deployments.deploy("ana", "shop-live", DeploymentSpec(model="shop", champion=1))
    finally:
        services.close()
    return "shop-ab"


def _metrics(invoke: Invoke) -> None:
    for args in (
        ["revenue", "--source", "outcome", "--event", "purchase", "--description", "€ per user"],
        ["latency", "--source", "latency", "--aggregation", "mean"],
        ["errors", "--source", "error", "--aggregation", "any"],
    ):
        result = invoke("metric", "define", *args)
        assert result.exit_code == 0, result.output


def test_define_and_list_metrics(invoke: Invoke) -> None:
    _metrics(invoke)
    listed = invoke("metric", "list")
    assert listed.exit_code == 0, listed.output
    assert "sum of outcome purchase per unit" in listed.stdout
    assert "mean of latency (ms) per unit" in listed.stdout
    as_json = json.loads(invoke("metric", "list", "--json").stdout)
    assert [m["name"] for m in as_json] == ["errors", "latency", "revenue"]
    score = invoke("metric", "define", "score", "--source", "prediction", "--event", "score",
                   "--covariate", "spend_before", "--json")  # fmt: skip
    assert json.loads(score.stdout)["covariate"] == "spend_before"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["m", "--source", "outcome"], "names its outcome event"),
        (["m", "--source", "prediction", "--event", "label"], "'prediction' or 'score'"),
        (["bad name", "--source", "latency"], "metric name"),
        (["m", "--source", "latency", "--covariate", "a b"], "outcome name"),
    ],
)
def test_bad_metrics_exit_2(invoke: Invoke, args: list[str], message: str) -> None:
    result = invoke("metric", "define", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1  # one line


def test_create_list_and_show(invoke: Invoke, split: str) -> None:
    _metrics(invoke)
    result = invoke(
        "experiment", "create", "checkout", "--deployment", split, "--metric", "revenue",
        "--secondary", "errors:decrease", "--guardrail", "latency:decrease:0.05", "--mde", "0.02",
        "--planned-units", "8000", "--hypothesis", "v2 sells more", "--start", "2026-03-01T09:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Started experiment checkout on shop-ab: v1 40% control, v2 60%" in result.stdout
    shown = invoke("experiment", "show", "checkout")
    assert shown.exit_code == 0, shown.output
    for text in ("running", "mde 2.00%, 8,000 units", "2026-03-01 09:00 UTC", "guardrail",
                 "latency", "0.05", "v2 sells more", "holm correction"):  # fmt: skip
        assert text in shown.stdout, text
    listed = invoke("experiment", "list", "--state", "running")
    assert "checkout" in listed.stdout
    data = json.loads(invoke("experiment", "show", "checkout", "--json").stdout)
    assert (data["variants"], data["control"], data["start"]) == (
        [1, 2], 1, "2026-03-01T09:00:00Z",
    )  # fmt: skip
    assert json.loads(invoke("experiment", "list", "--state", "decided", "--json").stdout) == []
    empty = invoke("experiment", "list", "--deployment", "shop-live")
    assert "No experiment yet" in empty.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--deployment", "ghost"], 4, "No deployment named 'ghost'"),
        (["--deployment", "shop-live"], 2, "nothing to compare"),
        (["--metric", "ghost"], 4, "No metric named 'ghost'"),
        (["--guardrail", "latency:sideways"], 2, "'increase'"),
        (["--control", "7"], 2, "control"),
        (["--start", "yesterday"], 2, "ISO 8601"),
        (["--method", "vibes"], 2, "vibes"),
    ],
)
def test_bad_experiments_exit_non_zero(
    invoke: Invoke, split: str, args: list[str], code: int, message: str
) -> None:
    _metrics(invoke)
    base = {"--deployment": split, "--metric": "revenue"}
    for option, value in zip(args[::2], args[1::2], strict=True):
        base[option] = value
    flat = [part for pair in base.items() for part in pair]
    result = invoke("experiment", "create", "bad", *flat)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_one_running_experiment_per_deployment(invoke: Invoke, split: str) -> None:
    _metrics(invoke)
    first = invoke("experiment", "create", "one", "-d", split, "--metric", "revenue")
    assert first.exit_code == 0, first.output
    second = invoke("experiment", "create", "two", "-d", split, "--metric", "revenue")
    assert second.exit_code == 5
    assert "already runs experiment 'one'" in second.stderr
    unknown = invoke("experiment", "show", "ghost")
    assert unknown.exit_code == 4
    assert "steward experiment list" in unknown.stderr


def test_log_outcomes_from_files(invoke: Invoke, tmp_path: Path) -> None:
    csv = tmp_path / "outcomes.csv"
    csv.write_text(
        "name,value,unit_id,timestamp\npurchase,12.5,007,2026-03-01T10:00:00Z\n"
        "purchase,3,008,2026-03-02T10:00:00Z\nrefund,1,007,\n"
    )
    result = invoke("outcomes", "log", str(csv))
    assert result.exit_code == 0, result.output
    assert "Logged 3 outcome events (purchase 2, refund 1) in 3 file(s)." in result.stdout
    path = tmp_path / "clicks.parquet"
    pq.write_table(pa.table({"what": ["click"] * 3, "n": [1, 1, 2], "req": ["a", "b", "c"]}), path)
    receipt = invoke("outcomes", "log", str(path), "--name-column", "what", "--value-column", "n",
                     "--request-column", "req", "--json")  # fmt: skip
    assert receipt.exit_code == 0, receipt.output
    assert json.loads(receipt.stdout)["outcomes"] == {"click": 3}
    events = json.loads(invoke("audit", "log", "--kind", "outcomes.logged", "--json").stdout)
    assert [e["payload"]["source"] for e in events] == ["file", "file"]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "does not exist"),
        ("name,value,unit_id\npurchase,abc,u1\n", [], "numbers or booleans"),
        ("name,value,unit_id,request_id\npurchase,1,u1,r1\n", [], "both a unit_id and a"),
        ("name,value\npurchase,1\n", [], "--unit-column"),
        ("event,value,unit_id\npurchase,1,u1\n", [], "no column 'name'"),
        ("name,value,unit_id\npurchase,1,u1\n", ["--time-column", "when"], "no column 'when'"),
        ("name,value,unit_id\npurchase,1,u1\n", [], None),
    ],
)
def test_bad_outcome_files_exit_2(
    invoke: Invoke, tmp_path: Path, content: str | None, args: list[str], message: str | None
) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    result = invoke("outcomes", "log", str(path), *args)
    if message is None:  # an absent time column is fine: the events happened now
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.stderr
