"""``steward metric define|list``, ``steward experiment create|list|show`` and
``steward outcomes log``: the experiments product's definitions and its outcome events.

Three Typer apps, one per noun, registered by ``steward.cli.main``. Commands that read an
experiment (analysis, decisions) live in modules of their own and are added to
``experiment_app`` there. Bad input exits 2 naming the option or field, an unknown deployment,
metric or experiment 4, a second running experiment on a deployment or a taken name 5.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli._output import (
    console,
    escape,
    note,
    number,
    parse_instant,
    print_json,
    success,
    table,
)
from steward.cli._state import state
from steward.domain.experiments import (
    Aggregation,
    Correction,
    ExperimentState,
    Method,
    MetricSource,
)

if TYPE_CHECKING:
    from steward.domain.experiments import Experiment, MetricDefinition

metric_app = typer.Typer(
    no_args_is_help=True,
    help="Metrics, defined once and read by any experiment: where the values come from (an "
    "outcome, a prediction, latency or errors) and how each unit's values are aggregated.",
)
experiment_app = typer.Typer(
    no_args_is_help=True,
    help="Experiments on a deployment's split or canary: the variants are its versions.",
)
outcomes_app = typer.Typer(
    no_args_is_help=True,
    help="Outcome events (a purchase, a churn, a click) per unit or request: what experiment "
    "metrics are computed from.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]


# -- metric ----------------------------------------------------------------------------------
@metric_app.command("define")
def define(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The metric's name.")],
    source: Annotated[
        MetricSource,
        typer.Option(
            help="outcome: the outcome log; prediction: the prediction or score; "
            "latency; error: 1 when the routed model failed the request."
        ),
    ],
    event: Annotated[
        str | None,
        typer.Option(
            help="The outcome (--source outcome), or prediction|score (--source prediction)."
        ),
    ] = None,
    aggregation: Annotated[
        Aggregation,
        typer.Option(
            help="How a unit's values become its one number; any: 1 when the unit "
            "has any value > 0 (a conversion)."
        ),
    ] = Aggregation.SUM,
    covariate: Annotated[
        str | None,
        typer.Option(help="An outcome whose pre-period value per unit is CUPED's covariate."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the metric means.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Define metric NAME, or redefine it (refused while a running experiment uses it)."""
    metric = state(ctx).client.define_metric(
        name, source=source, event=event, aggregation=aggregation, covariate=covariate,
        description=description,
    )  # fmt: skip
    if as_json:
        print_json(metric)
        return
    success(f"Defined metric {metric.name}: {_reads(metric)}.")


