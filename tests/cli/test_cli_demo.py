"""``steward demo --no-serve``: the whole scenario, end to end (the slowest CLI test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import Invoke
from typer.testing import CliRunner

from steward.cli.main import app
from steward.demo import DemoSummary, run_demo
from steward.demo._experiments import PATIENTS, ExperimentScene
from steward.demo._gates import REVIEWER, Release
from steward.demo._serving import AFTER_ROLLBACK, REQUESTS, Serving

BC1, BC2, BC3 = "models:/breast-cancer/1", "models:/breast-cancer/2", "models:/breast-cancer/3"
DIABETES, IRIS = "models:/diabetes-progression/1", "models:/iris-species/1"


def test_demo_no_serve_end_to_end(
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import steward.demo

    summaries: list[DemoSummary] = []

    def recording(*args: Any, **kwargs: Any) -> DemoSummary:
        summaries.append(run_demo(*args, **kwargs))
        return summaries[-1]

    monkeypatch.setattr(steward.demo, "run_demo", recording)
    demo_home = tmp_path / "demo"
    # No time limit here: speed is for benchmarks, and this machine is shared and noisy.
    result = invoke("demo", "--no-serve", "--home", str(demo_home))
    assert result.exit_code == 0, result.output
    assert "Ledger: ✓ intact" in result.stdout
    assert "search_versions('metrics.auc > 0.9')" in result.stdout
    _check_release(summaries[0].release, demo_home, result.stdout)
    _check_serving(summaries[0].serving, demo_home, result.stdout)
    _check_experiment(summaries[0].experiment, result.stdout)

    def run(*args: str) -> Any:
        done = CliRunner().invoke(app, ["--home", str(demo_home), *args])
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    models = {m["name"]: m for m in run("models", "--json")}
    assert set(models) == {"breast-cancer", "diabetes-progression", "iris-species"}
    # the experiment shipped v3: the champion alias moved with its promotion
    assert models["breast-cancer"]["aliases"] == {"champion": 3, "challenger": 2}
    assert models["breast-cancer"]["card"]["intended_use"]
    hits = run("versions", "--all", "--filter", "metrics.auc > 0.9", "--json")
    assert {v["model_name"] for v in hits} == {"breast-cancer"}
    iris = run("show", "models:/iris-species@champion", "--json")
    assert set(iris["files"]) == {"model.skops", "model.onnx"}
    runs = run("runs", "--project", "steward-demo", "--json")
    assert len(runs) == 5  # the four of the release, and the canary's
    assert run("audit", "verify", "--json")["ok"] is True
    assert run("show", BC1, "--json")["status"] == "deprecated"  # replaced by the winner
    assert run("show", BC2, "--json")["status"] == "registered"
    assert run("show", BC3, "--json")["status"] == "production"  # the experiment's winner
    deployments = {d["name"]: d for d in run("deployments", "--json")}
    assert set(deployments) == {"breast-cancer-triage", "triage-ab", "triage-ab-eu"}
    assert (deployments["triage-ab"]["champion"], deployments["triage-ab"]["split"]) == (3, None)
    deployment = deployments["breast-cancer-triage"]
    assert (deployment["name"], deployment["champion"]) == ("breast-cancer-triage", 1)
    assert (deployment["canary"], deployment["revision"]) == (None, 2)  # rolled back
    assert [f["kind"] for f in deployment["fallbacks"]] == ["rule", "default"]
    assert run("policy", "show", "--model", "diabetes-progression", "--json")["name"] == (
        "steward-demo"
    )
    _check_gateway_serves(demo_home, summaries[0].serving, capsys)


def _check_release(release: Release, home: Path, output: str) -> None:
    """One version fails its gate on fairness alone; the others pass, are approved by a second
    person (never by their author) and reach production."""
    assert release.policy == "steward-demo"
    assert release.verdicts == {
        BC1: "awaiting_approval", BC2: "failed", DIABETES: "awaiting_approval",
        IRIS: "awaiting_approval",
    }  # fmt: skip
    assert release.failed_checks == {BC2: ["fairness"]}
    assert "cannot approve" in (release.own_approval_refused or "")
    assert release.approved == release.promoted == [BC1, DIABETES, IRIS]
    assert release.blocked_promotion is not None
    assert release.report_path == home / "reports" / "breast-cancer-v2-gate.html"
    assert "equalized_odds_difference" in release.report_path.read_text(encoding="utf-8")
    assert "version.transitioned v1" in release.history
    assert "is blocked" in output
    assert "malignant samples called benign" in output
    assert f"{REVIEWER} approves {BC1}" in output


def _check_serving(serving: Serving, home: Path, output: str) -> None:
    """The champion and the canary both answer (about 80/20), every answered request is in the
    prediction log, and after the rollback only the champion answers."""
    from steward.store.prediction_log import read_predictions

    assert (serving.deployment, serving.champion, serving.canary) == ("breast-cancer-triage", 1, 3)
    assert serving.canary_status == "approved"
    assert serving.refused == 0
    assert set(serving.answers) == {1, 3}
    assert sum(serving.answers.values()) == REQUESTS
    assert 0.1 * REQUESTS <= serving.answers[3] <= 0.3 * REQUESTS  # the canary's 20%, by unit
    assert all(p50 <= p95 for p50, p95 in serving.latency_ms.values())
    assert serving.oip["model_name"] == "breast-cancer-triage"
    assert {o["name"] for o in serving.oip["outputs"]} == {"prediction", "probabilities"}
    assert serving.requests == REQUESTS + 1 + AFTER_ROLLBACK
    assert serving.log_rows == serving.requests
    assert serving.rolled_back
    assert serving.answers_after_rollback == {1: AFTER_ROLLBACK}
    # the prediction log on disk agrees: the canary's rows are there, none after the rollback
    logged = read_predictions(str(home / "predictions"), "breast-cancer-triage").to_pylist()
    assert len(logged) == serving.requests
    by_version = {v: sum(r["version"] == v for r in logged) for v in (1, 3)}
    oip_version = int(serving.oip["model_version"])
    assert by_version[3] == serving.answers[3] + (oip_version == 3)
    assert all(r["version"] == 1 for r in logged[-AFTER_ROLLBACK:])
    assert {"predict", "infer", "rules"} <= set(serving.files)
    assert json.loads(serving.files["predict"].read_text())["instances"] == [serving.sample_row]
    _check_monitoring(serving, output)


def _check_monitoring(serving: Serving, output: str) -> None:
    """The drifted half of the traffic trips the monitor; its alert opens an incident, which the
    canary's rollback mitigates; the timeline read from the ledger tells it in order."""
    watch = serving.watch
    assert watch.status == "ok"
    assert watch.rows == REQUESTS + 1  # the OIP call too; shadows none
    assert watch.tested == 30
    assert len(watch.drifted) >= 0.3 * watch.tested  # the rule's threshold
    assert watch.alerts == ["feature-drift"]
    assert watch.incident is not None
    assert watch.incident_state == "mitigated"
    kinds = watch.timeline
    assert kinds.index("deployment.created") < kinds.index("alert.fired")
    assert kinds.index("alert.fired") <= kinds.index("incident.opened")
    assert kinds.index("incident.opened") < kinds.index("deployment.rolled_back")
    assert kinds.index("deployment.rolled_back") < kinds.index("incident.mitigated")
    assert f"incident {watch.incident} opened" in output
    assert f"steward incident show {watch.incident}" in output


