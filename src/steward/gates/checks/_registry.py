"""Which checks exist: the built-ins plus those installed under the ``steward.checks`` group.

A check installed by a package but broken (does not import, does not satisfy the interface,
or takes a built-in's name) stops with an error naming the entry point: a gate that silently
skipped a check the policy asks for would pass releases it should not.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from steward.errors import StewardError
from steward.gates.checks._base import Check
from steward.gates.checks._fairness import Fairness
from steward.gates.checks._metrics import (
    Calibration,
    Latency,
    MetricCeiling,
    MetricFloor,
    NoRegression,
)
from steward.gates.checks._process import Approvals, RollbackReady
from steward.gates.checks._records import (
    Documentation,
    LineageComplete,
    MonitoringConfigured,
    Reproducibility,
)

ENTRY_POINT_GROUP = "steward.checks"


def builtin_checks() -> dict[str, Check]:
    checks: list[Check] = [
        MetricFloor(),
        MetricCeiling(),
        NoRegression(),
        Fairness(),
        Calibration(),
        Latency(),
        Documentation(),
        LineageComplete(),
        Reproducibility(),
        MonitoringConfigured(),
        RollbackReady(),
        Approvals(),
    ]
    return {check.name: check for check in checks}


def available_checks() -> dict[str, Check]:
    """The built-in checks, then every installed one, by name."""
    checks = builtin_checks()
    builtin = set(checks)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        check = load_check(entry_point)
        if entry_point.name in builtin:
            raise _plugin_error(entry_point, "takes the name of a built-in check; rename it")
        if entry_point.name in checks:
            raise _plugin_error(entry_point, "is installed twice, by two packages")
        checks[entry_point.name] = check
    return checks


def load_check(entry_point: EntryPoint) -> Check:
    """The check an entry point names: a check object, or a class built with no arguments."""
    try:
        loaded: Any = entry_point.load()
        check = loaded() if isinstance(loaded, type) else loaded
    except Exception as error:  # any import-time failure of third-party code
        raise _plugin_error(
            entry_point, f"failed to load: {type(error).__name__}: {error}"
        ) from error
    problem = interface_problem(check, entry_point.name)
    if problem:
        raise _plugin_error(entry_point, f"does not satisfy the check interface: {problem}")
    return check  # type: ignore[no-any-return]  # interface_problem checked its shape


def interface_problem(check: object, name: str) -> str | None:
    """What is wrong with ``check`` as a check registered as ``name``; None if nothing."""
    own_name = getattr(check, "name", None)
    if own_name != name:
        return f"its name is {own_name!r}, not the entry point's name {name!r}"
    params = getattr(check, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return "Params must be a pydantic model class"
    if params.model_config.get("extra") != "forbid":
        # otherwise a misspelt parameter would be accepted and ignored
        return "Params must forbid unknown keys (subclass steward.gates.checks.CheckParams)"
    for method in ("title", "run"):
        if not callable(getattr(check, method, None)):
            return f"it has no {method}() method"
    return None


def _plugin_error(entry_point: EntryPoint, problem: str) -> StewardError:
    return StewardError(
        f"check entry point {entry_point.name!r} ({entry_point.value}, group "
        f"{ENTRY_POINT_GROUP}) {problem}",
        details={"entry_point": entry_point.name, "value": entry_point.value},
    )
