"""A Slack-compatible incoming webhook: ``POST {"text": ...}`` as JSON, off the caller's thread.

``WebhookAlerts(url).send(text)`` returns at once: the POST runs in the sender's own thread,
retried on a network error, a timeout, a 5xx, 408 or 429 with exponential backoff
(``backoff_s``, doubling), at most ``attempts`` times. A failure is logged, never raised: an
alert that cannot be delivered must not fail the work that raised it. The URL is a secret
(Slack's carries the token), so logs name its host only.

The standard library's urllib, in a thread: httpx is only a development dependency, and one
POST per alert needs no connection pool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from steward.errors import InvalidInput

logger = logging.getLogger(__name__)

MAX_PENDING = 100  # alerts waiting to be sent; past it new ones are dropped (and logged)
_RETRY_STATUSES = frozenset({408, 429})

# (url, body, timeout_s) -> HTTP status; raises OSError (URLError, timeouts) when no answer
Post = Callable[[str, bytes, float], int]


def urllib_post(url: str, body: bytes, timeout_s: float) -> int:
    """POST ``body`` as JSON; the status (an HTTP error status is returned, not raised)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class WebhookAlerts:
    """Sends alerts to one webhook URL from a background thread; see the module."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        post: Post = urllib_post,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._post = post
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[bool]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.sent = 0  # alerts delivered (for metrics and tests)
        self.failed = 0  # alerts given up on, or dropped

    @classmethod
    def from_url(cls, url: str | None, **options: Any) -> WebhookAlerts | None:
        """A sender for ``url`` (checked: http or https), or None without one."""
        if not url:
            return None
        check_webhook_url(url)
        return cls(url, **options)

    @property
    def where(self) -> str:
        """The URL's host, safe to log."""
        return urlsplit(self.url).netloc or "?"

    def send(self, text: str, **fields: Any) -> Future[bool]:
        """Queue ``{"text": text, **fields}``; the future says whether it was delivered."""
        body = json.dumps({"text": text, **fields}).encode()
        with self._lock:
            if self._closed or len(self._pending) >= MAX_PENDING:
                self.failed += 1
                why = "closed" if self._closed else f"{MAX_PENDING} already waiting"
                logger.error("alert to %s dropped (%s): %s", self.where, why, text)
                dropped: Future[bool] = Future()
                dropped.set_result(False)
                return dropped
            if self._executor is None:  # made on first use: most servers never alert
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="steward-alerts")
            future = self._executor.submit(self._deliver, body)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for the alerts in flight, then stop the thread."""
        with self._lock:
            self._closed = True
            pending, executor = set(self._pending), self._executor
        if pending:
            wait(pending, timeout=timeout_s)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _forget(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(self, body: bytes) -> bool:
        reason, attempt = "no attempt", 0
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                status = self._post(self.url, body, self.timeout_s)
            except Exception as error:  # URLError, timeout, reset: worth another try
                reason = f"{type(error).__name__}: {error}"
                continue
            if 200 <= status < 300:
                self.sent += 1
                return True
            reason = f"HTTP {status}"
            if status < 500 and status not in _RETRY_STATUSES:
                break  # the hook refuses this alert; sending it again will not change that
        self.failed += 1
        logger.error(
            "alert not delivered to the webhook at %s after %d attempt(s): %s",
            self.where, attempt + 1, reason,
        )  # fmt: skip
        return False


def check_webhook_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; InvalidInput naming the setting else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # the rest of the URL may hold the hook's token: name the scheme and host only
        raise InvalidInput(
            "The alert webhook must be an http(s) URL with a host, e.g. "
            f"https://hooks.slack.com/services/...; got scheme {parts.scheme or 'none'!r}, "
            f"host {parts.netloc or 'none'!r}.",
            field="alert_webhook",
        )
    return url