def _check_gateway_serves(home: Path, serving: Serving, capsys: pytest.CaptureFixture[str]) -> None:
    """What `steward demo` (serve mode) starts next to the API: the gateway on a real socket,
    answering the curl it prints."""
    import socket

    import httpx

    from steward.cli.demo import _Gateway, _print_gateway
    from steward.demo import demo_settings
    from steward.settings import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = demo_settings(Settings(), home, fresh=True)
    gateway = _Gateway(settings, port)
    try:
        assert gateway.start()
        url = f"{gateway.url}/predict/{serving.deployment}"
        answer = httpx.post(url, json={"instances": [serving.sample_row]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1
        infer = httpx.post(
            f"{gateway.url}/v2/models/{serving.deployment}/infer",
            content=serving.files["infer"].read_bytes(), timeout=10,
        )  # fmt: skip
        assert infer.status_code == 200, infer.text
        _print_gateway(settings, DemoSummary(home=home, serving=serving), gateway, started=True)
    finally:
        gateway.stop()
    printed = capsys.readouterr().out
    assert f"curl -s {url} -H 'content-type: application/json' -d '" in printed
    assert f"-d @{serving.files['infer']}" in printed


def test_demo_settings_are_embedded_and_fresh(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from steward.demo import demo_settings
    from steward.settings import Settings

    base = Settings(url="http://remote:5050", token=SecretStr("t"), home=tmp_path / "a")
    base = base.model_copy(
        update={"database": base.database.model_copy(update={"url": SecretStr("sqlite:///x.db")})}
    )
    fresh = demo_settings(base, tmp_path / "demo", fresh=True)
    assert (fresh.url, fresh.token, fresh.home) == (None, None, tmp_path / "demo")
    assert fresh.database_url == f"sqlite:///{tmp_path / 'demo' / 'steward.db'}"
    kept = demo_settings(base, None, fresh=False)
    assert kept.home == tmp_path / "a"
    assert kept.database_url == "sqlite:///x.db"


def _store_with_one_model(home: Path) -> None:
    from steward.client import Client

    with Client(home=home) as client:
        client.create_model("mine", owner="bo")


def test_demo_refuses_to_run_its_scenario_into_a_store_that_holds_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run into the same folder: its names (experiments, incidents) would clash with
    the first run's, and the folder may hold more than the demo's; so nothing is run or
    removed, and the message says what to do."""
    import steward.demo

    home = tmp_path / "kept"
    _store_with_one_model(home)
    monkeypatch.setattr(steward.demo, "run_demo", _must_not_run)
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--home", str(home)])
    assert result.exit_code == 5, result.output
    assert f"{home} already holds a store with 1 model(s)" in result.output
    assert "steward demo --home FOLDER" in result.output
    assert "Traceback" not in result.output
    from steward.client import Client

    with Client(home=home) as client:
        assert [m.name for m in client.list_models().items] == ["mine"]


def test_demo_serves_a_store_that_holds_models_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import steward.cli.demo
    import steward.demo

    home = tmp_path / "kept"
    _store_with_one_model(home)
    served: list[Any] = []
    monkeypatch.setattr(steward.demo, "run_demo", _must_not_run)
    monkeypatch.setattr(
        steward.cli.demo, "_serve", lambda settings, summary: served.append((settings, summary))
    )
    result = CliRunner().invoke(app, ["demo", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "serving it as it is" in result.output
    [(settings, summary)] = served
    assert (settings.home, summary) == (home, None)


def test_demo_on_an_empty_store_runs_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store with no model yet (a token, say) is not a previous run: the scenario runs."""
    import steward.demo

    home = tmp_path / "kept"
    from steward.client import Client

    with Client(home=home) as client:
        client.create_token("ci", "admin")
    ran: list[Path] = []
    monkeypatch.setattr(steward.demo, "run_demo", lambda settings, **_: ran.append(settings.home))
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert ran == [home]


def test_gateway_over_a_kept_store_names_its_deployments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from steward.cli.demo import _Gateway, _print_gateway
    from steward.demo import demo_settings
    from steward.settings import Settings

    home = tmp_path / "kept"
    _store_with_one_model(home)
    settings = demo_settings(Settings(), home, fresh=True)
    gateway = _Gateway(settings, 8081)
    _print_gateway(settings, None, gateway, started=True)
    printed = capsys.readouterr().out
    assert "serving the store's deployments: none yet" in printed
    _print_gateway(settings, None, gateway, started=False)
    printed = capsys.readouterr().out
    assert "did not start on port 8081" in printed
    assert "serve --port 8081" in printed


def _must_not_run(*_: Any, **__: Any) -> DemoSummary:
    raise AssertionError("the scenario ran into a store that already holds models")


@pytest.mark.parametrize("flag", ["--no-serve"])
def test_demo_help(invoke: Invoke, flag: str) -> None:
    result = invoke("demo", "--help")
    assert result.exit_code == 0
    assert flag in result.output


def _check_experiment(scene: ExperimentScene, output: str) -> None:
    """The clean split finds the candidate better and ships it; the split changed mid-way is
    caught by its sample-ratio check before any result, and only recorded."""
    assert abs(scene.units[1] - scene.units[3]) < 0.1 * PATIENTS  # about 50/50
    assert scene.recommendation == "ship"
    assert scene.ship_variant == 3
    assert scene.lift is not None
    assert scene.lift > 0
    assert scene.p_value is not None
    assert scene.p_value < 0.05
    assert scene.broken_srm_p is not None
    assert scene.broken_srm_p < 0.001
    assert scene.broken_units[1] > scene.broken_units[3]  # served 65/35, designed 50/50
    assert scene.broken_recommendation == "inconclusive"
    assert (scene.decision, scene.applied, scene.champion_after) == ("ship", True, 3)
    assert "✗ sample ratio mismatch" in output
