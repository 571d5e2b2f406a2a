"""`steward monitor configure|show|run` on the command line.

A deployment is built once per session (model ``churn`` v1 in production with a reference
sample, deployed as ``churn-api`` with an hour of logged traffic, and ``quiet-api`` with none)
and copied into each test. ``show`` reads windows stored straight through the store, so it is
tested apart from the measuring itself.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tests.cli.conftest import Invoke

from steward.cli._sparkline import BLOCKS
from steward.client import Client, log_model
from steward.domain.monitoring import MonitorWindow, WindowStatus
from steward.settings import Settings
from steward.store.prediction_log import PredictionLogWriter, PredictionRecord
from steward.wiring import Services

POLICY = """\
name: monitor-policy
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.5
  - check: approvals
    count: 1
"""
# the hour of traffic logged for churn-api: [END - 1h, END)
END = datetime(2025, 3, 1, 12, tzinfo=UTC)


def build_deployments(home: Path) -> None:
    """``churn`` v1 in production (reference sample of age, income), deployed twice."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 200), "income": rng.normal(5, 1, 200)})
    label = (frame["age"] > 40).astype(int)
    model = LogisticRegression().fit(frame, label)
    with (
        Client(home=home) as client,
        Client(settings=Settings(url=None, home=home, actor="reviewer")) as reviewer,
    ):
        client.create_model("churn", owner="ana@example.com", risk_tier=2)
        client.set_policy(POLICY, model="churn")
        uri = log_model(model, "churn", training_data=frame, client=client).uri
        client.evaluate(uri, frame.assign(label=label), "label", resamples=10, latency_calls=3)
        client.gate(uri)
        reviewer.approve(uri)
        client.promote(uri, "production")
        client.deploy("churn-api", model="churn", champion=1)
        client.deploy("quiet-api", model="churn", champion=1)
    log_traffic(home, "churn-api", END, shift=25.0)


def log_traffic(home: Path, deployment: str, end: datetime, *, shift: float, n: int = 120) -> None:
    """``n`` one-row requests in the hour before ``end``; ``shift`` moves ``age`` away from the
    reference (25 is far: it drifts)."""
    writer = PredictionLogWriter(
        Settings(home=home).prediction_log_root, queue_size=10_000, flush_rows=1_000,
        flush_seconds=0.05,
    )  # fmt: skip
    rng = np.random.default_rng(11)
    for i in range(n):
        row = {"age": float(rng.normal(40 + shift, 10)), "income": float(rng.normal(5, 1))}
        score = 0.3 + 0.4 * (i % 2)
        writer.log(
            PredictionRecord(
                deployment, 1, f"r{i}", end - timedelta(minutes=59) + timedelta(seconds=i * 25),
                2.0 + i % 7, row, i % 2, score=score, probabilities=[1 - score, score],
            )
        )  # fmt: skip
    writer.close()


@pytest.fixture(scope="session")
def _deployed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = tmp_path_factory.mktemp("monitor") / "home"
    build_deployments(template)
    return template


@pytest.fixture
def deployed(home: Path, _deployed_template: Path) -> Path:
    shutil.copytree(_deployed_template, home)
    return home


def store_windows(home: Path, windows: list[MonitorWindow]) -> None:
    services = Services.from_settings(Settings(home=home))
    try:
        with services.store.write("test") as tx:
            for window in windows:
                tx.add_window(window)
    finally:
        services.close()


def window(hour: int, metrics: dict[str, float], **fields: Any) -> MonitorWindow:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "deployment": "churn-api", "model_name": "churn",
        "start": END + timedelta(hours=hour - 1), "end": END + timedelta(hours=hour),
        "computed_at": END + timedelta(hours=hour, minutes=1), "status": WindowStatus.OK,
        "rows": 120, "versions": [1], "metrics": metrics,
    }  # fmt: skip
    return MonitorWindow.model_validate({**values, **fields})


DRIFT = {
    "columns": [
        {"column": "age", "kind": "numerical", "method": "ks", "statistic": 0.6, "p_value": 1e-9,
         "score": 1e-9, "threshold": 0.05, "drifted": True},
        {"column": "income", "kind": "numerical", "method": "ks", "statistic": 0.05,
         "p_value": 0.7, "score": 0.7, "threshold": 0.05, "drifted": False},
    ],
    "n_tested": 2, "n_drifted": 1, "share_drifted": 0.5, "dataset_drift": True,
    "reference_rows": 200, "current_rows": 120,
}  # fmt: skip