@metric_app.command("list")
def list_metrics(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every metric defined, by name."""
    found = state(ctx).client.metrics()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No metric yet: define one with `steward metric define NAME --source ...`.")
        return
    rows = ([m.name, _reads(m), m.covariate, m.description] for m in found)
    console.print(table(None, ["metric", "reads", "covariate", "description"], rows))


def _reads(metric: MetricDefinition) -> str:
    what = {
        MetricSource.OUTCOME: f"outcome {metric.event}",
        MetricSource.PREDICTION: f"the {metric.event}",
        MetricSource.LATENCY: "latency (ms)",
        MetricSource.ERROR: "errors",
    }[metric.source]
    return f"{metric.aggregation.value} of {what} per unit"


# -- experiment ------------------------------------------------------------------------------
@experiment_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    deployment: Annotated[
        str, typer.Option("--deployment", "-d", help="The deployment whose split it reads.")
    ],
    metric: Annotated[
        str,
        typer.Option(
            metavar="M[:DIRECTION]",
            help="The primary metric (direction: increase, the default, or decrease).",
        ),
    ],
    secondary: Annotated[
        list[str] | None,
        typer.Option(metavar="M[:DIRECTION]", help="A secondary metric; repeat for several."),
    ] = None,
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            metavar="M[:DIRECTION[:TOLERANCE]]",
            help="A guardrail, e.g. latency:decrease:0.05 (may be up to 5% worse); "
            "repeat for several.",
        ),
    ] = None,
    control: Annotated[
        int | None, typer.Option(help="The control version (default: the champion).")
    ] = None,
    method: Annotated[Method, typer.Option(help="How it is read.")] = Method.FIXED,
    correction: Annotated[
        Correction, typer.Option(help="Correction across the metrics.")
    ] = Correction.HOLM,
    alpha: Annotated[float, typer.Option(help="The significance level.")] = 0.05,
    mde: Annotated[
        float | None, typer.Option(help="Relative minimum detectable effect (0.02: 2%).")
    ] = None,
    planned_units: Annotated[int | None, typer.Option(help="The planned sample size.")] = None,
    hypothesis: Annotated[str | None, typer.Option(help="What it should show.")] = None,
    start: Annotated[
        str | None,
        typer.Option(metavar="ISO-TIME", help="When it started (default: now; naive = UTC)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start experiment NAME on a deployment's split (or canary): the variants, their weights
    and the assignment come from the deployment."""
    experiment = state(ctx).client.create_experiment(
        name, deployment=deployment, metric=metric, secondary=secondary or [],
        guardrails=guardrail or [], control=control, method=method.value,
        correction=correction.value, alpha=alpha, mde=mde, planned_units=planned_units,
        hypothesis=hypothesis, start=parse_instant(start, "--start"),
    )  # fmt: skip
    if as_json:
        print_json(experiment)
        return
    success(
        f"Started experiment {experiment.name} on {experiment.deployment}: "
        f"{_variants(experiment)}; primary metric {experiment.primary.metric}."
    )


@experiment_app.command("list")
def list_experiments(
    ctx: typer.Context,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment's.")] = None,
    state_: Annotated[
        ExperimentState | None, typer.Option("--state", help="running or decided.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Experiments, latest started first."""
    found = state(ctx).client.list_experiments(deployment=deployment, state=state_)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No experiment yet: start one with `steward experiment create NAME ...`.")
        return
    rows = (
        [e.name, e.deployment, e.state, _variants(e), e.primary.metric, e.method,
         f"{e.start:%Y-%m-%d %H:%M}"]
        for e in found
    )  # fmt: skip
    columns = ["experiment", "deployment", "state", "variants", "primary", "method", "start"]
    console.print(table(None, columns, rows))


@experiment_app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment.")],
    as_json: JsonOption = False,
) -> None:
    """The experiment's design, metrics and decision."""
    experiment = state(ctx).client.get_experiment(name)
    if as_json:
        print_json(experiment)
        return
    console.print(_header(experiment), soft_wrap=True)
    rows = ([m.role, m.metric, m.direction, number(m.tolerance)] for m in experiment.metrics)
    console.print(table("Metrics", ["role", "metric", "better", "tolerance"], rows))
    if experiment.decision is None:
        note("Not decided yet.")


def _header(experiment: Experiment) -> str:
    plan = ", ".join(
        part for part in (
            None if experiment.mde is None else f"mde {experiment.mde:.2%}",
            None if experiment.planned_units is None else f"{experiment.planned_units:,} units",
        ) if part
    ) or "—"  # fmt: skip
    rows = [
        ("state", experiment.state.value),
        ("model", experiment.model_name),
        ("variants", _variants(experiment)),
        ("method", f"{experiment.method.value}, {experiment.correction.value} correction, "
                   f"alpha {experiment.alpha:g}"),
        ("plan", plan),
        ("start", f"{experiment.start:%Y-%m-%d %H:%M} UTC by {experiment.created_by}"),
        ("end", "—" if experiment.end is None else f"{experiment.end:%Y-%m-%d %H:%M} UTC"),
        ("hypothesis", experiment.hypothesis or "—"),
    ]  # fmt: skip
    decision = experiment.decision
    if decision is not None:
        shipped = f" v{decision.variant}" if decision.variant is not None else ""
        rows.append(("decision", f"{decision.action.value}{shipped} by {decision.decided_by}: "
                                 f"{decision.reason}"))  # fmt: skip
    lines = [f"[bold]{escape(experiment.name)}[/bold] on {escape(experiment.deployment)}"]
    lines += [f"  [dim]{key:<11}[/dim]{escape(value)}" for key, value in rows]
    return "\n".join(lines)


def _variants(experiment: Experiment) -> str:
    weights = experiment.weights or {}
    total = sum(weights.values()) or 1.0
    parts = []
    for version in experiment.variants:
        share = f" {weights[version] / total:.0%}" if version in weights else ""
        control = " control" if version == experiment.control else ""
        parts.append(f"v{version}{share}{control}")
    return ", ".join(parts)


# -- outcomes --------------------------------------------------------------------------------
@outcomes_app.command("log")
def log(
    ctx: typer.Context,
    # No `exists=True`: a missing file gets the same one-line error (exit 2) as any bad input.
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A .parquet or .csv file of outcome events.")
    ],
    name_column: Annotated[str, typer.Option(help="The column naming the outcome.")] = "name",
    value_column: Annotated[str, typer.Option(help="The column of values.")] = "value",
    unit_column: Annotated[str, typer.Option(help="The column of unit ids.")] = "unit_id",
    request_column: Annotated[
        str, typer.Option(help="The column of request ids (for events that follow a request).")
    ] = "request_id",
    time_column: Annotated[
        str, typer.Option(help="The column of times (default: now; naive = UTC).")
    ] = "timestamp",
    as_json: JsonOption = False,
) -> None:
    """Log the outcome events in FILE: all or nothing, one file per outcome and day in the
    outcome log, one ledger event. Each event names its unit or its request, not both."""
    receipt = state(ctx).client.log_outcomes(
        file, name_column=name_column, value_column=value_column, unit_column=unit_column,
        request_column=request_column, time_column=time_column,
    )  # fmt: skip
    if as_json:
        print_json(receipt)
        return
    per_name = ", ".join(f"{name} {count:,}" for name, count in receipt.outcomes.items())
    success(f"Logged {receipt.rows:,} outcome events ({per_name}) in {len(receipt.files)} "
            "file(s).")  # fmt: skip
