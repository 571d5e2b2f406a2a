import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from steward.lineage import command_line, environment, git_state
from steward.lineage._environment import redact_argv
from steward.lineage._git import strip_credentials

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@needs_git
def test_git_state_in_a_repository(tmp_path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "train.py").write_text("print(1)\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    _git(tmp_path, "remote", "add", "origin", "https://user:secret@example.com/team/repo.git")

    state = git_state(tmp_path / "train.py")
    assert state is not None
    assert len(state.commit) == 40
    assert state.branch == "main"
    assert not state.dirty
    assert state.remote_url == "https://example.com/team/repo.git"

    (tmp_path / "untracked.csv").write_text("x\n")
    assert not git_state(tmp_path).dirty  # untracked outputs do not make the code dirty
    (tmp_path / "train.py").write_text("print(2)\n")
    assert git_state(tmp_path).dirty

    _git(tmp_path, "checkout", "-q", "--detach")
    assert git_state(tmp_path).branch is None


@needs_git
def test_git_state_outside_a_repository(tmp_path) -> None:
    assert git_state(tmp_path) is None
    assert git_state(tmp_path / "does-not-exist") is None


def test_git_state_without_git(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_state(".") is None


def test_strip_credentials() -> None:
    assert strip_credentials("https://tok@github.com/a/b") == "https://github.com/a/b"
    assert strip_credentials("git@github.com:a/b.git") == "git@github.com:a/b.git"


def test_environment() -> None:
    env = environment()
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["implementation"]
    assert env["platform"]
    packages = env["packages"]
    assert "scikit-learn" in packages
    assert "numpy" in packages
    assert list(packages) == sorted(packages)
    assert all(name == name.lower() and "_" not in name for name in packages)


def test_command_line(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--epochs", "3", "--name", "a b"])
    line = command_line()
    assert line.startswith(sys.executable)
    assert line.endswith("train.py --epochs 3 --name 'a b'")


def test_command_line_masks_secrets() -> None:
    argv = ["train.py", "--api-key=abc", "--token", "xyz", "--epochs", "3"]
    assert redact_argv(argv) == ["train.py", "--api-key=***", "--token", "***", "--epochs", "3"]


def test_import_steward_lineage_is_light() -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    code = "import sys, steward.lineage; print(' '.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    loaded = set(result.stdout.split())
    assert "steward.lineage" in loaded
    heavy = {"numpy", "pandas", "pyarrow", "sklearn", "onnxruntime"}
    assert not loaded & heavy
