"""Following the ledger: how a serving replica learns that a deployment changed.

A `LedgerFollower` keeps a cursor on the ledger (the ``seq`` of the last event it read) and
reads the followed events after it (`ReadSession.read_feed`: one indexed read, empty unless
something changed) every ``poll_seconds``, or at once when the store pushes a notification
(PostgreSQL LISTEN/NOTIFY). It hands what it read to ``react`` and moves the cursor only once
``react`` returned, so a change whose refresh failed is read again on the next tick.

A notification is a hint, never the record: it only wakes the loop, which reads the ledger.
A lost notification, or a listening connection that dropped, delays a change until the next
poll, no more. The listener reconnects with exponential backoff; after each (re)connection the
loop reads the feed once, since changes may have committed while nobody listened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from steward.domain.deployments import DEPLOYMENT_EVENTS, FOLLOWED_EVENTS, VERSION_STATUS_EVENT
from steward.domain.uri import parse_model_uri
from steward.errors import InvalidInput
from steward.store.base import FeedListener, FeedPage, MetadataStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedChanges:
    """What the followed events after the cursor touched."""

    deployments: frozenset[str] = frozenset()  # deployments created, changed or rolled back
    models: frozenset[str] = frozenset()  # models one of whose versions changed status
    # The ledger is behind the cursor (a database restored from a backup): re-read it all.
    reset: bool = False

    @classmethod
    def of(cls, page: FeedPage, cursor: int) -> FeedChanges:
        deployments = frozenset(i.subject_id for i in page.items if i.kind in DEPLOYMENT_EVENTS)
        versions = (i.subject_id for i in page.items if i.kind == VERSION_STATUS_EVENT)
        models = frozenset(name for uri in versions if (name := _model_of(uri)) is not None)
        return cls(deployments, models, reset=page.cursor < cursor)


def _model_of(uri: str) -> str | None:
    """The model a version's event is about; None for a subject that is not a version's URI
    (never written so, but one bad event must not wedge the follower on its cursor)."""
    try:
        return parse_model_uri(uri).name
    except InvalidInput:
        return None


React = Callable[[FeedChanges], Awaitable[None]]


class LedgerFollower:
    """Reads the feed after its cursor on each tick and hands the changes to ``react``."""

    def __init__(
        self,
        store: MetadataStore,
        react: React,
        *,
        cursor: int,
        poll_seconds: float,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.store = store
        self.react = react
        self.cursor = cursor
        self.poll_seconds = poll_seconds
        self.backoff = backoff  # the listener's first and longest wait before reconnecting
        self.listener: FeedListener | None = None
        self.listening = False  # a notification would wake the loop now
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Follow until cancelled; a failed read or refresh is logged and retried next tick."""
        self.listener = self.store.feed_listener()
        listen = None if self.listener is None else asyncio.create_task(self._listen())
        try:
            while True:
                await self._sleep()
                try:
                    await self.check()
                except Exception:
                    logger.exception("following the ledger failed; retrying")
        finally:
            if listen is not None:
                listen.cancel()
                await asyncio.gather(listen, return_exceptions=True)

    async def check(self) -> None:
        """Read the feed after the cursor, react, then move the cursor."""
        loop = asyncio.get_running_loop()
        page = await loop.run_in_executor(None, self._read, self.cursor)
        await self.react(FeedChanges.of(page, self.cursor))
        self.cursor = page.cursor

    def _read(self, cursor: int) -> FeedPage:
        with self.store.read() as rx:
            return rx.read_feed(cursor, FOLLOWED_EVENTS)

    async def _sleep(self) -> None:
        """Until the poll interval passed or a notification arrived, whichever is first."""
        try:
            async with asyncio.timeout(self.poll_seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        # Cleared before the read, so a notification arriving during it wakes the next tick.
        self._wake.clear()

    async def _listen(self) -> None:
        """Wake the loop on each notification; reconnect with backoff when the connection
        fails (the poll keeps following meanwhile)."""
        listener = self.listener
        if listener is None:
            return
        failures = 0
        while True:
            try:
                await listener.connect()
                self.listening, failures = True, 0
                self._wake.set()  # changes may have committed while nobody listened
                while True:
                    await listener.wait()
                    self._wake.set()
            except Exception as error:
                delay = min(self.backoff[0] * 2**failures, self.backoff[1])
                failures += 1
                logger.warning(
                    "listening for deployment changes failed (%s); polling every %g s, "
                    "reconnecting in %g s", error, self.poll_seconds, delay,
                )  # fmt: skip
            finally:
                self.listening = False
                await listener.close()
            await asyncio.sleep(delay)
