"""Copy one MLflow run (params, tags, every metric point, status) into a Steward run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from steward.client import Client
from steward.domain.enums import RunStatus

BATCH_POINTS = 5_000
MAX_TAG_VALUE = 5_000
# MLflow bookkeeping too large or too internal to be worth a Steward tag.
_DROPPED_TAGS = frozenset({"mlflow.log-model.history"})
_STATUSES = {
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}


@dataclass
class CopiedRun:
    run_id: str
    points: int
    warnings: list[str]


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags Steward accepts: keys of 1-256 characters, values cut to 5,000 characters."""
    return {
        str(k): str(v)[:MAX_TAG_VALUE]
        for k, v in tags.items()
        if k and len(str(k)) <= 256 and k not in _DROPPED_TAGS
    }


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def copy_run(client: Client, ml: Any, run: Any, experiment_name: str) -> CopiedRun:
    """Create the Steward run for MLflow ``run``: params, tags, every metric point, status."""
    run_id = run.info.run_id
    tags = clean_tags(run.data.tags)
    tags.update({"mlflow.run_id": run_id, "mlflow.experiment_id": str(run.info.experiment_id)})
    created = client.create_run(
        run.info.run_name, project=experiment_name or "default",
        params=dict(run.data.params), tags=tags,
    )  # fmt: skip
    points, dropped = _copy_metrics(client, ml, run_id, created.id, sorted(run.data.metrics))
    warnings = []
    if dropped:
        warnings.append(
            f"MLflow run {run_id}: {dropped} metric point(s) with a NaN/infinite value or a "
            "negative step were left out (Steward stores finite values at steps >= 0)."
        )
    status = _STATUSES.get(str(run.info.status))
    if status is None:
        warnings.append(
            f"MLflow run {run_id} is {run.info.status}; its Steward copy {created.id} is left "
            "running."
        )
    else:
        client.end_run(created.id, status)
    return CopiedRun(created.id, points, warnings)


def _copy_metrics(
    client: Client, ml: Any, mlflow_run_id: str, run_id: str, keys: list[str]
) -> tuple[int, int]:
    """Log every point of every metric in batches of at most 5,000; return (logged, dropped)."""
    logged = dropped = 0
    batch: list[dict[str, Any]] = []
    for key in keys:
        for point in ml.get_metric_history(mlflow_run_id, key):
            value, step = float(point.value), int(point.step)
            if not math.isfinite(value) or step < 0:
                dropped += 1
                continue
            batch.append({
                "key": key, "value": value, "step": step,
                "timestamp": datetime.fromtimestamp(point.timestamp / 1000, tz=UTC),
            })  # fmt: skip
            if len(batch) >= BATCH_POINTS:
                logged += client.log_batch(run_id, batch)
                batch = []
    if batch:
        logged += client.log_batch(run_id, batch)
    return logged, dropped
