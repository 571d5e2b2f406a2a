"""Release checks: the interface, the built-ins and the registry of installed ones.

Write a custom check by subclassing :class:`BaseCheck` with a :class:`CheckParams` model, and
register it under the ``steward.checks`` entry point group (see docs/policies.md).
"""

from steward.gates.checks._base import (
    BaseCheck,
    Check,
    CheckParams,
    Finding,
    NoParams,
    Unmet,
    passed_if,
)
from steward.gates.checks._registry import (
    ENTRY_POINT_GROUP,
    available_checks,
    builtin_checks,
    interface_problem,
    load_check,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseCheck",
    "Check",
    "CheckParams",
    "Finding",
    "NoParams",
    "Unmet",
    "available_checks",
    "builtin_checks",
    "interface_problem",
    "load_check",
    "passed_if",
]
