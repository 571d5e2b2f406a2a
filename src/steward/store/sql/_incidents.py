"""Incidents in the store: numbered 1, 2, 3 ... by the store, at most one active per model.

Both rules hold with several replicas writing at once. The number is the highest one plus
one, inserted with ON CONFLICT DO NOTHING; the partial unique index on the models of active
incidents is a conflict too. A writer whose insert did nothing looks again: it then sees the
other writer's committed incident, and either takes the next number or, when that incident is
the model's active one, is refused with Conflict. The ledger lock does not serialize this on
PostgreSQL: it is taken only when the events are chained, just before commit.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Insert, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.domain.clock import utcnow
from steward.domain.incidents import Incident, IncidentState
from steward.errors import Conflict, InvalidInput, NotFound
from steward.store.base import check_page_size
from steward.store.sql import _deployments, _registry
from steward.store.sql._convert import checked_input, incident_entity
from steward.store.sql.tables import IncidentRow

_INCIDENTS: Any = IncidentRow.__table__
# What update_incident may change: the rest is fixed when the incident opens.
CHANGEABLE = frozenset(
    {
        "title",
        "state",
        "severity",
        "owner",
        "mitigated_at",
        "resolved_at",
        "updated_at",
        "postmortem",
    }
)


def insert_or_nothing(session: Session, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING on this session's dialect: a row that would break any
    unique index is not inserted, and RETURNING returns nothing for it."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def missing(incident_id: int) -> NotFound:
    return NotFound(
        f"No incident INC-{incident_id}. List incidents with `steward incident list`.",
        details={"field": "incident_id", "incident_id": incident_id},
    )


def find_row(session: Session, incident_id: int, *, lock: bool = False) -> IncidentRow | None:
    query = select(IncidentRow).where(IncidentRow.id == incident_id)
    if lock:  # the stored row, not one this session read before the lock
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def get_row(session: Session, incident_id: int, *, lock: bool = False) -> IncidentRow:
    row = find_row(session, incident_id, lock=lock)
    if row is None:
        raise missing(incident_id)
    return row


def list_incidents(
    session: Session, *, model_name: str | None, state: IncidentState | None, limit: int
) -> list[Incident]:
    """Newest (highest number) first."""
    query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(check_page_size(limit))
    if model_name is not None:
        query = query.where(IncidentRow.model_name == model_name)
    if state is not None:
        query = query.where(IncidentRow.state == state.value)
    return [incident_entity(row) for row in session.scalars(query)]


def active(session: Session, model_name: str) -> Incident | None:
    row = session.scalars(
        select(IncidentRow).where(
            IncidentRow.model_name == model_name,
            IncidentRow.state != IncidentState.RESOLVED.value,
        )
    ).first()
    return None if row is None else incident_entity(row)


def create(session: Session, values: dict[str, Any], actor: str) -> Incident:
    """Open an incident numbered max + 1; Conflict when its model already has an active one.

    ``values`` holds the Incident's fields but ``id``; ``state`` defaults to open, ``owner``
    to the model's owner, ``opened_by`` to the writer and ``updated_at`` to ``opened_at``.
    """
    draft = _draft(session, values, actor)
    row = _row_values(draft)
    while True:
        current = active(session, draft.model_name)
        if current is not None:
            raise _already_active(current)
        row["id"] = _next_id(session)
        inserted = session.connection().execute(
            insert_or_nothing(session, _INCIDENTS).values(row).returning(_INCIDENTS.c.id)
        )
        if inserted.first() is not None:
            return draft.model_copy(update={"id": row["id"]})
        # A concurrent writer committed the number or the model's active incident first: the
        # next pass sees it (each statement reads what is committed when it starts).


def _draft(session: Session, values: dict[str, Any], actor: str) -> Incident:
    """The incident to insert, numbered 0 until it gets its number; NotFound for an unknown
    model or deployment."""
    model_name = values.get("model_name")
    if not isinstance(model_name, str):
        raise InvalidInput("An incident needs the name of its model.", field="model_name")
    model = _registry.get_model_row(session, model_name)
    deployment = values.get("deployment")
    if deployment is not None:
        served = _deployments.get(session, str(deployment)).model_name
        if served != model_name:
            raise InvalidInput(
                f"Deployment {deployment!r} serves model {served!r}, not {model_name!r}.",
                field="deployment",
            )
    defaults: dict[str, Any] = {
        "state": IncidentState.OPEN, "owner": model.owner, "opened_by": actor,
        "updated_at": values.get("opened_at"), "postmortem": {},
    }  # fmt: skip
    return checked_input(Incident, {**defaults, **values, "id": 0})


def _next_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(IncidentRow.id), 0))) or 0) + 1


def _row_values(incident: Incident) -> dict[str, Any]:
    return {
        **incident.model_dump(),
        "state": incident.state.value,
        "severity": incident.severity.value,
    }


def _already_active(current: Incident) -> Conflict:
    return Conflict(
        f"Model {current.model_name!r} already has an active incident, INC-{current.id} "
        f"({current.state.value}): new alerts join it. Resolve it before opening another.",
        details={"field": "model_name", "incident_id": current.id, "state": current.state.value},
    )


def update(session: Session, incident_id: int, values: dict[str, Any]) -> Incident:
    """Apply ``values`` (fields of CHANGEABLE) to the locked row; ``updated_at`` defaults to
    now. The state machine is the service's: only the one-active rule is kept here."""
    fixed = sorted(set(values) - CHANGEABLE)
    if fixed:
        raise InvalidInput(
            f"An incident's {', '.join(fixed)} cannot be changed; it may change "
            f"{', '.join(sorted(CHANGEABLE))}.",
            field=fixed[0],
        )
    row = get_row(session, incident_id, lock=True)
    changed = checked_input(
        Incident,
        {**incident_entity(row).model_dump(), "updated_at": utcnow(), **values},
    )
    stored = _row_values(changed)
    for key in CHANGEABLE:
        setattr(row, key, stored[key])
    try:
        session.flush()
    except IntegrityError as exc:  # made active again while another incident of it is
        raise Conflict(
            f"Model {changed.model_name!r} already has another active incident; INC-"
            f"{incident_id} cannot become {changed.state.value} until that one is resolved.",
            details={"field": "state", "incident_id": incident_id},
        ) from exc
    return changed


