"""reproduce_training: re-run a registered version's training in a real git repository.

One module-scoped repository holds a training script whose behaviour the tests vary through
environment variables (noise on the metric, failure, sleep); it is trained and registered once,
through the embedded SDK, and each test re-runs it. A run that trains costs a few seconds (most
of it importing scikit-learn and skops), so the tests that only need the command to start use
the fast paths (TRAIN_FAIL, TRAIN_SLEEP).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.client import _models as sdk_models
from steward.domain.entities import ModelVersion
from steward.errors import Conflict, InvalidInput
from steward.gates.reproduce import (
    ReproductionOutcome,
    _into_checkout,
    _metric_problems,
    reproduce_training,
)
from steward.lineage import fingerprint
from steward.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

TRAIN = '''\
"""Train a small classifier on the CSV named by --data and log it as "churn"."""
import os
import sys
import time

if os.environ.get("TRAIN_FAIL"):
    sys.exit("training failed: TRAIN_FAIL is set")  # to stderr, exit code 1
if os.environ.get("TRAIN_SLEEP"):
    time.sleep(float(os.environ["TRAIN_SLEEP"]))

import numpy as np
from sklearn.linear_model import LogisticRegression

import steward

data = np.loadtxt(sys.argv[sys.argv.index("--data") + 1], delimiter=",")
features, labels = data[:, :-1], data[:, -1]
model = LogisticRegression(max_iter=500).fit(features, labels)
# A metric that depends on the environment: the run is not reproducible when TRAIN_NOISE is set.
accuracy = model.score(features, labels) + float(os.environ.get("TRAIN_NOISE", "0"))
steward.log_model(
    model, "churn", metrics={"accuracy": accuracy}, params={"C": 1.0}, training_data=features
)
print("logged churn with accuracy", accuracy)
'''


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment without its STEWARD_* settings, on the embedded store ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    return env | {"STEWARD_HOME": str(home)} | extra


@dataclass(frozen=True)
class Trained:
    repo: Path
    data: Path  # outside the repository: its content is not held by the commit
    home: Path
    version: ModelVersion

    def reproduce(
        self,
        *,
        env: dict[str, str] | None = None,
        tolerance: float = 1e-9,
        timeout_s: float = 120.0,
        workdir: Path | None = None,
    ) -> ReproductionOutcome:
        return reproduce_training(
            self.version, repo_path=self.repo, tolerance=tolerance, timeout_s=timeout_s,
            workdir=workdir, env=_env(self.home, **(env or {})),
        )  # fmt: skip


def _write_data(path: Path, shift: float = 0.0) -> None:
    features, labels = make_classification(n_samples=200, n_features=5, random_state=0)
    features[:40] += shift
    np.savetxt(path, np.column_stack([features, labels]), delimiter=",", fmt="%.17g")


def _small_data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=50, n_features=4, n_redundant=0, random_state=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("reproduce")
    repo, home, data = root / "repo", root / "home", root / "churn.csv"
    repo.mkdir()
    _write_data(data)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(TRAIN)
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "train churn")
    # By absolute path, as IDEs run scripts: the re-run must map it into its checkout.
    subprocess.run(
        [sys.executable, str(repo / "train.py"), "--data", str(data)],
        cwd=repo, env=_env(home), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Client(home=home) as client:
        version = client.get_version("models:/churn/1")
    return Trained(repo=repo, data=data, home=home, version=version)


def test_the_recorded_training_reproduces_from_the_commit(trained: Trained, tmp_path) -> None:
    lineage = trained.version.lineage
    assert lineage.git.commit
    assert lineage.git.dirty is False
    recorded_argv = shlex.split(lineage.command or "")
    assert recorded_argv[:2] == [sys.executable, str(trained.repo / "train.py")]
    # Today's working tree is broken; the re-run must use the commit's code, and leave it be.
    script = trained.repo / "train.py"
    script.write_text('raise SystemExit("the working tree ran, not the commit")\n')
    try:
        outcome = trained.reproduce(workdir=tmp_path)
        assert script.read_text().startswith("raise SystemExit")
    finally:
        script.write_text(TRAIN)

    assert outcome.matched, outcome.detail
    assert outcome.returncode == 0
    assert outcome.recorded == trained.version.metrics
    assert outcome.reproduced == outcome.recorded
    assert outcome.data_fingerprints_matched is True
    assert outcome.commit == lineage.git.commit
    assert outcome.command == lineage.command
    assert "logged churn with accuracy" in outcome.log_tail
    assert "all 1 recorded metrics reproduced within 1e-09" in outcome.detail
    assert "the data fingerprints matched" in outcome.detail

    assert list(tmp_path.iterdir()) == []  # the checkout and capture file are gone
    assert _git(trained.repo, "status", "--porcelain") == ""
    assert len(_git(trained.repo, "worktree", "list").splitlines()) == 1
    with Client(home=trained.home) as client:  # the re-run registered nothing
        assert client.get_version("models:/churn/latest").version == 1

    record = outcome.to_reproduction(
        trained.version, id="r1", created_at=trained.version.created_at, created_by="ci"
    )
    assert (record.model_name, record.version, record.matched) == ("churn", 1, True)
    assert record.reproduced == outcome.reproduced


def test_a_metric_that_depends_on_the_environment_does_not_match(trained: Trained) -> None:
    outcome = trained.reproduce(env={"TRAIN_NOISE": "0.05"}, tolerance=0.01)

    assert not outcome.matched
    assert outcome.returncode == 0
    assert outcome.reproduced["accuracy"] - outcome.recorded["accuracy"] == pytest.approx(0.05)
    assert outcome.data_fingerprints_matched is True
    assert "not reproduced: accuracy recorded" in outcome.detail
    assert "(differs by 0.05; tolerance 0.01)" in outcome.detail


def test_the_tolerance_is_absolute_and_inclusive() -> None:
    recorded = {"accuracy": 0.5, "loss": 2.0}
    assert _metric_problems(recorded, {"accuracy": 0.75, "loss": 2.0}, 0.25) == []
    assert _metric_problems(recorded, {"accuracy": 0.5, "loss": 2.5}, 0.25) == [
        "loss recorded 2, reproduced 2.5 (differs by 0.5; tolerance 0.25)"
    ]
    assert _metric_problems(recorded, {"accuracy": float("nan")}, 1.0) == [
        "accuracy recorded 0.5, reproduced nan (differs by nan; tolerance 1)",
        "loss was not logged by the re-run",
    ]


def test_a_failing_command_is_not_matched_and_shows_its_output(trained: Trained) -> None:
    outcome = trained.reproduce(env={"TRAIN_FAIL": "1"})

    assert not outcome.matched
    assert outcome.returncode == 1
    assert outcome.reproduced == {}
    assert outcome.data_fingerprints_matched is None
    assert "training failed: TRAIN_FAIL is set" in outcome.log_tail
    assert "the command failed with exit code 1" in outcome.detail
    assert "Last output:\ntraining failed: TRAIN_FAIL is set" in outcome.detail


def test_a_command_over_the_timeout_is_stopped(trained: Trained) -> None:
    outcome = trained.reproduce(env={"TRAIN_SLEEP": "60"}, timeout_s=0.5)

    assert not outcome.matched
    assert outcome.returncode is None
    assert "timed out after 0.5 s" in outcome.detail
    assert outcome.duration_s < 10


def test_changed_data_outside_the_repository_is_detected(trained: Trained) -> None:
    original = trained.data.read_bytes()
    _write_data(trained.data, shift=0.5)
    try:
        outcome = trained.reproduce(tolerance=1.0)  # the metric may move; the data did
    finally:
        trained.data.write_bytes(original)

    assert not outcome.matched
    assert outcome.data_fingerprints_matched is False
    assert "training data changed: recorded sha256:" in outcome.detail
    assert outcome.reproduced  # the run itself succeeded


def test_the_recorded_remote_is_cloned_when_it_is_a_local_folder(
    trained: Trained, tmp_path
) -> None:
    origin = tmp_path / "origin.git"
    _git(tmp_path, "clone", "-q", "--bare", str(trained.repo), str(origin))
    git = trained.version.lineage.git.model_copy(update={"remote": f"file://{origin}"})
    version = _with_lineage(trained.version, git=git)

    # TRAIN_FAIL keeps the run short: reaching the script proves the commit was checked out.
    outcome = reproduce_training(
        version, repo_path=None, tolerance=0.0, timeout_s=60, env=_env(trained.home, TRAIN_FAIL="1")
    )
    assert outcome.returncode == 1
    assert "TRAIN_FAIL is set" in outcome.log_tail


def test_a_command_that_logs_no_model_is_not_matched(trained: Trained) -> None:
    command = shlex.join([sys.executable, "-c", "print('trained, but forgot log_model')"])
    version = _with_lineage(trained.version, command=command)

    outcome = reproduce_training(version, repo_path=trained.repo, tolerance=0.0, timeout_s=60)
    assert not outcome.matched
    assert outcome.returncode == 0
    assert "never called steward.log_model for 'churn'" in outcome.detail
    assert outcome.log_tail == "trained, but forgot log_model"


def _with_lineage(version: ModelVersion, **changes: object) -> ModelVersion:
    return version.model_copy(update={"lineage": version.lineage.model_copy(update=changes)})


def _refusal(trained: Trained, case: str) -> tuple[ModelVersion, dict[str, object]]:
    version, git = trained.version, trained.version.lineage.git
    options: dict[str, object] = {"repo_path": trained.repo, "tolerance": 0.0, "timeout_s": 60}
    if case == "no command":
        version = _with_lineage(version, command=None)
    elif case == "no commit":
        version = _with_lineage(version, git=git.model_copy(update={"commit": None}))
    elif case == "masked secret":
        version = _with_lineage(version, command=f"{version.lineage.command} --token=***")
    elif case == "no metrics":
        version = version.model_copy(update={"metrics": {}})
    elif case == "remote not local":
        remote = "git@github.com:acme/churn.git"
        version = _with_lineage(version, git=git.model_copy(update={"remote": remote}))
        options["repo_path"] = None
    elif case == "repo_path missing":
        options["repo_path"] = trained.repo / "nowhere"
    elif case == "commit not in repo":
        version = _with_lineage(version, git=git.model_copy(update={"commit": "ab" * 20}))
    elif case == "negative tolerance":
        options["tolerance"] = -0.1
    elif case == "no timeout":
        options["timeout_s"] = 0
    return version, options


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("no command", "lineage.command", "no recorded training command"),
        ("no commit", "lineage.git.commit", "no recorded git commit"),
        ("masked secret", "lineage.command", "secret values masked"),
        ("no metrics", "metrics", "no recorded metrics"),
        ("remote not local", "repo_path", "not a folder on this machine. Pass repo_path"),
        ("repo_path missing", "repo_path", "is not a folder"),
        ("commit not in repo", "repo_path", "Commit abababababab is not in"),
        ("negative tolerance", "tolerance", "'tolerance' must be"),
        ("no timeout", "timeout_s", "'timeout_s' must be"),
    ],
)
def test_what_cannot_be_reproduced_is_refused(
    trained: Trained, case: str, field: str, words: str
) -> None:
    version, options = _refusal(trained, case)
    with pytest.raises(InvalidInput) as caught:
        reproduce_training(version, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_version_trained_from_a_dirty_tree_is_refused(tmp_path, monkeypatch) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "train.py").write_text("print('v1')\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "v1")
    (tmp_path / "train.py").write_text("print('v2, not committed')\n")
    monkeypatch.chdir(tmp_path)
    features, labels = _small_data()
    with Client(home=tmp_path / "home") as client:
        version = log_model(
            LogisticRegression().fit(features, labels), "dirty", metrics={"accuracy": 0.9},
            client=client,
        )  # fmt: skip
    assert version.lineage.git.dirty is True

    with pytest.raises(Conflict, match="uncommitted changes") as caught:
        reproduce_training(version, repo_path=tmp_path, tolerance=0.0, timeout_s=60)
    assert caught.value.details == {"field": "lineage.git.dirty"}


def test_log_model_under_capture_writes_a_line_and_registers_nothing(tmp_path) -> None:
    capture = tmp_path / "capture.jsonl"
    features, labels = _small_data()
    model = LogisticRegression().fit(features, labels)
    settings = Settings(home=tmp_path / "home", reproduce_capture=capture)
    with Client(settings=settings) as client:
        for accuracy in (0.8, 0.9):
            version = log_model(
                model, "churn", metrics={"accuracy": accuracy}, params={"C": 1, "tag": "x"},
                training_data=features, evaluation_data=features[:10], client=client,
            )  # fmt: skip
        assert client.list_models().items == []

    assert (version.version, version.id, version.model_name) == (0, "", "churn")
    assert version.metrics == {"accuracy": 0.9}
    assert version.lineage.training_data == fingerprint(features)
    lines = [json.loads(line) for line in capture.read_text().splitlines()]
    expected = {
        "name": "churn",
        "metrics": {"accuracy": 0.9},
        "params": {"C": "1", "tag": "x"},  # as registration stores them: text
        "training_data": fingerprint(features),
        "evaluation_data": fingerprint(features[:10]),
    }
    assert lines[-1] == expected
    assert len(lines) == 2


def test_capture_from_the_environment_builds_no_default_client(tmp_path, monkeypatch) -> None:
    capture = tmp_path / "capture.jsonl"
    monkeypatch.setenv("STEWARD_REPRODUCE_CAPTURE", str(capture))

    def no_client() -> Client:
        raise AssertionError("capture mode must not open the registry")

    monkeypatch.setattr(sdk_models, "default_client", no_client)
    features, labels = _small_data()
    log_model(LogisticRegression().fit(features, labels), "churn", metrics={"auc": 0.7})
    assert json.loads(capture.read_text())["metrics"] == {"auc": 0.7}


def test_absolute_paths_into_the_repository_point_at_the_checkout(tmp_path) -> None:
    top, checkout = tmp_path / "repo", tmp_path / "checkout"
    for folder in (top / ".venv" / "bin", checkout / "src"):
        folder.mkdir(parents=True)
    (checkout / "src" / "train.py").write_text("")
    python = str(top / ".venv" / "bin" / "python")
    argv = [
        python, str(top / "src" / "train.py"), f"--config={top / 'src' / 'train.py'}",
        "--out", str(top / "untracked.csv"), "--data", "/elsewhere/data.csv", "-v",
    ]  # fmt: skip

    assert _into_checkout(argv, top.resolve(), checkout) == [
        python,  # the interpreter stays: a virtualenv is not in git
        str(checkout / "src" / "train.py"),
        f"--config={checkout / 'src' / 'train.py'}",
        "--out", str(top / "untracked.csv"),  # not in the commit: left where it is
        "--data", "/elsewhere/data.csv",
        "-v",
    ]  # fmt: skip
    assert _into_checkout(argv, None, checkout) == argv
