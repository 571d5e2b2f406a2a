"""SqlMetadataStore: transactions over the metadata tables, each write chained into the ledger.

A service opens ``store.write(actor)``, makes its changes through the session's methods and
``record()``s what happened; on exit the events are chained and committed with the changes, or
nothing is. ``store.read()`` gives the same queries without a write lock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    UnboundExecutionError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from steward.domain.entities import (
    Alias,
    Event,
    MetricPoint,
    Model,
    ModelVersion,
    Run,
    Token,
    VerifyReport,
)
from steward.domain.search import Condition
from steward.errors import InvalidInput, NotFound, StewardError, Unavailable
from steward.settings import Settings
from steward.store.base import (
    EventFilter,
    FeedListener,
    FeedPage,
    PointRow,
    ReadWouldWait,
    StalePrediction,
    WriteWouldWait,
)
from steward.store.sql import _feed, _ledger, _one_statement, _registry, _tracking
from steward.store.sql._convert import (
    TOKEN_COLUMNS,
    token_entity,
    token_of_driver_row,
    version_entity,
    version_json,
)
from steward.store.sql._deployment_sessions import DeploymentReads, DeploymentWrites
from steward.store.sql._driver import (
    BEGIN,
    COMMIT,
    Deferred,
    DriverStatement,
    begin_pending,
    deferred_begin,
    driver_errors,
    quiet_aborted_pipelines,
    take_pending_begin,
)
from steward.store.sql._experiments import ExperimentReads, ExperimentWrites
from steward.store.sql._gate_sessions import GateReads, GateWrites
from steward.store.sql._incidents import IncidentReads, IncidentWrites
from steward.store.sql._ledger import PendingEvent
from steward.store.sql._loop_connections import HeldWrite, LoopConnections
from steward.store.sql._monitoring import MonitoringReads, MonitoringWrites
from steward.store.sql._predictions import LEDGER, Predictions
from steward.store.sql.engine import build_engine, build_nowait_sqlite_engine, is_sqlite_file
from steward.store.sql.tables import AliasRow, ModelRow, ModelVersionRow, RunRow, TokenRow


class SqlReadSession(GateReads, DeploymentReads, MonitoringReads, IncidentReads, ExperimentReads):
    """Queries; every method returns domain entities, never rows."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # models ------------------------------------------------------------------------------

    def get_model(self, name: str) -> Model:
        return _registry.model_entities(
            self.session, [_registry.get_model_row(self.session, name)]
        )[0]

    def list_models(self, conditions: list[Condition], *, limit: int, offset: int) -> list[Model]:
        return _registry.list_models(self.session, conditions, limit=limit, offset=offset)

    # versions ----------------------------------------------------------------------------
    def get_version(self, name: str, version: int) -> ModelVersion:
        # The hit is one joined query; only a miss pays for working out what is missing.
        found = _registry.versions_where(
            self.session, ModelRow.name == name, ModelVersionRow.version == version
        )
        if found:
            return found[0]
        model = _registry.get_model_row(self.session, name)
        raise NotFound(
            f"Model {name!r} has no version {version}; it has versions 1 to "
            f"{model.latest_version}." if model.latest_version else
            f"Model {name!r} has no versions yet.",
            details={"field": "version", "name": name, "version": version},
        )  # fmt: skip

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        found = _registry.versions_where(
            self.session,
            ModelRow.name == name,
            ModelVersionRow.id.in_(
                select(AliasRow.version_id).where(
                    AliasRow.model_id == ModelRow.id, AliasRow.alias == alias
                )
            ),
        )
        if found:
            return found[0]
        _registry.get_model_row(self.session, name)
        raise NotFound(
            f"Model {name!r} has no alias {alias!r}. Set it with "
            f"`steward alias set {name} {alias} VERSION`.",
            details={"field": "alias", "name": name, "alias": alias},
        )

    def get_latest_version(self, name: str) -> ModelVersion:
        model = _registry.get_model_row(self.session, name)
        if not model.latest_version:
            raise NotFound(f"Model {name!r} has no versions yet.", details={"field": "name"})
        return self.get_version(name, model.latest_version)

    def list_versions(
        self, conditions: list[Condition], *, model: str | None, limit: int, offset: int
    ) -> list[ModelVersion]:
        row = None if model is None else _registry.get_model_row(self.session, model)
        return _registry.list_versions(
            self.session, conditions, model=row, limit=limit, offset=offset
        )

    def list_versions_json(
        self, conditions: list[Condition], *, model: str | None, limit: int, offset: int
    ) -> list[bytes]:
        row = None if model is None else _registry.get_model_row(self.session, model)
        return _registry.list_versions_json(
            self.session, conditions, model=row, limit=limit, offset=offset
        )

    def get_alias(self, name: str, alias: str) -> Alias | None:
        return _registry.alias_of(self.session, _registry.get_model_row(self.session, name), alias)

    # runs ----------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        return _tracking.run_entities(self.session, [_tracking.get_run_row(self.session, run_id)])[
            0
        ]

    def list_runs(
        self, conditions: list[Condition], *, project: str | None, limit: int, offset: int
    ) -> list[Run]:
        return _tracking.list_runs(
            self.session, conditions, project=project, limit=limit, offset=offset
        )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        _tracking.get_run_row(self.session, run_id)
        return _tracking.metric_history(self.session, run_id, key)

    # ledger and tokens -------------------------------------------------------------------
    def list_events(
        self, flt: EventFilter, *, limit: int, offset: int, newest_first: bool = False
    ) -> list[Event]:
        return _ledger.list_events(
            self.session, flt, limit=limit, offset=offset, newest_first=newest_first
        )

    def verify_ledger(self) -> VerifyReport:
        return _ledger.verify_chain(self.session)

    def ledger_tip(self) -> int:
        return _feed.ledger_tip(self.session)

    def read_feed(self, after_seq: int, kinds: Collection[str], *, limit: int = 1000) -> FeedPage:
        return _feed.read_feed(self.session, after_seq, kinds, limit)

    def find_token_by_hash(self, secret_hash: str) -> Token | None:
        row = self.session.scalars(
            select(TokenRow).where(TokenRow.secret_hash == secret_hash)
        ).first()
        return None if row is None else token_entity(row)

    def list_tokens(self) -> list[Token]:
        rows = self.session.scalars(select(TokenRow).order_by(TokenRow.created_at))
        return [token_entity(r) for r in rows]


