"""The root command: help, global options, and how every error reaches the user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke
from typer.testing import CliRunner

from steward.cli.main import app

COMMANDS = [
    "register", "models", "versions", "show", "server", "demo", "alias", "card", "runs",
    "audit", "tokens", "db", "settings", "import", "drift", "profile",
]  # fmt: skip


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f" {command} " in result.output, command


@pytest.mark.parametrize(
    ("group", "subcommands"),
    [
        ("models", ["list", "create"]),
        ("alias", ["set", "delete"]),
        ("card", ["show", "edit"]),
        ("runs", ["list", "show"]),
        ("audit", ["verify", "log"]),
        ("tokens", ["create", "list", "revoke"]),
        ("db", ["upgrade"]),
        ("settings", ["show"]),
        ("import", ["mlflow"]),
    ],
)
def test_group_help_lists_its_commands(group: str, subcommands: list[str]) -> None:
    result = CliRunner().invoke(app, [group, "--help"])
    assert result.exit_code == 0, result.output
    for sub in subcommands:
        assert f" {sub} " in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("steward ")


def test_unknown_model_is_one_line_exit_4(invoke: Invoke) -> None:
    result = invoke("show", "models:/nope/1")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith("error: No model named 'nope'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_bad_option_value_exits_2_without_traceback(invoke: Invoke) -> None:
    result = invoke("models", "--limit", "zero")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_invalid_setting_is_one_line_exit_2(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_SERVER_PORT", "not-a-port")
    result = invoke("settings", "show")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid setting 'port' of ServerSettings")


def test_unexpected_error_is_one_line_exit_1_and_debug_reraises(
    invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("steward.client.Client.list_models", boom)
    result = invoke("models")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unexpected RuntimeError: disk on fire")
    assert "--debug" in result.stderr
    debug = CliRunner().invoke(app, ["--home", str(home), "--debug", "models"])
    assert isinstance(debug.exception, RuntimeError)


def test_main_exits_with_the_error_code(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from steward.cli.main import main

    monkeypatch.setattr("sys.argv", ["steward", "--home", str(home), "show", "models:/x/1"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 4
    assert capsys.readouterr().err.startswith("error: No model named 'x'")


def test_settings_show_masks_secrets(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_TOKEN", "st_supersecret")
    monkeypatch.setenv("STEWARD_DATABASE_URL", "postgresql://steward:hunter2@db/steward")
    result = invoke("settings", "show", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "supersecret" not in result.stdout
    assert "hunter2" not in result.stdout
    assert data["effective"]["database_url"] == "postgresql://steward:***@db/steward"
    assert data["effective"]["mode"] == "embedded"  # --home implies the embedded store
    assert data["home"].endswith("home")
    table = invoke("settings", "show")
    assert table.exit_code == 0
    assert "hunter2" not in table.stdout
    assert "server.port" in table.stdout


def test_global_url_selects_the_remote_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--url", "http://steward:5050", "settings", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["effective"]["mode"] == "remote"


def test_help_does_not_import_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from steward.cli.main import app; "
        "heavy = [m for m in ('pandas', 'sqlalchemy', 'sklearn', 'uvicorn', 'fastapi') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docs_cover_every_command() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    groups = {
        "models": ["create"], "alias": ["set", "delete"], "card": ["edit"], "runs": ["show"],
        "audit": ["verify", "log"], "tokens": ["create", "list", "revoke"], "db": ["upgrade"],
        "settings": ["show"], "import": ["mlflow"],
    }  # fmt: skip
    for command in COMMANDS:
        assert f"`steward {command}" in docs, command
        for sub in groups.get(command, []):
            assert f"`steward {command} {sub}" in docs, f"{command} {sub}"
    for code in range(9):
        assert f"| {code} |" in docs
