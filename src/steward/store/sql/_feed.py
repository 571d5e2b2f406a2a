"""The ledger as a feed: what servers follow to learn of deployment changes.

A follower keeps a cursor (an event's ``seq``) and asks for the followed events after it
(`read_feed`): a range scan of the events table's primary key over the events written since,
usually none. Because ``seq`` is given under the ledger lock, which is held until commit, the
committed events are always a gap-free prefix of the sequence: a follower that read up to
``seq`` N has missed nothing before N.

On PostgreSQL the write that records a followed event also sends ``pg_notify`` in its own
transaction, so the notification leaves at commit (and never for a rolled-back write), and a
`PgFeedListener` (``_pg_listen``) wakes the follower at once. SQLite has no such push: its
followers poll the cursor.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from steward.domain.deployments import FOLLOWED_EVENTS
from steward.domain.entities import Event
from steward.store.base import FeedItem, FeedPage
from steward.store.sql.tables import EventRow

# One channel for the whole database: a notification is only a hint to read the feed, so a
# replica that hears another schema's changes pays one empty read.
FEED_CHANNEL = "steward_feed"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_EVENTS: Any = EventRow.__table__
_TIP = select(func.max(_EVENTS.c.seq))  # the primary key's last entry: an index lookup


def ledger_tip(session: Session) -> int:
    """The seq of the newest committed event; 0 for an empty ledger."""
    return int(session.execute(_TIP).scalar() or 0)


def read_feed(session: Session, after_seq: int, kinds: Collection[str], limit: int) -> FeedPage:
    """The events of ``kinds`` after ``after_seq``, oldest first, and where to read next.

    The tip is read first and the items are bounded by it: on PostgreSQL each statement has
    its own snapshot, and an event committed between the two must land after the new cursor,
    not before it.
    """
    tip = ledger_tip(session)
    if not kinds or tip <= after_seq:
        return FeedPage(cursor=tip, items=[])
    query = (
        select(_EVENTS.c.seq, _EVENTS.c.kind, _EVENTS.c.subject_id)
        .where(_EVENTS.c.seq > after_seq, _EVENTS.c.seq <= tip, _EVENTS.c.kind.in_(list(kinds)))
        .order_by(_EVENTS.c.seq)
        .limit(limit)
    )
    items = [FeedItem(int(seq), kind, subject) for seq, kind, subject in session.execute(query)]
    cursor = items[-1].seq if len(items) == limit else tip
    return FeedPage(cursor=cursor, items=items)


def notify(session: Session, events: list[Event]) -> None:
    """On PostgreSQL, tell the listening servers that followed events commit with this
    transaction (`notification`)."""
    payload = notification(events)
    if payload is not None and session.connection().dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": FEED_CHANNEL, "payload": payload})


def notification(events: list[Event]) -> str | None:
    """What the feed's channel is sent for ``events``: the newest followed event's seq, or None
    when none is followed. Only followed events notify: a notification takes a database-wide
    lock at commit, which the ledger's other writers (runs, metrics) should not queue behind."""
    followed = [event.seq for event in events if event.kind in FOLLOWED_EVENTS]
    return str(max(followed)) if followed else None
