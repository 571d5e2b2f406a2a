"""runs, audit and tokens."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.cli.conftest import Invoke


# runs ---------------------------------------------------------------------------------------
def test_runs_list_and_show(invoke: Invoke, registry: Path) -> None:
    listed = invoke("runs")
    assert listed.exit_code == 0, listed.output
    assert "fit" in listed.stdout
    runs = json.loads(invoke("runs", "--project", "credit", "--json").stdout)
    assert [r["name"] for r in runs] == ["fit"]
    assert json.loads(invoke("runs", "list", "--project", "other", "--json").stdout) == []
    shown = invoke("runs", "show", runs[0]["id"])
    assert shown.exit_code == 0, shown.output
    assert "loss" in shown.stdout
    data = json.loads(invoke("runs", "show", runs[0]["id"], "--json").stdout)
    assert [p["step"] for p in data["metric_history"]["loss"]] == [0, 1, 2, 3, 4]
    assert data["params"]["C"] == "1.0"


def test_runs_filter(invoke: Invoke, registry: Path) -> None:
    hits = json.loads(invoke("runs", "--filter", "metrics.loss < 0.5", "--json").stdout)
    assert [r["name"] for r in hits] == ["fit"]
    bad = invoke("runs", "--filter", "loss <")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: ")


def test_runs_show_unknown_exits_4(invoke: Invoke, registry: Path) -> None:
    result = invoke("runs", "show", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 4
    assert len(result.stderr.strip().splitlines()) == 1


# audit --------------------------------------------------------------------------------------
def test_audit_verify_ok(invoke: Invoke, registry: Path) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "Ledger intact" in result.stdout
    report = json.loads(invoke("audit", "verify", "--json").stdout)
    assert report["ok"] is True
    assert report["events_checked"] > 5


def test_audit_verify_tampered_ledger_exits_8(invoke: Invoke, registry: Path) -> None:
    with sqlite3.connect(registry / "steward.db") as db:
        db.execute("UPDATE events SET actor = 'mallory' WHERE seq = 3")
    result = invoke("audit", "verify")
    assert result.exit_code == 8
    assert result.stderr.startswith("error: the ledger is broken at event 3")
    as_json = invoke("audit", "verify", "--json")
    assert as_json.exit_code == 8
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["first_broken_seq"]) == (False, 3)


def test_audit_log_filters(invoke: Invoke, registry: Path) -> None:
    table = invoke("audit", "log", "--limit", "3")
    assert table.exit_code == 0, table.output
    assert "Events (3)" in table.stdout
    events = json.loads(invoke("audit", "log", "--kind", "alias.set", "--json").stdout)
    assert [e["kind"] for e in events] == ["alias.set", "alias.set"]
    assert events[0]["seq"] > events[1]["seq"]  # newest first
    oldest = json.loads(invoke("audit", "log", "--oldest-first", "--limit", "1", "--json").stdout)
    assert oldest[0]["seq"] == 1
    subject = json.loads(invoke("audit", "log", "--subject", "fraud", "--json").stdout)
    assert [e["kind"] for e in subject] == ["model.created"]
    nobody = json.loads(invoke("audit", "log", "--actor", "nobody", "--json").stdout)
    assert nobody == []
    future = json.loads(invoke("audit", "log", "--since", "2999-01-01", "--json").stdout)
    assert future == []
    past = json.loads(invoke("audit", "log", "--until", "2000-01-01T00:00:00Z", "--json").stdout)
    assert past == []


def test_audit_log_bad_time_exits_2(invoke: Invoke, registry: Path) -> None:
    result = invoke("audit", "log", "--since", "yesterday")
    assert result.exit_code == 2
    assert "ISO 8601" in result.stderr


# tokens -------------------------------------------------------------------------------------
def test_tokens_create_list_revoke(invoke: Invoke) -> None:
    created = invoke("tokens", "create", "--name", "ci", "--role", "developer")
    assert created.exit_code == 0, created.output
    assert "will not be shown again" in created.stderr
    as_json = json.loads(
        invoke("tokens", "create", "--name", "bot", "--role", "viewer", "--expires-in-days", "7",
               "--json").stdout
    )  # fmt: skip
    secret = as_json["secret"]
    assert secret
    assert as_json["token"]["expires_at"] is not None
    listed = invoke("tokens", "list", "--json")
    tokens = json.loads(listed.stdout)
    assert sorted(t["name"] for t in tokens) == ["bot", "ci"]
    assert secret not in listed.stdout
    assert "ci" in invoke("tokens", "list").stdout
    revoked = invoke("tokens", "revoke", as_json["token"]["id"])
    assert revoked.exit_code == 0, revoked.output
    tokens = json.loads(invoke("tokens", "list", "--json").stdout)
    assert {t["name"]: t["revoked"] for t in tokens} == {"bot": True, "ci": False}


def test_tokens_errors(invoke: Invoke) -> None:
    assert invoke("tokens", "create", "--name", "x", "--role", "god").exit_code == 2
    negative = invoke(
        "tokens", "create", "--name", "x", "--role", "viewer", "--expires-in-days", "-1"
    )
    assert negative.exit_code == 2
    assert negative.stderr.startswith("error: ")
    assert invoke("tokens", "revoke", "no-such-token").exit_code == 4
