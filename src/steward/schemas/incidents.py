"""Wire models of alerts and incidents: request bodies, list filters, and the read-only views
(a timeline entry, a mitigation's outcome) that are not stored entities."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from steward.domain.deployments import Deployment
from steward.domain.incidents import Incident, IncidentState, MitigationAction
from steward.domain.monitoring import AlertState
from steward.schemas import RequestBody

# A note is a paragraph or two, a postmortem section a few pages; longer text belongs in a
# linked document. The service checks the same bounds, so the SDK in-process and the API agree.
MAX_NOTE_CHARS = 10_000
MAX_REASON_CHARS = 5_000
MAX_SECTION_CHARS = 50_000
MAX_LIST = 1_000


class IncidentNote(RequestBody):
    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class MitigationCreate(RequestBody):
    """``deployment``: which of the model's deployments to act on (default: where the
    incident's first alert fired)."""

    action: MitigationAction
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    deployment: str | None = Field(default=None, min_length=1, max_length=128)


class Resolution(RequestBody):
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class PostmortemUpdate(RequestBody):
    """Sections to write, by name (see ``POSTMORTEM_SECTIONS``); an empty text clears one.

    Unknown names are refused by the service, so the API and the SDK name them alike."""

    sections: dict[str, str] = Field(min_length=1)


class AlertQuery(BaseModel):
    """Filters of ``steward alerts`` / ``GET /api/v1/alerts``, newest first."""

    model_config = ConfigDict(extra="forbid")

    deployment: str | None = Field(default=None, min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    state: AlertState | None = None
    incident: int | None = Field(default=None, ge=1)
    limit: int = Field(default=100, ge=1, le=MAX_LIST)


class IncidentQuery(BaseModel):
    """Filters of ``steward incident list`` / ``GET /api/v1/incidents``, newest first."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=128)
    state: IncidentState | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIST)


class TimelineEntry(BaseModel):
    """One ledger event of an incident's story, with a line a person reads."""

    seq: int  # the event's place in the ledger: ``steward audit log`` shows it in full
    at: datetime
    kind: str
    actor: str
    subject: str  # "incident:7", "alert:…", "deployment:churn-prod", "model:churn"
    summary: str


class MitigationResult(BaseModel):
    """What a mitigation did: the incident afterwards and the deployment it changed."""

    incident: Incident
    deployment: Deployment
    action: MitigationAction
    revision_before: int
