"""The model version lifecycle as a state machine: which moves exist and who may ask for them.

registered -> validated (a gate passed, approvals may be pending) -> approved (gate passed with
its approvals) -> staging -> production -> deprecated (kept loadable: the rollback target) ->
archived. A gate that fails on new evidence moves a validated, approved or staging version back
to registered. The store applies these rules inside the transaction that changes the status, so
no adapter can skip them.
"""

from __future__ import annotations

from steward.domain.enums import VersionStatus as S
from steward.errors import Conflict, GateFailed

# Moves a person asks for with `steward promote` (the gate's own moves are below).
REQUESTED: dict[S, frozenset[S]] = {
    S.REGISTERED: frozenset({S.DEPRECATED, S.ARCHIVED}),
    S.VALIDATED: frozenset({S.DEPRECATED, S.ARCHIVED}),
    S.APPROVED: frozenset({S.STAGING, S.PRODUCTION, S.DEPRECATED, S.ARCHIVED}),
    S.STAGING: frozenset({S.PRODUCTION, S.DEPRECATED, S.ARCHIVED}),
    # production leaves only when another version replaces it, or by deprecation
    S.PRODUCTION: frozenset({S.DEPRECATED}),
    # a deprecated version can take traffic back (rollback) on the gate report it passed
    S.DEPRECATED: frozenset({S.PRODUCTION, S.ARCHIVED}),
    S.ARCHIVED: frozenset(),
}

# States a gate run may move a version out of; production and later are history, not evidence.
GATED = frozenset({S.REGISTERED, S.VALIDATED, S.APPROVED, S.STAGING})


def check_requested_move(current: S, target: S, *, uri: str) -> None:
    """Raise Conflict, naming the allowed moves, when ``current -> target`` is not one."""
    if target in REQUESTED[current]:
        return
    if current in (S.REGISTERED, S.VALIDATED) and target in (S.STAGING, S.PRODUCTION):
        # Not a mistake about the state machine: the release standard is not met yet.
        raise GateFailed(
            f"{uri} is {current.value}: it needs a passed gate and its approvals before "
            f"{target.value}. Run `steward gate {uri}` and collect the approvals it asks for.",
            details={"field": "to", "status": current.value, "target": target.value},
        )
    allowed = ", ".join(sorted(REQUESTED[current])) or "none (archived is final)"
    raise Conflict(
        f"{uri} is {current.value}; it cannot move to {target.value}. Allowed from "
        f"{current.value}: {allowed}.",
        details={"field": "to", "status": current.value, "target": target.value},
    )


def status_after_gate(current: S, *, passed: bool, approvals_pending: bool) -> S:
    """Where a gate run leaves a version in one of the GATED states."""
    if current not in GATED:
        return current
    if not passed:
        return S.REGISTERED
    if approvals_pending:
        return S.VALIDATED
    # a passed gate keeps a staged version staged; otherwise the version is approved
    return S.STAGING if current is S.STAGING else S.APPROVED
