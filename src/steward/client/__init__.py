"""The SDK: the same interface in-process (embedded store) or over HTTP (``STEWARD_URL``)."""

from steward.client._client import Client
from steward.client._labels import log_labels
from steward.client._models import default_client, load_model, log_model, register_model
from steward.client._outcomes import log_outcome
from steward.client._runs import ActiveRun, start_run

__all__ = [
    "ActiveRun",
    "Client",
    "default_client",
    "load_model",
    "log_labels",
    "log_model",
    "log_outcome",
    "register_model",
    "start_run",
]
