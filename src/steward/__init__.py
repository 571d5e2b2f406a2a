"""Steward: the control plane for production machine learning.

``import steward`` stays cheap (the SDK goes into training scripts): the public names below are
imported on first use, so numpy, SQLAlchemy and the server load only when something needs them.
"""

from __future__ import annotations

from steward._version import __version__

_LAZY = {
    "Client": "steward.client",
    "log_labels": "steward.client",
    "log_model": "steward.client",
    "log_outcome": "steward.client",
    "load_model": "steward.client",
    "start_run": "steward.client",
    "register_model": "steward.client",
}

# Not `typing.TYPE_CHECKING`: importing typing alone would double this module's import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from steward.client import (
        Client,
        load_model,
        log_labels,
        log_model,
        log_outcome,
        register_model,
        start_run,
    )

__all__ = [
    "Client",
    "__version__",
    "load_model",
    "log_labels",
    "log_model",
    "log_outcome",
    "register_model",
    "start_run",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steward' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
