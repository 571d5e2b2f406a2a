"""The ledger query, shared by the route's query string and the SDK's backends."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_SEQ = 2**63 - 1  # event numbers are 64-bit integer columns


class EventQuery(BaseModel):
    """Filters and paging of `steward audit log` / `GET /api/v1/events`."""

    model_config = ConfigDict(extra="forbid")

    kind: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    actor: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    after_seq: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    newest_first: bool = False
    limit: int = Field(default=100, ge=1, le=10_000)
    page_token: str | None = None
