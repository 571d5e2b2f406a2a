"""Metric definitions and experiments in the store, and the rules every writer is held to.

A metric is defined once by name (``metric_definitions``); redefining it is refused while a
running experiment uses it, since its results would change under it. An experiment
(``experiments``) runs on a deployment's split or canary: its variants are exactly the versions
the deployment routes to there, each metric it names is defined, and a deployment runs one
experiment at a time (a partial unique index keeps it so when two writers race). The metric
rows an experiment names are locked while it is created, and a redefinition locks its row too,
so a redefinition cannot slip in between the check and the commit on PostgreSQL.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.domain.deployments import Deployment
from steward.domain.experiments import (
    Decision,
    Experiment,
    ExperimentState,
    MetricDefinition,
)
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.store.sql import _deployments
from steward.store.sql._convert import checked_input
from steward.store.sql._incidents import insert_or_nothing
from steward.store.sql.tables import ExperimentRow, MetricDefinitionRow

_METRICS: Any = MetricDefinitionRow.__table__
_EXPERIMENTS: Any = ExperimentRow.__table__
# The experiment's fields kept in columns; every other field is its ``spec``.
_COLUMNS = frozenset({
    "name", "deployment", "model_name", "state", "decision", "start", "end", "created_at",
    "created_by",
})  # fmt: skip
# What update_experiment may change: the rest is the plan, fixed when the experiment starts.
EXPERIMENT_CHANGEABLE = frozenset({"state", "decision", "end", "hypothesis"})
# Passes of the insert loop before a writer gives up on a name or deployment that keeps moving.
_ATTEMPTS = 20


# rows to entities -----------------------------------------------------------------------------
def metric_entity(row: MetricDefinitionRow) -> MetricDefinition:
    return MetricDefinition.model_validate(
        {
            **row.definition,
            "name": row.name,
            "created_at": row.created_at,
            "created_by": row.created_by,
        }
    )


def experiment_entity(row: ExperimentRow) -> Experiment:
    return Experiment.model_validate(
        {
            **row.spec,
            "name": row.name,
            "deployment": row.deployment,
            "model_name": row.model_name,
            "state": row.state,
            "decision": row.decision,
            "start": row.start,
            "end": row.end,
            "created_at": row.created_at,
            "created_by": row.created_by,
        }
    )


def _experiment_values(experiment: Experiment) -> dict[str, Any]:
    decision = experiment.decision
    return {
        "name": experiment.name,
        "deployment": experiment.deployment,
        "model_name": experiment.model_name,
        "state": experiment.state.value,
        "spec": experiment.model_dump(mode="json", exclude=set(_COLUMNS)),
        "decision": None if decision is None else decision.model_dump(mode="json"),
        "start": experiment.start,
        "end": experiment.end,
        "created_at": experiment.created_at,
        "created_by": experiment.created_by,
    }


def _definition(metric: MetricDefinition) -> dict[str, Any]:
    return metric.model_dump(mode="json", exclude={"name", "created_at", "created_by"})


# checks ---------------------------------------------------------------------------------------
def _utc(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput(
            f"The {field!r} time must be timezone-aware (UTC); got the naive {value.isoformat()}.",
            field=field,
        )
    return value.astimezone(UTC)


def _aware(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else _utc(value, field)


def _finite(value: float | None, field: str) -> None:
    if value is not None and not math.isfinite(value):
        raise InvalidInput(f"The {field!r} must be a finite number; got {value}.", field=field)


def deployment_variants(deployment: Deployment) -> list[int] | None:
    """The versions an experiment on ``deployment`` compares: its split's, or its champion and
    canary; None when it routes every unit to its champion."""
    if deployment.split:
        return sorted(deployment.split)
    if deployment.canary is not None:
        return sorted({deployment.champion, deployment.canary})
    return None


def _check_new(experiment: Experiment) -> Experiment:
    """The experiment as it may be stored: running, undecided, times in UTC, numbers finite,
    each metric named once."""
    if experiment.state is not ExperimentState.RUNNING or experiment.decision is not None:
        raise InvalidInput(
            "A new experiment is running and undecided; decide it after it has run.",
            field="state",
        )
    _finite(experiment.mde, "mde")
    for version, weight in (experiment.weights or {}).items():
        if not (math.isfinite(weight) and weight > 0):
            raise InvalidInput(
                f"The weight of version {version} must be a number > 0; got {weight}.",
                field=f"weights.{version}",
            )
    seen: set[str] = set()
    for i, item in enumerate(experiment.metrics):
        if item.metric in seen:
            raise InvalidInput(
                f"Metric {item.metric!r} is named twice; an experiment reads each metric in "
                "one role (primary, secondary or guardrail).",
                field=f"metrics.{i}.metric",
            )
        seen.add(item.metric)
    times = {name: _aware(getattr(experiment, name), name)
             for name in ("start", "end", "created_at")}  # fmt: skip
    if times["end"] is not None and times["start"] is not None and times["end"] < times["start"]:
        raise InvalidInput("An experiment cannot end before it starts.", field="end")
    return experiment.model_copy(update=times)


def _check_design(deployment: Deployment, experiment: Experiment) -> None:
    """The experiment compares exactly the versions the deployment splits its units between."""
    if deployment.model_name != experiment.model_name:
        raise InvalidInput(
            f"Deployment {deployment.name!r} serves model {deployment.model_name!r}, not "
            f"{experiment.model_name!r}.",
            field="model_name",
        )
    expected = deployment_variants(deployment)
    if expected is None:
        raise InvalidInput(
            f"Deployment {deployment.name!r} sends every unit to its champion "
            f"v{deployment.champion}: there is nothing to compare. Deploy a split "
            "(`steward deploy ... --split 1=0.5,2=0.5`) or a canary first.",
            field="deployment",
        )
    if experiment.variants != expected:
        raise InvalidInput(
            f"The variants of an experiment on deployment {deployment.name!r} are the versions "
            f"it routes units to, {expected}; got {experiment.variants}.",
            field="variants",
            details={"expected": expected},
        )
    if experiment.weights is not None and sorted(experiment.weights) != expected:
        raise InvalidInput(
            f"The weights name versions {sorted(experiment.weights)}; the variants are {expected}.",
            field="weights",
        )


# metrics --------------------------------------------------------------------------------------
def _missing_metric(name: str, field: str = "name") -> NotFound:
    return NotFound(
        f"No metric named {name!r}. Define it with `steward metric define {name} --source ...`, "
        "or list them with `steward metric list`.",
        details={"field": field, "metric": name},
    )


def get_metric(session: Session, name: str) -> MetricDefinition:
    row = session.get(MetricDefinitionRow, name)
    if row is None:
        raise _missing_metric(name)
    return metric_entity(row)


def list_metrics(session: Session) -> list[MetricDefinition]:
    rows = session.scalars(select(MetricDefinitionRow).order_by(MetricDefinitionRow.name))
    return [metric_entity(row) for row in rows]


def _locked_metrics(session: Session, names: list[str]) -> dict[str, MetricDefinitionRow]:
    query = (
        select(MetricDefinitionRow)
        .where(MetricDefinitionRow.name.in_(names))
        .order_by(MetricDefinitionRow.name)  # one lock order for every writer: no deadlock
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.name: row for row in session.scalars(query)}


def _running_users(session: Session, metric: str) -> list[str]:
    """The running experiments that name ``metric``."""
    rows = session.execute(
        select(ExperimentRow.name, ExperimentRow.spec)
        .where(ExperimentRow.state == ExperimentState.RUNNING.value)
        .order_by(ExperimentRow.name)
    )
    return [
        name
        for name, spec in rows
        if any(item.get("metric") == metric for item in spec.get("metrics") or [])
    ]


def put_metric(session: Session, metric: MetricDefinition) -> tuple[MetricDefinition, str | None]:
    """Define ``metric`` or redefine it; the stored metric and what happened: ``"defined"``,
    ``"redefined"``, or None when the definition equals the stored one (nothing changes).

    A redefinition keeps the first definition's ``created_at`` and ``created_by`` (the row's
    ``updated_*`` say who changed it last). Conflict while a running experiment uses the metric.
    """
    at = _utc(metric.created_at, "created_at")
    definition = _definition(metric)
    for _ in range(_ATTEMPTS):
        row = _locked_metrics(session, [metric.name]).get(metric.name)
        if row is not None:
            if row.definition == definition:
                return metric_entity(row), None
            _refuse_redefinition(session, metric.name)
            row.definition, row.updated_at, row.updated_by = definition, at, metric.created_by
            session.flush()
            return metric_entity(row), "redefined"
        values = {"name": metric.name, "definition": definition, "created_at": at,
                  "created_by": metric.created_by, "updated_at": at,
                  "updated_by": metric.created_by}  # fmt: skip
        new = insert_or_nothing(session, _METRICS).values(values).returning(_METRICS.c.name)
        if session.connection().execute(new).first() is not None:
            return metric.model_copy(update={"created_at": at}), "defined"
        # A concurrent writer defined it first: the next pass locks and redefines theirs.
    raise _busy(f"metric {metric.name!r}")


def _refuse_redefinition(session: Session, name: str) -> None:
    users = _running_users(session, name)
    if users:
        raise Conflict(
            f"Metric {name!r} is used by the running experiment(s) {', '.join(users)}: "
            "redefining it would change their results. Define a metric under a new name, or "
            "decide those experiments first.",
            details={"field": "name", "metric": name, "experiments": users},
        )


def _busy(what: str) -> Conflict:
    return Conflict(
        f"The {what} kept changing under concurrent writers; try again.",
        details={"field": "name"},
    )


# experiments ----------------------------------------------------------------------------------
def _missing_experiment(name: str) -> NotFound:
    return NotFound(
        f"No experiment named {name!r}. List them with `steward experiment list`.",
        details={"field": "name", "name": name},
    )


def get_experiment(session: Session, name: str) -> Experiment:
    row = session.get(ExperimentRow, name)
    if row is None:
        raise _missing_experiment(name)
    return experiment_entity(row)


def list_experiments(
    session: Session, *, deployment: str | None, state: ExperimentState | None
) -> list[Experiment]:
    """Latest started first."""
    query = select(ExperimentRow).order_by(ExperimentRow.start.desc(), ExperimentRow.name)
    if deployment is not None:
        query = query.where(ExperimentRow.deployment == deployment)
    if state is not None:
        query = query.where(ExperimentRow.state == state.value)
    return [experiment_entity(row) for row in session.scalars(query)]


def _locked_deployment(session: Session, name: str) -> Deployment:
    """The deployment, its row locked until commit: a concurrent deploy cannot change its
    split between this check and the experiment's insert."""
    if _deployments.find_row(session, name, lock=True) is None:
        raise NotFound(
            f"No deployment named {name!r}. List them with `steward deployments`.",
            details={"field": "deployment", "deployment": name},
        )
    return _deployments.get(session, name)


