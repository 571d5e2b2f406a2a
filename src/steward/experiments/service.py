"""ExperimentService: metrics defined once, experiments created on a deployment's split or
canary, and the outcome events their metrics read.

The store keeps the rules that must hold whoever writes (a running experiment per deployment,
variants that are the deployment's, metrics that exist, no redefinition under a running
experiment); this service fills in what a request leaves out (the model, the variants, the
design and the control from the deployment; the start) and checks outcome events before they
reach the outcome log. Reading experiments (the analysis) and deciding them are functions over
this service's ``store``, ``outcome_root`` and ``prediction_root``, in modules of their own,
so they grow without changing this class. docs/experiments.md gives every convention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pyarrow as pa
from pydantic import BaseModel

from steward.domain.assignment import canary_salt
from steward.domain.clock import utcnow
from steward.domain.deployments import Deployment
from steward.domain.experiments import Experiment, ExperimentState, MetricDefinition
from steward.errors import InvalidInput, NotFound
from steward.experiments._outcomes import counts, validated_outcomes
from steward.schemas import parse
from steward.schemas.experiments import (
    ExperimentCreate,
    MetricBody,
    OutcomeReceipt,
    OutcomeSource,
)
from steward.store.base import MetadataStore, ReadSession
from steward.store.outcome_log import SOURCES, delete_files, read_outcomes, write_outcomes

OUTCOMES_EVENT = "outcomes.logged"
B = TypeVar("B", bound=BaseModel)


class ExperimentService:
    def __init__(self, store: MetadataStore, outcome_root: str, prediction_root: str) -> None:
        self.store = store
        self.outcome_root = outcome_root
        self.prediction_root = prediction_root

    # metrics ------------------------------------------------------------------------------
    def define_metric(
        self, actor: str, name: str, body: MetricBody | Mapping[str, Any]
    ) -> MetricDefinition:
        """Define metric ``name`` (or redefine it: Conflict while a running experiment uses
        it); InvalidInput naming the field for a bad definition."""
        checked = _body(MetricBody, body)
        metric = parse(
            MetricDefinition,
            {**checked.model_dump(), "name": name, "created_at": utcnow(), "created_by": actor},
        )
        with self.store.write(actor) as tx:
            return tx.put_metric(metric)

    def metric(self, name: str) -> MetricDefinition:
        with self.store.read() as rx:
            return rx.get_metric(name)

    def metrics(self) -> list[MetricDefinition]:
        with self.store.read() as rx:
            return rx.list_metrics()

    # experiments --------------------------------------------------------------------------
    def create(self, actor: str, body: ExperimentCreate | Mapping[str, Any]) -> Experiment:
        """Create a running experiment on ``body.deployment``'s split or canary, in one
        transaction with reading the deployment (a concurrent deploy cannot slip between)."""
        checked = _body(ExperimentCreate, body)
        with self.store.write(actor) as tx:
            deployment = _deployment(tx, checked.deployment)
            experiment = parse(Experiment, _experiment_fields(checked, deployment, actor))
            return tx.create_experiment(experiment)

    def get(self, name: str) -> Experiment:
        with self.store.read() as rx:
            return rx.get_experiment(name)

    # outcomes -----------------------------------------------------------------------------
    def log_outcomes(
        self, actor: str, outcomes: object, *, source: OutcomeSource = "sdk"
    ) -> OutcomeReceipt:
        """Log outcome events: all or nothing, one file per (outcome, day), one
        ``outcomes.logged`` event. ``outcomes``: rows (mappings of name, value, unit_id or
        request_id, timestamp), a pyarrow Table, a pandas DataFrame or a .parquet/.csv path.
        An outcome needs no metric defined first: events may precede their metric."""
        if source not in SOURCES:
            raise InvalidInput(
                f"The source must be one of {', '.join(SOURCES)}; got {source!r}.", field="source"
            )
        logged_at = utcnow()
        table = validated_outcomes(outcomes, logged_at)
        files = write_outcomes(self.outcome_root, table, logged_at=logged_at, source=source)
        per_name = counts(table)
        subject = next(iter(per_name)) if len(per_name) == 1 else "*"
        payload = {"rows": table.num_rows, "outcomes": per_name, "files": files, "source": source}
        try:
            with self.store.write(actor) as tx:
                tx.record(OUTCOMES_EVENT, "outcome", subject, payload)
        except BaseException:
            delete_files(self.outcome_root, files)  # no ledger event, no outcome files
            raise
        return OutcomeReceipt(
            rows=table.num_rows, outcomes=per_name, files=files, source=source,
            logged_at=logged_at,
        )  # fmt: skip

    def read_outcomes(
        self,
        names: str | Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """The events of ``names`` with ``since <= timestamp < until`` (``read_outcomes``)."""
        return read_outcomes(self.outcome_root, names, since, until, columns)

    def list(
        self, *, deployment: str | None = None, state: ExperimentState | None = None
    ) -> list[Experiment]:
        """Experiments, latest started first."""
        with self.store.read() as rx:
            return rx.list_experiments(deployment=deployment, state=state)


def _body(schema: type[B], body: B | Mapping[str, Any]) -> B:
    return body if isinstance(body, schema) else parse(schema, dict(body))


def _deployment(rx: ReadSession, name: str) -> Deployment:
    try:
        return rx.get_deployment(name)
    except NotFound as exc:
        raise NotFound(exc.message, details={**exc.details, "field": "deployment"}) from None


def design(deployment: Deployment) -> tuple[list[int], dict[int, float], str]:
    """The variants, their weights and the assignment hash's salt of an experiment on
    ``deployment``: its split's (salted by its experiment name), or its champion and canary
    (the canary's share, salted as the gateway salts a canary). InvalidInput naming the
    deployment when it sends every unit to its champion."""
    if deployment.split:
        salt = deployment.experiment or deployment.name
        return sorted(deployment.split), dict(sorted(deployment.split.items())), salt
    if deployment.canary is not None and deployment.canary_share is not None:
        share = deployment.canary_share
        weights = {deployment.champion: 1.0 - share, deployment.canary: share}
        return sorted(weights), dict(sorted(weights.items())), canary_salt(deployment.canary)
    raise InvalidInput(
        f"Deployment {deployment.name!r} sends every unit to its champion v{deployment.champion}: "
        "there is nothing to compare. Deploy a split (`steward deploy ... --split 1=0.5,2=0.5`) "
        "or a canary first.",
        field="deployment",
    )


def _control(requested: int | None, deployment: Deployment, variants: list[int]) -> int:
    if requested is None:
        return deployment.champion if deployment.champion in variants else variants[0]
    if requested not in variants:
        raise InvalidInput(
            f"The control must be one of the variants {variants} of deployment "
            f"{deployment.name!r}; got {requested}.",
            field="control",
        )
    return requested


def _experiment_fields(
    body: ExperimentCreate, deployment: Deployment, actor: str
) -> dict[str, Any]:
    variants, weights, salt = design(deployment)
    now = utcnow()
    return {
        **body.model_dump(exclude={"control", "start"}),
        "model_name": deployment.model_name,
        "variants": variants,
        "weights": weights,
        "salt": salt,
        "control": _control(body.control, deployment, variants),
        "start": body.start or now,
        "created_at": now,
        "created_by": actor,
    }


__all__ = ["OUTCOMES_EVENT", "ExperimentService", "design"]
