"""evaluate, gate, approve, promote, history, reproduce and policy: the release steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cli.conftest import Invoke

POLICY = """\
name: custom
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.5
  - check: approvals
    count: 1
"""
STRICT = "name: strict\nchecks:\n  - check: metric_floor\n    metric: roc_auc\n    min: 0.9999\n"


def _data(tmp_path: Path) -> Path:
    """40 rows the churn models can score: age, income, the label and a group column."""
    rng = np.random.default_rng(5)
    age = rng.uniform(20, 70, 40)
    frame = pd.DataFrame({"age": age, "income": rng.uniform(1, 6, 40)})
    frame["y"] = (age + rng.normal(0, 10, 40) > 45).astype(int)
    frame["region"] = np.where(rng.random(40) > 0.5, "north", "south")
    path = tmp_path / "eval.csv"
    frame.to_csv(path, index=False)
    return path


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_policy_set_show_list_and_a_bad_file(invoke: Invoke, registry: Path, tmp_path) -> None:
    result = invoke("policy", "set", str(_write(tmp_path, "p.yaml", POLICY)), "--model", "churn")
    assert result.exit_code == 0, result.output
    assert "custom r1" in result.stdout
    shown = invoke("policy", "show", "--model", "churn")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == POLICY
    assert "custom r1" in shown.stderr
    assert invoke("policy", "show", "tier-1").stdout.startswith("#")  # the shipped file
    listed = invoke("policy", "list", "--json")
    assert {"custom", "tier-1", "tier-2", "tier-3"} <= {
        p["name"] for p in json.loads(listed.stdout)
    }
    assert "custom" in invoke("policy").stdout

    bad = _write(tmp_path, "bad.yaml", POLICY.replace("metric_floor", "metric_flor"))
    refused = invoke("policy", "set", str(bad))
    assert refused.exit_code == 2
    assert "line 3" in refused.stderr
    assert "metric_flor" in refused.stderr
    assert invoke("policy", "show", "ghost").exit_code == 4


def test_evaluate_gate_approve_promote_history(
    invoke: Invoke, registry: Path, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = "models:/churn/2"
    invoke("policy", "set", str(_write(tmp_path, "p.yaml", POLICY)), "--model", "churn")
    data = _data(tmp_path)
    evaluated = invoke("evaluate", uri, "--data", str(data), "--label", "y", "--groups",
                       "region", "--resamples", "50", "--json")  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    evaluation = json.loads(evaluated.stdout)
    assert evaluation["summary"]["n_rows"] == 40
    assert [g["column"] for g in evaluation["summary"]["groups"]] == ["region"]
    table = invoke("evaluate", uri, "--data", str(data), "--label", "y", "--resamples", "0")
    assert table.exit_code == 0, table.output
    assert "roc_auc" in table.stdout

    page = tmp_path / "report.html"
    waiting = invoke("gate", uri, "--html", str(page))
    assert waiting.exit_code == 3, waiting.output
    assert "awaiting approval" in waiting.stderr
    assert "pending" in waiting.stdout
    assert "verdict: awaiting_approval" in waiting.stdout
    assert page.read_text().lstrip().lower().startswith("<!doctype html")

    mine = invoke("approve", uri)
    assert mine.exit_code == 6
    assert "cannot approve" in mine.stderr
    before = json.loads(invoke("history", "churn", "--json").stdout)
    assert before["aliases"] == {"champion": 1, "challenger": 2}

    monkeypatch.setenv("STEWARD_ACTOR", "reviewer")
    approved = invoke("approve", uri, "--comment", "checked the groups")
    assert approved.exit_code == 0, approved.output
    assert "reviewer approved" in approved.stdout
    assert "passed" in approved.stdout
    passed = invoke("gate", uri)
    assert passed.exit_code == 0, passed.output
    assert "verdict: passed" in passed.stdout

    promoted = invoke("promote", uri, "--to", "production", "--reason", "better recall")
    assert promoted.exit_code == 0, promoted.output
    assert "approved → production" in promoted.stdout
    assert invoke("promote", uri, "--to", "launched").exit_code == 2

    now = json.loads(invoke("history", "churn", "--json").stdout)
    assert now["aliases"]["champion"] == 2
    last = now["entries"][-1]
    assert (last["actor"], last["to_status"], last["reason"]) == (
        "reviewer", "production", "better recall",
    )  # fmt: skip
    between = before["entries"][-1]["at"]
    then = json.loads(invoke("history", "churn", "--at", between, "--json").stdout)
    assert then["aliases"]["champion"] == 1
    shown = invoke("history", "churn", "--at", between)
    assert shown.exit_code == 0
    assert "champion" in shown.stdout
    assert "Moves" in shown.stdout
    bad_time = invoke("history", "churn", "--at", "last tuesday")
    assert bad_time.exit_code == 2
    assert "ISO 8601" in bad_time.output


def test_a_failing_gate_exits_3_and_names_the_check(
    invoke: Invoke, registry: Path, tmp_path
) -> None:
    uri = "models:/churn/2"
    invoke("evaluate", uri, "--data", str(_data(tmp_path)), "--label", "y", "--resamples", "0")
    result = invoke("gate", uri, "--policy", str(_write(tmp_path, "strict.yaml", STRICT)))
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: The gate failed for models:/churn/2")
    assert "roc_auc" in result.stderr
    assert "failed" in result.stdout
    data = json.loads(invoke("versions", "churn", "--json").stdout)
    assert {v["version"]: v["status"] for v in data}[2] == "registered"
    as_json = invoke("gate", uri, "--policy", str(tmp_path / "strict.yaml"), "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["verdict"] == "failed"

    bad = invoke("gate", uri, "--policy", str(_write(tmp_path, "bad.yaml", "name: x\nchecks: [")))
    assert bad.exit_code == 2
    assert "line" in bad.stderr


def test_reproduce_refuses_a_version_with_nothing_to_compare(
    invoke: Invoke, registry: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    from steward.client import Client, log_model

    with Client(home=registry) as client:  # no metrics: a re-run has nothing to match
        log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "plain", client=client)
    result = invoke("reproduce", "models:/plain/1", "--timeout", "30")
    assert result.exit_code == 2, result.output
    assert "no recorded metrics" in result.stderr


def test_lifecycle_review(invoke: Invoke) -> None:
    created = invoke("models", "create", "orphan", "--owner", "token:ci")
    assert created.exit_code == 0, created.output
    shown = invoke("lifecycle", "review")
    assert shown.exit_code == 0, shown.output
    assert "Models without a person as owner" in shown.stdout
    assert "orphan" in shown.stdout
    data = json.loads(invoke("lifecycle", "review", "--json").stdout)
    assert [f["model"] for f in data["no_owner"]] == ["orphan"]
    assert data["archived"] == []
    refused = invoke("lifecycle", "review", "--staging-days", "-1")
    assert refused.exit_code == 2