def _check_metrics(session: Session, experiment: Experiment) -> None:
    names = [item.metric for item in experiment.metrics]
    found = _locked_metrics(session, sorted(set(names)))
    for i, name in enumerate(names):
        if name not in found:
            raise _missing_metric(name, f"metrics.{i}.metric")


def _running_on(session: Session, deployment: str) -> str | None:
    return session.scalar(
        select(ExperimentRow.name).where(
            ExperimentRow.deployment == deployment,
            ExperimentRow.state == ExperimentState.RUNNING.value,
        )
    )


def create_experiment(session: Session, experiment: Experiment) -> Experiment:
    """Store a new running experiment (see the module's rules); the experiment as stored."""
    experiment = _check_new(experiment)
    deployment = _locked_deployment(session, experiment.deployment)
    _check_design(deployment, experiment)
    _check_metrics(session, experiment)
    values = _experiment_values(experiment)
    for _ in range(_ATTEMPTS):
        if session.scalar(select(ExperimentRow.name).where(ExperimentRow.name == experiment.name)):
            raise AlreadyExists(
                f"An experiment named {experiment.name!r} already exists; experiments keep "
                "their names (pick another, e.g. with a date or a version).",
                details={"field": "name", "name": experiment.name},
            )
        running = _running_on(session, experiment.deployment)
        if running is not None:
            raise Conflict(
                f"Deployment {experiment.deployment!r} already runs experiment {running!r}; "
                "a deployment runs one experiment at a time. Decide that one first.",
                details={"field": "deployment", "experiment": running},
            )
        new = insert_or_nothing(session, _EXPERIMENTS).values(values)
        if session.connection().execute(new.returning(_EXPERIMENTS.c.name)).first() is not None:
            return experiment
        # A concurrent writer took the name or the deployment first: the next pass names it.
    raise _busy(f"experiment {experiment.name!r}")


