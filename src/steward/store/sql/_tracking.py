"""Runs, their metric time series and artifacts, inside a caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from steward.domain.entities import MetricPoint, Run
from steward.domain.search import Condition
from steward.errors import InvalidInput, NotFound
from steward.store.base import PointRow
from steward.store.sql._convert import run_entity
from steward.store.sql._filters import compare
from steward.store.sql._segments import pack, unpack
from steward.store.sql.tables import (
    RunArtifactRow,
    RunLatestMetricRow,
    RunMetricSegmentRow,
    RunRow,
)


def get_run_row(session: Session, run_id: str, *, lock: bool = False) -> RunRow:
    row = session.get(RunRow, run_id, with_for_update=lock)
    if row is None:
        raise NotFound(
            f"No run with id {run_id!r}. List runs with `steward runs`.",
            details={"field": "run_id", "run_id": run_id},
        )
    return row


def run_entities(session: Session, rows: Sequence[RunRow]) -> list[Run]:
    ids = [r.id for r in rows]
    if not ids:
        return []
    metrics: dict[str, dict[str, float]] = defaultdict(dict)
    for m in session.scalars(select(RunLatestMetricRow).where(RunLatestMetricRow.run_id.in_(ids))):
        metrics[m.run_id][m.key] = m.value
    artifacts: dict[str, list[RunArtifactRow]] = defaultdict(list)
    for a in session.scalars(select(RunArtifactRow).where(RunArtifactRow.run_id.in_(ids))):
        artifacts[a.run_id].append(a)
    return [
        run_entity(r, metrics[r.id], sorted(artifacts[r.id], key=lambda a: a.path)) for r in rows
    ]


def list_runs(
    session: Session,
    conditions: list[Condition],
    *,
    project: str | None,
    limit: int,
    offset: int,
) -> list[Run]:
    query = select(RunRow)
    if project is not None:
        query = query.where(RunRow.project == project)
    for cond in conditions:
        if cond.scope != "metrics":
            raise InvalidInput(
                "Runs are searched by metrics.X conditions; filter by project with --project.",
                field="filter",
            )
        query = query.where(
            select(RunLatestMetricRow.run_id)
            .where(
                RunLatestMetricRow.run_id == RunRow.id,
                RunLatestMetricRow.key == cond.key,
                compare(RunLatestMetricRow.value, cond.op, cond.value),
            )
            .exists()
        )
    query = query.order_by(RunRow.started_at.desc(), RunRow.id).limit(limit).offset(offset)
    return run_entities(session, list(session.scalars(query)))


def insert_points(session: Session, run_id: str, points: Sequence[PointRow]) -> None:
    """Append the batch as one packed segment per key, then move each key's latest value."""
    if not points:
        return
    connection = session.connection()
    connection.execute(
        _INSERT_SEGMENTS,
        [
            {"run_id": run_id, "key": seg.key, "count": seg.count, "steps": seg.steps,
             "values": seg.values, "timestamps": seg.timestamps}
            for seg in pack(points)
        ],
    )  # fmt: skip
    latest: dict[str, PointRow] = {}
    for p in points:
        seen = latest.get(p[0])
        if seen is None or (p[2], p[3]) >= (seen[2], seen[3]):
            latest[p[0]] = p
    connection.execute(
        _UPSERT_LATEST[connection.dialect.name],
        [
            {"run_id": run_id, "key": key, "value": value, "step": step, "timestamp": moment}
            for key, value, step, moment in latest.values()
        ],
    )  # fmt: skip


def _upsert_latest_statement(dialect: Any) -> Any:
    table: Any = RunLatestMetricRow.__table__
    stmt: Any = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={"value": stmt.excluded.value, "step": stmt.excluded.step,
              "timestamp": stmt.excluded.timestamp},
        where=stmt.excluded.step >= table.c.step,
    )  # fmt: skip


# Built once: the logging hot path would otherwise rebuild them for every batch (measured
# at several times the cost of executing them on SQLite).
_SEGMENTS: Any = RunMetricSegmentRow.__table__
_INSERT_SEGMENTS = insert(_SEGMENTS)
_UPSERT_LATEST = {
    "postgresql": _upsert_latest_statement(postgresql),
    "sqlite": _upsert_latest_statement(sqlite),
}


def metric_history(session: Session, run_id: str, key: str) -> list[MetricPoint]:
    query = (
        select(
            RunMetricSegmentRow.steps, RunMetricSegmentRow.values, RunMetricSegmentRow.timestamps
        )
        .where(RunMetricSegmentRow.run_id == run_id, RunMetricSegmentRow.key == key)
        .order_by(RunMetricSegmentRow.id)
    )
    return unpack(
        key, [(steps, values, stamps) for steps, values, stamps in session.execute(query)]
    )


def upsert_run_artifact(session: Session, run_id: str, path: str, digest: str, size: int) -> None:
    row = session.get(RunArtifactRow, (run_id, path))
    if row is None:
        session.add(RunArtifactRow(run_id=run_id, path=path, digest=digest, size=size))
    else:
        row.digest, row.size = digest, size
    session.flush()
