"""TrackingService: runs and batched metric logging."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import IO

from steward.domain.artifacts import check_relative_path
from steward.domain.clock import utcnow
from steward.domain.entities import MetricPoint, Page, Run
from steward.domain.enums import RunStatus
from steward.domain.search import parse_filter
from steward.errors import Conflict
from steward.schemas.tracking import LogBatch, RunCreate, RunEnd
from steward.store.base import (
    ArtifactStore,
    MetadataStore,
    PointRow,
    check_page_size,
    decode_page_token,
    encode_page_token,
)


class TrackingService:
    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    def create_run(self, actor: str, body: RunCreate) -> Run:
        values = {
            "id": str(uuid.uuid4()),
            "name": body.name,
            "project": body.project,
            "status": RunStatus.RUNNING.value,
            "params": body.params,
            "tags": body.tags,
            "started_at": utcnow(),
            "ended_at": None,
            "created_by": actor,
        }
        with self.store.write(actor) as tx:
            run = tx.create_run(values)
            tx.record("run.started", "run", run.id, {"name": run.name, "project": run.project})
        return run

    def end_run(self, actor: str, run_id: str, body: RunEnd) -> Run:
        with self.store.write(actor) as tx:
            run = tx.update_run(run_id, {"status": body.status.value, "ended_at": utcnow()})
            tx.record("run.ended", "run", run_id, {"status": body.status.value})
        return run

    def log_batch(self, actor: str, run_id: str, body: LogBatch) -> int:
        """Append a batch in one transaction and one ledger event; return the points written."""
        now = utcnow()
        # Plain tuples, not entities: this is the hot path, and the schema validated them.
        points: list[PointRow] = [
            (m["key"], m["value"], m.get("step", 0), m.get("timestamp") or now)
            for m in body.metrics
        ]
        if (columns := body.metric_columns) is not None:
            count = len(columns.key)
            steps = columns.step or [0] * count
            stamps = columns.timestamp or [None] * count
            points += [
                (key, value, step, stamp or now)
                for key, value, step, stamp in zip(
                    columns.key, columns.value, steps, stamps, strict=True
                )
            ]
        with self.store.write(actor) as tx:
            if body.params or body.tags:
                run = tx.get_run(run_id)
                self._check_params_unchanged(run, body.params)
                tx.update_run(
                    run_id,
                    {"params": {**run.params, **body.params}, "tags": {**run.tags, **body.tags}},
                )
            tx.log_points(run_id, points)
            tx.record(
                "run.logged", "run", run_id,
                {"points": len(points), "keys": sorted({p[0] for p in points}),
                 "params": body.params, "tags": body.tags},
            )  # fmt: skip
        return len(points)

    @staticmethod
    def _check_params_unchanged(run: Run, params: dict[str, str]) -> None:
        # A param describes how the run was configured; changing it afterwards rewrites history.
        changed = {k: v for k, v in params.items() if k in run.params and run.params[k] != v}
        if changed:
            key = next(iter(changed))
            raise Conflict(
                f"The param {key!r} of run {run.id} is already {run.params[key]!r}; params cannot "
                f"change once logged (got {changed[key]!r}). Start a new run instead.",
                details={"field": f"params.{key}"},
            )

    def log_artifact(
        self, actor: str, run_id: str, path: str, content: IO[bytes] | Iterable[bytes] | bytes
    ) -> Run:
        path = check_relative_path(path)
        with self.store.read() as rx:
            rx.get_run(run_id)  # fail before storing bytes for a run that does not exist
        if isinstance(content, bytes):
            ref = self.artifacts.put_bytes(content)
        elif hasattr(content, "read"):
            ref = self.artifacts.put_stream(content)  # type: ignore[arg-type]
        else:
            ref = self.artifacts.put_chunks(content)
        with self.store.write(actor) as tx:
            tx.add_run_artifact(run_id, path, ref.digest, ref.size)
            tx.record(
                "run.artifact",
                "run",
                run_id,
                {"path": path, "digest": ref.digest, "size": ref.size},
            )
            return tx.get_run(run_id)

    def get_run(self, run_id: str) -> Run:
        with self.store.read() as rx:
            return rx.get_run(run_id)

    def list_runs(
        self,
        filter: str | None = None,
        *,
        project: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[Run]:
        conditions = parse_filter(filter)
        offset = decode_page_token(page_token)
        with self.store.read() as rx:
            items = rx.list_runs(
                conditions, project=project, limit=check_page_size(limit) + 1, offset=offset
            )
        more = len(items) > limit
        return Page(
            items=items[:limit], next_page_token=encode_page_token(offset + limit) if more else None
        )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        with self.store.read() as rx:
            return rx.metric_history(run_id, key)
