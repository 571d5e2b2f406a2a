"""Queries and writes on models, versions and aliases, inside a caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.domain.entities import Alias, Model, ModelVersion
from steward.domain.search import Condition
from steward.errors import AlreadyExists, NotFound
from steward.store.sql._convert import alias_entity, model_entity, version_entity
from steward.store.sql._filters import model_condition, version_condition
from steward.store.sql.tables import (
    AliasRow,
    ModelRow,
    ModelTagRow,
    ModelVersionRow,
    VersionMetricRow,
    VersionTagRow,
)


def find_model_row(session: Session, name: str) -> ModelRow | None:
    return session.scalars(select(ModelRow).where(ModelRow.name == name)).first()


def get_model_row(session: Session, name: str) -> ModelRow:
    row = find_model_row(session, name)
    if row is None:
        raise missing_model(name)
    return row


def missing_model(name: str) -> NotFound:
    return NotFound(
        f"No model named {name!r}. List models with `steward models`.",
        details={"field": "name", "name": name},
    )


def insert_model(session: Session, values: dict[str, Any], tags: dict[str, str]) -> ModelRow:
    if find_model_row(session, values["name"]) is not None:
        raise _duplicate_model(values["name"])
    row = ModelRow(**values)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer took the name between check and insert
        raise _duplicate_model(values["name"]) from exc
    replace_model_tags(session, row.id, tags)
    return row


def _duplicate_model(name: str) -> AlreadyExists:
    return AlreadyExists(
        f"A model named {name!r} already exists; register a new version of it, or pick "
        "another name.",
        details={"field": "name", "name": name},
    )


def replace_model_tags(session: Session, model_id: str, tags: dict[str, str]) -> None:
    session.execute(delete(ModelTagRow).where(ModelTagRow.model_id == model_id))
    if tags:
        session.execute(
            insert(ModelTagRow),
            [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()],
        )


def model_entities(session: Session, rows: Sequence[ModelRow]) -> list[Model]:
    ids = [r.id for r in rows]
    if not ids:
        return []
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    for t in session.scalars(select(ModelTagRow).where(ModelTagRow.model_id.in_(ids))):
        tags[t.model_id][t.key] = t.value
    aliases: dict[str, dict[str, int]] = defaultdict(dict)
    query = (
        select(AliasRow.model_id, AliasRow.alias, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == AliasRow.version_id)
        .where(AliasRow.model_id.in_(ids))
    )
    for model_id, alias, version in session.execute(query):
        aliases[model_id][alias] = version
    return [model_entity(r, tags[r.id], aliases[r.id]) for r in rows]


def list_models(
    session: Session, conditions: list[Condition], *, limit: int, offset: int
) -> list[Model]:
    query = select(ModelRow).order_by(ModelRow.name).limit(limit).offset(offset)
    for cond in conditions:
        query = query.where(model_condition(cond))
    return model_entities(session, list(session.scalars(query)))


# Core tables (typed loosely: SQLAlchemy types __table__ as a FromClause).
_MODELS: Any = ModelRow.__table__
_VERSIONS: Any = ModelVersionRow.__table__
_VERSION_METRICS: Any = VersionMetricRow.__table__
_VERSION_TAGS: Any = VersionTagRow.__table__


def claim_version_number(session: Session, name: str) -> tuple[str, int]:
    """The model's id and its next version number, in one statement.

    The UPDATE ... RETURNING takes the model's row lock, so concurrent registrations of one
    model get distinct numbers on PostgreSQL too.
    """
    row = session.execute(
        update(_MODELS)
        .where(_MODELS.c.name == name)
        .values(latest_version=_MODELS.c.latest_version + 1)
        .returning(_MODELS.c.id, _MODELS.c.latest_version)
    ).first()
    if row is None:
        raise missing_model(name)
    return str(row[0]), int(row[1])


def insert_version(
    session: Session, values: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
) -> None:
    """Insert a new version with Core statements: no ORM unit of work on the write path."""
    session.execute(insert(_VERSIONS), [values])
    version_id = values["id"]
    if metrics:
        session.execute(
            insert(_VERSION_METRICS),
            [{"version_id": version_id, "key": k, "value": v} for k, v in metrics.items()],
        )
    if tags:
        session.execute(
            insert(_VERSION_TAGS),
            [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()],
        )


def find_version_ids(session: Session, name: str, version: int) -> tuple[str, str] | None:
    """(model id, version id) of ``name`` v``version`` in one query, or None."""
    row = session.execute(
        select(ModelRow.id, ModelVersionRow.id)
        .join(ModelVersionRow, ModelVersionRow.model_id == ModelRow.id)
        .where(ModelRow.name == name, ModelVersionRow.version == version)
    ).first()
    return None if row is None else (row[0], row[1])


def upsert_version_metrics(session: Session, version_id: str, metrics: dict[str, float]) -> None:
    if not metrics:
        return
    session.execute(
        delete(VersionMetricRow).where(
            VersionMetricRow.version_id == version_id, VersionMetricRow.key.in_(list(metrics))
        )
    )
    session.execute(
        insert(VersionMetricRow),
        [{"version_id": version_id, "key": k, "value": v} for k, v in metrics.items()],
    )


def replace_version_tags(session: Session, version_id: str, tags: dict[str, str]) -> None:
    session.execute(delete(VersionTagRow).where(VersionTagRow.version_id == version_id))
    if tags:
        session.execute(
            insert(VersionTagRow),
            [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()],
        )


def find_version_row(session: Session, model_id: str, version: int) -> ModelVersionRow | None:
    return session.scalars(
        select(ModelVersionRow).where(
            ModelVersionRow.model_id == model_id, ModelVersionRow.version == version
        )
    ).first()


def find_alias_row(session: Session, model_id: str, alias: str) -> AliasRow | None:
    return session.get(AliasRow, (model_id, alias))


def version_entities(session: Session, rows: Sequence[Any]) -> list[ModelVersion]:
    """Entities for ORM rows or Core rows of ``model_versions``; names and aliases are fetched
    in one query each, metrics and tags are on the row."""
    ids = [r.id for r in rows]
    if not ids:
        return []
    if hasattr(rows[0], "model_name"):  # list_versions joins the name in
        names = {r.model_id: r.model_name for r in rows}
    else:
        name_query = select(ModelRow.id, ModelRow.name).where(
            ModelRow.id.in_({r.model_id for r in rows})
        )
        names = {model_id: name for model_id, name in session.execute(name_query)}
    aliases: dict[str, list[str]] = defaultdict(list)
    alias_query = select(AliasRow.version_id, AliasRow.alias).where(AliasRow.version_id.in_(ids))
    for version_id, alias in session.execute(alias_query):
        aliases[version_id].append(alias)
    return [
        version_entity(
            r, model_name=names[r.model_id], metrics=r.metrics, tags=r.tags, aliases=aliases[r.id]
        )
        for r in rows
    ]


def versions_where(session: Session, *conditions: Any) -> list[ModelVersion]:
    """Versions (joined with their model's name) matching SQL ``conditions``, in one query."""
    query = (
        select(_VERSIONS, ModelRow.name.label("model_name"))
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(*conditions)
    )
    return version_entities(session, list(session.execute(query)))


def list_versions(
    session: Session,
    conditions: list[Condition],
    *,
    model_id: str | None,
    limit: int,
    offset: int,
) -> list[ModelVersion]:
    query = select(_VERSIONS, ModelRow.name.label("model_name")).join(
        ModelRow, ModelRow.id == ModelVersionRow.model_id
    )
    if model_id is not None:
        query = query.where(ModelVersionRow.model_id == model_id)
    for cond in conditions:
        query = query.where(version_condition(cond))
    query = query.order_by(ModelRow.name, ModelVersionRow.version.desc())
    rows = list(session.execute(query.limit(limit).offset(offset)))
    return version_entities(session, rows)


def upsert_alias(
    session: Session, model_id: str, alias: str, version_id: str, values: dict[str, Any]
) -> str | None:
    """Point ``alias`` at ``version_id``; return the version id it pointed at before."""
    insert_alias: Any = (postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert)(
        AliasRow
    )
    insert_alias = (
        insert_alias.values(model_id=model_id, alias=alias, version_id=version_id, **values)
        .on_conflict_do_nothing()
        .returning(AliasRow.alias)
    )
    while True:
        row = session.get(AliasRow, (model_id, alias), with_for_update=True, populate_existing=True)
        if row is not None:
            break
        # No alias yet. Two writers may both get here: the second one's insert waits for the
        # first one's commit and does nothing, and its next pass locks and moves that row.
        if session.execute(insert_alias).first() is not None:  # inserted: nothing before
            return None
    previous = row.version_id
    row.version_id = version_id
    row.updated_at = values["updated_at"]
    row.updated_by = values["updated_by"]
    session.flush()
    return previous


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def delete_alias(session: Session, model_id: str, alias: str) -> str | None:
    row = session.get(AliasRow, (model_id, alias), with_for_update=True)
    if row is None:
        return None
    previous = row.version_id
    session.delete(row)
    session.flush()
    return previous


def alias_of(session: Session, model: ModelRow, alias: str) -> Alias | None:
    row = find_alias_row(session, model.id, alias)
    if row is None:
        return None
    version = session.scalar(
        select(ModelVersionRow.version).where(ModelVersionRow.id == row.version_id)
    )
    return alias_entity(model.name, alias, int(version or 0), row)