def update_experiment(
    session: Session, name: str, values: dict[str, Any]
) -> tuple[Experiment, Experiment]:
    """Apply ``values`` (fields of EXPERIMENT_CHANGEABLE); the experiment before and after.

    A decided experiment stays decided; times are stored in UTC.
    """
    fixed = sorted(set(values) - EXPERIMENT_CHANGEABLE)
    if fixed:
        raise InvalidInput(
            f"An experiment's {', '.join(fixed)} cannot be changed once it runs; it may change "
            f"{', '.join(sorted(EXPERIMENT_CHANGEABLE))}.",
            field=fixed[0],
        )
    row = _locked_experiment(session, name)
    before = experiment_entity(row)
    after = checked_input(Experiment, {**before.model_dump(), **values})
    if before.state is ExperimentState.DECIDED and "decision" in values:
        raise Conflict(
            f"Experiment {name!r} was already decided "
            f"({before.decision.action.value if before.decision else 'ended'}).",
            details={"field": "name", "state": before.state.value},
        )
    if before.state is ExperimentState.DECIDED and after.state is ExperimentState.RUNNING:
        raise Conflict(
            f"Experiment {name!r} is decided; start a new experiment to test again.",
            details={"field": "state", "state": before.state.value},
        )
    after = after.model_copy(
        update={"end": _aware(after.end, "end"), "decision": _utc_decision(after.decision)}
    )
    if after.end is not None and after.end < after.start:
        raise InvalidInput("An experiment cannot end before it starts.", field="end")
    stored = _experiment_values(after)
    for key in ("state", "decision", "end", "spec"):
        setattr(row, key, stored[key])
    try:
        session.flush()
    except IntegrityError as exc:  # the one-running rule: see create_experiment
        raise Conflict(
            f"Deployment {after.deployment!r} already runs another experiment.",
            details={"field": "state"},
        ) from exc
    return before, after


