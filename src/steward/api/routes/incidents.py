"""Alerts and incidents: list alerts; list, read, note, mitigate and resolve incidents; their
timeline and postmortem.

Roles: reading needs viewer; notes, mitigations, resolutions and postmortem sections need
developer, as ``steward rollback`` does (a mitigation is the way back the deployment promised).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import TypeAdapter

from steward.api.deps import Developer, ServicesDep, Viewer
from steward.api.render import json_list_response, json_response
from steward.api.routing import JsonRoute
from steward.domain.incidents import Incident
from steward.domain.monitoring import Alert
from steward.schemas.incidents import (
    AlertQuery,
    IncidentNote,
    IncidentQuery,
    MitigationCreate,
    MitigationResult,
    PostmortemUpdate,
    Resolution,
    TimelineEntry,
)

router = APIRouter(tags=["incidents"], route_class=JsonRoute)

IncidentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The incident's number")]
_INCIDENT = "/incidents/{incident_id}"
_ALERTS = TypeAdapter(list[Alert])
_INCIDENTS = TypeAdapter(list[Incident])
_TIMELINE = TypeAdapter(list[TimelineEntry])


@router.get("/alerts", response_model=list[Alert])
def list_alerts(
    services: ServicesDep, _: Viewer, query: Annotated[AlertQuery, Query()]
) -> Response:
    """Alerts, latest fired first."""
    found = services.incidents.alerts(
        deployment=query.deployment, model=query.model, state=query.state,
        incident=query.incident, limit=query.limit,
    )  # fmt: skip
    return json_list_response(_ALERTS, found)


@router.get("/incidents", response_model=list[Incident])
def list_incidents(
    services: ServicesDep, _: Viewer, query: Annotated[IncidentQuery, Query()]
) -> Response:
    """Incidents, newest first."""
    found = services.incidents.list(model=query.model, state=query.state, limit=query.limit)
    return json_list_response(_INCIDENTS, found)


@router.get(_INCIDENT, response_model=Incident)
def get_incident(incident_id: IncidentId, services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.incidents.show(incident_id))


@router.get(f"{_INCIDENT}/timeline", response_model=list[TimelineEntry])
def timeline(incident_id: IncidentId, services: ServicesDep, _: Viewer) -> Response:
    """The incident's alerts, notes, mitigations and the model's deployment changes from a
    day before it opened, oldest first: read from the ledger."""
    return json_list_response(_TIMELINE, services.incidents.timeline(incident_id))


@router.post(f"{_INCIDENT}/notes", response_model=Incident)
def note(
    incident_id: IncidentId, body: IncidentNote, services: ServicesDep, who: Developer
) -> Response:
    return json_response(services.incidents.note(who.name, incident_id, body.text))


@router.post(f"{_INCIDENT}/mitigate", response_model=MitigationResult)
def mitigate(
    incident_id: IncidentId, body: MitigationCreate, services: ServicesDep, who: Developer
) -> Response:
    """Roll back, disable the canary, or serve the fallback, on the incident's deployment."""
    result = services.incidents.mitigate(
        who.name, incident_id, body.action, body.reason, deployment=body.deployment
    )
    return json_response(result)


@router.post(f"{_INCIDENT}/resolve", response_model=Incident)
def resolve(
    incident_id: IncidentId, body: Resolution, services: ServicesDep, who: Developer
) -> Response:
    return json_response(services.incidents.resolve(who.name, incident_id, body.reason))


@router.put(f"{_INCIDENT}/postmortem", response_model=Incident)
def set_postmortem(
    incident_id: IncidentId, body: PostmortemUpdate, services: ServicesDep, who: Developer
) -> Response:
    """Write postmortem sections (summary, impact, root_cause_data, root_cause_model,
    root_cause_infrastructure, actions); the others are kept, an empty text clears one."""
    return json_response(services.incidents.set_postmortem(who.name, incident_id, body.sections))


@router.get(
    f"{_INCIDENT}/postmortem",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "The postmortem"}},
)
def postmortem(incident_id: IncidentId, services: ServicesDep, _: Viewer) -> Response:
    """The postmortem in Markdown: metadata and durations, the sections, alerts, timeline."""
    text = services.incidents.postmortem(incident_id)
    return Response(text, media_type="text/markdown; charset=utf-8")
