"""``steward.log_labels``: ground truth from a script, on the default client."""

from __future__ import annotations

from steward.client._client import Client
from steward.client._models import default_client
from steward.schemas.labels import LabelReceipt


def log_labels(deployment: str, labels: object, *, client: Client | None = None) -> LabelReceipt:
    """Log labels for ``deployment``'s predictions (see ``Client.log_labels``): a mapping of
    request id to label, a list of ``{"request_id", "label", "row"?}``, a DataFrame, a pyarrow
    Table or a .parquet/.csv path with columns ``request_id``, ``label`` and optionally
    ``row``."""
    return (client or default_client()).log_labels(deployment, labels)
