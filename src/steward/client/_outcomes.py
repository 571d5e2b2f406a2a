"""``steward.log_outcome``: one outcome event from a script, on the default client."""

from __future__ import annotations

from datetime import datetime

from steward.client._client import Client
from steward.client._models import default_client
from steward.schemas.experiments import OutcomeReceipt


def log_outcome(
    name: str,
    value: float | bool,
    *,
    unit_id: str | None = None,
    request_id: str | None = None,
    timestamp: datetime | None = None,
    client: Client | None = None,
) -> OutcomeReceipt:
    """Log one event of outcome ``name`` (a purchase, a churn, a click) with its ``value``, for
    ``unit_id`` or ``request_id`` (exactly one), at ``timestamp`` (default now; naive = UTC).

    One call is one request and one small file in the outcome log: log many events at once
    with ``Client.log_outcomes`` (rows, a DataFrame, a Table or a .parquet/.csv file).
    """
    return (client or default_client()).log_outcome(
        name, value, unit_id=unit_id, request_id=request_id, timestamp=timestamp
    )
