"""AuditService: `steward audit log` and `steward audit verify`."""

from __future__ import annotations

from datetime import datetime

from steward.domain.entities import Event, Page, VerifyReport
from steward.errors import InvalidInput
from steward.schemas.audit import MAX_SEQ
from steward.store.base import (
    EventFilter,
    MetadataStore,
    check_page_size,
    decode_page_token,
    encode_page_token,
)


class AuditService:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def list_events(
        self,
        *,
        kind: str | None = None,
        subject_type: str | None = None,
        subject_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[Event]:
        if after_seq is not None and not 0 <= after_seq <= MAX_SEQ:
            raise InvalidInput(
                f"after_seq must be a whole number between 0 and {MAX_SEQ}. Got {after_seq}.",
                field="after_seq",
            )
        flt = EventFilter(kind, subject_type, subject_id, actor, since, until, after_seq)
        offset = decode_page_token(page_token)
        with self.store.read() as rx:
            items = rx.list_events(
                flt, limit=check_page_size(limit) + 1, offset=offset, newest_first=newest_first
            )
        more = len(items) > limit
        token = encode_page_token(offset + limit) if more else None
        return Page(items=items[:limit], next_page_token=token)

    def verify(self) -> VerifyReport:
        with self.store.read() as rx:
            return rx.verify_ledger()
