"""The interpreter, platform, installed packages and command line of a training run."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import re
import shlex
import sys
from typing import TypedDict


class Environment(TypedDict):
    python: str
    implementation: str
    platform: str
    packages: dict[str, str]


def normalize_name(name: str) -> str:
    """PEP 503 normalization: ``Scikit_Learn`` and ``scikit-learn`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages() -> dict[str, str]:
    """Installed distributions and their versions (a fresh copy: callers may change it)."""
    return dict(_scan_installed_packages())


# Reading every distribution's metadata costs ~1 s in a large environment; a training process
# does not install packages between two log_model calls, so the scan is done once per process.
@functools.cache
def _scan_installed_packages() -> tuple[tuple[str, str], ...]:
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue  # a broken install without metadata
        # The first distribution found wins: it is the one sys.path imports.
        packages.setdefault(normalize_name(name), dist.version)
    return tuple(sorted(packages.items()))


def environment() -> Environment:
    return Environment(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        packages=installed_packages(),
    )


_SECRET_OPTION = re.compile(r"^--?[\w-]*(password|passwd|secret|token|api[-_]?key)[\w-]*$", re.I)


def redact_argv(argv: list[str]) -> list[str]:
    """Mask values of options that look like secrets (``--api-key=...``, ``--token X``)."""
    redacted: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            redacted.append("***")
            mask_next = False
            continue
        option, sep, _ = arg.partition("=")
        if _SECRET_OPTION.match(option):
            redacted.append(f"{option}=***" if sep else arg)
            mask_next = not sep
            continue
        redacted.append(arg)
    return redacted


def command_line() -> str:
    """The interpreter and sys.argv, shell-quoted, with secret-looking option values masked."""
    return shlex.join([sys.executable, *redact_argv(list(sys.argv))])
