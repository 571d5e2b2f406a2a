"""Queries and writes on models, versions and aliases, inside a caller's transaction."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    JSON,
    Boolean,
    FunctionElement,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session

from steward.domain.entities import Alias, Model, ModelVersion
from steward.domain.search import Condition
from steward.errors import AlreadyExists, NotFound
from steward.store.sql._convert import (
    VERSION_JSON_COLUMNS,
    alias_entity,
    model_entity,
    version_entity,
    version_json,
)
from steward.store.sql._driver import Deferred, DriverStatement, driver_error
from steward.store.sql._filters import compare, model_condition, version_condition
from steward.store.sql.tables import (
    AliasRow,
    ModelRow,
    ModelTagRow,
    ModelVersionRow,
    UTCDateTime,
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
_ALIASES: Any = AliasRow.__table__
# What `version_json` reads: the JSON columns as the text they were stored as, the aliases of
# each version (names are letters, digits, '_' and '-': a comma cannot be part of one). The
# separator is SQL text, not a bound value: SQLAlchemy renders a bound one only at execution
# (``literal_execute``), which a `DriverStatement` does not do. (Typed as taking a str, the
# separator may be any expression.)
_ALIAS_NAMES = (
    select(func.aggregate_strings(_ALIASES.c.alias, literal_column("','")))  # type: ignore[arg-type]
    .where(_ALIASES.c.model_id == _VERSIONS.c.model_id, _ALIASES.c.version_id == _VERSIONS.c.id)
    .scalar_subquery()
)


class _JsonUtc(FunctionElement[str]):
    """A stored naive-UTC timestamp as its entity's JSON holds it (pydantic's form): ISO 8601
    with ``T``, microseconds unless there are none, ``Z``. Written by the database: converting
    each to an aware datetime and serializing it again was ~40% of a page's Python work
    (measured: 4 µs a row of ~11)."""

    type = Text()
    inherit_cache = True


@compiles(_JsonUtc, "postgresql")
def _json_utc_postgresql(element: _JsonUtc, compiler: Any, **kw: Any) -> str:
    stored = compiler.process(element.clauses, **kw)
    return f"""replace(to_char({stored}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z')"""


@compiles(_JsonUtc)
def _json_utc_stored_text(element: _JsonUtc, compiler: Any, **kw: Any) -> str:
    # SQLite keeps SQLAlchemy's text form, "YYYY-MM-DD HH:MM:SS.ffffff"
    stored = compiler.process(element.clauses, **kw)
    return f"replace(replace({stored}, ' ', 'T') || 'Z', '.000000Z', 'Z')"


def _version_json_column(name: str, model_name: Any) -> Any:
    if name == "model_name":
        return model_name.label(name)
    if name == "aliases":
        return _ALIAS_NAMES.label(name)
    column = _VERSIONS.c[name]
    if isinstance(column.type, JSON):
        return cast(column, Text).label(name)
    if isinstance(column.type, UTCDateTime):
        return _JsonUtc(column).label(name)
    if isinstance(column.type, Boolean):
        return type_coerce(column, Integer).label(name)  # as the driver gives it (0/1 on SQLite)
    return column


def _page_columns(shape: str, model_name: Any) -> Select[Any]:
    """What a page of versions reads (``shape``): the rows for entities, or for `version_json`;
    the model's name from ``model_name``."""
    if shape == "entities":
        return select(_VERSIONS, model_name.label("model_name"))
    return select(*(_version_json_column(n, model_name) for n in VERSION_JSON_COLUMNS))


# The write hot path runs statements built once, here, with bind parameters: building a
# statement per call (coercions, cache key) cost ~0.25 ms each, several times the statement's
# own execution on SQLite (measured). The hottest run on the driver's connection
# (`DriverStatement`), which skips SQLAlchemy's execution layer as well; the others on the
# session's Core connection, which skips the ORM's.
_CLAIM_VERSION = DriverStatement(
    update(_MODELS)
    .where(_MODELS.c.name == bindparam("model_name"))
    .values(latest_version=_MODELS.c.latest_version + 1)
    .returning(_MODELS.c.id, _MODELS.c.latest_version)
)
# The claim of a number predicted (`_predictions`), left for the write's end: 1 / 0, an error
# that aborts the write (`stale_claim`), when the model's row no longer holds the number expected.
_CLAIM_PREDICTED = DriverStatement(
    update(_MODELS)
    .where(
        _MODELS.c.id == bindparam("model_id"),
        _MODELS.c.name == bindparam("model_name"),
        _MODELS.c.latest_version == bindparam("expected"),
    )
    .values(latest_version=_MODELS.c.latest_version + 1)
    .returning(_MODELS.c.id),
    must_change=True,
)
_VERSION_KEYS = [c.key for c in _VERSIONS.columns]
_INSERT_VERSION = DriverStatement(insert(_VERSIONS), keys=_VERSION_KEYS)
_INSERT_VERSION_METRICS = DriverStatement(
    insert(_VERSION_METRICS), keys=["version_id", "key", "value", "model_name", "version"]
)
_INSERT_VERSION_TAGS = DriverStatement(insert(_VERSION_TAGS), keys=["version_id", "key", "value"])
_VERSION_IDS = (
    select(_MODELS.c.id, _VERSIONS.c.id)
    .join(_VERSIONS, _VERSIONS.c.model_id == _MODELS.c.id)
    .where(_MODELS.c.name == bindparam("name"), _VERSIONS.c.version == bindparam("version"))
)
# The alias's current target and its number, locked (PostgreSQL) until the move commits.
_ALIAS_TARGET = (
    select(_ALIASES.c.version_id, _VERSIONS.c.version)
    .join(_VERSIONS, _VERSIONS.c.id == _ALIASES.c.version_id)
    .where(_ALIASES.c.model_id == bindparam("model_id"), _ALIASES.c.alias == bindparam("alias"))
    .with_for_update(of=_ALIASES)
)
# The usual move (the alias exists): the model, the version to point at and the one pointed at
# now, the alias locked (PostgreSQL) until the move commits, in one statement instead of two.
_TARGET = _VERSIONS.alias("target")
_IS_TARGET = and_(_TARGET.c.model_id == _MODELS.c.id, _TARGET.c.version == bindparam("version"))
_MOVING_ALIAS = DriverStatement(
    select(_MODELS.c.id, _TARGET.c.id, _VERSIONS.c.version)
    .select_from(_ALIASES)
    .join(_MODELS, _MODELS.c.id == _ALIASES.c.model_id)
    .join(_VERSIONS, _VERSIONS.c.id == _ALIASES.c.version_id)
    .join(_TARGET, _IS_TARGET)
    .where(_MODELS.c.name == bindparam("name"), _ALIASES.c.alias == bindparam("alias"))
    .with_for_update(of=_ALIASES)
)
_MOVE_ALIAS = DriverStatement(
    update(_ALIASES).where(
        _ALIASES.c.model_id == bindparam("b_model_id"), _ALIASES.c.alias == bindparam("b_alias")
    ),
    keys=["version_id", "updated_at", "updated_by"],
)
_NEW_ALIAS = {
    "postgresql": postgresql.insert(_ALIASES).on_conflict_do_nothing().returning(_ALIASES.c.alias),
    "sqlite": sqlite.insert(_ALIASES).on_conflict_do_nothing().returning(_ALIASES.c.alias),
}


def claim_version_number(session: Session, name: str) -> tuple[str, int]:
    """The model's id and its next version number, in one statement.

    The UPDATE ... RETURNING takes the model's row lock, so concurrent registrations of one
    model get distinct numbers on PostgreSQL too.
    """
    row = _CLAIM_VERSION.execute(session.connection(), {"model_name": name}).fetchone()
    if row is None:
        raise missing_model(name)
    return str(row[0]), int(row[1])


def predicted_claim(model_id: str, name: str, last: int) -> Deferred:
    """The statement that claims v``last + 1`` of ``name`` if ``last`` is still its last number
    and fails the write otherwise (PostgreSQL: `_CLAIM_PREDICTED`)."""
    return _CLAIM_PREDICTED, [{"model_id": model_id, "model_name": name, "expected": last}]


def stale_claim(error: BaseException) -> bool:
    """Whether ``error`` is a `predicted_claim` finding the number moved: its division by zero
    (22012), the only one a write's end can make."""
    return getattr(driver_error(error), "sqlstate", None) == "22012"


def version_inserts(
    model_name: str, values: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
) -> list[Deferred]:
    """The Core statements that insert a new version (no ORM unit of work on the write path),
    for the write session to run at commit (`SqlWriteSession.execute_later`)."""
    version_id, number = values["id"], values["version"]
    found: list[Deferred] = [(_INSERT_VERSION, [values])]
    if metrics:
        rows = _metric_rows(version_id, model_name, number, metrics)
        found.append((_INSERT_VERSION_METRICS, rows))
    if tags:
        pairs = [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()]
        found.append((_INSERT_VERSION_TAGS, pairs))
    return found


def find_version_ids(session: Session, name: str, version: int) -> tuple[str, str] | None:
    """(model id, version id) of ``name`` v``version`` in one query, or None."""
    row = session.connection().execute(_VERSION_IDS, {"name": name, "version": version}).first()
    return None if row is None else (row[0], row[1])


def upsert_version_metrics(
    session: Session, model_name: str, row: ModelVersionRow, metrics: dict[str, float]
) -> None:
    if not metrics:
        return
    session.execute(
        delete(VersionMetricRow).where(
            VersionMetricRow.version_id == row.id, VersionMetricRow.key.in_(list(metrics))
        )
    )
    session.execute(
        insert(VersionMetricRow), _metric_rows(row.id, model_name, row.version, metrics)
    )


def _metric_rows(
    version_id: str, model_name: str, version: int, metrics: dict[str, float]
) -> list[dict[str, Any]]:
    """Rows of ``version_metrics``, each with its version's place in a listing."""
    return [
        {"version_id": version_id, "key": k, "value": v, "model_name": model_name,
         "version": version}
        for k, v in metrics.items()
    ]  # fmt: skip


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
    aliases = _aliases_of(session, ids)
    return [
        version_entity(
            r, model_name=names[r.model_id], metrics=r.metrics, tags=r.tags, aliases=aliases[r.id]
        )
        for r in rows
    ]


def _aliases_of(session: Session, version_ids: list[str]) -> dict[str, list[str]]:
    aliases: dict[str, list[str]] = defaultdict(list)
    if version_ids:
        query = select(AliasRow.version_id, AliasRow.alias).where(
            AliasRow.version_id.in_(version_ids)
        )
        for version_id, alias in session.execute(query):
            aliases[version_id].append(alias)
    return aliases


def versions_where(session: Session, *conditions: Any) -> list[ModelVersion]:
    """Versions (joined with their model's name) matching SQL ``conditions``, in one query."""
    query = (
        select(_VERSIONS, ModelRow.name.label("model_name"))
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(*conditions)
    )
    return version_entities(session, list(session.execute(query)))


class NamedModel(Protocol):
    """What a page of versions needs of the model it is limited to (a `ModelRow`, a `ModelKey`)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


class ModelKey(NamedTuple):
    id: str
    name: str


def list_versions(
    session: Session,
    conditions: list[Condition],
    *,
    model: NamedModel | None,
    limit: int,
    offset: int,
) -> list[ModelVersion]:
    """Versions matching ``conditions``, ordered by model name, then newest version first."""
    query, params = _page_rows("entities", conditions, model, limit, offset, _dialect(session))
    return version_entities(session, list(session.execute(query, params)))


def list_versions_json(
    session: Session,
    conditions: list[Condition],
    *,
    model: NamedModel | None,
    limit: int,
    offset: int,
) -> list[bytes]:
    """The same page as `list_versions`, each version as its JSON (see `version_json`)."""
    query, params = _page_rows("json", conditions, model, limit, offset, _dialect(session))
    return [version_json(row) for row in session.connection().execute(query, params)]


# For a read run on the driver's connection (an event loop's, `list_versions_json_on_loop`).
MODEL_KEY = DriverStatement(
    select(_MODELS.c.id, _MODELS.c.name).where(_MODELS.c.name == bindparam("name"))
)


def versions_json_statement(
    conditions: list[Condition], model: NamedModel | None, limit: int, offset: int
) -> tuple[DriverStatement, dict[str, Any]]:
    """`list_versions_json`'s query on PostgreSQL as a `DriverStatement` and its parameters:
    compiled once for a search on one metric, once per call for any other."""
    query, params = _page_rows("json", conditions, model, limit, offset, "postgresql")
    if params:  # only a statement built once takes its values as parameters (`_page_rows`)
        return _driver_statement(query), params
    return DriverStatement(query), params


@functools.cache
def _driver_statement(query: Select[Any]) -> DriverStatement:
    return DriverStatement(query)


def _page_rows(
    shape: str,
    conditions: list[Condition],
    model: NamedModel | None,
    limit: int,
    offset: int,
    dialect: str,
) -> tuple[Select[Any], dict[str, Any]]:
    """The rows (``shape``: as `_page_columns`) of a page of matching versions in listing
    order, and the statement's parameters: a search on one metric is a statement built once
    (`_metric_page_rows`) given its values as parameters; any other holds its values."""
    if len(conditions) == 1 and conditions[0].scope == "metrics":
        cond = conditions[0]
        params = {"metric_key": cond.key, "metric_value": cond.value, "page_limit": limit,
                  "page_offset": offset}  # fmt: skip
        if model is not None:
            params["page_model"] = model.name
        return _metric_page_rows(shape, cond.op, model is not None), params
    page = _page(conditions, model, limit + offset, dialect == "postgresql")
    return _rows_of_page(shape, page.limit(limit).offset(offset)), {}


def _rows_of_page(shape: str, page: Select[str, str, int]) -> Select[Any]:
    """The rows of ``page`` (its versions' ids, model names and numbers, in listing order).

    The page is found first, then the full rows of that page only are read: sorting every match
    with its JSON columns (lineage, environment, signature) was most of a search's time. A
    model's name never changes, so the page's is the model's: no join with the models (with the
    semi-join the page was read through before, ~0.3 of ~1.1 ms of PostgreSQL's planning and
    execution of a page of 100, measured).
    """
    found = page.subquery("page")
    return (
        _page_columns(shape, found.c.model_name)
        .select_from(found.join(_VERSIONS, _VERSIONS.c.id == found.c.version_id))
        .order_by(found.c.model_name, found.c.version.desc())
    )


@functools.cache
def _metric_page_rows(shape: str, op: str, by_model: bool) -> Select[Any]:
    """The page of a search on one metric, found in the metric index alone.

    Each metric row holds its version's model name and number, so the matches are ordered
    without reading a version row per match (~20x less work over 2,000 matches). Built once per
    shape and operator with bound parameters, like the write path's statements: building one
    per search (and its cache key) was ~10% of a search through the server (measured).
    """
    metric = _VERSION_METRICS
    page = select(metric.c.version_id, metric.c.model_name, metric.c.version).where(
        metric.c.key == bindparam("metric_key"),
        compare(metric.c.value, op, bindparam("metric_value")),
    )
    if by_model:
        page = page.where(metric.c.model_name == bindparam("page_model"))
    page = (
        page.order_by(metric.c.model_name, metric.c.version.desc())
        .limit(bindparam("page_limit"))
        .offset(bindparam("page_offset"))
    )
    return _rows_of_page(shape, page)


def _page(
    conditions: list[Condition], model: NamedModel | None, fetched: int, lateral: bool
) -> Select[str, str, int]:
    """The ids, model names and numbers of matching versions in listing order, any conditions;
    ``fetched``: the most rows the caller reads (its page's end)."""
    if model is None and lateral:
        return _newest_of_each_model(conditions, fetched)
    page = select(
        ModelVersionRow.id.label("version_id"),
        ModelRow.name.label("model_name"),
        ModelVersionRow.version,
    ).join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
    if model is None:
        page = page.order_by(ModelRow.name, ModelVersionRow.version.desc())
    else:
        # One model's versions: its name is one, so ordered by number alone, read backwards
        # from the versions' (model, number) index instead of every version sorted (a model of
        # 10,000 versions on PostgreSQL: 26 ms -> 1.4 ms a page, measured).
        page = page.where(ModelVersionRow.model_id == model.id)
        page = page.order_by(ModelVersionRow.version.desc())
    for cond in conditions:
        page = page.where(version_condition(cond))
    return page


def _newest_of_each_model(conditions: list[Condition], fetched: int) -> Select[str, str, int]:
    """The page across models as each model's ``fetched`` newest matching versions, read
    backwards from the versions' (model, number) index, then ordered: the page's rows are among
    them. PostgreSQL sorted every matching version by model name instead (10,000 versions:
    ~25 ms a page against ~0.3, measured); SQLite, which has no LATERAL, plans its page well."""
    newest = (
        select(ModelVersionRow.id.label("version_id"), ModelVersionRow.version)
        .where(ModelVersionRow.model_id == ModelRow.id)
        .where(*(version_condition(cond) for cond in conditions))
        .order_by(ModelVersionRow.version.desc())
        .limit(fetched)
        .lateral("newest")
    )
    return (
        select(newest.c.version_id, ModelRow.name.label("model_name"), newest.c.version)
        .select_from(ModelRow)
        .join(newest, true())
        .order_by(ModelRow.name, newest.c.version.desc())
    )


def move_existing_alias(
    session: Session, name: str, alias: str, version: int, values: dict[str, Any]
) -> tuple[int, Deferred] | None:
    """When ``alias`` of ``name`` and v``version`` both exist: the version number the alias
    points at now and the statement that moves it. Otherwise None, and `upsert_alias` (after
    the version's lookup) creates the alias or names what is missing. A move committed
    meanwhile by another writer may also give None (the locked row no longer joins the version
    read before it): `upsert_alias` then reads it afresh."""
    key = {"name": name, "alias": alias, "version": version}
    row = _MOVING_ALIAS.execute(session.connection(), key).fetchone()
    if row is None:
        return None
    model_id, version_id, previous = row
    return int(previous), _alias_move(model_id, alias, version_id, values)


def upsert_alias(
    session: Session, model_id: str, alias: str, version_id: str, values: dict[str, Any]
) -> tuple[int | None, Deferred | None]:
    """Point ``alias`` at ``version_id``: the version number it pointed at before, and the
    statement that moves it when it existed (the caller runs it, now or at commit)."""
    connection = session.connection()
    key = {"model_id": model_id, "alias": alias}
    new_alias = _NEW_ALIAS[_dialect(session)]
    while True:
        before = connection.execute(_ALIAS_TARGET, key).first()
        if before is not None:
            break
        # No alias yet. Two writers may both get here: the second one's insert waits for the
        # first one's commit and does nothing, and its next pass locks and moves that row.
        inserted = connection.execute(new_alias, {**key, "version_id": version_id, **values})
        if inserted.first() is not None:
            return None, None
    return int(before[1]), _alias_move(model_id, alias, version_id, values)


def _alias_move(model_id: str, alias: str, version_id: str, values: dict[str, Any]) -> Deferred:
    move = {"b_model_id": model_id, "b_alias": alias, "version_id": version_id, **values}
    return _MOVE_ALIAS, [move]


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
