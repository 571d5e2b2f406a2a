"""server, db upgrade and import mlflow (the server itself is not started: uvicorn is stubbed)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import Invoke

from steward.api.http_protocol import CoalescingHttpToolsProtocol


@pytest.fixture(autouse=True)
def _collector_unfrozen() -> Iterator[None]:
    """`steward server` freezes the process's objects out of the collector before serving; in
    this test process they go back to it after each test."""
    yield
    gc.unfreeze()


def test_db_upgrade_then_up_to_date(invoke: Invoke, home: Path) -> None:
    first = invoke("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "Upgraded the database from empty" in first.stdout
    assert (home / "steward.db").exists()
    again = invoke("db", "upgrade")
    assert again.exit_code == 0
    assert "up to date" in again.stdout


def test_server_runs_create_app_in_one_process(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr("uvicorn.run", fake_run)
    result = invoke("server", "--host", "0.0.0.0", "--port", "6060")
    assert result.exit_code == 0, result.output
    assert "http://0.0.0.0:6060" in result.stdout
    (call,) = calls
    assert (call["host"], call["port"]) == ("0.0.0.0", 6060)
    assert "workers" not in call
    assert call["http"] is CoalescingHttpToolsProtocol  # a response leaves in one write
    # the app's direct routes are visible to the protocol; no access log unless asked
    assert (call["proxy_headers"], call["access_log"]) == (False, False)
    assert any(getattr(r, "path", None) == "/health" for r in call["app"].routes)


@pytest.mark.parametrize(
    ("args", "env", "logged"),
    [
        (["--access-log"], {}, True),
        ([], {"STEWARD_SERVER_ACCESS_LOG": "true"}, True),
        (["--no-access-log"], {"STEWARD_SERVER_ACCESS_LOG": "true"}, False),
    ],
)
def test_server_access_log_is_asked_for(
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    logged: bool,
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append(kwargs))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = invoke("server", *args)
    assert result.exit_code == 0, result.output
    assert calls[0]["access_log"] is logged


def test_server_freezes_what_start_up_made_out_of_full_collections(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[int] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: frozen.append(gc.get_freeze_count()))
    gc.unfreeze()
    result = invoke("server")
    assert result.exit_code == 0, result.output
    (count,) = frozen
    assert count > 10_000  # the modules, the app and the services at least


def test_server_bad_port_exits_2(invoke: Invoke) -> None:
    assert invoke("server", "--port", "70000").exit_code == 2


def test_import_mlflow_without_the_extra_exits_2(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    result = invoke("import", "mlflow", "--tracking-uri", "sqlite:///mlflow.db")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: the MLflow importer needs the mlflow extra: pip install 'ml-steward[mlflow]'"
    )


def test_import_mlflow_calls_the_importer(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from steward.importers.mlflow import ImportReport

    seen: dict[str, Any] = {}

    def fake_import(client: Any, **kwargs: Any) -> ImportReport:
        seen.update(kwargs)
        kwargs["progress"]("models:/churn/1", 1, 1)
        return ImportReport(models=1, versions=1, warnings=["no artifacts for run r1"])

    monkeypatch.setattr("steward.importers.mlflow.import_from_mlflow", fake_import)
    result = invoke(
        "import", "mlflow", "--tracking-uri", "http://mlflow:5000", "--model", "churn", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["versions"] == 1
    assert seen["tracking_uri"] == "http://mlflow:5000"
    assert seen["models"] == ["churn"]
    assert seen["registry_uri"] is None
    table = invoke("import", "mlflow", "--tracking-uri", "http://mlflow:5000")
    assert table.exit_code == 0, table.output
    assert "Import report" in table.stdout
    assert "no artifacts for run r1" in table.stderr
    assert seen["models"] is None
