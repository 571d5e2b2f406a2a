"""The webhook sender alone: retries, backoff, refusals, and never raising, on a stub POST."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from steward.alerts import WebhookAlerts
from steward.alerts.webhook import check_webhook_url
from steward.errors import InvalidInput

URL = "https://hooks.example.com/services/T0/B0/token"


class StubPost:
    """Answers each POST with the next outcome: a status, or an exception to raise."""

    def __init__(self, *outcomes: int | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, dict[str, Any], float]] = []

    def __call__(self, url: str, body: bytes, timeout_s: float) -> int:
        self.calls.append((url, json.loads(body), timeout_s))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _sender(post: StubPost, **options: Any) -> WebhookAlerts:
    return WebhookAlerts(URL, backoff_s=0.001, post=post, **options)


def test_a_5xx_is_retried_until_it_is_delivered() -> None:
    post = StubPost(503, OSError("connection reset"), 200)
    alerts = _sender(post, timeout_s=2.5)
    assert alerts.send("canary rolled back", channel="#ml").result(timeout=5) is True
    assert [c[1] for c in post.calls] == [{"text": "canary rolled back", "channel": "#ml"}] * 3
    assert {(c[0], c[2]) for c in post.calls} == {(URL, 2.5)}
    assert (alerts.sent, alerts.failed) == (1, 0)
    alerts.close()


@pytest.mark.parametrize(("outcome", "tries"), [(500, 4), (429, 4), (404, 1), (400, 1)])
def test_gives_up_after_the_attempts_or_a_refusal(
    outcome: int, tries: int, caplog: pytest.LogCaptureFixture
) -> None:
    post = StubPost(outcome)
    alerts = _sender(post)
    assert alerts.send("x").result(timeout=5) is False
    assert len(post.calls) == tries
    assert (alerts.sent, alerts.failed) == (0, 1)
    assert "hooks.example.com" in caplog.text
    assert "token" not in caplog.text  # the URL's path is a secret
    alerts.close()


def test_backoff_doubles() -> None:
    post = StubPost(OSError("down"))
    alerts = WebhookAlerts(URL, attempts=3, backoff_s=0.05, post=post)
    started = time.perf_counter()
    assert alerts.send("x").result(timeout=5) is False
    assert time.perf_counter() - started >= 0.05 + 0.1
    alerts.close()


def test_send_returns_at_once_and_never_raises_even_when_closed() -> None:
    post = StubPost(OSError("down"))
    alerts = WebhookAlerts(URL, attempts=2, backoff_s=0.2, post=post)
    started = time.perf_counter()
    pending = alerts.send("slow to fail")
    assert time.perf_counter() - started < 0.1  # the retries run in the sender's thread
    alerts.close(timeout_s=5)
    assert pending.result(timeout=5) is False
    assert alerts.send("after close").result(timeout=1) is False
    assert alerts.failed == 2


@pytest.mark.parametrize("url", ["", None])
def test_no_url_no_sender(url: str | None) -> None:
    assert WebhookAlerts.from_url(url) is None


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "hooks.example.com/x", "https://"])
def test_a_bad_url_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(InvalidInput, match="http") as refused:
        WebhookAlerts.from_url(url)
    assert refused.value.field == "alert_webhook"
    assert check_webhook_url(URL) == URL
