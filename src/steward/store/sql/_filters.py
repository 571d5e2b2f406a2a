"""Filter conditions (domain.search) to SQL on the registry tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, select

from steward.domain.search import Condition
from steward.errors import InvalidInput
from steward.store.sql.tables import (
    ModelRow,
    ModelTagRow,
    ModelVersionRow,
    VersionMetricRow,
    VersionTagRow,
)

_MODEL_COLUMNS: dict[str, Any] = {
    "name": ModelRow.name,
    "owner": ModelRow.owner,
    "team": ModelRow.team,
    "tier": ModelRow.risk_tier,
    "use_case": ModelRow.use_case,
}
_VERSION_COLUMNS: dict[str, Any] = {
    "version": ModelVersionRow.version,
    "status": ModelVersionRow.status,
    "flavor": ModelVersionRow.flavor,
    "created_by": ModelVersionRow.created_by,
    "run_id": ModelVersionRow.run_id,
}


def compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    return column.like(value)  # type: ignore[no-any-return]


def model_condition(cond: Condition) -> ColumnElement[bool]:
    if cond.scope in ("metrics", "params"):
        raise InvalidInput(
            f"Models have no {cond.scope}; filter versions on {cond.scope}.{cond.key} instead.",
            field="filter",
        )
    if cond.scope == "tags":
        return exists(
            select(ModelTagRow.model_id).where(
                ModelTagRow.model_id == ModelRow.id,
                ModelTagRow.key == cond.key,
                compare(ModelTagRow.value, cond.op, cond.value),
            )
        )
    return compare(_MODEL_COLUMNS[cond.key], cond.op, cond.value)


def version_condition(cond: Condition) -> ColumnElement[bool]:
    """A condition on a version query already joined to its model."""
    # IN (subquery) rather than a correlated EXISTS: the planner then starts from the
    # (key, value) index and visits only matching versions, instead of testing every version.
    if cond.scope == "metrics":
        return ModelVersionRow.id.in_(
            select(VersionMetricRow.version_id).where(
                VersionMetricRow.key == cond.key,
                compare(VersionMetricRow.value, cond.op, cond.value),
            )
        )
    if cond.scope == "tags":
        return ModelVersionRow.id.in_(
            select(VersionTagRow.version_id).where(
                VersionTagRow.key == cond.key,
                compare(VersionTagRow.value, cond.op, cond.value),
            )
        )
    if cond.scope == "params":
        raise InvalidInput(
            f"Filtering versions on params.{cond.key} is not supported; filter on metrics.X, "
            "tags.X or a field, and read params from the results.",
            field="filter",
        )
    if cond.key in _VERSION_COLUMNS:
        return compare(_VERSION_COLUMNS[cond.key], cond.op, cond.value)
    return compare(_MODEL_COLUMNS[cond.key], cond.op, cond.value)
