"""Release gates: evaluation of versions, policies as code, checks, approvals and the lifecycle.

Pure logic lives here (policy parsing, the checks, the report); the service that gathers a
:class:`~steward.domain.gates.GateContext` from the store and keeps the reports builds on it.
"""

from steward.gates.checks import (
    ENTRY_POINT_GROUP,
    BaseCheck,
    Check,
    CheckParams,
    Finding,
    Unmet,
    available_checks,
)
from steward.gates.policy import (
    CheckSpec,
    Policy,
    default_policy_text,
    parse_policy,
    policy_digest,
)
from steward.gates.report import build_report, render_html, run_policy, verdict_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseCheck",
    "Check",
    "CheckParams",
    "CheckSpec",
    "Finding",
    "Policy",
    "Unmet",
    "available_checks",
    "build_report",
    "default_policy_text",
    "parse_policy",
    "policy_digest",
    "render_html",
    "run_policy",
    "verdict_of",
]