class SqlWriteSession(
    SqlReadSession, GateWrites, DeploymentWrites, MonitoringWrites, IncidentWrites, ExperimentWrites
):
    """Writes; each state change is ``record()``ed and chained into the ledger at commit."""

    def __init__(
        self, session: Session, actor: str, predictions: Predictions | None = None
    ) -> None:
        super().__init__(session)
        self.actor = actor
        self.pending: list[PendingEvent] = []
        self.events: list[Event] = []
        self.later: list[Deferred] = []
        self.predictions = predictions  # PostgreSQL only: see `_predictions`
        # model name -> (model id, number) claimed by this write, to learn once committed
        self.claimed: dict[str, tuple[str, int]] = {}
        self.predicted_claims: list[str] = []

    def execute_later(self, statements: Iterable[Deferred]) -> None:
        """Run ``statements``, whose results this transaction never reads, at commit, just
        before its events: on PostgreSQL in the round trip that takes the ledger's lock, so a
        write waits on the network fewer times (see `SqlMetadataStore.write`)."""
        self.later.extend(statements)

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None:
        self.pending.append(PendingEvent(kind, subject_type, subject_id, payload or {}))

    def create_model(self, values: dict[str, Any], tags: dict[str, str]) -> Model:
        row = _registry.insert_model(self.session, values, tags)
        return _registry.model_entities(self.session, [row])[0]

    def update_model(self, name: str, values: dict[str, Any], tags: dict[str, str] | None) -> Model:
        row = _registry.get_model_row(self.session, name)
        for key, value in values.items():
            setattr(row, key, value)
        if tags is not None:
            _registry.replace_model_tags(self.session, row.id, tags)
        self.session.flush()
        return _registry.model_entities(self.session, [row])[0]

    def create_version(
        self, name: str, values: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
    ) -> ModelVersion:
        model_id, number = self._claim(name)
        row = {**values, "model_id": model_id, "version": number, "metrics": metrics, "tags": tags}
        self.execute_later(_registry.version_inserts(name, row, metrics, tags))
        # Built from what was written rather than read back: a new version has no aliases yet.
        return version_entity(
            SimpleNamespace(**row), model_name=name, metrics=metrics, tags=tags, aliases=[]
        )

    def _claim(self, name: str) -> tuple[str, int]:
        """The model's id and the version number this write takes: predicted when this process
        knows the model's last number (the claim then goes out with the write's end, guarded),
        else claimed now."""
        known = self.claimed.get(name)
        if known is None and self.predictions is not None:
            known = self.predictions.claims.predicted(name)
        if known is None:
            model_id, number = _registry.claim_version_number(self.session, name)
            if self.predictions is not None and name not in self.claimed:
                remembered = self.predictions.claims.remembered(name)
                self.predictions.claims.observe(remembered, (model_id, number - 1))
        else:
            model_id, number = known[0], known[1] + 1
            self.execute_later([_registry.predicted_claim(model_id, name, known[1])])
            self.predicted_claims.append(name)
        self.claimed[name] = (model_id, number)
        return model_id, number

    def update_version(
        self,
        name: str,
        version: int,
        values: dict[str, Any],
        *,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        model = _registry.get_model_row(self.session, name)
        row = _registry.find_version_row(self.session, model.id, version)
        if row is None:
            self.get_version(name, version)  # raises the NotFound with its message
            raise AssertionError("unreachable")
        for key, value in values.items():
            setattr(row, key, value)
        if metrics:
            _registry.upsert_version_metrics(self.session, model.name, row, metrics)
            row.metrics = {**row.metrics, **metrics}
        if tags is not None:
            _registry.replace_version_tags(self.session, row.id, tags)
            row.tags = dict(tags)
        self.session.flush()
        return _registry.version_entities(self.session, [row])[0]

    def set_alias(
        self, name: str, alias: str, version: int, at: datetime
    ) -> tuple[Alias, int | None]:
        """Move ``alias`` to ``version``; return it and the version it pointed at before."""
        values = {"updated_at": at, "updated_by": self.actor}
        found = _registry.move_existing_alias(self.session, name, alias, version, values)
        previous: int | None
        move: Deferred | None
        if found is not None:
            previous, move = found
        else:
            ids = _registry.find_version_ids(self.session, name, version)
            if ids is None:
                self.get_version(name, version)  # raises the NotFound naming what is missing
                raise AssertionError("unreachable")
            model_id, version_id = ids
            previous, move = _registry.upsert_alias(
                self.session, model_id, alias, version_id, values
            )
        if move is not None:
            self.execute_later([move])
        moved = Alias(
            model_name=name, alias=alias, version=version, updated_at=at, updated_by=self.actor
        )
        return moved, previous

    def delete_alias(self, name: str, alias: str) -> int | None:
        model = _registry.get_model_row(self.session, name)
        return self._version_number(_registry.delete_alias(self.session, model.id, alias))

    def _version_number(self, version_id: str | None) -> int | None:
        if version_id is None:
            return None
        return self.session.scalar(
            select(ModelVersionRow.version).where(ModelVersionRow.id == version_id)
        )

    def create_run(self, values: dict[str, Any]) -> Run:
        row = RunRow(**values)
        self.session.add(row)
        self.session.flush()
        return _tracking.run_entities(self.session, [row])[0]

    def update_run(self, run_id: str, values: dict[str, Any]) -> Run:
        row = _tracking.get_run_row(self.session, run_id, lock=True)
        for key, value in values.items():
            setattr(row, key, value)
        self.session.flush()
        return _tracking.run_entities(self.session, [row])[0]

    def log_points(self, run_id: str, points: Sequence[PointRow]) -> None:
        # The foreign key checks the run exists: one round trip fewer on the logging hot path.
        try:
            _tracking.insert_points(self.session, run_id, points)
        except IntegrityError as exc:
            raise NotFound(
                f"No run with id {run_id!r}. Start one with `steward.start_run()`.",
                details={"field": "run_id", "run_id": run_id},
            ) from exc

    def add_run_artifact(self, run_id: str, path: str, digest: str, size: int) -> None:
        _tracking.upsert_run_artifact(self.session, run_id, path, digest, size)

    def create_token(self, values: dict[str, Any]) -> Token:
        row = TokenRow(**values)
        self.session.add(row)
        self.session.flush()
        return token_entity(row)

    def revoke_token(self, token_id: str) -> Token:
        result = self.session.execute(
            update(TokenRow).where(TokenRow.id == token_id).values(revoked=True)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"No token with id {token_id!r}.", details={"field": "token_id"})
        row = self.session.get(TokenRow, token_id)
        return token_entity(row)  # type: ignore[arg-type]


class SqlMetadataStore:
    """Constructed from a URL without touching the database; connects on first use."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.pool_size = pool_size

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlMetadataStore:
        return cls(settings.database_url, pool_size=settings.database.pool_size)

    @cached_property
    def engine(self) -> Engine:
        return build_engine(self.url, pool_size=self.pool_size)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @cached_property
    def _read_engine(self) -> Engine:
        """The engine as reads use it: no write lock on SQLite, no transaction on PostgreSQL.

        PostgreSQL reads run in autocommit: under READ COMMITTED every statement reads its own
        snapshot, in a transaction or not, so BEGIN and ROLLBACK bought nothing but two round
        trips. And psycopg forgets its prepared statements at every ROLLBACK, so with them no
        statement stayed prepared on a connection that had served a read (measured: every
        statement of a write was parsed and planned again).
        """
        if self.dialect == "postgresql":
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self.engine.execution_options(sqlite_begin="DEFERRED")

    @contextmanager
    def read(self) -> Iterator[SqlReadSession]:
        if _HELD.get() is not None:
            raise WriteWouldWait("a read on PostgreSQL waits on the network")
        with _translated(), Session(self._read_engine, expire_on_commit=False) as session:
            yield SqlReadSession(session)

    @cached_property
    def _nowait_engine(self) -> Engine | None:
        """The engine of `without_waiting` blocks: SQLite files only. A PostgreSQL write waits
        on the network at every round trip whatever its locks, so it has no such mode."""
        return build_nowait_sqlite_engine(self.url) if is_sqlite_file(self.url) else None

    @contextmanager
    def without_waiting(self) -> Iterator[bool]:
        """Writes in this block (this thread or task only) never wait: gives False, and changes
        nothing, where they cannot avoid it (an in-memory SQLite database).

        What it is for: a server's event loop may run a short write itself, without the two
        thread wake-ups of handing it to a worker (~0.15 ms of a ~1 ms registration on SQLite,
        ~0.4 ms of ~2.1 on PostgreSQL, measured), as long as it can never be kept waiting there.

        On a SQLite file a write takes the write lock only when it is free, and raises
        `WriteWouldWait` before anything is written when it is not, instead of waiting up to the
        busy timeout. On PostgreSQL a write is built but not sent: one that can end in one
        statement (`_one_statement`) is held (`held`) for the caller to commit on its event loop
        (`commit_held`); anything that would send a statement sooner, a read included, raises
        `WriteWouldWait` first, and so does a second write in the block. That needs a running
        event loop that opened its connections (`open_for_loop`); elsewhere gives False.
        """
        if self.dialect == "postgresql":
            if not self._loop_connections.open_here():
                yield False
                return
            held = _HELD.set(_Held())
            try:
                yield True
            finally:
                _HELD.reset(held)
            return
        if self._nowait_engine is None:
            yield False
            return
        token = _NO_WAITING.set(True)
        try:
            yield True
        finally:
            _NO_WAITING.reset(token)

    @cached_property
    def _write_engine(self) -> Engine:
        """The engine as writes use it. On PostgreSQL in autocommit mode: the write sends its
        own BEGIN, with its first statement (`deferred_begin`), and its COMMIT."""
        if self.dialect == "postgresql":
            quiet_aborted_pipelines()
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self.engine

    @contextmanager
    def write(self, actor: str) -> Iterator[SqlWriteSession]:
        """A transaction; at its end the writes left for later, the ledger's events and the
        feed's notification, then COMMIT. A failure anywhere rolls it all back.

        On PostgreSQL the transaction's BEGIN goes out with its first statement, and its end
        runs in psycopg's pipeline mode: the statements left for later, the ledger's lock, the
        events chained onto the tip this process last saw, the notification and COMMIT, in one
        round trip (`_predictions`: the tip read first when not known, or moved by another
        writer). A registration whose model's number is known is that one round trip. A round
        trip costs ~0.06 ms on some hosts and ~0.45 ms on others (a local socket on a small VM,
        measured), more to a database on another machine. Only statements with no result to
        read are pipelined: SQLAlchemy takes a pipelined query's rows for no rows at all.
        """
        held = _HELD.get()
        if held is not None:
            with _translated(), _nothing_sent(), Session() as unbound:
                writer = SqlWriteSession(unbound, actor, self._predictions)
                yield writer
                held.write = self._held_end(writer, already=held.write)
            return
        nowait = _NO_WAITING.get() and self._nowait_engine is not None
        engine = self._nowait_engine if nowait else self._write_engine
        with _translated(), Session(engine, expire_on_commit=False) as session:
            writer = SqlWriteSession(session, actor, self._predictions)
            session.begin()
            if nowait:
                _take_write_lock_or_refuse(session)
            if self.dialect != "postgresql":
                yield writer
                _end(session, writer)
                session.commit()
                return
            connection = session.connection()  # autocommit: no BEGIN yet
            with deferred_begin(connection):
                yield writer
                session.flush()  # ORM changes still pending: before the pipeline, not after COMMIT
                _end_on_postgres(session, writer)
            _learn(writer)

    def held(self) -> HeldWrite | None:
        """In a `without_waiting` block on PostgreSQL: the write its call made, not yet sent."""
        found = _HELD.get()
        return None if found is None else found.write

    async def commit_held(self, write: HeldWrite) -> None:
        """Send and commit a `held` write on the running event loop, without blocking it.

        `WriteWouldWait` when it was built on a prediction the database refused (another
        writer moved the ledger's tip or the model's number) or no connection came free in
        time: nothing was written, and the call should run again where it may wait. Any other
        refusal is translated as a write's would be.
        """
        predictions, writer = self._predictions, write.writer
        assert predictions is not None
        try:
            await self._loop_connections.execute(write.statement)
        except DBAPIError as refused:
            try:
                _refuse_a_stale_claim(refused, writer)
            except StalePrediction as stale:
                raise WriteWouldWait(str(stale)) from refused
            if _ledger.moved_tip(refused):
                predictions.tip.missed(LEDGER)
                raise WriteWouldWait("another writer moved the ledger's tip") from refused
            with _translated():
                raise
        predictions.tip.score(True)
        _learn(writer)

    def reads_on_loop(self) -> bool:
        """Whether the running event loop awaits reads itself (`list_versions_json_on_loop`):
        PostgreSQL, on a loop that opened its connections (`open_for_loop`)."""
        return self.dialect == "postgresql" and self._loop_connections.open_here()

    async def list_versions_json_on_loop(
        self, conditions: list[Condition], *, model: str | None, limit: int, offset: int
    ) -> list[bytes]:
        """`SqlReadSession.list_versions_json`, awaited on the running event loop over its own
        connections: one statement, two when the page is limited to a model (looked up first,
        as the read session does). `ReadWouldWait`, with nothing read, where the loop has no
        connections, none came free in time, or one failed (a worker reports it, or succeeds
        on a fresh connection)."""
        key = None
        if model is not None:
            found = await self._fetch_on_loop(_registry.MODEL_KEY, {"name": model})
            if not found:
                raise _registry.missing_model(model)
            key = _registry.ModelKey(*found[0])
        statement, parameters = _registry.versions_json_statement(conditions, key, limit, offset)
        return [version_json(row) for row in await self._fetch_on_loop(statement, parameters)]

    async def find_token_by_hash_on_loop(self, secret_hash: str) -> Token | None:
        """`SqlReadSession.find_token_by_hash`, awaited on the running event loop over its own
        connections; `ReadWouldWait` as `list_versions_json_on_loop`."""
        rows = await self._fetch_on_loop(_TOKEN_BY_HASH, {"secret_hash": secret_hash})
        return None if not rows else token_of_driver_row(rows[0])

    async def _fetch_on_loop(
        self, statement: DriverStatement, parameters: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        if not self.reads_on_loop():
            raise ReadWouldWait("the running event loop has no connections of its own")
        sql, bind = statement.rendered(self.engine.dialect)
        try:
            return await self._loop_connections.fetch(sql, bind(parameters))
        except OperationalError as error:
            raise ReadWouldWait(f"the event loop's connection failed: {error.orig}") from error
        except DBAPIError:
            with _translated():
                raise

    async def open_for_loop(self) -> None:
        """Open the running event loop's async connections, on which it commits held writes
        (`without_waiting`) and awaits reads (`list_versions_json_on_loop`); PostgreSQL only.
        Close them with `close_for_loop`."""
        if self.dialect == "postgresql":
            await self._loop_connections.open()

    async def close_for_loop(self) -> None:
        connections = self.__dict__.get("_loop_connections")
        if connections is not None:
            await connections.close()

    def _held_end(self, writer: SqlWriteSession, *, already: HeldWrite | None) -> HeldWrite:
        """The end of a write in a `without_waiting` block, as one statement to hold."""
        predictions = self._predictions
        assert predictions is not None
        tip = predictions.tip.predicted(LEDGER) if writer.pending else None
        if already is not None or tip is None or not _one_statement.can_run(writer.later):
            raise WriteWouldWait("the write cannot end in one statement sent at once")
        return HeldWrite(_as_one_statement(self.engine.dialect, writer, tip), writer)

    @cached_property
    def _loop_connections(self) -> LoopConnections:
        return LoopConnections(self.engine, self.pool_size)

    @cached_property
    def _predictions(self) -> Predictions | None:
        """What this process expects of a PostgreSQL database (see `_predictions`); SQLite
        reads are in-process and cheap, and its writes already hold the one write lock."""
        return Predictions() if self.dialect == "postgresql" else None

    def dispose(self) -> None:
        for name in ("engine", "_nowait_engine"):
            engine = self.__dict__.get(name)
            if engine is not None:
                engine.dispose()

    def feed_listener(self) -> FeedListener | None:
        """LISTEN/NOTIFY on PostgreSQL; None on SQLite, whose followers poll the feed."""
        if self.dialect != "postgresql":
            return None
        # Imported here: psycopg costs ~0.2 s to import, which SQLite stores never need.
        from steward.store.sql._pg_listen import PgFeedListener

        return PgFeedListener(self.engine)


# Set by `SqlMetadataStore.without_waiting` for the writes of one thread or task.
_NO_WAITING: ContextVar[bool] = ContextVar("steward_store_no_waiting", default=False)


@dataclass
class _Held:
    """The write a `without_waiting` block on PostgreSQL made, once it is built."""

    write: HeldWrite | None = None


_HELD: ContextVar[_Held | None] = ContextVar("steward_store_held", default=None)
_TOKEN_BY_HASH = DriverStatement(
    select(*TOKEN_COLUMNS).where(TokenRow.secret_hash == bindparam("secret_hash"))
)


@contextmanager
def _nothing_sent() -> Iterator[None]:
    """A held write's statements have no connection to go to (its session is bound to none):
    one tried before the end is refused as a write that would wait, with nothing sent."""
    try:
        yield
    except UnboundExecutionError as error:
        raise WriteWouldWait("a statement before the write's end waits on the network") from error


# SQLite's result codes for a lock held by another connection.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _take_write_lock_or_refuse(session: Session) -> None:
    """BEGIN IMMEDIATE now, before the write's first statement; WriteWouldWait when another
    connection holds the lock (or the one no-wait connection is in use)."""
    try:
        session.connection()
    except PoolTimeout as error:
        raise WriteWouldWait("the no-wait connection is in use") from error
    except OperationalError as error:
        if getattr(error.orig, "sqlite_errorcode", None) in (_SQLITE_BUSY, _SQLITE_LOCKED):
            raise WriteWouldWait("another connection holds SQLite's write lock") from error
        raise


def _end_on_postgres(session: Session, writer: SqlWriteSession) -> None:
    """The statements left for later, the events, the notification and COMMIT: one statement
    when nothing was sent before and the ledger's tip is predicted (`_end_in_one_statement`),
    else pipelined, one round trip when the tip is predicted, two when it is read first."""
    connection = session.connection()
    driver: Any = connection.connection.driver_connection  # the psycopg connection
    predictions = writer.predictions
    remembered = tip = None
    if predictions is not None and writer.pending:
        remembered, tip = predictions.tip.remembered(LEDGER), predictions.tip.predicted(LEDGER)
    if tip is not None and begin_pending(connection) and _one_statement.can_run(writer.later):
        assert predictions is not None
        if _end_in_one_statement(connection, writer, tip):
            predictions.tip.score(True)
            session.commit()
            return
        # Moved by another writer (scored): the events chain onto the tip read below.
        remembered = tip = None
    # An error may arrive with the pipeline's Sync, outside any SQLAlchemy call.
    with driver_errors(connection, "COMMIT"):
        try:
            with driver.pipeline():
                if take_pending_begin(connection):  # nothing was sent before the end
                    driver.execute(BEGIN)
                _end(session, writer, tip=tip)
                # Queued: the pipeline's exit sends the one Sync that ends the round trip.
                driver.execute(COMMIT)
        except Exception as error:
            if predictions is None:
                raise
            _refuse_a_stale_claim(error, writer)
            if tip is None or not _ledger.moved_tip(error):
                raise
            _chain_onto_the_true_tip(session, writer, predictions)
        else:
            if predictions is not None:
                _score_the_tip(predictions, writer, remembered, predicted=tip is not None)
    # The transaction is over: SQLAlchemy's commit only gives the connection back to the pool,
    # which must not happen while the pipeline is open.
    session.commit()


def _end_in_one_statement(
    connection: Connection, writer: SqlWriteSession, tip: tuple[int, str]
) -> bool:
    """A write that sent nothing before its end, ended in one statement (`_one_statement`),
    its events chained onto the predicted ``tip``. False when the tip had moved (nothing was
    written; the prediction is forgotten): the caller ends the write the usual way."""
    assert writer.predictions is not None
    statement = _as_one_statement(connection.dialect, writer, tip)
    try:
        _one_statement.run(connection, statement)
    except Exception as error:
        _refuse_a_stale_claim(error, writer)
        if not _ledger.moved_tip(error):
            raise
        writer.predictions.tip.missed(LEDGER)
        return False
    return True


def _as_one_statement(
    dialect: Dialect, writer: SqlWriteSession, tip: tuple[int, str]
) -> _one_statement.OneStatement:
    """The write's end as one statement (`_one_statement`), its events (``writer.events`` from
    now on) chained onto ``tip``."""
    rows = _ledger.chained(writer.actor, writer.pending, tip)
    writer.events = [Event(**row) for row in rows]
    notification = _feed.notification(writer.events)
    return _one_statement.one_statement(dialect, writer.later, rows, tip, notification)


def _chain_onto_the_true_tip(
    session: Session, writer: SqlWriteSession, predictions: Predictions
) -> None:
    """After events chained onto a predicted tip were refused (another writer moved it): back to
    the savepoint, the tip read under the lock still held, the events chained onto it, COMMIT."""
    predictions.tip.missed(LEDGER)
    connection = session.connection()
    _ledger.back_to_mark(connection)
    driver: Any = connection.connection.driver_connection
    with driver.pipeline():
        _append_events(session, writer, tip=None)
        driver.execute(COMMIT)


def _score_the_tip(
    predictions: Predictions,
    writer: SqlWriteSession,
    remembered: tuple[int, str] | None,
    *,
    predicted: bool,
) -> None:
    """A predicted tip that held is a hit; a tip read tells whether the one remembered when
    the write began would have been (`TrackRecord`)."""
    if not writer.events:
        return
    if predicted:
        predictions.tip.score(True)
    else:
        first = writer.events[0]
        predictions.tip.observe(remembered, (first.seq - 1, first.prev_hash))


def _refuse_a_stale_claim(error: Exception, writer: SqlWriteSession) -> None:
    """StalePrediction when ``error`` is a predicted claim finding the model's number moved by
    another writer (`_registry.stale_claim`)."""
    if writer.predicted_claims and _registry.stale_claim(error):
        assert writer.predictions is not None
        writer.predictions.claims.score(False)
        for name in writer.predicted_claims:
            writer.predictions.claims.forget(name)
        models = ", ".join(writer.predicted_claims)
        raise StalePrediction(f"another writer registered a version of {models}") from error


def _learn(writer: SqlWriteSession) -> None:
    """What a committed write tells of the database, for the next writes to predict."""
    if writer.predictions is None:
        return
    if writer.events:
        writer.predictions.tip.learn(LEDGER, (writer.events[-1].seq, writer.events[-1].hash))
    for name, (model_id, number) in writer.claimed.items():
        writer.predictions.claims.learn(name, (model_id, number))
    if writer.predicted_claims:
        writer.predictions.claims.score(True)


def _end(session: Session, writer: SqlWriteSession, *, tip: tuple[int, str] | None = None) -> None:
    """What a write does last, before COMMIT. ``tip``: the ledger's, predicted (PostgreSQL)."""
    connection = session.connection()
    for statement, rows in writer.later:
        statement.execute_rows(connection, rows)
    if tip is not None:
        _ledger.lock_and_mark(connection, tip)
    _append_events(session, writer, tip=tip)


def _append_events(
    session: Session, writer: SqlWriteSession, *, tip: tuple[int, str] | None
) -> None:
    writer.events = _ledger.append_events(session, writer.actor, writer.pending, tip=tip)
    _feed.notify(session, writer.events)  # sent at commit, with the events


@contextmanager
def _translated() -> Iterator[None]:
    """Driver errors that mean "the database is not there" become Unavailable."""
    try:
        yield
    except StewardError:
        raise
    except OperationalError as exc:
        raise Unavailable(
            f"The metadata database is unavailable: {exc.orig}. Check STEWARD_DATABASE_URL "
            "and that the database is running.",
        ) from exc
    except DataError as exc:
        # A value the database cannot store (PostgreSQL refuses NUL characters in text, or a
        # number out of its column's range): the caller's input, not a server fault.
        raise InvalidInput(f"The database refused a value: {exc.orig}".strip()) from exc
    except DBAPIError as exc:
        raise StewardError(f"The metadata database refused the change: {exc.orig}") from exc


__all__ = ["ModelRow", "SqlMetadataStore", "SqlReadSession", "SqlWriteSession"]
