"""Alerts leave Steward here: a Slack-compatible webhook today.

Below the capabilities (serving rolls a canary back and says so; monitoring will report its
breached rules the same way) and above nothing but the standard library: a sender is built
from settings at the edge and passed in.
"""

from steward.alerts.webhook import WebhookAlerts

__all__ = ["WebhookAlerts"]