# -- configure -------------------------------------------------------------------------------
def test_configure_with_options(invoke: Invoke, deployed: Path) -> None:
    shown = invoke("monitor", "configure", "churn-api", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["configured"] is False  # the tier's defaults until set

    result = invoke(
        "monitor", "configure", "churn-api", "--interval", "30m", "--window", "2h",
        "--drift-share", "0.3", "--threshold", "age=0.01",
        "--rule", "drifting:drift.share_drifted>=0.3:high:2", "--rule", "slow:slo.p95_ms>250",
        "--drop-rule", "stale-predictions", "--disable", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)
    spec = stored["spec"]
    assert (spec["interval_s"], spec["window_s"], spec["drift_share"]) == (1800, 7200, 0.3)
    assert spec["thresholds"] == {"age": 0.01}
    assert spec["enabled"] is False
    rules = {rule["name"]: rule for rule in spec["rules"]}
    assert rules["drifting"] == {
        "name": "drifting", "metric": "drift.share_drifted", "op": ">=", "threshold": 0.3,
        "severity": "high", "for_windows": 2,
    }  # fmt: skip
    assert rules["slow"]["severity"] == "medium"
    assert "stale-predictions" not in rules
    assert "feature-drift" in rules  # the defaults stay unless dropped

    again = invoke(
        "monitor", "configure", "churn-api", "--enable", "--rule", "slow:slo.p95_ms>300",
        "--threshold", "income=0.2",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "r2" in again.stdout
    assert "every 30m over 2h" in again.stdout
    after = json.loads(invoke("monitor", "configure", "churn-api", "--json").stdout)
    assert after["configured"] is True
    assert after["spec"]["enabled"] is True
    assert after["spec"]["thresholds"] == {"age": 0.01, "income": 0.2}  # one set, the other kept
    assert [r["threshold"] for r in after["spec"]["rules"] if r["name"] == "slow"] == [300.0]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_configure_from_a_file(invoke: Invoke, deployed: Path, tmp_path: Path, suffix: str) -> None:
    spec = {
        "interval_s": 600, "window_s": 600, "thresholds": {"income": 0.2},
        "rules": [{"name": "drift", "metric": "drift.dataset_drift", "op": ">=", "threshold": 1,
                   "severity": "critical"}],
    }  # fmt: skip
    path = tmp_path / f"spec{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(spec))
    else:
        import yaml

        path.write_text(yaml.safe_dump(spec))
    result = invoke("monitor", "configure", "churn-api", "--file", str(path), "--window", "1h")
    assert result.exit_code == 0, result.output
    assert "every 10m over 1h" in result.stdout
    stored = json.loads(invoke("monitor", "configure", "churn-api", "--json").stdout)["spec"]
    assert [r["name"] for r in stored["rules"]] == ["drift"]  # the file replaces the rules
    assert stored["thresholds"] == {"income": 0.2}

    # what --json printed reads back as a spec
    path.write_text(json.dumps({"deployment": "churn-api", "spec": stored, "configured": True}))
    assert invoke("monitor", "configure", "quiet-api", "-f", str(path)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--rule", "oops"], "--rule"),
        (["--rule", "a:drift.share_drifted=>1"], "--rule"),
        (["--rule", "a:drift.share_drifted>=lots"], "--rule"),
        (["--rule", "a:drift.share_drifted>=1:urgent"], "--rule"),
        (["--rule", "a:drift.share_drifted>=1:high:0"], "--rule"),
        (["--rule", "a:drift share>=1"], "--rule"),
        (["--drop-rule", "nope"], "--drop-rule"),
        (["--threshold", "age"], "--threshold"),
        (["--threshold", "age=high"], "--threshold"),
        (["--window", "1.5h"], "--window"),
        (["--interval", "10s"], "--interval"),
        (["--drift-share", "2"], "--drift-share"),
        (["--file", "missing.yaml"], "missing.yaml"),
    ],
)  # fmt: skip
def test_bad_configuration_exits_2_naming_the_option(
    invoke: Invoke, deployed: Path, args: list[str], named: str
) -> None:
    result = invoke("monitor", "configure", "churn-api", *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert "Traceback" not in result.output


def test_configure_an_unknown_deployment_exits_4(invoke: Invoke, deployed: Path) -> None:
    result = invoke("monitor", "configure", "nope", "--window", "1h")
    assert result.exit_code == 4, result.output
    assert "nope" in result.stderr


# -- show ------------------------------------------------------------------------------------
def test_show_without_windows_says_so(invoke: Invoke, deployed: Path) -> None:
    result = invoke("monitor", "show", "quiet-api")
    assert result.exit_code == 0, result.output
    assert "no window yet" in result.stdout
    assert "steward monitor run quiet-api" in result.stdout
    as_json = invoke("monitor", "show", "quiet-api", "--json")
    assert json.loads(as_json.stdout) == []
    assert "no window yet" in as_json.stderr


def test_show_unknown_deployment_exits_4(invoke: Invoke, deployed: Path) -> None:
    result = invoke("monitor", "show", "nope")
    assert result.exit_code == 4, result.output


def test_show_the_latest_window_with_trends(invoke: Invoke, deployed: Path, tmp_path: Path) -> None:
    store_windows(deployed, [
        window(-2, {"drift.share_drifted": 0.0, "slo.p95_ms": 10.0, "slo.error_rate": 0.0}),
        window(-1, {"freshness.prediction_age_s": 3600.0}, status=WindowStatus.NO_DATA, rows=0),
        window(0, {"drift.share_drifted": 0.5, "drift.n_tested": 2.0, "slo.p95_ms": 30.0,
                   "slo.error_rate": 0.0, "drift.column.age.score": 1e-9},
               report={"drift": DRIFT}),
    ])  # fmt: skip
    result = invoke("monitor", "show", "churn-api")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "churn-api" in out
    assert "ok" in out
    assert "share_drifted" in out
    assert "p95_ms" in out
    assert f"{BLOCKS[0]}·{BLOCKS[-1]}" in out  # p95 10 -> (no data) -> 30, oldest first
    assert "Drifted" in out
    assert "age" in out
    assert "column.age" not in out  # per-column scores are the drifted table's

    listed = json.loads(invoke("monitor", "show", "churn-api", "--json", "--windows", "2").stdout)
    assert [w["status"] for w in listed] == ["ok", "no_data"]  # newest first

    page = tmp_path / "report.html"
    written = invoke("monitor", "show", "churn-api", "--html", str(page))
    assert written.exit_code == 0, written.output
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "share_drifted" in html


# -- run -------------------------------------------------------------------------------------
def test_run_unknown_deployment_exits_4_and_runs_nothing(invoke: Invoke, deployed: Path) -> None:
    result = invoke("monitor", "run", "churn-api", "nope")
    assert result.exit_code == 4, result.output
    assert "nope" in result.stderr
    assert json.loads(invoke("monitor", "show", "churn-api", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--window", "soon"], "--window"), (["--end", "yesterday"], "--end"),
     (["--engine", "spark"], "--engine")],
)  # fmt: skip
def test_run_bad_options_exit_2(
    invoke: Invoke, deployed: Path, args: list[str], named: str
) -> None:
    result = invoke("monitor", "run", "churn-api", *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr


def test_run_without_traffic_reports_no_data(invoke: Invoke, deployed: Path) -> None:
    result = invoke("monitor", "run", "quiet-api", "--end", END.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)["outcomes"][0]
    assert outcome["window"]["status"] == "no_data"
    assert outcome["fired"] == []
    table = invoke("monitor", "run", "quiet-api", "--end", END.isoformat())
    assert "no_data" in table.stdout


def test_run_measures_drift_and_exits_3_when_an_alert_fires(invoke: Invoke, deployed: Path) -> None:
    rule = ["--rule", "drifting:drift.share_drifted>=0.5:high"]
    assert invoke("monitor", "configure", "churn-api", *rule).exit_code == 0
    result = invoke("monitor", "run", "churn-api", "--end", END.isoformat(), "--window", "1h")
    assert result.exit_code == 3, result.output
    assert "age" in result.stdout  # the drifted feature
    assert "drifting (high)" in result.stdout
    assert "alert(s) fired" in result.stdout
    shown = invoke("monitor", "show", "churn-api")
    assert shown.exit_code == 0, shown.output
    assert "Drifted" in shown.stdout
