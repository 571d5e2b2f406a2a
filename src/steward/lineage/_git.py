"""The state of the git checkout a training script runs from, read with the git CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# git answers these in milliseconds; a hung credential helper or network mount must not stall
# a training job.
_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class GitState:
    commit: str
    dirty: bool  # tracked files differ from the commit (untracked files do not count)
    branch: str | None  # None when HEAD is detached
    remote_url: str | None  # credentials stripped


def _git(cwd: Path, *args: str) -> str | None:
    """stdout of ``git args`` in ``cwd``, or None when git is missing, fails or hangs."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def strip_credentials(url: str) -> str:
    """Drop ``user:token@`` from http(s) remotes so lineage never stores a secret."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _remote_url(cwd: Path) -> str | None:
    url = _git(cwd, "config", "--get", "remote.origin.url")
    if not url:
        remotes = (_git(cwd, "remote") or "").split()
        url = _git(cwd, "config", "--get", f"remote.{remotes[0]}.url") if remotes else None
    return strip_credentials(url) if url else None


def git_state(path: str | Path = ".") -> GitState | None:
    """Commit, dirtiness, branch and remote of the repository holding ``path``.

    None outside a repository, in a repository without commits, or when git is not installed.
    """
    where = Path(path)
    cwd = where if where.is_dir() else where.parent
    if not cwd.is_dir():
        return None
    commit = _git(cwd, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    return GitState(
        commit=commit,
        dirty=bool(status),
        branch=branch if branch and branch != "HEAD" else None,
        remote_url=_remote_url(cwd),
    )