class IncidentReads:
    session: Session

    def get_incident(self, incident_id: int) -> Incident:
        return incident_entity(get_row(self.session, incident_id))

    def list_incidents(
        self,
        *,
        model_name: str | None = None,
        state: IncidentState | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        return list_incidents(self.session, model_name=model_name, state=state, limit=limit)

    def active_incident(self, model_name: str) -> Incident | None:
        """The model's open or mitigated incident, if it has one (at most one at a time)."""
        return active(self.session, model_name)


class IncidentWrites(IncidentReads):
    actor: str

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None: ...

    def create_incident(self, values: dict[str, Any]) -> Incident:
        """Open an incident (see ``create``); records incident.opened."""
        incident = create(self.session, values, self.actor)
        self.record(
            "incident.opened", "incident", str(incident.id),
            {"model": incident.model_name, "deployment": incident.deployment,
             "severity": incident.severity.value, "title": incident.title,
             "owner": incident.owner},
        )  # fmt: skip
        return incident

    def update_incident(
        self, incident_id: int, values: dict[str, Any], *, kind: str, payload: dict[str, Any]
    ) -> Incident:
        """Apply ``values`` and record event ``kind`` with ``payload`` (the service checks the
        state machine before calling)."""
        incident = update(self.session, incident_id, values)
        # As JSON reads it back (datetimes as ISO text): the ledger hashes what it is given,
        # and a datetime would hash differently from the text stored for it.
        self.record(kind, "incident", str(incident_id), to_jsonable_python(payload))
        return incident
