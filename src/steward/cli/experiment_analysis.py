"""``steward experiment analyze`` and ``steward experiment decide``: read an experiment, and
record what a person decided (and, when asked, act on the deployment).

``analyze`` prints, in this order: the sample-ratio check (a red panel when the split does not
match the design: no result can then be trusted), the units per variant against the plan, one
table per role (primary, secondary, guardrails), and the recommendation with its reasons.
``--html FILE`` also writes the standalone report of the same analysis (rendered here, so one
analysis, one ``experiment.analyzed`` event, gives the table, the JSON and the page).

Exit codes: ``analyze`` exits 0 when the analysis was read, 3 (``GateFailed``'s code, "a check
said no", as ``steward drift`` and ``steward monitor run``) when it needs attention: a sample
ratio mismatch or a failing guardrail. Both commands exit 2 for bad input naming the option or
field, 4 for an unknown experiment, 5 when the experiment was already decided, 6 when the
token's role is not enough (applying a ship needs the approver role over HTTP).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel

from steward.cli._output import console, escape, note, print_json, success, table, write_text
from steward.cli._state import state
from steward.domain.experiments import (
    ArmResult,
    DecisionAction,
    Direction,
    ExperimentAnalysis,
    GuardrailStatus,
    MetricResult,
    MetricRole,
    Recommendation,
)
from steward.errors import GateFailed
from steward.experiments.report import p_clause, p_text, render_analysis_html

if TYPE_CHECKING:
    from rich.table import Table

    from steward.client import Client
    from steward.domain.experiments import Experiment

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]
_ROLE_TITLES = {
    MetricRole.PRIMARY: "Primary metric",
    MetricRole.SECONDARY: "Secondary metrics",
    MetricRole.GUARDRAIL: "Guardrails",
}
_VERDICT_STYLES = {
    Recommendation.SHIP: "bold green",
    Recommendation.ROLLBACK: "bold red",
    Recommendation.KEEP_RUNNING: "bold blue",
    Recommendation.INCONCLUSIVE: "bold yellow",
}
_GUARDRAIL_STYLES = {
    GuardrailStatus.OK: "green",
    GuardrailStatus.WARNING: "yellow",
    GuardrailStatus.FAILING: "bold red",
}


def needs_attention(analysis: ExperimentAnalysis) -> bool:
    """A sample ratio mismatch or a failing guardrail: what makes ``analyze`` exit 3."""
    failing = any(
        arm.guardrail is GuardrailStatus.FAILING for m in analysis.metrics for arm in m.arms
    )
    return analysis.srm.mismatch or failing


def analyze(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment.")],
    html: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Also write the standalone report (interval plots, numbers, recommendation).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Analyse experiment NAME now: the sample-ratio check first, then every metric with the
    experiment's method and correction, the guardrails, and a recommendation with its reasons.
    Exit 0 when read, 3 when it needs attention (sample ratio mismatch or a failing
    guardrail)."""
    client = state(ctx).client
    analysis = client.analyze_experiment(name)
    experiment = client.get_experiment(name)  # the design: weights, tolerances, hypothesis
    if html is not None:
        write_text(html, render_analysis_html(analysis, experiment), what="report",
                   option="html")  # fmt: skip
    if as_json:
        print_json(analysis)
    else:
        print_analysis(analysis, experiment)
    if html is not None:
        note(f"Wrote the report to {html}.")
    if needs_attention(analysis):
        raise typer.Exit(GateFailed.exit_code)


