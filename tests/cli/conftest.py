"""CLI fixtures: Typer's CliRunner on the root app, always with ``--home`` in ``tmp_path``.

A small registry (one model, two versions, aliases and a run) is built once per session with
the SDK and copied into each test that needs it, so tests stay fast and never share state.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from steward.cli.main import app

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No STEWARD_* variable or steward.toml from the developer's machine leaks in."""
    for key in list(os.environ):
        if key.startswith("STEWARD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def invoke(home: Path) -> Invoke:
    """``invoke("models", "--json")`` runs ``steward --home HOME models --json``."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, ["--home", str(home), *args], input=input)

    return run


def _build_registry(home: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from steward.client import Client, log_model, start_run

    x = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0], "income": [1, 2, 3, 4, 5, 6.0]})
    y = [0, 0, 1, 0, 1, 1]
    with Client(home=home) as client:
        with start_run("fit", project="credit", params={"C": 1.0}, client=client) as run:
            for step in range(5):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            first = run.log_model(
                LogisticRegression().fit(x, y),
                "churn",
                metrics={"auc": 0.91, "accuracy": 0.8},
                params={"C": 1.0},
                training_data=x,
                owner="ana",
                team="growth",
                risk_tier=2,
                use_case="retention offers",
            )
        v2 = log_model(
            LogisticRegression(C=0.1).fit(x, y), "churn", metrics={"auc": 0.85}, client=client
        )
        client.set_alias("churn", "champion", first.version)
        client.set_alias("churn", "challenger", v2.version)
        client.create_model("fraud", owner="bo", team="risk", risk_tier=1)


@pytest.fixture(scope="session")
def _registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = tmp_path_factory.mktemp("registry") / "home"
    _build_registry(template)
    return template


@pytest.fixture
def registry(home: Path, _registry_template: Path) -> Path:
    """HOME holding: model ``churn`` (v1 @champion auc 0.91, v2 @challenger auc 0.85, a run in
    project ``credit``) and model ``fraud`` (no versions)."""
    shutil.copytree(_registry_template, home)
    return home
