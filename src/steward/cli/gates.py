"""``steward evaluate|gate|approve|promote|history|reproduce``: the release steps of the journey.

``gate`` exits 0 only when the verdict is passed; failed and awaiting approval both exit 3
(``GateFailed``), with the table printed first and the reason on stderr.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli._output import (
    cell,
    console,
    escape,
    note,
    number,
    parse_instant,
    print_json,
    short_time,
    success,
    table,
)
from steward.cli._state import state
from steward.errors import GateFailed
from steward.schemas.gates import DEFAULT_LATENCY_CALLS

if TYPE_CHECKING:
    from steward.domain.evaluation import Estimate, Evaluation
    from steward.domain.gates import GateReport
    from steward.schemas.gates import History

UriArgument = Annotated[str, typer.Argument(metavar="URI", help="models:/NAME/VERSION")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]

_OUTCOME_STYLE = {
    "passed": "green",
    "failed": "red",
    "pending": "yellow",
    "not_applicable": "dim",
}
_VERDICT_STYLE = {"passed": "bold green", "failed": "bold red", "awaiting_approval": "bold yellow"}


class Target(StrEnum):
    """The states a person may ask for; the gate makes the other moves."""

    STAGING = "staging"
    PRODUCTION = "production"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


# evaluate -------------------------------------------------------------------------------------
def evaluate(
    ctx: typer.Context,
    uri: UriArgument,
    data: Annotated[
        Path,
        typer.Option(
            help="The evaluation table, .parquet or .csv: features, the label, group columns.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    label: Annotated[str, typer.Option(help="The column holding the true values.")],
    groups: Annotated[
        str | None,
        typer.Option(help="Comma-separated columns to report metrics and fairness per group."),
    ] = None,
    resamples: Annotated[
        int, typer.Option(min=0, max=100_000, help="Bootstrap resamples for the intervals.")
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
    latency_calls: Annotated[
        int, typer.Option(min=1, max=100_000, help="Timed predict calls per latency case.")
    ] = DEFAULT_LATENCY_CALLS,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a version on a table through its real loader: metrics with confidence
    intervals, per-group metrics and fairness, calibration, latency."""
    columns = [c.strip() for c in (groups or "").split(",") if c.strip()]
    evaluation = state(ctx).client.evaluate(
        uri, data, label, columns, resamples=resamples, seed=seed, latency_calls=latency_calls
    )
    if as_json:
        print_json(evaluation)
        return
    _print_evaluation(evaluation)


def _print_evaluation(evaluation: Evaluation) -> None:
    summary = evaluation.summary
    rows = ([name, *_estimate(e)] for name, e in sorted(summary.metrics.items()))
    title = (
        f"models:/{evaluation.model_name}/{evaluation.version} — {summary.task.value}, "
        f"{summary.n_rows} rows, {summary.resamples} resamples"
    )
    console.print(table(title, ["metric", "value", "lower", "upper", "note"], rows))
    for report in summary.groups:
        worst = ", ".join(f"{m}: {w.group}" for m, w in sorted(report.worst_group.items()))
        parity = report.demographic_parity_difference
        console.print(
            table(
                f"Groups of {report.column!r}",
                ["group", "n", *sorted(report.groups[0].metrics)[:4]] if report.groups else [],
                (
                    [g.group, g.n, *(number(e.value) for _, e in sorted(g.metrics.items())[:4])]
                    for g in report.groups
                ),
            )
        )
        if parity is not None and parity.value is not None:
            note(f"demographic parity difference {parity.value:.4g}; worst group — {worst}")
    if evaluation.latency is not None:
        lat = evaluation.latency
        note(
            f"latency p95: {lat.single_row_ms.p95:.3g} ms per row, "
            f"{lat.batch_ms.p95:.3g} ms per batch of {lat.batch_size}"
        )
    success(f"Stored evaluation {evaluation.id} on {evaluation.data_fingerprint[:19]}…")


def _estimate(e: Estimate) -> list[str | None]:
    return [number(e.value), number(e.lower), number(e.upper), e.note]


