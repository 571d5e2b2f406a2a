"""Re-run a version's recorded training and compare what it produces with what was recorded.

``reproduce_training`` clones the repository at the recorded commit into a temporary folder,
runs the recorded command there with ``STEWARD_REPRODUCE_CAPTURE`` set (so the script's
``log_model`` appends its metrics and data fingerprints to a file instead of registering), and
compares them with the version's. It never touches the user's working tree or the registry:
the gates service stores the outcome and appends its event. See docs/reproduce.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from steward.domain.entities import Entity, Lineage, ModelVersion
from steward.domain.gates import Reproduction
from steward.errors import Conflict, InvalidInput, StewardError
from steward.settings import reproduce_environment

# Cloning and checking out a local repository takes seconds; this bound is for a hung
# filesystem or checkout filter, and is separate from the training command's own timeout.
GIT_TIMEOUT_S = 600.0
LOG_TAIL_LINES = 40  # of the command's output, kept in the outcome
DETAIL_TAIL_LINES = 10  # of those, quoted in the detail that is stored when a run fails
_LOG_TAIL_BYTES = 64 * 1024
_DATA_KINDS = ("training_data", "evaluation_data")
_REDACTED = "***"  # what lineage records in place of a secret-looking option's value
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")


class ReproductionOutcome(Entity):
    """What a re-run of the recorded training produced, compared with the recorded version."""

    matched: bool  # ran, exited 0, every recorded metric within tolerance, no data change
    tolerance: float  # absolute: |reproduced - recorded| <= tolerance
    recorded: dict[str, float]
    reproduced: dict[str, float]  # empty when the re-run logged no model of that name
    data_fingerprints_matched: bool | None  # None when no fingerprint could be compared
    detail: str  # what was run and, when it did not match, why
    command: str  # as recorded in the version's lineage
    commit: str
    duration_s: float
    returncode: int | None  # None when the command was stopped at the timeout
    log_tail: str  # the last lines of its stdout and stderr, interleaved

    def to_reproduction(
        self, version: ModelVersion, *, id: str, created_at: datetime, created_by: str
    ) -> Reproduction:
        """The record the gates service stores for ``version``."""
        return Reproduction(
            id=id,
            model_name=version.model_name,
            version=version.version,
            matched=self.matched,
            tolerance=self.tolerance,
            recorded=self.recorded,
            reproduced=self.reproduced,
            data_fingerprints_matched=self.data_fingerprints_matched,
            detail=self.detail,
            created_at=created_at,
            created_by=created_by,
        )


@dataclass(frozen=True)
class _Run:
    returncode: int | None
    duration_s: float
    log_tail: str


def reproduce_training(
    version: ModelVersion,
    *,
    repo_path: Path | None,
    tolerance: float,
    timeout_s: float,
    workdir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ReproductionOutcome:
    """Re-run ``version``'s recorded training command at its recorded commit and compare.

    ``repo_path`` is a local clone holding the commit; None uses the recorded git remote when
    it is a folder on this machine. The command runs from the top of a fresh checkout under
    ``workdir`` (default: the system's temporary folder), removed afterwards, with ``env``
    (default: this process's environment) plus the capture file. Refuses (InvalidInput,
    Conflict) a version whose code or command cannot be re-run; a run that fails, times out
    or gives other numbers is an outcome with ``matched=False``, not an error.
    """
    _check_arguments(version, tolerance, timeout_s, workdir)
    argv = _recorded_argv(version)
    commit = _recorded_commit(version)
    source = _source_repository(version, repo_path, commit)
    with tempfile.TemporaryDirectory(prefix="steward-reproduce-", dir=workdir) as scratch:
        root = Path(scratch)
        checkout = root / "code"
        _checkout(source, commit, checkout)
        capture_file = root / "capture.jsonl"
        # Unbuffered, so the log's tail holds the last lines even when the run is killed.
        child_env = reproduce_environment(capture_file, env) | {"PYTHONUNBUFFERED": "1"}
        run_argv = _into_checkout(argv, _top_folder(source), checkout)
        run = _run(run_argv, checkout, child_env, root / "output.log", timeout_s)
        captured, names = _read_capture(capture_file, version.model_name)
    return _outcome(version, commit, run, captured, names, tolerance, timeout_s)


# refusals -------------------------------------------------------------------------------
def _check_arguments(
    version: ModelVersion, tolerance: float, timeout_s: float, workdir: Path | None
) -> None:
    if not math.isfinite(tolerance) or tolerance < 0:
        raise InvalidInput(
            f"'tolerance' must be a finite number >= 0. Got {tolerance}.", field="tolerance"
        )
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise InvalidInput(
            f"'timeout_s' must be a positive number of seconds. Got {timeout_s}.",
            field="timeout_s",
        )
    if workdir is not None and not workdir.is_dir():
        raise InvalidInput(f"'workdir' {workdir} is not an existing folder.", field="workdir")
    if not version.metrics:
        raise InvalidInput(
            f"{version.uri} has no recorded metrics, so a re-run has nothing to be compared "
            "with. Log metrics with the version to make it reproducible.",
            field="metrics",
        )


def _recorded_argv(version: ModelVersion) -> list[str]:
    command = version.lineage.command
    if not command or not command.strip():
        raise InvalidInput(
            f"{version.uri} has no recorded training command (lineage.command), so there is "
            "nothing to re-run. steward.log_model records it when called from the training "
            "script.",
            field="lineage.command",
        )
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidInput(
            f"The recorded command of {version.uri} cannot be split into arguments ({exc}): "
            f"{command!r}.",
            field="lineage.command",
        ) from exc
    if any(arg == _REDACTED or arg.endswith(f"={_REDACTED}") for arg in argv):
        raise InvalidInput(
            f"The recorded command of {version.uri} had secret values masked ({_REDACTED}), so "
            "it cannot be re-run as it was. Pass secrets to training through the environment, "
            "not the command line.",
            field="lineage.command",
        )
    return argv


def _recorded_commit(version: ModelVersion) -> str:
    git = version.lineage.git
    if not git.commit:
        raise InvalidInput(
            f"{version.uri} has no recorded git commit (lineage.git.commit), so the code that "
            "trained it cannot be checked out. Train from a git checkout to record it.",
            field="lineage.git.commit",
        )
    if not _COMMIT.fullmatch(git.commit):
        raise InvalidInput(
            f"The recorded git commit of {version.uri} is not a commit id: {git.commit!r}.",
            field="lineage.git.commit",
        )
    if git.dirty:
        raise Conflict(
            f"{version.uri} was trained from a working tree with uncommitted changes "
            f"(lineage.git.dirty), so commit {git.commit[:12]} alone does not hold the code "
            "that trained it. Commit the changes and train again to get a version that can be "
            "reproduced.",
            details={"field": "lineage.git.dirty"},
        )
    return git.commit


def _source_repository(version: ModelVersion, repo_path: Path | None, commit: str) -> Path:
    if repo_path is not None:
        if not repo_path.is_dir():
            raise InvalidInput(
                f"'repo_path' {repo_path} is not a folder; pass a local clone of the repository "
                f"that holds commit {commit[:12]}.",
                field="repo_path",
            )
        return repo_path
    remote = version.lineage.git.remote
    local = _local_folder(remote) if remote else None
    if local is None:
        trained_in = (
            f"a clone of {remote!r}, which is not a folder on this machine"
            if remote
            else "a repository with no remote"
        )
        raise InvalidInput(
            f"{version.uri} was trained in {trained_in}. Pass repo_path, a local clone that "
            f"holds commit {commit[:12]}.",
            field="repo_path",
        )
    return local


def _local_folder(remote: str) -> Path | None:
    """The folder a git remote names when it is on this machine (``/srv/git/x``, ``file://``)."""
    path = Path(unquote(urlsplit(remote).path)) if remote.startswith("file://") else Path(remote)
    # scp-style and URL remotes (git@host:x, https://...) are never absolute paths.
    return path if path.is_absolute() and path.is_dir() else None


# the checkout ---------------------------------------------------------------------------
def _git(*args: str, failure: str) -> str:
    """stdout of ``git args``; a failure raises InvalidInput that starts with ``failure``."""
    try:
        result = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise StewardError(
            "git is not installed or not on PATH; steward reproduce needs it to check out the "
            "recorded commit."
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(
            f"{failure}: git took more than {GIT_TIMEOUT_S:g} s.", field="repo_path"
        ) from exc
    if result.returncode != 0:
        reason = result.stderr.strip() or f"git exited with code {result.returncode}"
        raise InvalidInput(f"{failure}: {reason}", field="repo_path")
    return result.stdout.strip()


def _checkout(source: Path, commit: str, dest: Path) -> None:
    """A fresh clone of ``source`` at ``commit``: the user's working tree is only read.

    A clone rather than ``git worktree add``, which would register the worktree in the
    user's repository.
    """
    cloning = f"Cannot clone {source} (pass repo_path, a local clone of the repository)"
    _git("clone", "--quiet", "--no-checkout", "--", str(source), str(dest), failure=cloning)
    missing = (
        f"Commit {commit[:12]} is not in {source} (fetch it there, or pass repo_path, a clone "
        "that holds it)"
    )
    _git("-C", str(dest), "checkout", "--quiet", "--detach", commit, failure=missing)


def _top_folder(source: Path) -> Path | None:
    """The working tree's top folder (None for a bare repository), resolved like git does."""
    try:
        top = _git("-C", str(source), "rev-parse", "--show-toplevel", failure="")
    except InvalidInput:
        return None
    return Path(top).resolve() if top else None


def _into_checkout(argv: list[str], top: Path | None, checkout: Path) -> list[str]:
    """Point absolute paths into the user's working tree at the checkout instead.

    IDEs run scripts by absolute path; left alone, the re-run would execute today's working
    tree rather than the commit. The interpreter (``argv[0]``) stays: a virtualenv inside the
    repository is not in git.
    """
    if top is None:
        return argv
    return [argv[0], *(_into_checkout_arg(arg, top, checkout) for arg in argv[1:])]


def _into_checkout_arg(arg: str, top: Path, checkout: Path) -> str:
    option, sep, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    if not value or not Path(value).is_absolute():
        return arg
    try:
        relative = Path(value).resolve().relative_to(top)
    except ValueError:
        return arg  # outside the repository: data or outputs, used where they are
    mapped = checkout / relative
    # Only what the commit holds moves; untracked files stay where they were.
    return f"{option}{sep}{mapped}" if mapped.exists() else arg


# the run --------------------------------------------------------------------------------
def _run(argv: list[str], cwd: Path, env: dict[str, str], log_file: Path, timeout_s: float) -> _Run:
    started = time.monotonic()
    # Output goes to a file, not a pipe: a long training log would fill memory, and workers
    # the command leaves behind would keep a pipe open after it was killed.
    with log_file.open("wb") as log:
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so workers can be stopped too
            )
        except OSError as exc:
            raise InvalidInput(
                f"Cannot start the recorded command {shlex.join(argv)!r}: {exc}.",
                field="lineage.command",
            ) from exc
        returncode: int | None
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            _stop(process)
    return _Run(returncode, time.monotonic() - started, _tail(log_file, LOG_TAIL_LINES))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and whatever it started (joblib or DataLoader workers, say): they would
    keep running against a checkout about to be deleted."""
    if sys.platform != "win32":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait()


def _tail(log_file: Path, lines: int) -> str:
    with log_file.open("rb") as handle:
        handle.seek(max(0, log_file.stat().st_size - _LOG_TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _read_capture(capture_file: Path, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The last model named ``name`` that the re-run logged, and the names of all it logged."""
    if not capture_file.exists():
        return None, []
    found: dict[str, Any] | None = None
    names: list[str] = []
    for line in capture_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short when the run was killed
        if not isinstance(record, dict):
            continue
        names.append(str(record.get("name")))
        if record.get("name") == name:
            found = record
    return found, names


# the comparison -------------------------------------------------------------------------
def _outcome(
    version: ModelVersion,
    commit: str,
    run: _Run,
    captured: dict[str, Any] | None,
    names: list[str],
    tolerance: float,
    timeout_s: float,
) -> ReproductionOutcome:
    problems: list[str] = []
    if run.returncode is None:
        problems.append(f"timed out after {timeout_s:g} s")
    elif run.returncode != 0:
        problems.append(f"the command failed with exit code {run.returncode}")
    reproduced = _metrics_of(captured) if captured is not None else {}
    data_matched: bool | None = None
    if captured is not None:
        problems += _metric_problems(version.metrics, reproduced, tolerance)
        data_matched, data_problems = _data_problems(version.lineage, captured)
        problems += data_problems
    elif run.returncode == 0:
        problems.append(_nothing_logged(version.model_name, names))
    command = version.lineage.command or ""
    head = f"Re-ran {command} at commit {commit[:12]} in {run.duration_s:.1f} s"
    return ReproductionOutcome(
        matched=not problems,
        tolerance=tolerance,
        recorded=dict(version.metrics),
        reproduced=reproduced,
        data_fingerprints_matched=data_matched,
        detail=_detail(head, problems, run, len(version.metrics), tolerance, data_matched),
        command=command,
        commit=commit,
        duration_s=run.duration_s,
        returncode=run.returncode,
        log_tail=run.log_tail,
    )


def _metrics_of(captured: dict[str, Any]) -> dict[str, float]:
    metrics = captured.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    return {
        str(key): float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _metric_problems(
    recorded: Mapping[str, float], reproduced: Mapping[str, float], tolerance: float
) -> list[str]:
    problems: list[str] = []
    for key, old in sorted(recorded.items()):
        new = reproduced.get(key)
        if new is None:
            problems.append(f"{key} was not logged by the re-run")
        elif not abs(new - old) <= tolerance:  # written so that NaN counts as a difference
            problems.append(
                f"{key} recorded {old:.6g}, reproduced {new:.6g} "
                f"(differs by {abs(new - old):.3g}; tolerance {tolerance:g})"
            )
    return problems


def _data_problems(lineage: Lineage, captured: dict[str, Any]) -> tuple[bool | None, list[str]]:
    """Whether the re-run read the recorded data; None when no side had a pair to compare."""
    compared = 0
    problems: list[str] = []
    for kind in _DATA_KINDS:
        old = getattr(lineage, kind)
        new = captured.get(kind)
        if not old or not isinstance(new, str) or not new:
            continue
        compared += 1
        if new != old:
            label = kind.replace("_", " ")
            problems.append(f"{label} changed: recorded {old[:19]}…, the re-run read {new[:19]}…")
    return (None if compared == 0 else not problems), problems


def _nothing_logged(name: str, names: list[str]) -> str:
    if not names:
        return f"the command exited 0 but never called steward.log_model for '{name}'"
    logged = ", ".join(sorted(set(names)))
    return f"the command logged no model named '{name}' (it logged: {logged})"


def _detail(
    head: str,
    problems: list[str],
    run: _Run,
    metric_count: int,
    tolerance: float,
    data_matched: bool | None,
) -> str:
    if not problems:
        data = (
            "the data fingerprints matched" if data_matched else "no data fingerprints to compare"
        )
        return (
            f"{head}: all {metric_count} recorded metrics reproduced within {tolerance:g} "
            f"(absolute); {data}."
        )
    text = f"{head}: not reproduced: {'; '.join(problems)}."
    if run.returncode != 0 and run.log_tail:
        last = "\n".join(run.log_tail.splitlines()[-DETAIL_TAIL_LINES:])
        text += f"\nLast output:\n{last}"
    return text
