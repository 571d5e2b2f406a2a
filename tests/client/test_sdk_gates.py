"""Release gates through the SDK, in every mode: evaluate, gate, approve, promote, history,
policies and reproduce. The rules are the store's; these tests hold both backends to them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.domain.enums import VersionStatus as S
from steward.errors import GateFailed, InvalidInput, NotFound, PermissionDenied

RESAMPLES = 50  # enough for intervals, cheap on a shared machine

POLICY = """\
name: custom
description: a floor and one approval
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.6
  - check: approvals
    count: 1
"""

STRICT = """\
name: strict
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.9999
"""

FLOOR_ONLY = """\
name: floor-only
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.6
"""


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, LogisticRegression, LogisticRegression]:
    """120 rows: features a, b, a binary label and a group column; two fitted classifiers."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    label = (frame["a"] + 0.5 * rng.normal(size=120) > 0).astype(int)
    first = LogisticRegression().fit(frame, label)
    second = LogisticRegression(C=0.1).fit(frame, label)
    table = frame.assign(label=label, region=np.where(rng.random(120) > 0.5, "north", "south"))
    return table, first, second


def _register(client: Client, model: LogisticRegression, table: pd.DataFrame) -> str:
    return log_model(model, "credit", training_data=table[["a", "b"]], client=client).uri


def _evaluate(client: Client, uri: str, table: pd.DataFrame) -> None:
    client.evaluate(uri, table, "label", groups=["region"], resamples=RESAMPLES)


def test_evaluate_gate_approve_promote_and_history(client: Client, reviewer: Client, data) -> None:
    table, first, second = data
    v1 = _register(client, first, table)
    assert client.set_policy(POLICY, model="credit").name == "custom"
    assert client.get_policy(model="credit").name == "custom"

    evaluation = client.evaluate(v1, table, "label", groups=["region"], resamples=RESAMPLES)
    assert evaluation.summary.n_rows == 120
    assert evaluation.summary.resamples == RESAMPLES
    assert [g.column for g in evaluation.summary.groups] == ["region"]
    roc = evaluation.summary.metrics["roc_auc"]
    assert roc.value is not None
    assert roc.lower is not None
    assert roc.lower <= roc.value
    assert [e.id for e in client.evaluations(v1)] == [evaluation.id]

    report = client.gate(v1)
    assert (report.policy.name, report.verdict.value) == ("custom", "awaiting_approval")
    assert report.evaluation_id == evaluation.id
    assert client.get_version(v1).status is S.VALIDATED
    assert client.gate_report(v1).id == report.id

    with pytest.raises(PermissionDenied, match="cannot approve"):
        client.approve(v1)  # the author
    approved = reviewer.approve(v1, comment="looks right")
    assert approved.report.verdict.value == "passed"
    assert [a.comment for a in client.approvals(v1)] == ["looks right"]
    assert client.approvals(v1)[0].approver == reviewer.whoami()[0]
    assert client.get_version(v1).status is S.APPROVED

    moves = reviewer.promote(v1, "production", reason="first release")
    assert [(m.version, m.from_status, m.to_status) for m in moves] == [
        (1, S.APPROVED, S.PRODUCTION)
    ]
    assert client.get_model("credit").aliases == {"champion": 1}
    between = client.history("credit").entries[-1].at

    v2 = _register(client, second, table)
    _evaluate(client, v2, table)
    assert client.gate(v2).verdict.value == "awaiting_approval"
    reviewer.approve(v2)
    _evaluate(client, v2, table)  # new evidence after the gate
    with pytest.raises(GateFailed, match="newer than its gate report") as stale:
        reviewer.promote(v2, "production")
    assert stale.value.details["reason"] == "stale_evidence"
    assert client.get_model("credit").aliases == {"champion": 1}

    assert client.gate(v2).verdict.value == "passed"  # the approval still counts
    moves = reviewer.promote(v2, "production")
    assert {(m.version, m.from_status, m.to_status) for m in moves} == {
        (1, S.PRODUCTION, S.DEPRECATED),
        (2, S.APPROVED, S.PRODUCTION),
    }
    assert client.get_version(v1).status is S.DEPRECATED
    assert client.get_model("credit").aliases == {"champion": 2}

    earlier = client.history("credit", at=between)
    assert earlier.aliases == {"champion": 1}
    assert all(e.at <= between for e in earlier.entries)
    now = client.history("credit")
    assert now.aliases == {"champion": 2}
    champion_moves = [e.version for e in now.entries if e.alias == "champion"]
    assert champion_moves == [1, 2]
    production = [e for e in now.entries if e.to_status == "production"]
    assert [e.actor for e in production] == [reviewer.whoami()[0]] * 2


def test_a_failing_gate_sends_the_version_back_and_blocks_release(client: Client, data) -> None:
    table, first, _ = data
    uri = _register(client, first, table)
    client.set_policy(FLOOR_ONLY, model="credit")
    _evaluate(client, uri, table)
    assert client.gate(uri).verdict.value == "passed"
    assert client.get_version(uri).status is S.APPROVED

    failed = client.gate(uri, policy=STRICT)  # ad hoc policy text
    assert failed.verdict.value == "failed"
    assert failed.policy.name == "strict"
    assert client.get_version(uri).status is S.REGISTERED
    with pytest.raises(GateFailed, match="is registered: it needs a passed gate"):
        client.promote(uri, "staging")
    page = client.gate_report_html(uri)
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "strict" in page

    with pytest.raises(InvalidInput) as bad:
        client.promote(uri, "launched")
    assert bad.value.details["field"] == "to"


def test_policies_are_versioned_and_refused_with_their_line(client: Client) -> None:
    names = {p.name for p in client.list_policies()}
    assert {"tier-1", "tier-2", "tier-3"} <= names
    first = client.set_policy(POLICY)
    second = client.set_policy(POLICY.replace("0.6", "0.65"))
    assert (first.revision, second.revision) == (1, 2)
    assert client.get_policy("custom").revision == 2
    assert "0.6\n" in client.get_policy("custom", revision=1).text
    client.create_model("fraud", risk_tier=1)
    assert client.get_policy(model="fraud").name == "tier-1"
    assert client.assign_policy("fraud", "custom").name == "custom"
    assert client.assign_policy("fraud", None).name == "tier-1"

    broken = POLICY.replace("metric_floor", "metric_flor")
    with pytest.raises(InvalidInput, match="line 4") as error:
        client.set_policy(broken)
    assert error.value.details["line"] == 4
    assert error.value.details["field"] == "policy"
    with pytest.raises(NotFound):
        client.get_policy("ghost")
    with pytest.raises(NotFound):
        client.assign_policy("fraud", "ghost")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_reproduce_runs_here_and_records_the_outcome(client: Client, data, tmp_path: Path) -> None:
    _, first, _ = data
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text("import sys\nsys.exit('training failed on purpose')\n")
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "train"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    version = log_model(
        first, "repro", metrics={"accuracy": 0.9}, client=client,
        lineage={
            "git": {"commit": commit, "dirty": False}, "command": f"{sys.executable} train.py",
        },
    )  # fmt: skip

    outcome = client.reproduce(version.uri, repo, tolerance=0.0, timeout=60)
    assert outcome.matched is False
    assert "training failed on purpose" in outcome.detail
    assert outcome.recorded == {"accuracy": 0.9}
    assert outcome.created_by == client.whoami()[0]
    event = client.list_events(kind="version.reproduced").items[-1]
    assert (event.subject_id, event.payload["matched"]) == (version.uri, False)

    with pytest.raises(InvalidInput):
        client.reproduce(version.uri, repo, tolerance=-1.0)
