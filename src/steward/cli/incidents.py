"""``steward alerts`` and ``steward incident list|show|note|mitigate|resolve|postmortem``: what
monitoring raised, and the incidents it opened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli._groups import ListGroup
from steward.cli._output import (
    console,
    escape,
    number,
    parse_pairs,
    print_json,
    short_time,
    success,
    table,
)
from steward.cli._state import state
from steward.domain.incidents import IncidentState, MitigationAction
from steward.domain.monitoring import AlertState

if TYPE_CHECKING:
    from rich.table import Table

    from steward.domain.incidents import Incident
    from steward.domain.monitoring import Alert
    from steward.schemas.incidents import TimelineEntry

app = typer.Typer(
    cls=ListGroup,
    help="Incidents: what alerts opened, their timeline, mitigations and postmortem. "
    "`steward incident` lists them.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only, on stdout.")]
IncidentId = Annotated[int, typer.Argument(metavar="ID", min=1, help="The incident's number.")]
Limit = Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")]


def alerts(
    ctx: typer.Context,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment's.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's.")] = None,
    alert_state: Annotated[
        AlertState | None, typer.Option("--state", help="Only firing or resolved ones.")
    ] = None,
    incident: Annotated[int | None, typer.Option(min=1, help="Only this incident's.")] = None,
    limit: Limit = 100,
    as_json: JsonOption = False,
) -> None:
    """List alerts, latest fired first."""
    found = state(ctx).client.list_alerts(
        deployment=deployment, model=model, state=alert_state, incident=incident, limit=limit
    )
    if as_json:
        print_json(found)
        return
    console.print(_alerts_table(f"Alerts ({len(found)})", found))


@app.command("list")
def list_incidents(
    ctx: typer.Context,
    incident_state: Annotated[
        IncidentState | None, typer.Option("--state", help="Only open, mitigated or resolved.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's.")] = None,
    limit: Limit = 100,
    as_json: JsonOption = False,
) -> None:
    """List incidents, newest first (the default command of `steward incident`)."""
    found = state(ctx).client.list_incidents(model=model, state=incident_state, limit=limit)
    if as_json:
        print_json(found)
        return
    # the title names the rule and deployment; `show` has the rest
    rows = (
        [f"INC-{i.id}", i.state, i.severity, i.model_name, i.owner,
         f"{i.opened_at:%m-%d %H:%M}", i.title]
        for i in found
    )  # fmt: skip
    columns = ["id", "state", "severity", "model", "owner", "opened (UTC)", "title"]
    console.print(table(f"Incidents ({len(found)})", columns, rows))


@app.command("show")
def show(ctx: typer.Context, incident_id: IncidentId, as_json: JsonOption = False) -> None:
    """Show an incident: its facts, its alerts and its timeline from the ledger."""
    client = state(ctx).client
    incident = client.get_incident(incident_id)
    attached = client.list_alerts(incident=incident_id, limit=1000)
    story = client.incident_timeline(incident_id)
    if as_json:
        print_json({"incident": incident, "alerts": attached, "timeline": story})
        return
    console.print(_header(incident))
    console.print(_alerts_table(f"Alerts ({len(attached)})", attached))
    console.print(_timeline_table(story))


@app.command("note")
def note(
    ctx: typer.Context,
    incident_id: IncidentId,
    text: Annotated[str, typer.Argument(help="What happened, what was tried, what is known.")],
) -> None:
    """Add a note to the incident's timeline."""
    state(ctx).client.note_incident(incident_id, text)
    success(f"Noted on INC-{incident_id}.")


