"""Incidents: what an alert opens, what people mitigate and resolve, what a postmortem tells.

Pure data and the state machine. An incident belongs to a model (its owner is the model's
owner); alerts on any of the model's deployments join the model's open incident instead of
opening another. Its timeline is not stored here: it is read from the ledger (alerts, deploys,
rollbacks, notes), so it cannot disagree with what happened.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from steward.domain.entities import Entity
from steward.domain.monitoring import Severity
from steward.errors import Conflict


class IncidentState(StrEnum):
    OPEN = "open"  # something is wrong and nobody has stopped the harm yet
    MITIGATED = "mitigated"  # the harm is stopped (rollback, fallback, canary off)
    RESOLVED = "resolved"  # the cause is understood and dealt with; closed

    @property
    def active(self) -> bool:
        return self is not IncidentState.RESOLVED


# Moves a person (or a mitigation) may make; a resolved incident is closed for good: a new
# alert opens a new incident that can point back at it.
_MOVES: dict[IncidentState, frozenset[IncidentState]] = {
    IncidentState.OPEN: frozenset({IncidentState.MITIGATED, IncidentState.RESOLVED}),
    IncidentState.MITIGATED: frozenset({IncidentState.OPEN, IncidentState.RESOLVED}),
    IncidentState.RESOLVED: frozenset(),
}


def check_move(incident_id: int, current: IncidentState, target: IncidentState) -> None:
    if target not in _MOVES[current]:
        raise Conflict(
            f"Incident {incident_id} is {current.value}; it cannot become {target.value}."
            + (
                " A resolved incident stays closed: a new alert opens a new one."
                if current is IncidentState.RESOLVED
                else ""
            ),
            details={"field": "state", "state": current.value, "target": target.value},
        )


class MitigationAction(StrEnum):
    """What ``steward incident mitigate`` can do, each through the deployment service."""

    ROLLBACK = "rollback"  # champion back to the previous production version, canary off
    DISABLE_CANARY = "disable-canary"  # the canary's share goes back to the champion
    FALLBACK = "fallback"  # serve the deployment's fallback (rule / default) instead


POSTMORTEM_SECTIONS = (
    "summary",
    "impact",
    "root_cause_data",
    "root_cause_model",
    "root_cause_infrastructure",
    "actions",
)


class Incident(Entity):
    id: int
    model_name: str
    deployment: str | None  # where the first alert fired
    title: str
    state: IncidentState
    severity: Severity
    owner: str
    opened_at: datetime
    opened_by: str
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime
    # the owner's text for the postmortem's sections, by name (POSTMORTEM_SECTIONS)
    postmortem: dict[str, str] = Field(default_factory=dict)
