"""start_run: a context manager that buffers metrics and flushes them in batches.

Each flush is one round trip and one ledger event, however many points it carries; a training
loop logging every step pays for the network once per ``flush_every`` points.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steward.client._client import Client
from steward.client._models import default_client, log_model
from steward.domain.entities import ModelVersion, Run
from steward.domain.enums import RunStatus


class ActiveRun:
    def __init__(self, client: Client, run: Run, *, flush_every: int, flush_seconds: float) -> None:
        self.client = client
        self.run = run
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    @property
    def id(self) -> str:
        return self.run.id

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self._buffer.append({
            "key": key, "value": value, "step": step, "timestamp": datetime.now(UTC),
        })  # fmt: skip
        if (
            len(self._buffer) >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.client.log_params(self.run.id, params)

    def log_artifact(self, path: str, data: bytes | str | Path) -> None:
        self.client.log_artifact(self.run.id, path, data)

    def log_model(self, model: object, name: str, **kwargs: Any) -> ModelVersion:
        """``steward.log_model`` with this run linked as the version's source."""
        self.flush()
        return log_model(model, name, run_id=self.run.id, client=self.client, **kwargs)

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.client.log_batch(self.run.id, batch)
        self._last_flush = time.monotonic()

    def end(self, status: RunStatus = RunStatus.FINISHED) -> Run:
        self.flush()
        self.run = self.client.end_run(self.run.id, status)
        return self.run

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.end(RunStatus.FINISHED if exc_type is None else RunStatus.FAILED)


def start_run(
    name: str | None = None,
    *,
    project: str = "default",
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    flush_every: int = 1000,
    flush_seconds: float = 5.0,
    client: Client | None = None,
) -> ActiveRun:
    """Start a training run: ``with steward.start_run("baseline") as run: run.log_metric(...)``."""
    client = client or default_client()
    run = client.create_run(name, project=project, params=params, tags=tags)
    return ActiveRun(client, run, flush_every=flush_every, flush_seconds=flush_seconds)