def decide(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment.")],
    action: Annotated[
        DecisionAction,
        typer.Argument(
            help="ship: the variant wins; rollback: all traffic back to the champion; iterate: "
            "keep the deployment as it is."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why, for the record (required).")],
    variant: Annotated[
        int | None,
        typer.Option(help="The version to ship (default: the one treatment of a two-arm split)."),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Act on the deployment too: ship promotes the variant to production if needed "
            "and makes it the champion; rollback sends all traffic back to the champion.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Record the decision on experiment NAME (it ends the experiment), and with --apply act
    on its deployment."""
    client = state(ctx).client
    decided = client.decide_experiment(name, action, reason=reason, variant=variant, apply=apply)
    if as_json:
        print_json(decided)
        return
    decision = decided.decision
    if decision is None:  # a decided experiment always has one; said plainly if not
        note(f"Experiment {decided.name} is {decided.state.value} without a decision recorded.")
        return
    shipped = f" v{decision.variant}" if decision.variant is not None else ""
    success(
        f"Recorded {decision.action.value}{shipped} on experiment {decided.name} "
        f"(by {decision.decided_by}): {decision.reason}"
    )
    _print_change(client, decided, applied=decision.applied, asked=apply)


def _print_change(client: Client, experiment: Experiment, *, applied: bool, asked: bool) -> None:
    decision = experiment.decision
    if decision is None:
        return
    if applied:
        deployment = client.get_deployment(experiment.deployment)
        what = (
            f"v{deployment.champion} is now the champion of {deployment.name} and takes all "
            "its traffic (the split is removed)"
            if decision.action is DecisionAction.SHIP
            else f"all of {deployment.name}'s traffic goes back to its champion "
            f"v{deployment.champion} (the split is removed)"
        )
        success(f"Applied: {what}; revision r{deployment.revision}.")
        return
    unchanged = f"The deployment {experiment.deployment} is unchanged"
    if decision.action is DecisionAction.ITERATE or asked:
        console.print(escape(f"{unchanged}."), soft_wrap=True)
        return
    name = experiment.deployment
    act = (
        f"`steward promote models:/{experiment.model_name}/{decision.variant} --to production` "
        f"if needed, then `steward deploy {name} --model {experiment.model_name} "
        f"--champion {decision.variant}`"
        if decision.action is DecisionAction.SHIP
        else f"`steward rollback {name}`"
    )
    console.print(escape(f"{unchanged} (no --apply): to act on it, {act}."), soft_wrap=True)


# -- printing --------------------------------------------------------------------------------
def print_analysis(analysis: ExperimentAnalysis, experiment: Experiment) -> None:
    console.print(
        f"[bold]{escape(analysis.experiment)}[/bold] on {escape(analysis.deployment)} · "
        f"{analysis.method.value}, {analysis.correction.value} correction, alpha "
        f"{analysis.alpha:g} · {analysis.start:%Y-%m-%d %H:%M} → {analysis.end:%Y-%m-%d %H:%M} "
        "UTC",
        soft_wrap=True,
    )
    _print_srm(analysis)
    _print_units(analysis, experiment)
    tolerances = {m.metric: m.tolerance for m in experiment.metrics}
    for role in MetricRole:
        results = [m for m in analysis.metrics if m.role is role]
        if results:
            console.print(_role_table(role, results, tolerances))
            for line in _notes(results):
                console.print(f"  [dim]{escape(line)}[/dim]", soft_wrap=True)
    _print_recommendation(analysis)


def _print_srm(analysis: ExperimentAnalysis) -> None:
    srm = analysis.srm
    counts = " / ".join(f"v{v} {n:,}" for v, n in srm.counts.items())
    expected = " / ".join(f"{e:,.0f}" for e in srm.expected.values())
    facts = f"units {counts} against {expected} expected ({p_clause(srm.p_value)})"
    if srm.mismatch:
        console.print(
            Panel(
                f"[bold]The results cannot be trusted.[/bold] The variants' sizes do not match "
                f"the design: {escape(facts)}. Find the cause (assignment, logging, a crashing "
                "variant) before reading any result below.",
                title="[bold]Sample ratio mismatch[/bold]",
                border_style="red",
                style="red",
            )
        )
        return
    console.print(f"[green]✓[/green] Sample ratio as designed: {escape(facts)}.", soft_wrap=True)


def _print_units(analysis: ExperimentAnalysis, experiment: Experiment) -> None:
    total = sum(analysis.units.values())
    weights = experiment.weights or {}
    design = sum(weights.values()) or 1.0
    rows = (
        [f"v{v}" + (" (control)" if v == experiment.control else ""), f"{n:,}",
         f"{n / total:.1%}" if total else None,
         f"{weights[v] / design:.1%}" if v in weights else None]
        for v, n in analysis.units.items()
    )  # fmt: skip
    console.print(table("Units per variant", ["variant", "units", "share", "design"], rows))
    if analysis.planned_units:
        console.print(
            f"{total:,} of the planned {analysis.planned_units:,} units "
            f"({total / analysis.planned_units:.0%}).",
            soft_wrap=True,
        )
    if analysis.assignment_mismatches:
        note(
            f"{analysis.assignment_mismatches:,} of {analysis.assignment_checked:,} unit(s) "
            "checked were served by another variant than the design's hash assigns them: the "
            "split did not run exactly as designed (each unit counts in the variant that served "
            "it)."
        )


def _role_table(
    role: MetricRole, results: list[MetricResult], tolerances: dict[str, float | None]
) -> Table:
    """One row per metric and variant; the means as ``control → variant``, the lift over its
    interval (relative, or the difference Δ when the control's mean is zero)."""
    guardrail = role is MetricRole.GUARDRAIL
    bayesian = any(a.chance_to_beat is not None for r in results for a in r.arms)
    columns = ["metric", "arm", "control → arm", "lift", "p"]
    columns += ["allowed", "status"] if guardrail else ["adj. p"]
    columns += ["P(beats)"] if bayesian else []
    columns += [] if guardrail else ["verdict"]
    out = table(_ROLE_TITLES[role], columns, [])
    out.collapse_padding = True  # one space between columns: 80 columns hold the row
    for result in results:
        better = "↑" if result.direction is Direction.INCREASE else "↓"
        for arm in result.arms:
            row = [
                f"{escape(result.metric)} {better}", f"v{arm.variant}",
                f"{_mean(result.control_mean)} → {_mean(arm.mean)}", escape(_lift(arm)),
                escape(p_text(arm.p_value)),
            ]  # fmt: skip
            if guardrail:
                allowed = (tolerances.get(result.metric) or 0.0) * 100
                row += [f"{allowed:.3g}% worse", _guardrail(arm)]
            else:
                row.append(escape(p_text(arm.p_value_adjusted)))
            if bayesian:
                row.append("—" if arm.chance_to_beat is None else f"{arm.chance_to_beat:.1%}")
            if not guardrail:
                row.append(_significance(arm))
            out.add_row(*row)
    return out


def _lift(arm: ArmResult) -> str:
    """The estimate over its interval, on two lines: relative, or the difference (Δ) when
    the control's mean is zero."""
    if arm.relative is not None:
        point, interval, form = arm.relative, arm.relative_ci, "+.1%"
    elif arm.difference is not None:
        point, interval, form = arm.difference, arm.difference_ci, "+.3g"
    else:
        return "—"
    prefix = "" if arm.relative is not None else "Δ "
    if interval is None:
        return f"{prefix}{point:{form}}"
    return f"{prefix}{point:{form}}\n[{interval[0]:{form}}, {interval[1]:{form}}]"


def _significance(arm: ArmResult) -> str:
    """Significant (after the correction) and which way, in the metric's direction."""
    if arm.better is True:
        return "[bold green]better[/]"
    if arm.better is False:
        return "[bold red]worse[/]"
    return "significant" if arm.significant else "[dim]not sig.[/]"


def _guardrail(arm: ArmResult) -> str:
    if arm.guardrail is None:
        return "—"
    return f"[{_GUARDRAIL_STYLES[arm.guardrail]}]{arm.guardrail.value}[/]"


def _notes(results: list[MetricResult]) -> list[str]:
    lines = [f"{r.metric}: {n}" for r in results for n in r.notes]
    lines += [f"{r.metric} v{a.variant}: {n}" for r in results for a in r.arms for n in a.notes]
    lines += [
        f"{r.metric}: CUPED reduced the variance by {r.cuped_variance_reduction:.0%}."
        for r in results
        if r.cuped_variance_reduction is not None
    ]
    return lines


def _print_recommendation(analysis: ExperimentAnalysis) -> None:
    verdict = analysis.recommendation.value
    if analysis.ship_variant is not None:
        verdict += f" v{analysis.ship_variant}"
    style = _VERDICT_STYLES[analysis.recommendation]
    console.print(f"Recommendation: [{style}]{escape(verdict)}[/]", soft_wrap=True)
    for reason in analysis.reasons:
        console.print(f"  • {escape(reason)}", soft_wrap=True)
    note(
        f"Record the decision with `steward experiment decide {analysis.experiment} "
        "ship|rollback|iterate --reason TEXT [--apply]`."
    )


def _mean(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"
