"""The ledger: list events, verify the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from steward.api.deps import ServicesDep, Viewer
from steward.api.render import json_response
from steward.domain.entities import Event, Page, VerifyReport

router = APIRouter(tags=["audit"])


@router.get("/events", response_model=Page[Event])
def list_events(
    services: ServicesDep,
    _: Viewer,
    kind: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    newest_first: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    page_token: str | None = None,
) -> Response:
    return json_response(services.audit.list_events(
        kind=kind, subject_type=subject_type, subject_id=subject_id, actor=actor,
        since=since, until=until, after_seq=after_seq, newest_first=newest_first,
        limit=limit, page_token=page_token,
    ))  # fmt: skip


@router.get("/audit/verify", response_model=VerifyReport)
def verify(services: ServicesDep, _: Viewer) -> Response:
    return json_response(services.audit.verify())