@app.command("mitigate")
def mitigate(
    ctx: typer.Context,
    incident_id: IncidentId,
    action: Annotated[
        MitigationAction,
        typer.Option(
            help="rollback: the canary/split goes, or else the champion goes back to the "
            "previous production version; disable-canary; fallback: answer from the "
            "deployment's rule/default fallback."
        ),
    ],
    reason: Annotated[str | None, typer.Option(help="Why; kept in the ledger.")] = None,
    deployment: Annotated[
        str | None,
        typer.Option(help="Which of the model's deployments (default: the first alert's)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Stop the harm through the deployment; the incident becomes mitigated."""
    result = state(ctx).client.mitigate_incident(
        incident_id, action, reason=reason, deployment=deployment
    )
    if as_json:
        print_json(result)
        return
    after = result.deployment
    success(
        f"INC-{incident_id} is {result.incident.state.value}: {action.value} on {after.name} "
        f"(revision {result.revision_before} -> {after.revision}, champion v{after.champion}"
        + (", answering from its fallback" if after.serve_fallback else "")
        + ")."
    )


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    incident_id: IncidentId,
    reason: Annotated[str | None, typer.Option(help="What fixed it; kept in the ledger.")] = None,
) -> None:
    """Close the incident for good (a later alert opens a new one)."""
    state(ctx).client.resolve_incident(incident_id, reason=reason)
    success(f"INC-{incident_id} is resolved. Write its postmortem: `steward incident "
            f"postmortem {incident_id} --set summary=...`.")  # fmt: skip


@app.command("postmortem")
def postmortem(
    ctx: typer.Context,
    incident_id: IncidentId,
    sections: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="SECTION=TEXT",
            help="Write a section first (TEXT, or @FILE to read it); repeat for several. "
            "Sections: summary, impact, root_cause_data, root_cause_model, "
            "root_cause_infrastructure, actions.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the Markdown to this file.", dir_okay=False),
    ] = None,
) -> None:
    """Print (or write) the postmortem in Markdown, after writing any --set sections."""
    client = state(ctx).client
    if sections:
        texts = {name: _read_text(value) for name, value in parse_pairs(sections, "--set").items()}
        client.set_postmortem(incident_id, **texts)
    markdown = client.postmortem(incident_id)
    if output is None:
        typer.echo(markdown, nl=False)
        return
    output.write_text(markdown, encoding="utf-8")
    success(f"Wrote the postmortem of INC-{incident_id} to {output}.")


def _read_text(value: str) -> str:
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    if not path.is_file():
        raise typer.BadParameter(
            f"no file {str(path)!r} to read a section from", param_hint="--set"
        )
    return path.read_text(encoding="utf-8")


def _header(incident: Incident) -> str:
    rows = [
        ("state", incident.state.value), ("severity", incident.severity.value),
        ("model", incident.model_name), ("deployment", incident.deployment or "—"),
        ("owner", incident.owner),
        ("opened", f"{short_time(incident.opened_at)} by {incident.opened_by}"),
        ("mitigated", short_time(incident.mitigated_at) or "—"),
        ("resolved", short_time(incident.resolved_at) or "—"),
        ("postmortem", ", ".join(incident.postmortem) or "not written"),
    ]  # fmt: skip
    lines = [f"[bold]INC-{incident.id}[/bold] {escape(incident.title)}"]
    lines += [f"  [dim]{key:<11}[/dim]{escape(value)}" for key, value in rows]
    return "\n".join(lines)


def _alerts_table(title: str, found: list[Alert]) -> Table:
    # Narrow enough for 80 columns; the condition and ids are in --json.
    rows = (
        [f"{a.fired_at:%m-%d %H:%M}", f"{a.rule.name} on {a.deployment}", a.severity, a.state,
         number(a.last_value), f"INC-{a.incident_id}" if a.incident_id else None]
        for a in found
    )  # fmt: skip
    columns = ["fired (UTC)", "alert", "severity", "state", "value", "incident"]
    return table(title, columns, rows)


def _timeline_table(story: list[TimelineEntry]) -> Table:
    rows = ([short_time(e.at), e.kind, e.actor, e.summary] for e in story)
    return table(f"Timeline ({len(story)})", ["when", "event", "by", "what"], rows)