def _utc_decision(decision: Decision | None) -> Decision | None:
    if decision is None:
        return None
    return decision.model_copy(
        update={"decided_at": _aware(decision.decided_at, "decision.decided_at")}
    )


def _locked_experiment(session: Session, name: str) -> ExperimentRow:
    query = select(ExperimentRow).where(ExperimentRow.name == name).with_for_update()
    row = session.scalars(query.execution_options(populate_existing=True)).first()
    if row is None:
        raise _missing_experiment(name)
    return row


# ledger payloads ------------------------------------------------------------------------------
def created_payload(experiment: Experiment) -> dict[str, Any]:
    body = experiment.model_dump(
        mode="json", include={"deployment", "control", "variants", "metrics", "method",
                              "planned_units"},
    )  # fmt: skip
    return {**body, "model": experiment.model_name}


# the session mixins ---------------------------------------------------------------------------
class ExperimentReads:
    session: Session

    def get_metric(self, name: str) -> MetricDefinition:
        return get_metric(self.session, name)

    def list_metrics(self) -> list[MetricDefinition]:
        return list_metrics(self.session)

    def get_experiment(self, name: str) -> Experiment:
        return get_experiment(self.session, name)

    def list_experiments(
        self, *, deployment: str | None = None, state: ExperimentState | None = None
    ) -> list[Experiment]:
        return list_experiments(self.session, deployment=deployment, state=state)


class ExperimentWrites(ExperimentReads):
    """Each write records its event with the change: metric.defined (subject: the metric),
    experiment.created and the kind update_experiment is given (subject: the experiment)."""

    actor: str

    def record(
        self, kind: str, subject_type: str, subject_id: str, payload: dict[str, Any] | None = None
    ) -> None: ...

    def put_metric(self, metric: MetricDefinition) -> MetricDefinition:
        """Define a metric, or redefine one no running experiment uses (Conflict otherwise).
        A definition equal to the stored one changes nothing and records nothing."""
        stored, change = put_metric(self.session, metric)
        if change is not None:
            payload = {**_definition(stored), "redefined": change == "redefined"}
            self.record("metric.defined", "metric", stored.name, payload)
        return stored

    def create_experiment(self, experiment: Experiment) -> Experiment:
        """AlreadyExists for a taken name; NotFound for an unknown deployment or metric;
        Conflict when the deployment already runs an experiment; InvalidInput naming
        ``variants`` unless they are the deployment's split (or champion and canary)."""
        stored = create_experiment(self.session, experiment)
        self.record("experiment.created", "experiment", stored.name, created_payload(stored))
        return stored

    def update_experiment(
        self, name: str, values: dict[str, Any], *, kind: str, payload: dict[str, Any]
    ) -> Experiment:
        """Apply ``values`` (state, decision, end, hypothesis) and record ``kind`` with
        ``payload``; Conflict to make a decided experiment run again."""
        _, after = update_experiment(self.session, name, values)
        self.record(kind, "experiment", name, payload)
        return after