# gate -----------------------------------------------------------------------------------------
def gate(
    ctx: typer.Context,
    uri: UriArgument,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Run this policy file instead of the one in force (its report cannot release "
            "the version).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(help="Also write the report as a standalone web page to this file."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the release gate on a version: exit 0 when it passed, 3 when it failed or still
    awaits approvals."""
    client = state(ctx).client
    text = policy.read_text(encoding="utf-8") if policy is not None else None
    report = client.gate(uri, text)
    if html is not None:
        html.write_text(client.gate_report_html(uri), encoding="utf-8")
    if as_json:
        print_json(report)
    else:
        print_report(report)
    if html is not None:
        note(f"Wrote the report to {html}.")
    _exit_on_verdict(report)


def print_report(report: GateReport) -> None:
    rows = (
        [
            f"[{_OUTCOME_STYLE.get(r.outcome.value, '')}]{r.outcome.value}[/]",
            escape(r.title),
            escape(r.detail),
        ]
        for r in report.results
    )
    title = (
        f"Gate of models:/{report.model_name}/{report.version} — policy {report.policy.name} "
        f"r{report.policy.revision}"
    )
    out = table(title, ["outcome", "check", "detail"], [])
    for row in rows:
        out.add_row(*row)
    console.print(out)
    style = _VERDICT_STYLE.get(report.verdict.value, "bold")
    console.print(f"verdict: [{style}]{report.verdict.value}[/]", soft_wrap=True)


def _exit_on_verdict(report: GateReport) -> None:
    uri = f"models:/{report.model_name}/{report.version}"
    verdict = report.verdict.value
    if verdict == "passed":
        return
    if verdict == "awaiting_approval":
        pending = [r.title for r in report.results if r.outcome.value == "pending"]
        raise GateFailed(
            f"{uri} is awaiting approval: {'; '.join(pending)}. Another person with the "
            f"approver role runs `steward approve {uri}`.",
            details={"verdict": verdict},
        )
    failed = [r.title for r in report.results if r.outcome.value == "failed"]
    raise GateFailed(
        f"The gate failed for {uri}: {'; '.join(failed)}.", details={"verdict": verdict}
    )


# approve and promote --------------------------------------------------------------------------
def approve(
    ctx: typer.Context,
    uri: UriArgument,
    comment: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a version whose gate passed (you cannot approve your own); the gate re-runs."""
    result = state(ctx).client.approve(uri, comment)
    if as_json:
        print_json(result)
        return
    success(f"{result.approval.approver} approved {uri} ({result.approval.role.value}).")
    style = _VERDICT_STYLE.get(result.report.verdict.value, "bold")
    console.print(f"verdict: [{style}]{result.report.verdict.value}[/]", soft_wrap=True)


def promote(
    ctx: typer.Context,
    uri: UriArgument,
    to: Annotated[Target, typer.Option("--to", help="The state to move the version to.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Move a version to staging, production, deprecated or archived. Staging and production
    need a passed, current gate report; production moves `champion` and deprecates the
    previous champion."""
    moves = state(ctx).client.promote(uri, to.value, reason)
    if as_json:
        print_json(moves)
        return
    for move in moves:
        success(f"v{move.version}: {move.from_status.value} → {move.to_status.value}")


# history --------------------------------------------------------------------------------------
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    at: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="ISO-8601 time (UTC unless it has an offset): the state at that moment.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which version held each alias (at TIME, or now) and the moves up to then: when, who,
    what, why."""
    moment = parse_instant(at, "--at")
    result = state(ctx).client.history(name, moment)
    if as_json:
        print_json(result)
        return
    print_history(result)


def print_history(result: History) -> None:
    when = "now" if result.at is None else f"{result.at:%Y-%m-%d %H:%M:%S %Z}"
    console.print(
        table(
            f"Aliases of {result.model} at {when}",
            ["alias", "version"],
            sorted(result.aliases.items()),
        )
    )
    rows = ([short_time(e.at), e.actor, _what(e), e.reason] for e in result.entries)
    console.print(table("Moves", ["when", "who", "what", "why"], rows))


def _what(entry: object) -> str:
    alias, version = getattr(entry, "alias", None), getattr(entry, "version", None)
    kind = getattr(entry, "kind", "")
    if alias is not None:
        return f"{alias} removed" if kind == "alias.deleted" else f"{alias} → v{version}"
    if kind == "version.approved":
        return f"v{version} approved"
    before, after = getattr(entry, "from_status", None), getattr(entry, "to_status", None)
    return f"v{version} {before} → {after}" if before else f"v{version} {after}"


# reproduce ------------------------------------------------------------------------------------
def reproduce(
    ctx: typer.Context,
    uri: UriArgument,
    repo: Annotated[
        Path | None,
        typer.Option(help="A local clone holding the recorded commit.", file_okay=False),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(min=0, help="Largest absolute difference per metric.")
    ] = 1e-6,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds before the training run is stopped.")
    ] = 3600.0,
    as_json: JsonOption = False,
) -> None:
    """Re-run the version's recorded training on this machine, compare its metrics with the
    recorded ones, and record the outcome (a server never runs it)."""
    result = state(ctx).client.reproduce(uri, repo, tolerance=tolerance, timeout=timeout)
    if as_json:
        print_json(result)
        return
    names = sorted(set(result.recorded) | set(result.reproduced))
    rows = ([n, number(result.recorded.get(n)), number(result.reproduced.get(n))] for n in names)
    console.print(table(f"Reproduction of {uri}", ["metric", "recorded", "reproduced"], rows))
    console.print(escape(result.detail), soft_wrap=True)
    if result.matched:
        success(f"Reproduced within {cell(result.tolerance)}.")
    else:
        note(f"Did not reproduce {uri}; the outcome is recorded.")
